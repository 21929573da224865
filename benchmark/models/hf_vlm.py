"""IDP and judge models: any transformers `AutoModelForImageTextToText` checkpoint with a chat template.

Covers Qwen2-VL / Qwen2.5-VL, LLaVA / LLaVA-OneVision, Idefics3 / SmolVLM and other families that
follow the image-text-to-text API. Capabilities:

- `infer_action`: the two frames + the task prompt -> generated text (left padding, batched).
- `action_logprob`: log p(action text | frames, prompt), summed over the action's tokens (the
  paper's verifier signal) or averaged per token (`logprob_reduction=mean`).
- `answer`: any images + a prompt -> text (what VLM judges call).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import Batch
from . import _hf
from .base import Model


class HFVisionLanguageModel(Model):
    """A local folder or hub id of an image-text-to-text model, driven through its processor's chat template."""

    description = "IDP/judge: transformers AutoModelForImageTextToText + chat template (Qwen2-VL, LLaVA-OV, Idefics3, ...)"

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 48,
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                 logprob_reduction: str = "sum", system_prompt: str | None = None, max_batch: int = 8,
                 chat_template: str | None = None, revision: str | None = None,
                 attn_implementation: str | None = None, trust_remote_code: bool = False):
        super().__init__()
        self.path = str(path)
        self.device_arg, self.dtype_arg = device, dtype
        self.max_new_tokens = int(max_new_tokens)
        self.temperature, self.top_p, self.top_k = float(temperature), float(top_p), int(top_k)
        self.seed = int(seed)
        self.logprob_reduction = _hf.check_choice("logprob_reduction", logprob_reduction, ("sum", "mean"))
        self.system_prompt = system_prompt
        self.max_batch = int(max_batch)
        self.chat_template = chat_template
        self.revision = revision
        self.attn_implementation = attn_implementation
        self.trust_remote_code = bool(trust_remote_code)
        self._model: Any = None
        self._processor: Any = None

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = _hf.resolve_device(self.device_arg)
        self.dtype = _hf.resolve_dtype(self.dtype_arg, self.device)
        kwargs: dict[str, Any] = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        try:
            self._processor = AutoProcessor.from_pretrained(self.path, **kwargs)
            if self.attn_implementation:
                kwargs["attn_implementation"] = self.attn_implementation
            model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=self.dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot load image-text-to-text model '{self.path}': {exc}") from exc
        self._model = model.to(self.device).eval()
        if self.chat_template:
            self._processor.chat_template = _read_template(self.chat_template)
        if not getattr(self._processor, "chat_template", None):
            raise BadInput(f"model '{self.path}' has no chat template: pass chat_template=<jinja or file>")

    # -- prompts -------------------------------------------------------------------------------

    def _render(self, n_images: int, prompt: str) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, images: list[list[np.ndarray]], prompts: list[str], padding_side: str) -> Any:
        texts = [self._render(len(imgs), p) for imgs, p in zip(images, prompts)]
        pil = [[_hf.to_pil(im) for im in imgs] for imgs in images]
        self._processor.tokenizer.padding_side = padding_side
        # asked for explicitly too: processors with a `padding_side` default of their own (InternVL,
        # Aya-Vision, Llama 4, Cohere2-Vision force "left") ignore the tokenizer's attribute
        inputs = self._processor(images=pil, text=texts, padding=True, padding_side=padding_side, return_tensors="pt")
        return inputs.to(self.device)

    # -- capabilities --------------------------------------------------------------------------

    def answer(self, images: list[list[np.ndarray]], prompts: list[str]) -> list[str]:
        import torch

        self._load()
        out: list[str] = []
        for part in _hf.chunks(len(prompts), self.max_batch):
            inputs = self._encode(images[part], prompts[part], "left")
            kwargs = _hf.sampling_kwargs(self.temperature, self.top_p, self.top_k)
            if kwargs["do_sample"]:
                torch.manual_seed(_hf.stable_seed(self.seed, prompts[part]))
            with torch.inference_mode():
                generated = self._model.generate(**_float_inputs(inputs, self.dtype), max_new_tokens=self.max_new_tokens,
                                                 pad_token_id=self._pad_id(), **kwargs)
            new_tokens = generated[:, inputs["input_ids"].shape[1]:]
            out.extend(t.strip() for t in self._processor.batch_decode(new_tokens, skip_special_tokens=True))
        return out

    def infer_action(self, batch: Batch) -> list[str]:
        return self.answer(_pairs(batch), list(batch.prompts))

    def action_logprob(self, batch: Batch, actions: list[str]) -> list[float]:
        self._load()
        if len(actions) != len(batch):
            raise BadInput(f"action_logprob: {len(actions)} actions for {len(batch)} samples")
        pairs = _pairs(batch)
        scores: list[float] = []
        for part in _hf.chunks(len(actions), self.max_batch):
            scores.extend(self._score(pairs[part], list(batch.prompts[part]), actions[part]))
        return scores

    def _score(self, images: list[list[np.ndarray]], prompts: list[str], actions: list[str]) -> list[float]:
        """Teacher-forced log-likelihood of each action after its rendered prompt.

        The action is tokenized on its own and appended to the prompt's ids, so exactly its tokens
        are scored (no merge across the prompt/answer boundary). Each row's prompt is taken from
        its attention mask, wherever the processor put the padding, and the rows are rebuilt right
        padded so that positions need no correction; prompt and padding positions are masked out.
        """
        import torch

        inputs = self._encode(images, prompts, "right")
        tok = self._processor.tokenizer
        action_ids = [tok(a, add_special_tokens=False)["input_ids"] for a in actions]
        if any(len(ids) == 0 for ids in action_ids):
            raise SampleError("action_logprob: an action text is empty after tokenization")
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        lengths = mask.sum(1).tolist()
        total = max(n + len(a) for n, a in zip(lengths, action_ids))
        seq_keys = [k for k, v in inputs.items() if torch.is_tensor(v) and v.shape[:2] == ids.shape]
        new = {k: inputs[k].new_zeros((len(actions), total)) for k in seq_keys}
        new["input_ids"].fill_(self._pad_id())
        targets = torch.zeros((len(actions), total), dtype=torch.bool, device=ids.device)
        for row, (n, a) in enumerate(zip(lengths, action_ids)):
            prompt = mask[row].nonzero().flatten()  # the attended positions, left or right padded
            for k in seq_keys:
                new[k][row, :n] = inputs[k][row, prompt]
            new["input_ids"][row, n:n + len(a)] = torch.tensor(a, device=ids.device)
            new["attention_mask"][row, :n + len(a)] = 1
            targets[row, n:n + len(a)] = True
        inputs.update(new)
        with torch.inference_mode():
            logits = self._model(**_float_inputs(inputs, self.dtype)).logits
        # logits at position t predict token t+1
        picked = targets[:, 1:]
        logprobs = torch.log_softmax(logits[:, :-1][picked].float(), dim=-1)
        token_lp = logprobs.gather(-1, new["input_ids"][:, 1:][picked].unsqueeze(-1)).squeeze(-1)
        per_row = torch.zeros(len(actions), dtype=torch.float64, device=token_lp.device)
        per_row.index_add_(0, picked.nonzero()[:, 0], token_lp.double())
        counts = picked.sum(1).double()
        if self.logprob_reduction == "mean":
            per_row = per_row / counts
        result = per_row.cpu().tolist()
        for value in result:
            if not math.isfinite(value):
                raise SampleError(f"action_logprob: non-finite log-likelihood {value}")
        return result

    def _pad_id(self) -> int:
        tok = self._processor.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def fingerprint(self) -> dict[str, Any]:
        return _hf.checkpoint_fingerprint(self.path, self.revision)


def _pairs(batch: Batch) -> list[list[np.ndarray]]:
    if batch.targets is None:
        raise BadInput("IDP needs both frames: the batch carries no target frames")
    return [[s, t] for s, t in zip(batch.sources, batch.targets)]


def _float_inputs(inputs: Any, dtype: Any) -> dict[str, Any]:
    """Cast floating tensors (pixel values) to the model's dtype; leave ids and masks alone."""
    return {k: (v.to(dtype) if hasattr(v, "is_floating_point") and v.is_floating_point() else v)
            for k, v in inputs.items()}


def _read_template(value: str) -> str:
    from pathlib import Path

    path = Path(value).expanduser()
    return path.read_text() if "{" not in value and path.is_file() else value
