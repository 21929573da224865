"""Helpers every format reader shares: safe paths, image decoding, format errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..core.errors import SampleError, BadInput


class FormatError(BadInput):
    """A folder is not the format it claims to be (exit 2): says what was expected and found."""

    def __init__(self, fmt: str, root: Path, expected: str, found: str):
        super().__init__(f"{root} is not a {fmt} dataset: expected {expected}; found {found}")


def describe_folder(root: Path, limit: int = 8) -> str:
    if not root.exists():
        return "no such folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not names:
        return "an empty folder"
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def safe_join(root: Path, relative: str, what: str = "path") -> Path:
    """`root / relative`, refusing absolute paths and paths that escape `root` (e.g. '../../etc')."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise SampleError(f"{what} '{relative}' is absolute; dataset paths must be relative to {root}")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise SampleError(f"{what} '{relative}' escapes the dataset root {root}")
    return resolved


def relative_origin(path: str | os.PathLike, root: Path) -> str:
    """`path` named relative to the dataset root (POSIX separators), for LazyImage origins and
    sample ids: sample logs are committed and shared, so they carry no machine-specific paths.
    A path outside the root (a symlinked folder) is named relative to the resolved root, else by
    its last two parts."""
    path, root = Path(path), Path(root)
    for base, candidate in ((root, path), (root.resolve(), path.resolve())):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            continue
    return Path(*path.parts[-2:]).as_posix()


def option_file(fmt: str, root: Path, name: str, what: str) -> Path:
    """The file an option names inside a dataset root (e.g. `file: test.json`): it must exist and
    stay inside the root; otherwise exit 2 saying what was expected and what was found."""
    if not root.is_dir():
        raise FormatError(fmt, root, f"a folder with {name}", describe_folder(root))
    try:
        path = safe_join(root, name, what="option 'file'")
    except SampleError as exc:
        raise BadInput(str(exc)) from None
    if not path.is_file():
        raise FormatError(fmt, root, f"{what} {name}", describe_folder(root))
    return path


def read_text(path: Path) -> str:
    """A dataset's text file (annotations, an index) as UTF-8, a leading byte-order mark dropped
    (Windows editors write one). Bytes that are not UTF-8 are a BadInput naming the file and the
    line; an OSError is the caller's to report."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{path}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                       "save the file as UTF-8") from None


#: The default of the dataset option `max_pixels` (see `check_pixels`).
DEFAULT_MAX_PIXELS = 40_000_000
#: Dataset options every reader that decodes images accepts (merged into the reader's OPTIONS).
IMAGE_OPTIONS = {"max_pixels": DEFAULT_MAX_PIXELS}


def check_pixels(width: int, height: int, origin: str, max_pixels: int | None) -> None:
    """Refuse an image (or a video frame) of more than `max_pixels` pixels, from its header, before
    it is decoded: a SampleError naming it, its size and the option that raises the limit.

    The limit is the dataset option `max_pixels` (default 40,000,000; `null`: no limit of ours).
    A decoded image costs 3 bytes a pixel, and several times that while it is converted and
    scored (an 8000x8000 image took 3.3 GB), so one huge or hostile file could take a worker down.
    40 M pixels admits every frame of the supported datasets (LIBERO 128x128 to 4K and 8K
    video, 7680x4320 = 33 M) and photographs up to ~40 megapixels, and stays below Pillow's own
    decompression-bomb threshold (89 M), so that Pillow never warns about an image we accept."""
    if max_pixels is not None and width * height > max_pixels:
        raise SampleError(f"image {origin} is {width}x{height} = {width * height:,} pixels, more than the "
                          f"limit of {max_pixels:,} (dataset option max_pixels); to read it, raise "
                          f"`max_pixels` under dataset.options in the task YAML, or run with "
                          f"--dataset-option max_pixels={width * height}")


def _allow_in_pillow(max_pixels: int | None) -> None:
    """Pillow refuses images over 2 x `PIL.Image.MAX_IMAGE_PIXELS` (a process-wide setting) in
    `Image.open` itself; a `max_pixels` above Pillow's setting raises that setting to it (never
    lowers it), so the dataset option is the one limit a user has to change."""
    from PIL import Image

    current = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None and current is not None and max_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_pixels


def decode_image(data: bytes | Path, origin: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image bytes or file (PNG, JPEG, WebP, TIFF, ...: whatever Pillow opens) -> (H, W, 3) uint8 RGB.

    The one decoder of image files in the data readers. The size is checked from the header
    before any pixel is decoded (`check_pixels`); every PIL mode is converted by `to_rgb8`.
    Every failure is a SampleError naming `origin`."""
    from PIL import Image, UnidentifiedImageError

    _allow_in_pillow(max_pixels)
    try:
        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        with Image.open(source) as image:
            check_pixels(image.width, image.height, origin, max_pixels)
            return to_rgb8(image)
    except FileNotFoundError as exc:
        raise SampleError(f"missing image file {origin}") from exc
    except Image.DecompressionBombError as exc:
        raise SampleError(f"image {origin} is too large for Pillow: {exc}; if it is genuine, raise "
                          f"`max_pixels` (now {max_pixels}) under dataset.options in the task YAML or with "
                          f"--dataset-option max_pixels=N") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SampleError(f"corrupt or unreadable image {origin}: {exc}") from exc


def to_rgb8(image) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) uint8 RGB, the full range of the source mapped to 0..255.

    - `I;16`, `I;16L`, `I;16B`, `I;16N` (16-bit unsigned; 16-bit PNG and TIFF): value / 257
      (0..65535 -> 0..255), rounded. Pillow's own `convert("RGB")` clips them at 255 instead, which
      turns a 16-bit image almost all white.
    - `I` (32-bit signed): an image whose values all lie in 0..65535 is 16-bit data (older Pillow
      opens 16-bit PNGs as `I`; tools store 16-bit data in 32-bit TIFFs) and is scaled as above;
      any other is mapped linearly from the whole int32 range (-2**31..2**31-1) to 0..255. The rule
      looks at the values of each image: the file does not say which range it uses.
    - `F` (32-bit float): values in [0, 1] are scaled by 255; else values in [0, 255] are taken as
      they are (an 8-bit image stored as floats); else the image is stretched from its own
      min..max to 0..255 (depth, disparity, HDR). NaN becomes 0; +-inf the ends of the range.
    - Alpha (`RGBA`, `LA`, `PA`, `RGBa`, `La`, and `P` with a transparent palette entry) is
      dropped, not composited: a transparent pixel keeps the color stored under it. This is what
      Pillow's `convert("RGB")` does, which is what model preprocessors usually call on the same
      file, so models see the pixels they would see elsewhere; compositing on a background would
      also blacken every image whose writer left the alpha channel at 0.
    - `1`, `L`, `P`, `RGB`, `RGBX`, `CMYK`, `YCbCr`, `HSV`, `LAB` and the rest: Pillow's
      conversion (bilevel 0/1 -> 0/255, palette lookup, CMYK -> RGB, JPEG YCbCr -> RGB); gray
      modes are repeated over the three channels. Embedded ICC profiles are not applied.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(image), mode)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "La":  # premultiplied; Pillow converts it to LA only
        image = image.convert("LA")
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # drops alpha, un-premultiplies RGBa
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """One band of a 16-bit, 32-bit integer or float image -> uint8 (rules in `to_rgb8`)."""
    if mode != "F":
        v = values.astype(np.int64)
        if v.size == 0 or (v.min() >= 0 and v.max() <= 65535):
            return ((v + 128) // 257).astype(np.uint8)  # round(v / 257): 65535 -> 255
        lo, span = -(2 ** 31), 2 ** 32 - 1
        return np.rint((v - lo) * (255 / span)).astype(np.uint8)
    v = values.astype(np.float64)
    nan = np.isnan(v)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.zeros(v.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    v = np.clip(np.where(nan, lo, v), lo, hi)  # +-inf -> the ends of the finite range
    if lo >= 0 and hi <= 1:
        out = v * 255
    elif lo >= 0 and hi <= 255:
        out = v
    else:
        out = (v - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(v)
    out = np.rint(np.clip(out, 0, 255)).astype(np.uint8)
    out[nan] = 0
    return out


def check_options(fmt: str, options: dict, allowed: dict) -> dict:
    """`options` merged over the defaults in `allowed` ({name: default}); an unknown option is a
    BadInput naming it and the options the format knows."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BadInput(f"format '{fmt}': unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(sorted(allowed)) or 'none'}")
    merged = {**allowed, **options}
    if "max_pixels" in allowed:
        value = merged["max_pixels"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadInput(f"format '{fmt}': option 'max_pixels' must be a positive whole number of pixels "
                           f"per image (or null for no limit), got {value!r}")
    return merged
