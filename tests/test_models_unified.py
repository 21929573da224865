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
    assert cls.capabilities() == ("predict_next", "transition_logprob")
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
        config.bos_token_id, config.pad_token_id = proc.tokenizer.bos_token_id, model._pad_id()
        reference = model.model.generate(input_ids=ids, attention_mask=mask, generation_mode="image",
                                         generation_config=config, do_sample=False, guidance_scale=3.0)
    assert torch.equal(ours, reference)


def test_emu3_structure_and_decoder_match_transformers(folders):
    import torch

    model = Emu3WorldModel(path=str(folders["emu3"]), resolution=32, seed=0)
    model._load()
    batch = make_batch(2)
    ids, mask, embeds, tail = model._encode(batch.sources, list(batch.actions))
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


# -- transition_logprob: the FDP side of the likelihood probe ------------------------------------

def make_targets(b: int = 3, shape=(20, 24, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.integers(0, 255, shape, dtype=np.uint8) for _ in range(b)]


def sub_batch(batch: Batch, part: slice) -> Batch:
    return Batch(sample_ids=batch.sample_ids[part], sources=batch.sources[part], prompts=batch.prompts[part],
                 actions=batch.actions[part])


@pytest.mark.parametrize("name", list(CASES))
def test_teacher_forcing_matches_the_samplers_log_probabilities(folders, name):
    """Tokens drawn by the sampler (temperature 1, no guidance), then teacher-forced in one pass:
    the per-step log-probabilities the sampler drew from and the scorer's agree, forced steps
    (Emu3's end of line) are not counted, and rows of different prompt lengths (left padding) too."""
    import torch

    from wmbench.models.unified_likelihood import teacher_forced_logprobs

    cls, kwargs = CASES[name]
    unguided = {"guidance": 1.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    unguided.update({"image_guidance": 1.0} if name == "chameleon" else {})
    model = cls(path=str(folders[name]), **unguided, **kwargs)
    model._load()
    batch = make_batch()
    ids, mask, embeds, tail = model._encode(batch.sources, model._texts(batch))
    assert len(set(mask.sum(1).tolist())) > 1  # the prompts have different lengths: left padding is exercised
    drawn: list = []
    generators = [torch.Generator().manual_seed(j) for j in range(3)]
    tokens = model._sample(ids, mask, embeds, tail, n=1, generators=generators, record=drawn)
    drawn = torch.stack(drawn, dim=1)
    forced = torch.tensor([model._forced(s) is not None for s in range(model._num_steps())])
    scored = teacher_forced_logprobs(model, ids, mask, embeds, tokens)
    assert scored.shape == drawn.shape == tokens.shape
    assert bool((scored[:, forced] == 0).all()) and bool((scored[:, ~forced] < 0).all())
    assert torch.allclose(scored, drawn, atol=1e-4)
    assert torch.allclose(scored.double().sum(1), drawn.double().sum(1), atol=1e-4)
    if name == "emu3":
        assert int(forced.sum()) == model.grid[0]  # one end of line per row
        with pytest.raises(ValueError, match="structural token"):
            teacher_forced_logprobs(model, ids, mask, embeds, torch.where(forced, tokens[:, :1], tokens))


@pytest.mark.parametrize("name", list(CASES))
def test_transition_logprob_scores_real_images(folders, name):
    """End to end through the VQ encoder: one finite float per sample, deterministic, the same alone
    as in a batch (and across max_batch chunks), and independent of the sampling arguments
    (temperature 1, no top-k, no guidance for the likelihood)."""
    cls, kwargs = CASES[name]
    model = cls(path=str(folders[name]), max_batch=2, **kwargs)
    batch, targets = make_batch(), make_targets()
    values = model.transition_logprob(batch, targets)
    assert len(values) == 3 and all(isinstance(v, float) and np.isfinite(v) and v < 0 for v in values)
    assert model.transition_logprob(batch, targets) == values
    for i in (1, 2):
        alone = model.transition_logprob(sub_batch(batch, slice(i, i + 1)), targets[i:i + 1])
        assert alone[0] == pytest.approx(values[i], abs=1e-4)
    other = cls(path=str(folders[name]), temperature=0.3, top_k=2, top_p=0.5, guidance=3.0, **kwargs)
    assert other.transition_logprob(batch, targets) == pytest.approx(values, abs=1e-4)
    # the action conditions the score; a target of another size is brought to its source's frame
    moved = Batch(sample_ids=batch.sample_ids, sources=batch.sources, prompts=batch.prompts,
                  actions=["close the drawer"] * 3)
    assert model.transition_logprob(moved, targets) != values
    bigger = [np.asarray(tiny_models_pil(t).resize((48, 40))) for t in targets]
    assert all(np.isfinite(model.transition_logprob(batch, bigger)))
    with pytest.raises(BadInput, match="one target per sample"):
        model.transition_logprob(batch, targets[:2])


@pytest.mark.parametrize("name", list(CASES))
def test_target_tokens_have_the_samplers_shape_and_vocabulary(folders, name):
    """The VQ round trip is not exact with random weights, so not asserted; the target's tokens are
    in the sampler's format: its length, image-vocabulary ids, Emu3's end of line where forced."""
    cls, kwargs = CASES[name]
    model = cls(path=str(folders[name]), **kwargs)
    model._load()
    batch = make_batch()
    sources = batch.sources
    ids, mask, embeds, _ = model._encode(sources, model._texts(batch))
    tokens = model._image_tokens(make_targets())
    assert tokens.shape == (3, model._num_steps())
    assert len(model._decode(tokens)) == 3  # what the sampler returns, the decoder reads
    for step in range(model._num_steps()):
        forced = model._forced(step)
        if forced is not None:
            assert bool((tokens[:, step] == forced).all())
        else:
            assert bool((model._token(model._index(tokens[:, step])) == tokens[:, step]).all())
    if name == "janus":
        assert int(tokens.min()) >= 0 and int(tokens.max()) < model.model.config.vq_config.num_embeddings
    else:  # a copy of the source tokenizes as the source entered the prompt (same processor, same VQ)
        import torch

        with torch.inference_mode():
            copies = model._embed(model._image_tokens(sources))
        prompt = embeds[ids == model.model.model.vocabulary_mapping.image_token_id].view(3, -1, embeds.shape[-1])
        assert torch.equal(prompt, copies)


def test_janus_target_tokens_follow_the_l2_normalised_codebook(folders):
    """Janus quantises as the original `vq_model.py` (codebook_l2_norm): with a codebook of unit rows
    that is transformers' own `JanusVQVAE.encode` over the same pixels, at the generation size."""
    import torch

    from wmbench.models.unified_likelihood import janus_pixels, janus_resolution

    model = JanusWorldModel(path=str(folders["janus"]))
    model._load()
    vq = model.model.model.vqmodel
    with torch.no_grad():
        vq.quantize.embedding.weight.copy_(torch.nn.functional.normalize(vq.quantize.embedding.weight, dim=-1))
    targets = make_targets(2)
    pixels = janus_pixels(model, targets)
    side = janus_resolution(model)  # the tiny model generates 8 px images (its understanding encoder reads 16)
    assert pixels.shape == (2, 3, side, side)
    assert model._decode(torch.zeros((1, 16), dtype=torch.long))[0].shape == (side, side, 3)
    with torch.no_grad():
        reference = vq.encode(pixels).image_tokens.view(2, -1)
    assert torch.equal(model._image_tokens(targets), reference)
