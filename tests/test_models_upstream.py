"""The unified adapters against their upstream inference code (issue 11, points 1, 2, 4, 7): prompt
formats, special tokens, guidance rows, sampling defaults, VQ precision and where the Chameleon VQ
decoder comes from. Tiny random checkpoints built from real configs (tests/tiny_models.py); what
needs the real tokenizers and weights is in benchmarks/gpu_smoke.py."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.errors import BadInput  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402
from wmbench.models.unified import (EMU3_NEGATIVE, EMU3_POSITIVE, JANUS_PAD, ChameleonWorldModel,  # noqa: E402
                                    Emu3WorldModel, JanusWorldModel)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {name: getattr(tiny_models, f"build_{name}")(tmp_path_factory.mktemp(name)) for name in ("janus", "chameleon", "emu3")}


def sources(b: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(b)]


def text_of(model, ids, mask, row: int = 0) -> str:
    """The decoded prompt of a row, each run of image placeholders shown once."""
    text = model.processor.tokenizer.decode(ids[row][mask[row] == 1])
    return re.sub(r"(<image_placeholder>|<image>)+", r"\1", text)


# -- point 1: Janus ------------------------------------------------------------------------------

def test_janus_prompt_is_the_deepseek_chat_format(folders):
    model = JanusWorldModel(path=str(folders["janus"]))
    model._load()
    ids, mask, _, _ = model._encode(sources(), ["  move the cup ", "open"])
    assert text_of(model, ids, mask, 0) == ("<|begin_of_sentence|><|User|>: <begin_of_image><image_placeholder>"
                                            "<end_of_image>\nmove the cup\n\n<|Assistant|>:<begin_of_image>")


def test_janus_unconditional_row_uses_upstreams_pad_token(folders):
    model = JanusWorldModel(path=str(folders["janus"]))
    model._load()
    tok = model.processor.tokenizer
    pad = tok.convert_tokens_to_ids(JANUS_PAD)
    assert model._pad_id() == pad != tok.pad_token_id
    assert model.guidance == 5.0 and model.temperature == 1.0  # generation_inference.py: cfg_weight 5, temperature 1
    ids, mask, embeds, tail = model._encode(sources(), ["move the cup", "open"])
    (uncond, _, _), = model._guidance_inputs(ids, mask, embeds, tail)
    row = uncond[0][mask[0] == 1].tolist()
    assert row[0] == tok.bos_token_id and row[-1] == tok.convert_tokens_to_ids("<begin_of_image>")
    assert set(row[1:-1]) == {pad}  # upstream: tokens[i, 1:-1] = vl_chat_processor.pad_id


# -- point 2: Chameleon / Anole ------------------------------------------------------------------

def test_chameleon_prompt_ends_with_end_of_turn_and_never_with_none(folders):
    model = ChameleonWorldModel(path=str(folders["chameleon"]))
    model._load()
    ids, mask, _, _ = model._encode(sources(), ["move the cup", "open"])
    assert "None" not in text_of(model, ids, mask) and text_of(model, ids, mask).endswith("move the cup<racm3:break>")
    model.processor.tokenizer.sep_token = "<reserved08706>"  # the real tokenizer's sep: Anole's <END-OF-TURN>
    ids, mask, _, _ = model._encode(sources(), ["move the cup", "open"])
    assert text_of(model, ids, mask) == "<s><racm3:break><image><eoss>move the cup<reserved08706><racm3:break>"


def test_chameleon_samples_as_anole_three_guidance_rows(folders):
    import torch

    model = ChameleonWorldModel(path=str(folders["chameleon"]))
    assert (model.temperature, model.top_p, model.top_k, model.guidance, model.image_guidance) == (0.7, 0.9, 0, 3.0, 1.2)
    model._load()
    ids, mask, embeds, tail = model._encode(sources(), ["move the cup", "open"])
    image_only, uncond = model._guidance_inputs(ids, mask, embeds, tail)
    assert text_of(model, image_only[0], image_only[1]) == "<s><racm3:break><image><eoss><racm3:break>"
    assert text_of(model, uncond[0], uncond[1], 1) == "<s><racm3:break>"
    # the image row carries the source's embeddings: they equal the full prompt's image positions
    image_token = model.model.model.vocabulary_mapping.image_token_id
    assert torch.equal(image_only[2][image_only[0] == image_token], embeds[ids == image_token])
    full, image, unc = (torch.randn(3, 5) for _ in range(3))
    assert torch.allclose(model._mix([full, image, unc]), unc + 1.2 * (image - unc) + 3.0 * (full - image))
    assert ChameleonWorldModel(path="x", guidance=1.0, image_guidance=1.0)._guidance_inputs(ids, mask, embeds, 1) == []
    out = model.predict_next(Batch(sample_ids=["a"], sources=sources(1), prompts=["p"], actions=["open"]), n=2)
    assert len(out[0]) == 2 and out[0][0].shape == (20, 24, 3)


def test_chameleon_vq_encoder_and_decoder_run_in_float32(folders):
    import torch

    model = ChameleonWorldModel(path=str(folders["chameleon"]), dtype="bfloat16", max_batch=1)
    model._load()
    assert model.model.lm_head.weight.dtype == torch.bfloat16
    assert {p.dtype for p in model.model.model.vqmodel.parameters()} == {torch.float32}
    assert {p.dtype for p in model.decoder.parameters()} == {torch.float32}
    seen = []
    vq = model.model.model.vqmodel
    original = vq.encode
    vq.encode = lambda pixel_values, **kw: (seen.append(pixel_values.dtype), original(pixel_values, **kw))[1]
    model._encode(sources(1), ["open"])
    assert seen == [torch.float32]


def split_decoder_shard(folder: Path) -> tuple[Path, Path]:
    """Re-save a tiny Chameleon as two shards + an index, the decoder alone in the second."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    decoder = {k: v for k, v in state.items() if k.startswith("model.vqmodel.decoder.")}
    rest = {k: v for k, v in state.items() if k not in decoder}
    first, second = folder / "model-00001-of-00002.safetensors", folder / "model-00002-of-00002.safetensors"
    save_file(rest, str(first), metadata={"format": "pt"})
    save_file(decoder, str(second), metadata={"format": "pt"})
    (folder / "model.safetensors").unlink()
    weight_map = {**{k: first.name for k in rest}, **{k: second.name for k in decoder}}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return first, second


def test_chameleon_decoder_is_read_from_its_shard_only(tmp_path, monkeypatch):
    import safetensors
    import safetensors.torch

    folder = tiny_models.build_chameleon(tmp_path / "sharded")
    first, second = split_decoder_shard(folder)
    from wmbench.models.chameleon_vq import load_decoder_state

    opened = []
    real_open, real_load = safetensors.safe_open, safetensors.torch.load_file
    monkeypatch.setattr(safetensors, "safe_open", lambda path, *a, **k: (opened.append(Path(path).name), real_open(path, *a, **k))[1])
    monkeypatch.setattr(safetensors.torch, "load_file", lambda path, *a, **k: (opened.append(Path(path).name), real_load(path, *a, **k))[1])
    state = load_decoder_state(str(folder), None)
    assert opened == [second.name] and state and all(not k.startswith("model.") for k in state)


def test_chameleon_decoder_from_the_original_release_on_the_hub(folders, tmp_path, monkeypatch):
    """`vq_decoder=<repo>:<file>` (the original release's vqgan.ckpt, weights_only) for a checkpoint
    without a decoder; a hub checkpoint whose index names no decoder fails before any shard is fetched."""
    import huggingface_hub
    import torch
    from safetensors.torch import load_file

    from wmbench.models.chameleon_vq import load_decoder_state

    state = load_file(str(Path(folders["chameleon"]) / "model.safetensors"))
    ckpt = tmp_path / "vqgan.ckpt"
    torch.save({"state_dict": {k.removeprefix("model.vqmodel."): v for k, v in state.items()
                               if k.startswith("model.vqmodel.")}}, str(ckpt))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"model.vqmodel.encoder.conv_in.weight": "model-00001.safetensors"}}))
    asked = []

    def fake_download(repo, filename, revision=None, **kwargs):
        asked.append((repo, filename))
        files = {("GAIR/Anole-7b-v0.1", "tokenizer/vqgan.ckpt"): ckpt, ("org/chameleon-hf", "model.safetensors.index.json"): index}
        if (repo, filename) not in files:
            raise FileNotFoundError(filename)
        return str(files[(repo, filename)])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    bare = tiny_models.build_chameleon(tmp_path / "bare", with_decoder=False)
    model = ChameleonWorldModel(path=str(bare), vq_decoder="GAIR/Anole-7b-v0.1:tokenizer/vqgan.ckpt")
    out = model.predict_next(Batch(sample_ids=["a"], sources=sources(1), prompts=["p"], actions=["open"]))
    assert out[0][0].shape == (20, 24, 3)
    with pytest.raises(BadInput, match="vq_decoder="):
        load_decoder_state("org/chameleon-hf", None)
    assert asked[-1] == ("org/chameleon-hf", "model.safetensors.index.json")  # no shard was fetched


def test_anole_card_points_at_a_transformers_checkpoint_and_the_original_vqgan():
    from wmbench.models import resolve_card

    card = resolve_card("anole-7b")
    assert card.args["path"] != "GAIR/Anole-7b-v0.1"  # the original (non-transformers) release
    assert card.args["vq_decoder"] == "GAIR/Anole-7b-v0.1:tokenizer/vqgan.ckpt"
    assert "temperature" not in card.args or card.args["temperature"] == 0.7


# -- point 4: Emu3 --------------------------------------------------------------------------------

def test_emu3_positive_suffix_and_negative_prompt_row(folders):
    model = Emu3WorldModel(path=str(folders["emu3"]), resolution=32)
    assert (model.guidance, model.top_k, model.temperature) == (3.0, 2048, 1.0)
    model._load()
    ids, mask, embeds, tail = model._encode(sources(), ["move the cup", "open"])
    h, w = model.grid
    prefix = f"<|image start|>{h}*{w}<|image token|>"
    assert text_of(model, ids, mask).endswith(f"move the cup{EMU3_POSITIVE}{prefix}")
    (neg_ids, neg_mask, _), = model._guidance_inputs(ids, mask, embeds, tail)
    assert text_of(model, neg_ids, neg_mask, 1) == f"<|extra_203|>{EMU3_NEGATIVE}{prefix}"
    out = model.predict_next(Batch(sample_ids=["a", "b"], sources=sources(), prompts=["p"] * 2, actions=["open"] * 2))
    assert [o[0].shape for o in out] == [(20, 24, 3)] * 2


def test_family_args_are_refused_where_they_do_not_apply():
    with pytest.raises(BadInput, match="image_guidance"):
        JanusWorldModel(path="x", image_guidance=2.0)
    with pytest.raises(BadInput, match="negative_prompt"):
        ChameleonWorldModel(path="x", negative_prompt="blurry")
    with pytest.raises(BadInput, match="resolution"):
        JanusWorldModel(path="x", resolution=512)


# -- point 7: shared ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, name, kwargs", [(JanusWorldModel, "janus", {}), (ChameleonWorldModel, "chameleon", {}),
                                               (Emu3WorldModel, "emu3", {"resolution": 32})])
def test_encoding_sampling_and_decoding_build_no_autograd_graph(folders, cls, name, kwargs):
    import torch

    model = cls(path=str(folders[name]), **kwargs)
    model._load()
    seen = {}
    encode, decode = model._encode, model._decode

    def watched_encode(*args):
        out = encode(*args)
        seen["encode"] = (torch.is_inference_mode_enabled(), out[2].requires_grad)
        return out

    def watched_decode(tokens):
        seen["decode"] = torch.is_inference_mode_enabled()
        return decode(tokens)

    model._encode, model._decode = watched_encode, watched_decode
    model.predict_next(Batch(sample_ids=["a"], sources=sources(1), prompts=["p"], actions=["open"]))
    assert seen == {"encode": (True, False), "decode": True}


def test_transformers_requirement_is_the_version_whose_api_the_adapters_use():
    """The unified sampler passes `cache=` and reads `.cache` (transformers 5.24 renamed them from
    past_key_values); pyproject must not promise older versions."""
    import inspect

    from packaging.requirements import Requirement
    from packaging.version import Version
    from transformers import LlamaModel

    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = Requirement(next(d for d in dependencies if Requirement(d).name == "transformers"))
    lowest = min(Version(s.version) for s in requirement.specifier if s.operator in (">=", "=="))
    assert lowest >= Version("5.24")
    assert "cache" in inspect.signature(LlamaModel.forward).parameters
