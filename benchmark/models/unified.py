"""Unified (token-based) VLMs as FDP models: source image + instruction -> image tokens -> pixels.

The families (Janus / Janus-Pro, Chameleon / Anole, Emu3) on the shared sampler of
`unified_base`: each says how its upstream inference code prompts, guides, samples, encodes,
decodes and frames an image. Every default names the upstream file it follows (docs/models.md);
what the adapters add for image-conditioned generation (the source image in the prompt) is marked.
`transition_logprob` (likelihood probe, FDP side) teacher-forces a target's image tokens through
the same hooks: `unified_likelihood`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import BadInput
from . import geometry
from . import unified_likelihood as likelihood
from .unified_base import UnifiedImageGenerator, select_rows

__all__ = ["UnifiedImageGenerator", "JanusWorldModel", "ChameleonWorldModel", "Emu3WorldModel"]

#: Janus' pad token (`VLChatProcessor.pad_tag` in janus/models/processing_vlm.py; the HF conversion
#: `convert_janus_weights_to_hf.py` stores its id as `generation_config.pad_token_id`)
JANUS_PAD = "<\uff5c\u2581pad\u2581\uff5c>"
#: Emu3's `image_generation.py` (baaivision/Emu3): appended to every prompt / the unconditional prompt
EMU3_POSITIVE = " masterpiece, film grained, best quality."
EMU3_NEGATIVE = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
                 "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry.")


def _size(size: Any, key: str) -> int:
    return int(size[key] if isinstance(size, dict) else getattr(size, key))


class JanusWorldModel(UnifiedImageGenerator):
    """Janus / Janus-Pro, after deepseek-ai/Janus `generation_inference.py` (`generate`): the prompt
    is the "deepseek" SFT format `<|User|>: {text}\\n\\n<|Assistant|>:` + `<begin_of_image>` (also the
    chat template of the HF conversion, `convert_janus_weights_to_hf.py`), CFG weight 5 with the
    unconditional row = BOS + pads (`<｜▁pad▁｜>`) + `<begin_of_image>`, temperature 1, no top-k /
    top-p; generation head, generation embeddings + aligner, VQ decoder in the model dtype (bf16).
    Added here: the source enters the user turn as `<image_placeholder>\\n` (the understanding
    encoder: SigLIP + aligner, pad-to-square framing), as in Janus' chat format."""

    description = "FDP: Janus/Janus-Pro image generation conditioned on the source image (understanding encoder) + text"
    model_class = "JanusForConditionalGeneration"
    defaults = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "guidance": 5.0}

    def _prompt(self, text: str) -> str:
        return f"<|User|>: {self.processor.image_token}\n{text.strip()}\n\n<|Assistant|>:"

    def _encode(self, sources, texts):
        inputs = self._processor_inputs(sources, [self._prompt(t) for t in texts], generation_mode="image")
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.dtype)).pooler_output
        image_mask = (ids == self.model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(image_mask, features.to(embeds.dtype))
        return ids, mask, embeds, 1  # the unconditional row keeps BOS and <begin_of_image>

    def _pad_id(self):
        """Upstream's `VLChatProcessor.pad_id` (the `<｜▁pad▁｜>` token), else the generation config's
        pad id (where the HF conversion stores it), else the tokenizer's."""
        tok = self.processor.tokenizer
        found = tok.convert_tokens_to_ids(JANUS_PAD) if JANUS_PAD in tok.get_vocab() else None
        found = found if found is not None else getattr(self.model.generation_config, "pad_token_id", None)
        return int(found) if found is not None else super()._pad_id()

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

    def _framing(self, source):
        """The processor's resize-longest-edge + pad-to-square at the generation side (the layout
        the generated image shares with the understanding input; `unified_likelihood.janus_pixels`)."""
        side, min_size = likelihood.janus_side_and_min_size(self)
        return geometry.pad_to_square(source.shape[1], source.shape[0], side, min_size)


class ChameleonWorldModel(UnifiedImageGenerator):
    """Chameleon / Anole (and the paper's Chameleon world model), after GAIR-NLP/anole
    `chameleon/inference/chameleon.py` (`Options.Image`, `ImageDecoder._split_inputs_for_cfg`) and
    `logits_processor.py` (`InBatchInstructCFGLogitsProcessor`): the prompt is BOS + [image] + text +
    END-OF-TURN (`<reserved08706>`, the tokenizer's sep token) + `<racm3:break>` (BOI); guidance over
    three rows, the full prompt, the image only (BOS, image, BOI) and [BOS, BOI], mixed as
    uncond + 1.2 (image - uncond) + 3.0 (full - image), then temperature 0.7 and top-p 0.9. The VQ
    encoder and decoder run in float32 (`chameleon/inference/image_tokenizer.py` keeps the VQGAN in
    float32). The VQGAN decoder that transformers lacks is `chameleon_vq` (weights: `vq_decoder`)."""

    description = "FDP: Chameleon/Anole image-token generation (source + instruction -> image), needs VQ decoder weights"
    model_class = "ChameleonForConditionalGeneration"
    defaults = {"temperature": 0.7, "top_k": 0, "top_p": 0.9, "guidance": 3.0, "image_guidance": 1.2}
    extra_args = ("image_guidance", "vq_decoder")
    vq_fp32 = True

    def _setup(self):
        import torch

        from .chameleon_vq import build_decoder, load_decoder_state

        mapping = self.model.model.vocabulary_mapping
        self.image_ids = torch.tensor(mapping.image_tokens, device=self.device)
        bpe2img = mapping.bpe2img
        self.codes = torch.tensor([bpe2img[int(t)] for t in mapping.image_tokens], device=self.device)
        vq = self.model.model.vqmodel
        self.decoder = build_decoder(vq.config)
        state = load_decoder_state(self.path, self.vq_decoder, self.revision)
        missing, unexpected = self.decoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise BadInput(f"VQ decoder weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.decoder.to(device=self.device, dtype=self.vq_dtype).eval()
        tok = self.processor.tokenizer
        self.boi_id = tok.convert_tokens_to_ids(self.processor.image_start_token)
        self.eoi_id = tok.convert_tokens_to_ids(self.processor.image_end_token)

    def _encode(self, sources, texts):
        import torch

        # END-OF-TURN is the tokenizer's sep token; a tokenizer without one gets none (not "None")
        sep = self.processor.tokenizer.sep_token or ""
        inputs = self._processor_inputs(sources, [f"{self.processor.image_token}{t}{sep}" for t in texts],
                                        return_for_text_completion=True)
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        boi = torch.full((ids.shape[0], 1), self.boi_id, dtype=ids.dtype, device=ids.device)
        ids, mask = torch.cat([ids, boi], 1), torch.cat([mask, torch.ones_like(boi)], 1)
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.vq_dtype)).pooler_output
        image_mask = (ids == self.model.model.vocabulary_mapping.image_token_id).unsqueeze(-1).expand_as(embeds)
        return ids, mask, embeds.masked_scatter(image_mask, features.to(embeds.dtype)), 1

    def _guidance_inputs(self, ids, mask, embeds, tail):
        import torch

        if self.guidance == 1.0 and self.image_guidance == 1.0:
            return []
        bos = self.processor.tokenizer.bos_token_id
        image_token = self.model.model.vocabulary_mapping.image_token_id
        allowed = torch.tensor([t for t in (bos, self.boi_id, self.eoi_id, image_token) if t is not None],
                               device=ids.device)
        last = torch.zeros_like(ids, dtype=torch.bool)
        last[:, -1] = True  # the BOI generation starts from
        pad = self._pad_id()
        image_only = select_rows(ids, mask, embeds, torch.isin(ids, allowed), pad)
        uncond = select_rows(ids, mask, embeds, (ids == bos) | last if bos is not None else last, pad)
        return [image_only, uncond]

    def _mix(self, logits):
        full, image, unc = logits
        return unc + self.image_guidance * (image - unc) + self.guidance * (full - image)

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

        from . import _hf

        vq = self.model.model.vqmodel
        codes = self.codes[torch.searchsorted(self.image_ids, tokens)]
        side = int(round(codes.shape[1] ** 0.5))
        latents = vq.quantize.embedding(codes).view(codes.shape[0], side, side, -1).permute(0, 3, 1, 2)
        with torch.inference_mode():
            pixels = self.decoder(vq.post_quant_conv(latents.to(self.vq_dtype)))
        return _hf.tensor_to_uint8(pixels, (-1.0, 1.0))

    def _framing(self, source):
        """The image processor's shortest-edge resize + centre crop: the crop box of the source."""
        ip = self.processor.image_processor
        crop = (_size(ip.crop_size, "width"), _size(ip.crop_size, "height"))
        return geometry.shortest_edge_center_crop(source.shape[1], source.shape[0], _size(ip.size, "shortest_edge"), crop)


class Emu3WorldModel(UnifiedImageGenerator):
    """Emu3, after baaivision/Emu3 `image_generation.py`: the prompt is BOS + text + the positive
    suffix " masterpiece, film grained, best quality." + BOI + "{h}*{w}" + `<|image token|>`; CFG 3.0
    against upstream's negative prompt (BOS + NEGATIVE_PROMPT + the same size prefix, no image), top-k
    2048, temperature 1; rows end with Emu3's end-of-line token. The VQ model runs in float32 (the
    upstream vision tokenizer is loaded without a dtype). Added here: the source's VQ tokens enter
    the prompt before the text (the processor's image placeholder), and the output grid is the
    source's: the processor's `smart_resize` (aspect ratio kept, multiples of 8 within its pixel
    bounds); `resolution=r` sets both bounds to r*r pixels."""

    description = "FDP: Emu3 image+text -> image generation (visual tokens with end-of-line rows)"
    model_class = "Emu3ForConditionalGeneration"
    defaults = {"temperature": 1.0, "top_k": 2048, "top_p": 1.0, "guidance": 3.0,
                "negative_prompt": EMU3_NEGATIVE, "positive_prompt": EMU3_POSITIVE}
    extra_args = ("negative_prompt", "positive_prompt", "resolution")
    vq_fp32 = True

    def _setup(self):
        import torch

        mapping = self.model.model.vocabulary_mapping
        self.image_ids = torch.tensor(mapping.image_tokens, device=self.device)
        self.eol_id = int(mapping.eol_token_id)
        self.grid = (0, 0)
        if self.resolution:
            ip = self.processor.image_processor
            ip.min_pixels = ip.max_pixels = self.resolution * self.resolution
            ip.size = {"min_pixels": ip.min_pixels, "max_pixels": ip.max_pixels}

    def _resized_size(self, source: np.ndarray) -> tuple[int, int]:
        from transformers.models.emu3.image_processing_emu3 import smart_resize

        ip = self.processor.image_processor
        return smart_resize(source.shape[0], source.shape[1], factor=ip.spatial_factor,
                            min_pixels=ip.min_pixels, max_pixels=ip.max_pixels)

    def _group_key(self, source):
        self._load()
        return self._resized_size(source)

    def _framing(self, source):
        h, w = self._resized_size(source)
        return geometry.identity(source.shape[1], source.shape[0], (w, h), kind="smart_resize")

    def _encode(self, sources, texts):
        import torch

        p = self.processor
        grids = {tuple(v // p.downsample_ratio for v in self._resized_size(s)) for s in sources}
        if len(grids) > 1:
            raise BadInput(f"Emu3: sources with different token grids {sorted(grids)} in one batch")
        h, w = self.grid = grids.pop()
        self._prefix = f"{p.image_start_token}{h}*{w}{p.fake_token_around_image}"
        inputs = self._processor_inputs(sources, [f"{p.image_token}{t}{self.positive_prompt or ''}{self._prefix}"
                                                  for t in texts])
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        embeds = self.model.get_input_embeddings()(ids)
        features = self.model.model.get_image_features(inputs["pixel_values"].to(self.vq_dtype),
                                                       inputs["image_sizes"]).pooler_output
        image_mask = (ids == self.model.model.vocabulary_mapping.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(image_mask, torch.cat(features).to(embeds.dtype))
        tail = len(p.tokenizer(self._prefix, add_special_tokens=False)["input_ids"])
        return ids, mask, embeds, tail

    def _guidance_inputs(self, ids, mask, embeds, tail):
        if self.guidance == 1.0:
            return []
        texts = [f"{self.negative_prompt or ''}{self._prefix}"] * ids.shape[0]
        neg = self.processor(text=texts, padding=True, padding_side="left", return_tensors="pt").to(self.device)
        return [(neg["input_ids"], neg["attention_mask"], self._embed(neg["input_ids"]))]

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
        import torch

        h, w = self.grid
        mapping = self.model.model.vocabulary_mapping
        codes = mapping.convert_bpe2img(tokens.view(-1, h, w + 1)).to(self.device)
        with torch.inference_mode():
            pixels = self.model.model.vqmodel.decode(codes)
        return self._postprocess(pixels)

    def _image_tokens(self, images):
        return likelihood.emu3_image_tokens(self, images)
