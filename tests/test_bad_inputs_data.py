"""Image decoding in the data readers: every PIL mode to uint8 RGB with its full range, and the
per-image pixel limit (`max_pixels`), checked from the header before any pixel is decoded."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from wmbench.core.errors import BadInput, SampleError
from wmbench.core.frames import FrameSelection
from wmbench.core.tasks import DatasetSpec
from wmbench.data import common, jsonl, ssv2, video
from wmbench.data.common import decode_image, to_rgb8

from video_fixtures import encode_video


def gray3(values) -> np.ndarray:
    """Expected RGB of a gray image: the value repeated over three channels, as a (1, N, 3) array."""
    v = np.asarray(values, dtype=np.uint8).reshape(1, -1)
    return np.repeat(v[:, :, None], 3, axis=2)


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def sixteen(values, mode: str = "I;16") -> Image.Image:
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (len(values), 1), np.asarray(values, dtype=dtype).tobytes())


# --- every mode -------------------------------------------------------------------------------

SIXTEEN = [0, 128, 129, 257, 32768, 65535]
SIXTEEN_AS_8 = [0, 0, 1, 1, 128, 255]  # round(v / 257)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B"])
def test_16_bit_modes_are_scaled_not_clipped(mode):
    image = sixteen(SIXTEEN, mode)
    assert image.mode == mode
    assert np.array_equal(to_rgb8(image), gray3(SIXTEEN_AS_8))
    # the bug: Pillow's own conversion clips at 255 (a 16-bit image decodes almost all white)
    assert np.asarray(image.convert("RGB"))[0, 2, 0] == 129


def test_16_bit_png_and_tiff_files():
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    expected = np.repeat(((ramp.astype(np.int64) + 128) // 257).astype(np.uint8)[:, :, None], 3, axis=2)
    png = encoded(Image.frombytes("I;16", (8, 8), ramp.astype("<u2").tobytes()), "PNG")
    tiff = encoded(Image.frombytes("I;16B", (8, 8), ramp.astype(">u2").tobytes()), "TIFF")
    for data in (png, tiff):
        out = decode_image(data, "ramp")
        assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
        assert np.array_equal(out, expected)
        assert (out == 255).mean() < 0.05  # not 98% white


def test_32_bit_integer_mode():
    fits = Image.fromarray(np.asarray([SIXTEEN], dtype=np.int32))
    assert fits.mode == "I"
    assert np.array_equal(to_rgb8(fits), gray3(SIXTEEN_AS_8))  # 16-bit data in a 32-bit image
    full = np.asarray([[-(2 ** 31), -1, 0, 2 ** 31 - 1]], dtype=np.int32)
    assert np.array_equal(to_rgb8(Image.fromarray(full)), gray3([0, 127, 128, 255]))  # the whole int32 range
    tiff = encoded(Image.fromarray(full), "TIFF")
    assert np.array_equal(decode_image(tiff, "int32.tif"), gray3([0, 127, 128, 255]))


def test_float_mode():
    def f(values):
        return Image.fromarray(np.asarray([values], dtype=np.float32))

    assert f([0.0]).mode == "F"
    assert np.array_equal(to_rgb8(f([0.0, 0.25, 1.0])), gray3([0, 64, 255]))  # [0, 1] -> x 255
    assert np.array_equal(to_rgb8(f([0.0, 100.4, 254.6])), gray3([0, 100, 255]))  # 8-bit values as floats
    assert np.array_equal(to_rgb8(f([-1.0, 0.0, 3.0])), gray3([0, 64, 255]))  # other ranges: min..max
    assert np.array_equal(to_rgb8(f([np.nan, 0.5, np.inf, 1.0])), gray3([0, 128, 255, 255]))
    assert np.array_equal(to_rgb8(f([300.0, 300.0])), gray3([0, 0]))  # constant outside [0, 255]
    assert np.array_equal(to_rgb8(f([np.nan, np.nan])), gray3([0, 0]))
    tiff = encoded(f([0.0, 0.25, 1.0]), "TIFF")
    assert np.array_equal(decode_image(tiff, "float.tif"), gray3([0, 64, 255]))


PALETTE = [10, 20, 30, 200, 100, 50, 0, 255, 0]


def palette_image(transparent: int | None = None) -> Image.Image:
    image = Image.frombytes("P", (3, 1), bytes([0, 1, 2]))
    image.putpalette(PALETTE)
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


@pytest.mark.parametrize("name, image, expected", [
    ("1", Image.frombytes("1", (8, 1), bytes([0b10100000])), gray3([255, 0, 255, 0, 0, 0, 0, 0])),
    ("L", Image.frombytes("L", (3, 1), bytes([0, 77, 255])), gray3([0, 77, 255])),
    ("LA", Image.frombytes("LA", (2, 1), bytes([77, 0, 200, 128])), gray3([77, 200])),  # alpha dropped
    ("P", palette_image(), np.asarray([[[10, 20, 30], [200, 100, 50], [0, 255, 0]]], np.uint8)),
    ("P+transparency", palette_image(transparent=1),
     np.asarray([[[10, 20, 30], [200, 100, 50], [0, 255, 0]]], np.uint8)),  # the color under it
    ("RGB", Image.frombytes("RGB", (1, 1), bytes([1, 2, 3])), np.asarray([[[1, 2, 3]]], np.uint8)),
    ("RGBA", Image.frombytes("RGBA", (2, 1), bytes([200, 100, 50, 0, 1, 2, 3, 128])),
     np.asarray([[[200, 100, 50], [1, 2, 3]]], np.uint8)),  # alpha dropped, not composited
    ("CMYK", Image.frombytes("CMYK", (4, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 255])),
     np.asarray([[[255, 255, 255], [0, 255, 255], [255, 0, 0], [0, 0, 0]]], np.uint8)),
    ("YCbCr", Image.frombytes("YCbCr", (3, 1), bytes([0, 128, 128, 128, 128, 128, 255, 128, 128])),
     gray3([0, 128, 255])),
])
def test_every_other_mode(name, image, expected):
    assert image.mode == name.split("+")[0]
    out = to_rgb8(image)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, expected)


def test_ycbcr_color_follows_jfif():
    # pure red in JFIF YCbCr (full range): Y 76, Cb 85, Cr 255
    out = to_rgb8(Image.frombytes("YCbCr", (1, 1), bytes([76, 85, 255])))
    assert np.abs(out.astype(int) - [254, 0, 0]).max() <= 2


def test_palette_transparency_and_alpha_survive_a_file_round_trip():
    png = encoded(palette_image(transparent=1), "PNG")
    assert Image.open(io.BytesIO(png)).info.get("transparency") == 1
    assert np.array_equal(decode_image(png, "p.png"), to_rgb8(palette_image()))
    rgba = Image.frombytes("RGBA", (2, 1), bytes([200, 100, 50, 0, 1, 2, 3, 255]))
    assert np.array_equal(decode_image(encoded(rgba, "PNG"), "rgba.png"), [[[200, 100, 50], [1, 2, 3]]])
    la = Image.frombytes("LA", (2, 1), bytes([77, 0, 200, 255]))
    assert np.array_equal(decode_image(encoded(la, "PNG"), "la.png"), gray3([77, 200]))
    one = Image.frombytes("1", (8, 1), bytes([0b10100000]))
    assert np.array_equal(decode_image(encoded(one, "PNG"), "1.png"), gray3([255, 0, 255, 0, 0, 0, 0, 0]))
    cmyk = Image.frombytes("CMYK", (1, 1), bytes([0, 255, 255, 0]))
    assert np.array_equal(decode_image(encoded(cmyk, "TIFF"), "cmyk.tif"), [[[255, 0, 0]]])


def test_a_16_bit_png_read_through_a_reader(tmp_path):
    root = tmp_path / "mine"
    (root / "imgs").mkdir(parents=True)
    sixteen(SIXTEEN).save(root / "imgs" / "depth.png")
    (root / "pairs.jsonl").write_text(json.dumps({"source": "imgs/depth.png", "action": "wait"}) + "\n")
    (t,) = list(jsonl.read(root, DatasetSpec("jsonl", "mine"), FrameSelection()))
    assert np.array_equal(t.source.load(), gray3(SIXTEEN_AS_8))


# --- the pixel limit ----------------------------------------------------------------------------

def test_pixel_limit_is_checked_from_the_header_before_decoding(monkeypatch):
    png = encoded(Image.new("RGB", (100, 50)), "PNG")
    decoded = []
    monkeypatch.setattr(common, "to_rgb8", lambda image: decoded.append(image) or np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(SampleError) as info:
        decode_image(png, "imgs/big.png", max_pixels=4_999)
    message = str(info.value)
    assert "imgs/big.png" in message and "100x50 = 5,000 pixels" in message and "limit of 4,999" in message
    assert "max_pixels" in message and "dataset.options" in message
    assert decoded == []  # refused from the header: nothing decoded
    decode_image(png, "imgs/big.png", max_pixels=5_000)
    assert len(decoded) == 1
    decode_image(png, "imgs/big.png", max_pixels=None)  # no limit of ours
    assert common.DEFAULT_MAX_PIXELS == 40_000_000


def test_pillow_decompression_bomb_is_a_sample_error_and_the_option_raises_pillows_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    png = encoded(Image.new("L", (100, 50)), "PNG")  # 5,000 pixels: over 2 x Pillow's limit
    with pytest.raises(SampleError, match=r"bomb.png is too large for Pillow.*max_pixels"):
        decode_image(png, "bomb.png", max_pixels=None)
    assert decode_image(png, "bomb.png", max_pixels=10_000).shape == (50, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # raised to the dataset's limit, never lowered
    assert decode_image(encoded(Image.new("L", (10, 10)), "PNG"), "small.png", max_pixels=2_000).shape == (10, 10, 3)
    assert Image.MAX_IMAGE_PIXELS == 10_000


def test_pixel_limit_is_a_dataset_option_of_the_readers(tmp_path):
    root = tmp_path / "mine"
    (root / "imgs").mkdir(parents=True)
    Image.new("RGB", (40, 30), (9, 8, 7)).save(root / "imgs" / "a.png")
    (root / "pairs.jsonl").write_text(json.dumps({"source": "imgs/a.png", "target": "imgs/a.png", "action": "x"}))

    def read(**options):
        return list(jsonl.read(root, DatasetSpec("jsonl", "mine", options=options), FrameSelection()))

    (t,) = read(max_pixels=1_000)
    with pytest.raises(SampleError, match=r"a.png .*40x30 = 1,200 pixels, more than the limit of 1,000"):
        t.source.load()
    (t,) = read(max_pixels=1_200)
    assert t.source.load()[0, 0].tolist() == [9, 8, 7]
    (t,) = read()  # the default admits it
    assert t.target.load().shape == (30, 40, 3)
    for bad in (0, -5, 1.5, "big", True):
        with pytest.raises(BadInput, match="option 'max_pixels' must be a positive whole number"):
            read(max_pixels=bad)


def test_video_frame_size_is_checked_from_the_stream_header(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    encode_video(path, [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(3)], "libx264", 10)
    with pytest.raises(SampleError, match=r"clip.mp4 \(video frames\) is 48x32 = 1,536 pixels.*max_pixels"):
        video.read_frames(path, [0], max_pixels=1_535)
    with pytest.raises(SampleError, match="48x32"):
        video.read_frames_seek(path, [0], max_pixels=1_000)
    with pytest.raises(SampleError, match="48x32"):
        ssv2.decode_all(path, max_pixels=1_000)
    assert video.read_frames(path, [2], max_pixels=1_536)[2].shape == (32, 48, 3)
    assert video.read_frames_seek(path, [1])[1].shape == (32, 48, 3)
