"""Diffusers editor adapters on a tiny random InstructPix2Pix pipeline built offline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.errors import BadInput  # noqa: E402
from wmbench.models import MODELS  # noqa: E402
from wmbench.models._hf import torch_generator  # noqa: E402
from wmbench.models.editors import DiffusersEditor, InstructPix2PixEditor  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402

ARGS = {"steps": 3, "resolution": 32, "guidance": 5.0, "image_guidance": 1.3}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_models.build_instruct_pix2pix(tmp_path_factory.mktemp("ip2p"))


def make_batch(b: int = 3) -> Batch:
    rng = np.random.default_rng(2)
    sources = [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in range(b)]
    actions = ["move the cup", "open the door", "push the red block"][:b]
    return Batch(sample_ids=[f"s{i}" for i in range(b)], sources=sources, prompts=["ignored"] * b, actions=actions)


def test_registry_and_capabilities():
    assert MODELS.get("instruct-pix2pix") is InstructPix2PixEditor
    assert InstructPix2PixEditor.capabilities() == ("predict_next",)


def test_matches_the_pipeline_called_directly(folder):
    """Sample 1 of a batch of 3 with n=2 equals a direct one-prompt pipeline call with the same
    generator: the adapter pairs prompts with their own images and seeds per sample."""
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from PIL import Image, ImageOps

    from wmbench.models.geometry import edit_cli_fit, unframe

    batch = make_batch()
    edits = InstructPix2PixEditor(path=str(folder), seed=7, **ARGS).predict_next(batch, n=2)
    assert [len(e) for e in edits] == [2, 2, 2]
    assert all(im.shape == (40, 50, 3) and im.dtype == np.uint8 for e in edits for im in e)
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(folder), safety_checker=None,
                                                                  requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    framing = edit_cli_fit(50, 40, 32)  # edit_cli.py: long side ~32, multiples of 64 -> 64 x 64
    assert framing.size == (64, 64)
    for j in range(2):
        image = ImageOps.fit(Image.fromarray(batch.sources[1]), framing.size, method=Image.Resampling.LANCZOS)
        out = pipe(prompt=batch.actions[1], image=image, num_inference_steps=3, guidance_scale=5.0,
                   image_guidance_scale=1.3, generator=torch_generator(7, ["0", "s1", str(j)], "cpu"),
                   output_type="np").images[0]
        expected = unframe((np.clip(out, 0, 1) * 255).round().astype(np.uint8), framing, batch.sources[1])
        assert np.abs(expected.astype(int) - edits[1][j].astype(int)).max() <= 1
    assert not np.array_equal(edits[1][0], edits[1][1])  # two draws, two seeds


def test_batch_composition_does_not_change_a_sample(folder):
    model = InstructPix2PixEditor(path=str(folder), **ARGS)
    batch = make_batch()
    full = model.predict_next(batch)
    alone = model.predict_next(Batch(sample_ids=["s2"], sources=[batch.sources[2]], prompts=["x"],
                                     actions=[batch.actions[2]]))
    assert np.abs(full[2][0].astype(int) - alone[0][0].astype(int)).max() <= 1


def test_generic_adapter_reads_class_from_model_index(folder):
    model = DiffusersEditor(path=str(folder), **ARGS)
    out = model.predict_next(make_batch(1), n=1)
    assert type(model._pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert out[0][0].shape == (40, 50, 3)
    with pytest.raises(BadInput, match="takes no argument"):
        DiffusersEditor(path=str(folder), not_a_call_arg=1, **ARGS).predict_next(make_batch(1))
    with pytest.raises(BadInput, match="no pipeline class"):
        DiffusersEditor(path=str(folder), pipeline="NoSuchPipeline").predict_next(make_batch(1))
