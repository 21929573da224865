"""Unified (token-based) VLMs as FDP models: source image + instruction -> image tokens -> pixels.

One sampling loop serves Emu3, Janus / Janus-Pro and Chameleon / Anole. It prefills the prompt
(the source image's embeddings in place of its placeholder tokens, then the instruction, then the
family's begin-of-image prefix) and samples the image tokens with a KV cache, logits restricted to
the image vocabulary, temperature / top-k / top-p and optional classifier-free guidance (the
unconditional row keeps only BOS and the begin-of-image prefix, as transformers' Janus does).
All B*n rows (n samples per input) run as one batch.

Why not `generate()`: transformers' Janus image generation embeds the prompt from token ids only
(an input image is dropped), Chameleon's forward masks every image token out of the logits and has
no VQ decoder, and Emu3 needs warpers applied after the image-vocabulary restriction. The loop
below calls each family's own modules (embeddings, vision encoder, language model, heads, VQ
decoder) so the weights and numerics are the library's.

`transition_logprob` (likelihood probe, FDP side) teacher-forces a target's image tokens through
the same hooks: `unified_likelihood`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import BadInput
from ..core.types import Batch
from . import _hf
from . import unified_likelihood as likelihood
from .base import Model


class UnifiedImageGenerator(Model):
    """Base class: subclasses say how to load, prompt, score, embed and decode one family."""

    model_class = ""
    default_guidance = 1.0

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, guidance: float | None = None, seed: int = 0,
                 max_batch: int = 4, resolution: int | None = None, prompt_template: str = "{instruction}",
                 instruction: str = "action", revision: str | None = None, vq_decoder: str | None = None):
        super().__init__()
        self.path, self.revision, self.vq_decoder = str(path), revision, vq_decoder
        self.device_arg, self.dtype_arg = device, dtype
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.guidance = float(self.default_guidance if guidance is None else guidance)
        self.seed, self.max_batch = int(seed), int(max_batch)
        self.resolution = int(resolution) if resolution else None
        self.prompt_template = str(prompt_template)
        self.instruction = _hf.check_choice("instruction", instruction, ("action", "prompt"))
        self.model: Any = None

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        if self.model is not None:
            return
        import transformers

        self.device = _hf.resolve_device(self.device_arg)
        self.dtype = _hf.resolve_dtype(self.dtype_arg, self.device)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(self.path, revision=self.revision)
            cls = getattr(transformers, self.model_class)
            self.model = cls.from_pretrained(self.path, dtype=self.dtype, revision=self.revision).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot load {self.model_class} from '{self.path}': {exc}") from exc
        self._setup()

    def _setup(self) -> None:
        """Family-specific tables (image vocabulary, token ids) once the model is loaded."""

    # -- family hooks --------------------------------------------------------------------------

    def _encode(self, sources: list[np.ndarray], texts: list[str]) -> tuple[Any, Any, Any, int]:
        """-> (input_ids, attention_mask, conditional input embeddings, length of the image prefix)."""
        raise NotImplementedError

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

    # -- the shared sampler --------------------------------------------------------------------

    def _texts(self, batch: Batch) -> list[str]:
        instructions = batch.actions if self.instruction == "action" and batch.actions is not None else batch.prompts
        return [self.prompt_template.format(instruction=i, prompt=p) for i, p in zip(instructions, batch.prompts)]

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        from PIL import Image

        self._load()
        texts, out = self._texts(batch), []
        for part in _hf.chunks(len(batch), max(1, self.max_batch // max(1, n))):
            sources = self._resized(batch.sources[part])
            # one generator per (sample, draw), as the editors: a sample's draws do not depend on
            # which other samples share its batch, nor on --batch-size or --limit
            generators = [_hf.torch_generator(self.seed, [str(batch.seed), sid, str(j)], self.device)
                          for sid in batch.sample_ids[part] for j in range(n)]
            images = self._decode(self._sample(*self._encode(sources, texts[part]), n=n, generators=generators))
            for i, source in enumerate(batch.sources[part]):
                h, w = source.shape[:2]
                out.append([np.asarray(_hf.to_pil(im).resize((w, h), Image.BICUBIC)) if im.shape[:2] != (h, w) else im
                            for im in images[i * n:(i + 1) * n]])
        return out

    def _resized(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The images the processor gets: resized (bicubic) to `resolution` squared when set."""
        from PIL import Image

        r = self.resolution
        return [np.asarray(_hf.to_pil(s).resize((r, r), Image.BICUBIC)) if r else s for s in images]

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

        ids, mask, embeds = (t.repeat_interleave(n, dim=0) for t in (ids, mask, embeds))
        rows = ids.shape[0]
        if len(generators) != rows:
            raise ValueError(f"_sample needs one generator per row (sample x draw): {rows}, got {len(generators)}")
        cfg = self.guidance > 1.0
        if cfg:
            keep = torch.zeros_like(ids, dtype=torch.bool)
            keep[:, ids.shape[1] - tail:] = True
            bos = getattr(self.processor.tokenizer, "bos_token_id", None)
            if bos is not None:
                keep |= ids == bos
            uncond = torch.where(keep, ids, self._pad_id())
            embeds = torch.cat([embeds, self._embed(uncond)])
            mask = torch.cat([mask, mask])
        position = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self._language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position, use_cache=True)
            tokens = []
            steps = self._num_steps()
            for step in range(steps):
                forced = self._forced(step)
                if forced is not None:
                    token = torch.full((rows,), forced, dtype=torch.long, device=ids.device)
                    if record is not None:
                        record.append(torch.zeros(rows, device=ids.device))
                else:
                    logits = self._logits(out.last_hidden_state[:, -1]).float()
                    if cfg:
                        cond, unc = logits.chunk(2)
                        logits = unc + self.guidance * (cond - unc)
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
                feed = torch.cat([token, token]) if cfg else token
                mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
                position = position[:, -1:] + 1
                out = self._language_model(inputs_embeds=self._embed_generated(feed[:, None]), attention_mask=mask,
                                           position_ids=position, cache=out.cache, use_cache=True)
        return torch.stack(tokens, dim=1)

    def _num_steps(self) -> int:
        raise NotImplementedError

    def _pad_id(self) -> int:
        tok = self.processor.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else 0

    def _processor_inputs(self, sources: list[np.ndarray], texts: list[str], **kwargs: Any) -> Any:
        self.processor.tokenizer.padding_side = "left"  # prompts end where generation starts
        pil = [_hf.to_pil(s) for s in sources]
        inputs = self.processor(images=pil, text=texts, padding=True, return_tensors="pt", **kwargs)
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
        return {**_hf.checkpoint_fingerprint(self.path, self.revision), "vq_decoder": self.vq_decoder}


class JanusWorldModel(UnifiedImageGenerator):
    """Janus / Janus-Pro: the source enters through the understanding encoder (SigLIP + aligner),
    image tokens come from the generation head, pixels from the VQ decoder; CFG on by default (5)."""

    description = "FDP: Janus/Janus-Pro image generation conditioned on the source image (understanding encoder) + text"
    model_class = "JanusForConditionalGeneration"
    default_guidance = 5.0

    def _encode(self, sources, texts):
        image_token = self.processor.image_token
        inputs = self._processor_inputs(sources, [f"{image_token}\n{t}" for t in texts], generation_mode="image")
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.dtype)).pooler_output
        image_mask = (ids == self.model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(image_mask, features.to(embeds.dtype))
        return ids, mask, embeds, 1  # the unconditional row keeps BOS and <begin_of_image>

    def _language_model(self, **kwargs):
        return self.model.model.language_model(**kwargs)

    def _logits(self, hidden):
        return self.model.model.generation_head(hidden)

    def _embed(self, tokens):
        return self.model.get_input_embeddings()(tokens)

    def _embed_generated(self, tokens):
        # generated tokens are VQ codes, embedded by the generation embeddings + aligner
        return self.model.prepare_embeddings_for_image_generation(tokens)

    def _num_steps(self):
        return int(self.model.model.vision_model.config.num_image_tokens)

    def _decode(self, tokens):
        return self._postprocess(self.model.decode_image_tokens(tokens))

    def _image_tokens(self, images):
        return likelihood.janus_image_tokens(self, images)


class ChameleonWorldModel(UnifiedImageGenerator):
    """Chameleon / Anole (and the paper's Chameleon world model): VQ image tokens in the text
    vocabulary; the VQGAN decoder that transformers lacks is in `chameleon_vq`."""

    description = "FDP: Chameleon/Anole image-token generation (source + instruction -> image), needs VQ decoder weights"
    model_class = "ChameleonForConditionalGeneration"

    def _setup(self):
        import torch

        from .chameleon_vq import build_decoder, load_decoder_state

        mapping = self.model.model.vocabulary_mapping
        self.image_ids = torch.tensor(mapping.image_tokens, device=self.device)
        bpe2img = mapping.bpe2img
        self.codes = torch.tensor([bpe2img[int(t)] for t in mapping.image_tokens], device=self.device)
        vq = self.model.model.vqmodel
        self.decoder = build_decoder(vq.config)
        missing, unexpected = self.decoder.load_state_dict(load_decoder_state(self.path, self.vq_decoder), strict=False)
        if missing or unexpected:
            raise BadInput(f"VQ decoder weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.decoder.to(device=self.device, dtype=self.dtype).eval()
        self.boi_id = self.processor.tokenizer.convert_tokens_to_ids(self.processor.image_start_token)

    def _encode(self, sources, texts):
        import torch

        inputs = self._processor_inputs(sources, [f"{self.processor.image_token}{t}" for t in texts])
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        boi = torch.full((ids.shape[0], 1), self.boi_id, dtype=ids.dtype, device=ids.device)
        ids, mask = torch.cat([ids, boi], 1), torch.cat([mask, torch.ones_like(boi)], 1)
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.dtype)).pooler_output
        image_mask = (ids == self.model.model.vocabulary_mapping.image_token_id).unsqueeze(-1).expand_as(embeds)
        return ids, mask, embeds.masked_scatter(image_mask, features.to(embeds.dtype)), 1

    def _language_model(self, **kwargs):
        return self.model.model(**kwargs)

    def _logits(self, hidden):
        # lm_head on the image vocabulary only; ChameleonForConditionalGeneration.forward would mask it out
        return hidden @ self.model.lm_head.weight[self.image_ids].T

    def _token(self, index):
        return self.image_ids[index]

    def _index(self, tokens):
        return likelihood.vocabulary_index(self.image_ids, tokens)

    def _embed(self, tokens):
        return self.model.get_input_embeddings()(tokens)

    def _num_steps(self):
        return int(self.processor.image_seq_length)

    def _image_tokens(self, images):
        return likelihood.chameleon_image_tokens(self, images)

    def _decode(self, tokens):
        import torch

        vq = self.model.model.vqmodel
        codes = self.codes[torch.searchsorted(self.image_ids, tokens)]
        side = int(round(codes.shape[1] ** 0.5))
        latents = vq.quantize.embedding(codes).view(codes.shape[0], side, side, -1).permute(0, 3, 1, 2)
        with torch.inference_mode():
            pixels = self.decoder(vq.post_quant_conv(latents.to(self.dtype)))
        return _hf.tensor_to_uint8(pixels, (-1.0, 1.0))


class Emu3WorldModel(UnifiedImageGenerator):
    """Emu3: the source is VQ-tokenized into the prompt; the output grid (with Emu3's end-of-line
    token after each row) has the source's token grid, so set `resolution` to fix the size."""

    description = "FDP: Emu3 image+text -> image generation (visual tokens with end-of-line rows)"
    model_class = "Emu3ForConditionalGeneration"

    def _setup(self):
        import torch

        mapping = self.model.model.vocabulary_mapping
        self.image_ids = torch.tensor(mapping.image_tokens, device=self.device)
        self.eol_id = int(mapping.eol_token_id)
        self.grid = (0, 0)

    def _encode(self, sources, texts):
        p = self.processor
        sizes = {s.shape[:2] for s in sources}
        if len(sizes) > 1:
            raise BadInput("Emu3: sources of different sizes in one batch; set resolution=<pixels>")
        probe = p.image_processor(images=[_hf.to_pil(sources[0])], return_tensors="pt")["image_sizes"][0]
        h, w = (int(v) // p.downsample_ratio for v in probe)
        self.grid = (h, w)
        prefix = f"{p.image_start_token}{h}*{w}{p.fake_token_around_image}"
        inputs = self._processor_inputs(sources, [f"{p.image_token}{t}{prefix}" for t in texts])
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.dtype),
                                                       inputs["image_sizes"]).pooler_output
        import torch

        image_mask = (ids == self.model.model.vocabulary_mapping.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(image_mask, torch.cat(features).to(embeds.dtype))
        tail = len(p.tokenizer(prefix, add_special_tokens=False)["input_ids"])
        return ids, mask, embeds, tail

    def _language_model(self, **kwargs):
        return self.model.model.text_model(**kwargs)

    def _logits(self, hidden):
        return hidden @ self.model.lm_head.weight[self.image_ids].T

    def _token(self, index):
        return self.image_ids[index]

    def _index(self, tokens):
        return likelihood.vocabulary_index(self.image_ids, tokens)

    def _forced(self, step):
        return self.eol_id if (step + 1) % (self.grid[1] + 1) == 0 else None

    def _embed(self, tokens):
        return self.model.get_input_embeddings()(tokens)

    def _num_steps(self):
        h, w = self.grid
        return h * (w + 1)

    def _decode(self, tokens):
        h, w = self.grid
        mapping = self.model.model.vocabulary_mapping
        codes = mapping.convert_bpe2img(tokens.view(-1, h, w + 1)).to(self.device)
        with __import__("torch").inference_mode():
            pixels = self.model.model.vqmodel.decode(codes)
        return self._postprocess(pixels)

    def _image_tokens(self, images):
        return likelihood.emu3_image_tokens(self, images)
