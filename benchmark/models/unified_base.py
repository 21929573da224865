"""The shared sampler of the unified (token-based) VLMs as FDP models; the families are in `unified`.

One loop serves Emu3, Janus / Janus-Pro and Chameleon / Anole. It prefills the prompt (the source
image's embeddings in place of its placeholder tokens, then the instruction, then the family's
begin-of-image prefix) and samples the image tokens with a KV cache, logits restricted to the
image vocabulary, classifier-free guidance as the family's upstream inference code does it, then
temperature / top-k / top-p. All B*n rows (n samples per input) and their guidance rows run as one
left-padded batch; guidance rows may have other lengths than the prompt (Emu3's negative prompt,
Anole's image-only and [BOS, BOI] rows).

Why not `generate()`: transformers' Janus image generation embeds the prompt from token ids only
(an input image is dropped), Chameleon's forward masks every image token out of the logits and has
no VQ decoder, and Emu3 needs warpers applied after the image-vocabulary restriction. The loop
calls each family's own modules (embeddings, vision encoder, language model, heads, VQ decoder)
so the weights and numerics are the library's.

Geometry (`geometry`, docs/models.md): the source reaches the model as the family's processor
frames it, and each decoded image is mapped back into the source frame by the exact inverse
(`_framing`); predictions are `Frame`s whose details record the framing. Encoding, sampling and
decoding run under `torch.inference_mode()` (no autograd graph lives through the loop).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core.errors import BadInput
from ..core.types import Batch
from . import _hf, geometry
from . import unified_likelihood as likelihood
from .base import Model

#: model args that only some families take (`extra_args`); elsewhere they must stay unset
FAMILY_ARGS = ("image_guidance", "negative_prompt", "positive_prompt", "resolution", "vq_decoder")


class UnifiedImageGenerator(Model):
    """Base class: subclasses say how to load, prompt, guide, score, embed, decode and frame one family."""

    model_class = ""
    #: the family's upstream sampling defaults (docs/models.md names the file of each)
    defaults: ClassVar[dict[str, Any]] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "guidance": 1.0}
    #: which of FAMILY_ARGS this family takes
    extra_args: ClassVar[tuple[str, ...]] = ()
    #: run the VQ encoder / decoder in float32 whatever `dtype` (as the family's upstream code does)
    vq_fp32: ClassVar[bool] = False

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, guidance: float | None = None,
                 image_guidance: float | None = None, seed: int = 0, max_batch: int = 4,
                 resolution: int | None = None, prompt_template: str = "{instruction}", instruction: str = "action",
                 negative_prompt: str | None = None, positive_prompt: str | None = None,
                 revision: str | None = None, vq_decoder: str | None = None):
        super().__init__()
        given = {"image_guidance": image_guidance, "negative_prompt": negative_prompt,
                 "positive_prompt": positive_prompt, "resolution": resolution, "vq_decoder": vq_decoder}
        for name, value in given.items():
            if value is not None and name not in self.extra_args:
                raise BadInput(f"{type(self).__name__}: model arg {name} does not apply to this family "
                               f"(it takes {', '.join(self.extra_args) or 'none of ' + ', '.join(FAMILY_ARGS)})")
        pick = (lambda name, value: self.defaults.get(name) if value is None else value)
        self.path, self.revision, self.vq_decoder = str(path), revision, vq_decoder
        self.device_arg, self.dtype_arg = device, dtype
        self.temperature, self.top_k = float(pick("temperature", temperature)), int(pick("top_k", top_k))
        self.top_p, self.guidance = float(pick("top_p", top_p)), float(pick("guidance", guidance))
        image_guidance = pick("image_guidance", image_guidance)
        self.image_guidance = 1.0 if image_guidance is None else float(image_guidance)
        self.negative_prompt, self.positive_prompt = pick("negative_prompt", negative_prompt), pick("positive_prompt", positive_prompt)
        self.seed, self.max_batch = int(seed), int(max_batch)
        self.resolution = int(resolution) if resolution else None
        self.prompt_template = str(prompt_template)
        self.instruction = _hf.check_choice("instruction", instruction, ("action", "prompt"))
        self.model: Any = None

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        if self.model is not None:
            return
        import torch
        import transformers

        self.device = _hf.resolve_device(self.device_arg)
        self.dtype = _hf.resolve_dtype(self.dtype_arg, self.device)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(self.path, revision=self.revision)
            cls = getattr(transformers, self.model_class)
            self.model = cls.from_pretrained(self.path, dtype=self.dtype, revision=self.revision).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot load {self.model_class} from '{self.path}': {exc}") from exc
        self.vq_dtype = torch.float32 if self.vq_fp32 else self.dtype
        vq = getattr(self.model.model, "vqmodel", None)
        if vq is not None:
            vq.to(self.vq_dtype)
        self._setup()

    def _setup(self) -> None:
        """Family-specific tables (image vocabulary, token ids) once the model is loaded."""

    # -- family hooks --------------------------------------------------------------------------

    def _encode(self, sources: list[np.ndarray], texts: list[str]) -> tuple[Any, Any, Any, int]:
        """-> (input_ids, attention_mask, conditional input embeddings, length of the image prefix)."""
        raise NotImplementedError

    def _guidance_inputs(self, ids: Any, mask: Any, embeds: Any, tail: int) -> list[tuple[Any, Any, Any]]:
        """The extra rows classifier-free guidance conditions on, one (ids, mask, embeds) group per
        kind ([] when guidance is off). Default (Janus' `generation_inference.py` and transformers'
        `JanusForConditionalGeneration.generate`): the prompt with every token but BOS and the
        image prefix replaced by the pad token (the source image is dropped too)."""
        import torch

        if self.guidance == 1.0:
            return []
        keep = torch.zeros_like(ids, dtype=torch.bool)
        keep[:, ids.shape[1] - tail:] = True
        bos = getattr(self.processor.tokenizer, "bos_token_id", None)
        if bos is not None:
            keep |= ids == bos
        uncond = torch.where(keep, ids, self._pad_id())
        return [(uncond, mask, self._embed(uncond))]

    def _mix(self, logits: list[Any]) -> Any:
        """Guided logits from [conditional, *guidance groups]: uncond + g * (cond - uncond)."""
        cond, unc = logits
        return unc + self.guidance * (cond - unc)

    def _language_model(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _logits(self, hidden: Any) -> Any:
        """Last hidden states (R, D) -> logits over the image vocabulary (R, K)."""
        raise NotImplementedError

    def _token(self, index: Any) -> Any:
        """Indices into the image vocabulary -> ids fed back to the model."""
        return index

    def _index(self, tokens: Any) -> Any:
        """The inverse of `_token`: ids the sampler returns -> indices into the image vocabulary."""
        return tokens

    def _image_tokens(self, images: list[np.ndarray]) -> Any:
        """Images (uint8 HWC) -> (B, `_num_steps()`) ids as `_sample` returns them (forced tokens
        included), by the family's VQ encoder; Emu3 needs the grid of a prior `_encode`."""
        raise NotImplementedError

    def _forced(self, step: int) -> int | None:
        """A structural token (e.g. Emu3's end of line) the model must emit at `step`, else None."""
        return None

    def _embed(self, tokens: Any) -> Any:
        raise NotImplementedError

    def _embed_generated(self, tokens: Any) -> Any:
        return self._embed(tokens)

    def _decode(self, tokens: Any) -> list[np.ndarray]:
        raise NotImplementedError

    def _framing(self, source: np.ndarray) -> geometry.Framing:
        """How the family's preprocessing frames `source` (the generated image shares that frame)."""
        h, w = source.shape[:2]
        return geometry.identity(w, h)

    def _group_key(self, source: np.ndarray) -> Any:
        """Sources with equal keys can share a forward pass (Emu3: the same token grid)."""
        return None

    def _num_steps(self) -> int:
        raise NotImplementedError

    # -- the shared sampler --------------------------------------------------------------------

    def _texts(self, batch: Batch) -> list[str]:
        instructions = batch.actions if self.instruction == "action" and batch.actions is not None else batch.prompts
        return [self.prompt_template.format(instruction=i, prompt=p) for i, p in zip(instructions, batch.prompts)]

    def _parts(self, sources: list[np.ndarray], size: int) -> list[list[int]]:
        """Sample indices in chunks of at most `size` that share a `_group_key`, in input order."""
        groups: dict[Any, list[int]] = {}
        for i, source in enumerate(sources):
            groups.setdefault(self._group_key(source), []).append(i)
        size = max(1, int(size))
        return [g[k:k + size] for g in groups.values() for k in range(0, len(g), size)]

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        import torch

        self._load()
        texts, out = self._texts(batch), [None] * len(batch)
        for part in self._parts(list(batch.sources), max(1, self.max_batch // max(1, n))):
            sources = [batch.sources[i] for i in part]
            # one generator per (sample, draw), as the editors: a sample's draws do not depend on
            # which other samples share its batch, nor on --batch-size or --limit
            generators = [_hf.torch_generator(self.seed, [str(batch.seed), batch.sample_ids[i], str(j)], self.device)
                          for i in part for j in range(n)]
            with torch.inference_mode():  # no autograd graph through prompt, KV cache or decoder
                tokens = self._sample(*self._encode(sources, [texts[i] for i in part]), n=n, generators=generators)
                images = self._decode(tokens)
            for k, i in enumerate(part):
                framing = self._framing(batch.sources[i])
                out[i] = [geometry.unframe(im, framing, batch.sources[i]) for im in images[k * n:(k + 1) * n]]
        return out

    def transition_logprob(self, batch: Batch, targets: list[np.ndarray]) -> list[float]:
        """log p(targets[i] | source i, action i) in nats, summed over the target's VQ image tokens
        (teacher forcing after `predict_next`'s prompt) under the model's own distribution:
        temperature 1, no top-k / top-p, no classifier-free guidance, whatever the sampling args.
        Janus sums 576 tokens, Chameleon 1024, Emu3 h*w (its end-of-line tokens are not counted):
        divide for a per-token figure. Details and preprocessing: `unified_likelihood`."""
        return likelihood.transition_logprob(self, batch, targets)

    def _sample(self, ids: Any, mask: Any, embeds: Any, tail: int, n: int, generators: list[Any],
                record: list[Any] | None = None) -> Any:
        """(R*n, steps) image tokens; `record` (a list) gets per step the (R*n,) log-probabilities of
        the drawn tokens under the distribution drawn from (0 at forced steps)."""
        import torch

        groups = [(ids, mask, embeds), *self._guidance_inputs(ids, mask, embeds, tail)]
        groups = [tuple(t.repeat_interleave(n, dim=0) for t in g) for g in groups]
        rows, parts = groups[0][0].shape[0], len(groups)
        if len(generators) != rows:
            raise ValueError(f"_sample needs one generator per row (sample x draw): {rows}, got {len(generators)}")
        _, mask, embeds = _stack_left(groups, self._pad_id())
        position = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self._language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position, use_cache=True)
            tokens = []
            steps = self._num_steps()
            for step in range(steps):
                forced = self._forced(step)
                if forced is not None:
                    token = torch.full((rows,), forced, dtype=torch.long, device=mask.device)
                    if record is not None:
                        record.append(torch.zeros(rows, device=mask.device))
                else:
                    logits = self._logits(out.last_hidden_state[:, -1]).float()
                    if parts > 1:
                        logits = self._mix(list(logits.chunk(parts)))
                    if self.temperature <= 0:
                        index = logits.argmax(-1)
                    else:
                        logits = _hf.filter_logits(logits, self.temperature, self.top_k, self.top_p)
                        probs = logits.softmax(-1)
                        index = torch.cat([torch.multinomial(probs[r:r + 1], 1, generator=g)[0]
                                           for r, g in enumerate(generators)])
                    if record is not None:
                        record.append(logits.log_softmax(-1).gather(-1, index[:, None])[:, 0])
                    token = self._token(index)
                tokens.append(token)
                if step == steps - 1:
                    break
                feed = token.repeat(parts)
                mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
                position = position[:, -1:] + 1
                out = self._language_model(inputs_embeds=self._embed_generated(feed[:, None]), attention_mask=mask,
                                           position_ids=position, cache=out.cache, use_cache=True)
        return torch.stack(tokens, dim=1)

    def _pad_id(self) -> int:
        tok = self.processor.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else 0

    def _processor_inputs(self, sources: list[np.ndarray], texts: list[str], **kwargs: Any) -> Any:
        self.processor.tokenizer.padding_side = "left"  # prompts end where generation starts
        pil = [_hf.to_pil(s) for s in sources]
        inputs = self.processor(images=pil, text=texts, padding=True, padding_side="left", return_tensors="pt", **kwargs)
        return inputs.to(self.device)

    def _postprocess(self, images: Any) -> list[np.ndarray]:
        """The family's own de-normalization (its image processor's `postprocess`) to uint8 HWC.
        transformers 5.24: Janus' postprocess rejects "PIL.Image.Image", Emu3's "pt" flattens the
        batch, so ask for PIL and fall back to a tensor."""
        try:
            pil = self.processor.postprocess(list(images.float()), return_tensors="PIL.Image.Image")["pixel_values"]
            return [np.asarray(im.convert("RGB")) for im in pil]
        except ValueError:
            pixels = self.processor.postprocess(list(images.float()), return_tensors="pt")["pixel_values"]
        if pixels.shape[1] == 3 and pixels.shape[-1] != 3:
            pixels = pixels.permute(0, 2, 3, 1)
        return [np.ascontiguousarray(p.cpu().numpy().astype(np.uint8)) for p in pixels]

    def fingerprint(self) -> dict[str, Any]:
        # adapter_version 2: upstream prompts, guidance rows and sampling defaults, processor framing
        # mapped back by its inverse (was: a stretch), float32 VQ where upstream has it
        return {**_hf.checkpoint_fingerprint(self.path, self.revision), "vq_decoder": self.vq_decoder,
                "adapter_version": 2}


def select_rows(ids: Any, mask: Any, embeds: Any, keep: Any, pad_id: int) -> tuple[Any, Any, Any]:
    """Per row, only the positions in `keep` (and attended), left-padded to a common length: how
    Anole's `_split_inputs_for_cfg` drops tokens from a prompt (ids, embeddings kept)."""
    import torch

    keep = keep & mask.bool()
    length = max(1, int(keep.sum(1).max()))
    new_ids = ids.new_full((ids.shape[0], length), pad_id)
    new_mask = mask.new_zeros((ids.shape[0], length))
    new_embeds = embeds.new_zeros((ids.shape[0], length, embeds.shape[-1]))
    for r in range(ids.shape[0]):
        cols = torch.nonzero(keep[r]).flatten()
        new_ids[r, length - len(cols):] = ids[r, cols]
        new_mask[r, length - len(cols):] = 1
        new_embeds[r, length - len(cols):] = embeds[r, cols]
    return new_ids, new_mask, new_embeds


def _stack_left(groups: list[tuple[Any, Any, Any]], pad_id: int) -> tuple[Any, Any, Any]:
    """Row groups of different lengths -> one left-padded batch (pads: `pad_id`, mask 0, zeros)."""
    import torch

    length = max(g[0].shape[1] for g in groups)
    ids, masks, embeds = [], [], []
    for g_ids, g_mask, g_embeds in groups:
        extra = length - g_ids.shape[1]
        ids.append(torch.cat([g_ids.new_full((g_ids.shape[0], extra), pad_id), g_ids], 1))
        masks.append(torch.cat([g_mask.new_zeros((g_mask.shape[0], extra)), g_mask], 1))
        embeds.append(torch.cat([g_embeds.new_zeros((g_embeds.shape[0], extra, g_embeds.shape[2])), g_embeds], 1))
    return torch.cat(ids), torch.cat(masks), torch.cat(embeds)
