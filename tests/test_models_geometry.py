"""The geometry contract of every image-generating adapter (issue 11, docs/models.md): the model sees
the frame as its upstream preprocessing frames it, and a prediction comes back into the source frame
by the exact inverse, with what a crop cut away filled from the source and the fraction recorded.

Test: the generation step replaced by an identity (the processed input itself, as the family's
decoder would return it) on 16:9 and 9:16 frames; every adapter's output must line up with the
source. A stretch of the model frame onto the source (what the adapters did before) does not."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.types import Batch  # noqa: E402
from wmbench.models import geometry  # noqa: E402
from wmbench.models.base import Frame, details_of  # noqa: E402
from wmbench.models.editors import InstructPix2PixEditor  # noqa: E402
from wmbench.models.unified import ChameleonWorldModel, Emu3WorldModel, JanusWorldModel  # noqa: E402

SHAPES = {"16:9": (144, 256), "9:16": (256, 144)}
SIDE = 256  # the model frame the identity runs at (the released checkpoints use 384 / 512)


def smooth_frame(shape: tuple[int, int]) -> np.ndarray:
    """Low-frequency structure that is not symmetric (a misplaced or stretched copy shows)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w] / float(max(h, w))
    image = np.stack([128 + 100 * np.sin(5 * x + 1), 128 + 100 * np.cos(7 * y), 255 * x * (1 - y)], -1)
    image[h // 5: h // 3, w // 6: w // 2] = (240, 30, 30)  # an off-centre block
    return np.clip(image, 0, 255).astype(np.uint8)


def one(source: np.ndarray) -> Batch:
    return Batch(sample_ids=["s0"], sources=[source], prompts=["change nothing"], actions=["change nothing"])


def stretched(view: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(view).resize((shape[1], shape[0]), Image.BICUBIC))


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {name: getattr(tiny_models, f"build_{name}")(tmp_path_factory.mktemp(name))
            for name in ("janus", "chameleon", "emu3", "instruct_pix2pix")}


def janus_identity(folder):
    from wmbench.models.unified_likelihood import janus_pixels

    model = JanusWorldModel(path=str(folder))
    model._load()
    # the identity runs at a realistic side: the generation side is num_patches * 2 here
    model.model.model.vqmodel.config.num_patches = SIDE // 2
    model.processor.image_processor.size = {"height": SIDE, "width": SIDE}
    return model, lambda sources: model._postprocess(janus_pixels(model, sources).permute(0, 2, 3, 1))


def chameleon_identity(folder):
    from wmbench.models import _hf

    model = ChameleonWorldModel(path=str(folder))
    model._load()
    ip = model.processor.image_processor
    ip.size, ip.crop_size = {"shortest_edge": SIDE}, {"height": SIDE, "width": SIDE}

    def view(sources):
        pixels = ip(images=[_hf.to_pil(s) for s in sources], return_tensors="pt")["pixel_values"]
        return _hf.tensor_to_uint8(pixels, (-1.0, 1.0))  # the decoder's output convention
    return model, view


def emu3_identity(folder):
    from wmbench.models import _hf

    model = Emu3WorldModel(path=str(folder), resolution=SIDE)
    model._load()
    ip = model.processor.image_processor
    return model, lambda sources: model._postprocess(
        ip(images=[_hf.to_pil(s) for s in sources], return_tensors="pt")["pixel_values"])


@pytest.mark.parametrize("aspect", list(SHAPES))
@pytest.mark.parametrize("family", ["janus", "chameleon", "emu3"])
def test_unified_identity_lines_up_with_the_source(folders, family, aspect):
    model, view = {"janus": janus_identity, "chameleon": chameleon_identity, "emu3": emu3_identity}[family](folders[family])
    source = smooth_frame(SHAPES[aspect])
    views = view([source])
    assert views[0].shape[:2] != source.shape[:2] or family == "emu3"
    model._encode = lambda sources, texts: (None, None, None, 0)
    model._sample = lambda *args, **kwargs: None
    model._decode = lambda tokens: views * 2
    out = model.predict_next(one(source), n=2)[0]
    assert len(out) == 2 and all(isinstance(o, Frame) and o.shape == source.shape for o in out)
    assert error(out[0], source) < 3.0, f"{family} {aspect}: the prediction does not line up with the source"
    if family == "emu3":  # aspect-preserving: the model frame has the source's shape (was a square)
        assert abs(views[0].shape[1] / views[0].shape[0] - source.shape[1] / source.shape[0]) < 0.1
    else:  # a stretch of the model frame onto the source (the adapters before issue 11) is far off
        assert error(stretched(views[0], source.shape[:2]), source) > 3 * max(1.0, error(out[0], source))
    record = details_of(out[0])["geometry"]
    expected = {"janus": 0.0, "chameleon": 1 - 144 / 256, "emu3": 0.0}[family]
    assert record["filled_from_source"] == pytest.approx(expected, abs=0.01)
    if family == "chameleon":  # what the crop cut away is the source's, untouched
        edge = (slice(None), slice(0, 40)) if aspect == "16:9" else (slice(0, 40), slice(None))
        assert np.array_equal(out[0][edge], source[edge])


class IdentityPipe:
    """Stands in for StableDiffusionInstructPix2PixPipeline: returns its input images."""

    def __init__(self):
        self.sizes = []

    def __call__(self, prompt, image, generator=None, output_type="np", num_inference_steps=None,
                 guidance_scale=None, image_guidance_scale=None):
        self.sizes.append(sorted({im.size for im in image}))
        return SimpleNamespace(images=[np.asarray(im, dtype=np.float32) / 255.0 for im in image])


def test_editor_identity_lines_up_with_the_source_in_both_aspects(folders):
    model = InstructPix2PixEditor(path=str(folders["instruct_pix2pix"]), resolution=512)
    model._load()
    pipe = model._pipe = IdentityPipe()
    sources = [smooth_frame(SHAPES["16:9"]), smooth_frame(SHAPES["9:16"]), smooth_frame((200, 200))]
    batch = Batch(sample_ids=["a", "b", "c"], sources=sources, prompts=["x"] * 3, actions=["change nothing"] * 3)
    out = model.predict_next(batch, n=1)
    # edit_cli.py framing: 512 x 320 and 320 x 512 (multiples of 64, long side ~512), 512 x 512;
    # one pipeline call per frame size (a pipeline would resize a mixed batch to its first image)
    assert sorted(s for call in pipe.sizes for s in call) == [(320, 512), (512, 320), (512, 512)]
    assert all(len(call) == 1 for call in pipe.sizes)
    for source, (prediction,) in zip(sources, out):
        assert prediction.shape == source.shape and error(prediction, source) < 3.0
    cut = details_of(out[0][0])["geometry"]
    assert cut["kind"] == "edit_cli_fit" and cut["filled_from_source"] == pytest.approx(1 - 230 / 256, abs=1e-6)
    assert details_of(out[2][0])["geometry"]["filled_from_source"] == 0.0


def test_editor_framing_is_image_ops_fit():
    """The box `edit_cli_fit` computes is the one PIL's `ImageOps.fit` crops (the upstream call)."""
    from PIL import Image, ImageOps

    for shape in ((144, 256), (256, 144), (375, 500), (480, 640), (1080, 1920)):
        source = smooth_frame(shape)
        framing = geometry.edit_cli_fit(shape[1], shape[0], 512)
        fitted = ImageOps.fit(Image.fromarray(source), framing.size, method=Image.Resampling.LANCZOS)
        assert np.array_equal(np.asarray(fitted), geometry.frame(source, framing))
        assert all(v % 64 == 0 for v in framing.size) and max(framing.size) in (512, 576)
    assert geometry.edit_cli_fit(1920, 1080, 512).size == (512, 320)


def test_api_identity_lines_up_with_the_source():
    """openai-compatible FDP: the server frames the image; an echoing server gives the source back."""
    import base64
    import io

    from PIL import Image
    from test_models_api import Server

    from wmbench.models.api import OpenAIChatModel

    class Echo(Server):
        def respond(self, path, headers, body):
            from email.parser import BytesParser
            from email.policy import default

            message = BytesParser(policy=default).parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
            image = next(p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "image")
            buffer = io.BytesIO()
            Image.open(io.BytesIO(image.get_payload(decode=True))).save(buffer, format="PNG")
            return {"data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}]}

    server = Echo()
    try:
        model = OpenAIChatModel(model="gpt-image-1", base_url=server.url, api_key_env="NO_SUCH_KEY_VARIABLE", max_retries=0)
        for shape in SHAPES.values():
            source = smooth_frame(shape)
            assert np.array_equal(model.predict_next(one(source))[0][0], source)
    finally:
        server.close()


def test_framing_inverse_is_exact_for_each_rule():
    """Model frame pixels map back to where they came from: a frame made by each rule from a source
    and unframed at the model frame's own resolution reproduces the source it covers."""
    source = smooth_frame((90, 160))
    for framing in (geometry.shortest_edge_center_crop(160, 90, 90, (90, 90)), geometry.edit_cli_fit(160, 90, 160),
                    geometry.identity(160, 90, (160, 90))):
        back = geometry.unframe(geometry.frame(source, framing), framing, source)
        x0, y0, x1, y1 = framing.inner(160, 90)
        assert error(back[y0:y1, x0:x1], source[y0:y1, x0:x1]) < 4.0
        assert np.array_equal(back[:, :x0], source[:, :x0]) and np.array_equal(back[:, x1:], source[:, x1:])
    pad = geometry.pad_to_square(160, 90, 160, 14)
    assert pad.inner(160, 90) == (0, 0, 160, 90) and pad.filled_fraction(160, 90) == 0.0
