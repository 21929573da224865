"""Unified-VLM FDP adapters (Janus, Chameleon, Emu3) on tiny random checkpoints built offline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.errors import BadInput  # noqa: E402
from wmbench.models.unified import ChameleonWorldModel, Emu3WorldModel, JanusWorldModel  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402

CASES = {"janus": (JanusWorldModel, {}), "chameleon": (ChameleonWorldModel, {}),
         "emu3": (Emu3WorldModel, {"resolution": 32})}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {name: getattr(tiny_models, f"build_{name}")(tmp_path_factory.mktemp(name)) for name in CASES}


def make_batch(b: int = 3) -> Batch:
    rng = np.random.default_rng(1)
    sources = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(b)]
    actions = ["move the cup", "open the door", "push the cup forward"][:b]
    return Batch(sample_ids=[f"s{i}" for i in range(b)], sources=sources, prompts=actions, actions=actions)


@pytest.mark.parametrize("name", list(CASES))
def test_n_samples_per_input_shapes_and_seeding(folders, name):
    cls, kwargs = CASES[name]
    model = cls(path=str(folders[name]), seed=3, **kwargs)
    assert cls.capabilities() == ("predict_next",)
    batch = make_batch()
    out = model.predict_next(batch, n=2)
    assert len(out) == 3 and all(len(draws) == 2 for draws in out)
    for source, draws in zip(batch.sources, out):
        for image in draws:
            assert image.dtype == np.uint8 and image.shape == source.shape
    again = model.predict_next(batch, n=2)
    assert all(np.array_equal(a, b) for x, y in zip(out, again) for a, b in zip(x, y))  # same seed, same draws
    other = cls(path=str(folders[name]), seed=4, **kwargs).predict_next(batch, n=2)
    assert any(not np.array_equal(a, b) for x, y in zip(out, other) for a, b in zip(x, y))


def test_janus_sampler_matches_transformers_generate(folders):
    """Text-only prompt, greedy, CFG 3: our loop must pick the same image tokens as
    JanusForConditionalGeneration.generate(generation_mode="image")."""
    import torch

    model = JanusWorldModel(path=str(folders["janus"]), temperature=0.0, guidance=3.0)
    model._load()
    proc = model.processor
    proc.tokenizer.padding_side = "left"
    inputs = proc(text=["move the cup", "open the door now"], generation_mode="image", padding=True,
                  return_tensors="pt")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    ours = model._sample(ids, mask, model._embed(ids), tail=1, n=1, generators=[None, None])
    with torch.no_grad():
        config = model.model.generation_config
        config.generation_kwargs = {"boi_token_id": proc.tokenizer.convert_tokens_to_ids(proc.image_start_token)}
        config.bos_token_id, config.pad_token_id = proc.tokenizer.bos_token_id, proc.tokenizer.pad_token_id
        reference = model.model.generate(input_ids=ids, attention_mask=mask, generation_mode="image",
                                         generation_config=config, do_sample=False, guidance_scale=3.0)
    assert torch.equal(ours, reference)


def test_emu3_structure_and_decoder_match_transformers(folders):
    import torch

    model = Emu3WorldModel(path=str(folders["emu3"]), resolution=32, seed=0)
    model._load()
    batch = make_batch(2)
    sources = [np.asarray(tiny_models_pil(s).resize((32, 32))) for s in batch.sources]
    ids, mask, embeds, tail = model._encode(sources, list(batch.actions))
    h, w = model.grid
    tokens = model._sample(ids, mask, embeds, tail, n=1, generators=[torch.Generator().manual_seed(j) for j in range(2)])
    assert tokens.shape == (2, h * (w + 1))
    rows = tokens.view(2, h, w + 1)
    assert bool((rows[:, :, -1] == model.eol_id).all())  # end-of-line after every row
    assert set(rows[:, :, :-1].flatten().tolist()) <= set(model.image_ids.tolist())
    # transformers' own decode path (it drops eof / eoi / eos after the grid) gives the same pixels
    padded = torch.cat([tokens, torch.zeros((2, 3), dtype=tokens.dtype)], dim=1)
    with torch.no_grad():
        reference = model.model.decode_image_tokens(image_tokens=padded, height=h, width=w)
    ours = model._decode(tokens)
    assert all(np.array_equal(a, b) for a, b in zip(ours, model._postprocess(reference)))


def test_chameleon_samples_only_image_tokens_and_needs_decoder(folders, tmp_path):
    import torch

    model = ChameleonWorldModel(path=str(folders["chameleon"]))
    model._load()
    ids, mask, embeds, tail = model._encode(make_batch(2).sources, ["open", "close"])
    tokens = model._sample(ids, mask, embeds, tail, n=2, generators=[torch.Generator().manual_seed(j) for j in range(4)])
    assert tokens.shape == (4, model._num_steps())
    assert set(tokens.flatten().tolist()) <= set(model.image_ids.tolist())
    bare = tiny_models.build_chameleon(tmp_path / "no-decoder", with_decoder=False)
    with pytest.raises(BadInput, match="VQ decoder"):
        ChameleonWorldModel(path=str(bare)).predict_next(make_batch(1))


def test_top_k_one_is_greedy(folders):
    batch = make_batch(2)
    greedy = JanusWorldModel(path=str(folders["janus"]), temperature=0.0).predict_next(batch)
    top1 = JanusWorldModel(path=str(folders["janus"]), temperature=1.0, top_k=1, seed=9).predict_next(batch)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(greedy, top1))


def tiny_models_pil(array):
    from PIL import Image

    return Image.fromarray(array)


@pytest.mark.parametrize("name", ["janus", "chameleon"])
def test_a_samples_draws_do_not_depend_on_its_batch(folders, name):
    cls, kwargs = CASES[name]
    model = cls(path=str(folders[name]), seed=3, **kwargs)
    batch = make_batch()
    together = model.predict_next(batch, n=2)
    alone = model.predict_next(Batch(sample_ids=batch.sample_ids[1:2], sources=batch.sources[1:2],
                                     prompts=batch.prompts[1:2], actions=batch.actions[1:2]), n=2)
    assert all(np.array_equal(a, b) for a, b in zip(together[1], alone[0]))
