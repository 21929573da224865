"""hf-vlm adapter on tiny random Qwen2-VL, LLaVA-OneVision and Idefics3 checkpoints (built offline,
saved with save_pretrained, loaded back through AutoProcessor / AutoModelForImageTextToText)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.errors import BadInput  # noqa: E402
from wmbench.models import MODELS  # noqa: E402
from wmbench.models.hf_vlm import HFVisionLanguageModel  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402

FAMILIES = ["qwen2_vl", "llava_onevision", "idefics3"]
ACTIONS = ["move the red block to the left", "open", "push the cup forward"]


@pytest.fixture(scope="module", params=FAMILIES)
def model(request, tmp_path_factory):
    folder = getattr(tiny_models, f"build_{request.param}")(tmp_path_factory.mktemp(request.param))
    return HFVisionLanguageModel(path=str(folder), max_new_tokens=5)


def make_batch(b: int = 3) -> Batch:
    rng = np.random.default_rng(0)
    # different sizes per sample: the processors resize, the adapter must batch them anyway
    sources = [rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(b)]
    targets = [rng.integers(0, 255, (48, 56 + 8 * i, 3), dtype=np.uint8) for i in range(b)]
    prompts = ["what action?", "describe the action between the two images", "x"][:b]
    return Batch(sample_ids=[f"s{i}" for i in range(b)], sources=sources, targets=targets, prompts=prompts)


def single(batch: Batch, i: int) -> Batch:
    return Batch(sample_ids=[batch.sample_ids[i]], sources=[batch.sources[i]], targets=[batch.targets[i]],
                 prompts=[batch.prompts[i]])


def reference_logprob(model: HFVisionLanguageModel, batch: Batch, i: int, action: str) -> tuple[float, int]:
    """Unbatched, unpadded reference: prompt ids + action ids, summed log-softmax of the action."""
    import torch

    proc, net = model._processor, model._model
    text = model._render(2, batch.prompts[i])
    inputs = proc(images=[[tiny_models_pil(batch.sources[i]), tiny_models_pil(batch.targets[i])]], text=[text],
                  return_tensors="pt")
    action_ids = proc.tokenizer(action, add_special_tokens=False)["input_ids"]
    n = inputs["input_ids"].shape[1]
    for key, value in list(inputs.items()):
        if torch.is_tensor(value) and value.shape[:2] == (1, n):
            extra = torch.tensor([action_ids]) if key == "input_ids" else (
                torch.ones if key == "attention_mask" else torch.zeros)((1, len(action_ids)), dtype=value.dtype)
            inputs[key] = torch.cat([value, extra.to(value.dtype)], dim=1)
    with torch.no_grad():
        logits = net(**inputs).logits[0].double()
    logprobs = torch.log_softmax(logits, -1)
    total = sum(float(logprobs[n - 1 + j, tok]) for j, tok in enumerate(action_ids))
    return total, len(action_ids)


def tiny_models_pil(array):
    from PIL import Image

    return Image.fromarray(array)


def test_capabilities_and_registry():
    assert MODELS.get("hf-vlm") is HFVisionLanguageModel
    assert HFVisionLanguageModel.capabilities() == ("infer_action", "action_logprob", "answer")


def test_action_logprob_matches_unpadded_reference(model):
    batch = make_batch()
    batched = model.action_logprob(batch, ACTIONS)
    for i, action in enumerate(ACTIONS):
        expected, _ = reference_logprob(model, batch, i, action)
        assert batched[i] == pytest.approx(expected, abs=2e-3)
        assert batched[i] < 0


def test_mean_reduction_is_sum_over_token_count(model):
    batch = make_batch()
    mean_model = HFVisionLanguageModel(path=model.path, logprob_reduction="mean")
    means = mean_model.action_logprob(batch, ACTIONS)
    for i, action in enumerate(ACTIONS):
        total, count = reference_logprob(model, batch, i, action)
        assert means[i] == pytest.approx(total / count, abs=2e-3)


def test_infer_action_batched_equals_per_sample(model):
    batch = make_batch()
    batched = model.infer_action(batch)
    assert len(batched) == 3 and all(isinstance(t, str) for t in batched)
    assert batched == [model.infer_action(single(batch, i))[0] for i in range(3)]


def test_answer_takes_any_number_of_images(model):
    batch = make_batch()
    answers = model.answer([[batch.sources[0]], [batch.sources[1], batch.targets[1], batch.targets[2]]],
                           ["is there a cup?", "which image differs?"])
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_bad_args_and_missing_checkpoint(tmp_path):
    with pytest.raises(BadInput, match="logprob_reduction"):
        HFVisionLanguageModel(path="x", logprob_reduction="max")
    missing = HFVisionLanguageModel(path=str(tmp_path / "nothing-here"))
    with pytest.raises(BadInput, match="cannot load"):
        missing.infer_action(make_batch(1))


def test_fingerprint_names_checkpoint_not_weights_bytes(model):
    fp = model.fingerprint()
    assert fp["checkpoint"].endswith(Path(model.path).name) and len(fp["config_sha256"]) == 64
    assert "model.safetensors" in fp["weights"]


class _LeftPadding:
    """A processor that pads on the left whatever it is asked (as InternVL's, Aya-Vision's, Llama 4's
    and Cohere2-Vision's default `padding_side="left"` does when the tokenizer's init kwargs do not
    name one)."""

    def __init__(self, processor):
        self._inner = processor

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __call__(self, *args, **kwargs):
        kwargs["padding_side"] = "left"
        return self._inner(*args, **kwargs)


@pytest.mark.parametrize("force", ["processor_default", "always"])
def test_action_logprob_is_right_whatever_side_the_processor_pads(tmp_path_factory, force):
    """Issue 11, point 3: scoring took the first n positions of each row as its prompt, which is
    wrong for left-padded rows (-41.878 instead of -41.822 on this tiny Qwen2-VL)."""
    folder = tiny_models.build_qwen2_vl(tmp_path_factory.mktemp("qwen-left"))
    model = HFVisionLanguageModel(path=str(folder))
    model._load()
    if force == "processor_default":
        model._processor.text_kwargs = {"padding_side": "left"}  # a processor-level default, as InternVL's
        model._processor.tokenizer.init_kwargs.pop("padding_side", None)
    else:
        model._processor = _LeftPadding(model._processor)
    batch = make_batch()
    inputs = model._encode(_pairs_of(batch), list(batch.prompts), "right")
    lengths = inputs["attention_mask"].sum(1)
    if force == "always":
        assert int(lengths.min()) < inputs["attention_mask"].shape[1]
        assert bool((inputs["attention_mask"][:, -1] == 1).all())  # left padded indeed
    scores = model.action_logprob(batch, ACTIONS)
    for i, action in enumerate(ACTIONS):
        expected, _ = reference_logprob(model, batch, i, action)
        assert scores[i] == pytest.approx(expected, abs=2e-3)


def _pairs_of(batch: Batch) -> list:
    return [[s, t] for s, t in zip(batch.sources, batch.targets)]
