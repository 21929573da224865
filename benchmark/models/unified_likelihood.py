"""The FDP side of the likelihood probe for the unified VLMs (`unified.py`): log p(target | source, action).

A target frame is scored as the model would generate it: its image tokens (the family's own VQ
encoder, below) are teacher-forced after the prompt `predict_next` builds (source image + action
text + begin-of-image prefix, `_encode`), and the score is the sum over the image-token steps of
log_softmax(`_logits`(h_t))[target index], in nats. Forced structural steps (`_forced`, Emu3's
end of line) are fed but not counted. The distribution is the model's own: temperature 1, no
top-k / top-p, no classifier-free guidance, whatever the adapter's sampling arguments. All the
steps run in one forward pass (no KV cache) over left-padded rows, `max_batch` rows at a time; a
test checks it against the sampler's own step-by-step log-probabilities.

Target preprocessing. A target is first resized (bicubic) to its source's size, the frame
`predict_next`'s outputs are returned in (a no-op for two frames of one video); then each family
prepares it as it prepares images:

- Chameleon / Anole: `ChameleonModel.get_image_tokens` (`vqmodel.encode` -> `convert_img2bpe`)
  over the image processor's pixel values (shortest edge, centre crop, [-1, 1]), the path the
  source takes into the prompt, so a copy of the source tokenizes as the model saw the source.
- Emu3: `Emu3Model.get_image_tokens` (`vqmodel.encode` -> img2bpe, an end-of-line token after each
  row) over the image processor's pixel values (`smart_resize`); its grid must be the generation
  grid, which it is once the target has the source's size.
- Janus / Janus-Pro: the generation VQ model (`vqmodel`, the original's `gen_vision_model`) at the
  generation resolution (`num_patches` x its downsampling, 384 for the released checkpoints) with
  the image processor's resize-longest-edge + pad-to-square and normalisation (the one `_decode`
  inverts; [-1, 1] in the released configs, as the original `generation_inference.py` decodes).
  Quantisation follows the original `janus/models/vq_model.py` (`codebook_l2_norm=True`: nearest
  codebook entry after l2-normalising both, i.e. largest cosine), not transformers'
  `JanusVQVAEVectorQuantizer.forward`, which omits that normalisation (its `get_codebook_entry`,
  used for decoding, does normalise).

For non-square frames the processor's framing (Janus pads, Chameleon crops) is what is scored, and
it is the frame `predict_next` maps its output back from (`geometry`): the score covers the part of
the target the model generates (for Chameleon, the centre crop; the rest of a prediction is the
source's). The VQ encoders run in `model.vq_dtype`: float32 for Chameleon and Emu3 (their upstream
code keeps the VQ model in float32), the model's dtype for Janus (upstream casts it to bf16).

Only numpy at module level: torch is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import BadInput
from ..core.types import Batch
from . import _hf

#: image-token positions scored per `_logits` call (bounds the (rows x positions x vocabulary) logits)
LOGITS_CHUNK = 512


def transition_logprob(model: Any, batch: Batch, targets: list[np.ndarray]) -> list[float]:
    """One float per sample: the summed log-probability (nats) of targets[i] given sample i's
    source and action (see the module docstring)."""
    if targets is None or len(targets) != len(batch):
        raise BadInput(f"transition_logprob needs one target per sample: {len(batch)} samples, "
                       f"{None if targets is None else len(targets)} targets")
    import torch

    model._load()
    texts, out = model._texts(batch), [0.0] * len(batch)
    for part in model._parts(list(batch.sources), model.max_batch):
        sources = [batch.sources[i] for i in part]
        goals = [_fit(np.asarray(targets[i]), s.shape[:2]) for i, s in zip(part, sources)]
        with torch.inference_mode():
            ids, mask, embeds, _ = model._encode(sources, [texts[i] for i in part])
            tokens = model._image_tokens(goals)  # after _encode: Emu3 reads the grid it set
            logprobs = teacher_forced_logprobs(model, ids, mask, embeds, tokens)
        for i, value in zip(part, logprobs.double().sum(1).cpu().tolist()):
            out[i] = float(value)
    return out


def teacher_forced_logprobs(model: Any, ids: Any, mask: Any, embeds: Any, tokens: Any) -> Any:
    """(R, steps) float32 log-probabilities of `tokens` (as `_sample` returns them) after the prompt
    (ids, mask, embeds from `_encode`); 0 at forced steps, whose token must be the forced one."""
    import torch

    rows, steps = ids.shape[0], model._num_steps()
    if tuple(tokens.shape) != (rows, steps):
        raise ValueError(f"expected ({rows}, {steps}) image tokens, got {tuple(tokens.shape)}")
    tokens = tokens.to(ids.device)
    forced = [model._forced(step) for step in range(steps)]
    free = [step for step, f in enumerate(forced) if f is None]
    for step, f in enumerate(forced):
        if f is not None and not bool((tokens[:, step] == f).all()):
            raise ValueError(f"image token step {step} must be the structural token {f}")
    index = model._index(tokens)
    if not bool((model._token(index[:, free]) == tokens[:, free]).all()):
        raise ValueError("image tokens outside the image vocabulary")
    with torch.inference_mode():
        fed = model._embed_generated(tokens[:, :-1]).to(embeds.dtype)
        mask = torch.cat([mask, mask.new_ones((rows, steps - 1))], dim=1)
        position = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as the sampler: prompt, then +1 a step
        hidden = model._language_model(inputs_embeds=torch.cat([embeds, fed], dim=1), attention_mask=mask,
                                       position_ids=position, use_cache=False).last_hidden_state
        hidden = hidden[:, ids.shape[1] - 1:]  # the state each image token is predicted from
        out = torch.zeros((rows, steps), dtype=torch.float32, device=ids.device)
        for start in range(0, len(free), LOGITS_CHUNK):
            cols = torch.tensor(free[start:start + LOGITS_CHUNK], device=ids.device)
            logits = model._logits(hidden[:, cols].reshape(rows * len(cols), -1)).float()
            if start == 0 and not bool(((index[:, free] >= 0) & (index[:, free] < logits.shape[-1])).all()):
                raise ValueError(f"image-token indices outside [0, {logits.shape[-1]})")
            picked = logits.log_softmax(-1).gather(-1, index[:, cols].reshape(-1, 1))
            out[:, cols] = picked.view(rows, len(cols))
    return out


def vocabulary_index(image_ids: Any, tokens: Any) -> Any:
    """Token ids -> positions in the sorted table `image_ids` (the image-vocabulary index)."""
    import torch

    return torch.searchsorted(image_ids, tokens.contiguous()).clamp(max=len(image_ids) - 1)


# -- the families' target tokenizations (module docstring); no_grad, not inference_mode, so the
# tokens are plain tensors as `_sample` returns them (Janus' `_decode` rejects inference tensors)

def chameleon_image_tokens(model: Any, images: list[np.ndarray]) -> Any:
    import torch

    pixels = model.processor.image_processor(images=[_hf.to_pil(i) for i in images], return_tensors="pt")
    with torch.no_grad():
        return model.model.model.get_image_tokens(pixels["pixel_values"].to(model.device, model.vq_dtype)).long()


def emu3_image_tokens(model: Any, images: list[np.ndarray]) -> Any:
    import torch

    p = model.processor
    inputs = p.image_processor(images=[_hf.to_pil(i) for i in images], return_tensors="pt")
    grids = {(int(h) // p.downsample_ratio, int(w) // p.downsample_ratio) for h, w in inputs["image_sizes"]}
    if grids != {tuple(model.grid)}:
        raise BadInput(f"Emu3: target token grids {sorted(grids)} differ from the generation grid {model.grid}")
    with torch.no_grad():
        tokens = model.model.model.get_image_tokens(inputs["pixel_values"].to(model.device, model.vq_dtype),
                                                    inputs["image_sizes"].to(model.device))
    return tokens.view(len(images), -1).long()


def janus_resolution(model: Any) -> int:
    """The side of the images Janus generates: the VQ grid times the encoder's downsampling."""
    config = model.model.model.vqmodel.config
    return int(config.num_patches) * 2 ** (len(config.channel_multiplier) - 1)


def janus_side_and_min_size(model: Any) -> tuple[int, int]:
    """The generation side and the processor's `min_size` scaled to it (the same for the released
    checkpoints, where the understanding and generation sides are both 384)."""
    side, processor = janus_resolution(model), model.processor.image_processor
    size = processor.size["height"] if isinstance(processor.size, dict) else processor.size.height
    return side, max(1, round(int(getattr(processor, "min_size", 14)) * side / int(size or side)))


def janus_pixels(model: Any, images: list[np.ndarray]) -> Any:
    """The image processor's resize-longest-edge, pad-to-square and normalisation, at the generation
    side (`janus_side_and_min_size`)."""
    side, min_size = janus_side_and_min_size(model)
    processor = model.processor.image_processor
    return processor(images=[_hf.to_pil(i) for i in images], size={"height": side, "width": side},
                     min_size=min_size, return_tensors="pt")["pixel_values"].to(model.device, model.dtype)


def janus_image_tokens(model: Any, images: list[np.ndarray]) -> Any:
    import torch
    import torch.nn.functional as F

    vq = model.model.model.vqmodel
    with torch.no_grad():
        latents = vq.quant_conv(vq.encoder(janus_pixels(model, images)))
        z = F.normalize(latents.permute(0, 2, 3, 1).flatten(1, 2).float(), dim=-1)  # (B, h*w, C)
        codebook = F.normalize(vq.quantize.embedding.weight.float(), dim=-1)
        return (z @ codebook.T).argmax(-1)  # nearest unit vector = largest cosine


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(_hf.to_pil(image).resize((size[1], size[0]), Image.BICUBIC))
