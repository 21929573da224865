"""Action consistency: did the prediction change the source the way the action says?

- `clip_direction`: cos(E(pred) - E(src), T(after) - T(before)) (InstructPix2Pix's directional
  CLIP similarity) when meta has "source_caption" and "target_caption"; otherwise the text
  direction is T(action) itself (no captions in action datasets). copy: 0 (no image change),
  but the oracle is not guaranteed above 0, so it is not marked edit-aware.
- `clip_direction_image`: cos(E(pred) - E(src), E(target) - E(src)) in CLIP image space.
  copy 0 (chance level), oracle 1: edit-aware.
- `disc_lpips` / `disc_clip` / `disc_dino` (AURORA's DiscEdit idea): 1 when the prediction is
  closer to the target than the source is, d(pred, tgt) < d(src, tgt) by more than a relative
  1e-4 (so numerical noise cannot make `copy` win), else 0. copy 0, oracle 1: edit-aware.
- `idp_cycle`: an IDP model checks the prediction; see `IdpCycle`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import MetricInput, ModelBackedMetric, Scores, pick, score_with_targets, with_targets
from .embedders import ClipEmbedder, DinoEmbedder, LpipsNet, cosine_rows
from .perceptual import WeightedMetric, lpips_distances

TIE_TOLERANCE = 1e-4  # relative margin a prediction must beat the source by


def discrimination(d_pred: np.ndarray, d_source: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """1.0 where d(pred, target) < d(source, target) * (1 - tolerance), else 0.0."""
    return (np.asarray(d_pred) < np.asarray(d_source) * (1.0 - tolerance)).astype(float)


def direction_similarity(pred: np.ndarray, src: np.ndarray, direction: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Row-wise cos(pred - src, direction); 0 where the image did not move in embedding space."""
    delta = pred - src
    moved = np.linalg.norm(delta, axis=1) > eps
    return np.where(moved, cosine_rows(delta, direction), 0.0)


class ClipDirection(WeightedMetric):
    name = "clip_direction"
    higher_is_better = True
    needs = frozenset({"source", "action", "weights"})
    embedder_class = ClipEmbedder
    description = "CLIP directional similarity: image change vs text change (captions) or the action text"

    def score(self, batch: MetricInput) -> np.ndarray:
        clip = self.ready()
        n = len(batch.predictions)
        meta = [batch.meta[i] if i < len(batch.meta) else {} for i in range(n)]
        actions = batch.actions or [""] * n
        captioned = [bool(m.get("source_caption") and m.get("target_caption")) for m in meta]
        after = clip.texts([m["target_caption"] if c else a for m, c, a in zip(meta, captioned, actions)])
        before = clip.texts([m["source_caption"] if c else "" for m, c in zip(meta, captioned)])
        text_dir = np.where(np.array(captioned)[:, None], after - before, after)
        return direction_similarity(clip.images(list(batch.predictions)), clip.images(list(batch.sources)), text_dir)


class ClipDirectionImage(WeightedMetric):
    name = "clip_direction_image"
    higher_is_better = True
    edit_aware = True
    needs = frozenset({"source", "target", "weights"})
    embedder_class = ClipEmbedder
    description = "cos of CLIP image-space changes: (pred - source) vs (target - source); copy 0, oracle 1"

    def score(self, batch: MetricInput) -> np.ndarray:
        def compute(have: list[int]) -> np.ndarray:
            src, pred, tgt = (self.ready().images(pick(images, have))
                              for images in (batch.sources, batch.predictions, batch.targets))
            return direction_similarity(pred, src, tgt - src)
        return score_with_targets(batch, compute)


class _Disc(WeightedMetric):
    higher_is_better = True
    edit_aware = True
    needs = frozenset({"source", "target", "weights"})

    def distances(self, preds: list[np.ndarray], sources: list[np.ndarray],
                  targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def score(self, batch: MetricInput) -> np.ndarray:
        return score_with_targets(batch, lambda have: discrimination(*self.distances(
            pick(batch.predictions, have), pick(batch.sources, have), pick(batch.targets, have))))


class DiscLPIPS(_Disc):
    name = "disc_lpips"
    embedder_class = LpipsNet
    description = "1 if LPIPS(pred, target) < LPIPS(source, target), else 0 (DiscEdit-style); copy 0"

    def distances(self, preds, sources, targets):
        # one call for both sides, so both distances come from the same batched computation
        d = lpips_distances(self.ready(), preds + sources, targets + targets)
        return d[:len(preds)], d[len(preds):]


class _DiscEmbedding(_Disc):
    def distances(self, preds, sources, targets):
        model = self.ready()
        emb = model.images(preds + sources + targets)
        n = len(preds)
        pred, src, tgt = emb[:n], emb[n:2 * n], emb[2 * n:]
        return 1.0 - cosine_rows(pred, tgt), 1.0 - cosine_rows(src, tgt)


class DiscCLIP(_DiscEmbedding):
    name = "disc_clip"
    embedder_class = ClipEmbedder
    description = "1 if CLIP cosine distance(pred, target) < distance(source, target), else 0; copy 0"


class DiscDINO(_DiscEmbedding):
    name = "disc_dino"
    embedder_class = DinoEmbedder
    description = "1 if DINOv2 cosine distance(pred, target) < distance(source, target), else 0; copy 0"


class IdpCycle(ModelBackedMetric):
    """IDP cycle consistency: an IDP model (any adapter) reads (source, prediction).

    Options: `model` (adapter name, card name or card path, as `--model`), `model_args`
    (dict), `mode`: "logprob" (needs `action_logprob`: score = log p(action | source,
    prediction) - log p(action | source, target); 0 for the oracle, lower when the prediction
    shows the action less convincingly; NaN without a target) or "caption" (needs
    `infer_action`: cosine of all-MiniLM-L6-v2 embeddings of the model's caption of (source,
    prediction) and the instructed action), `prompt` (the IDP prompt the adapter sees).
    Not edit-aware by construction: it is as good as the IDP model.
    """

    name = "idp_cycle"
    kind = "fdp"
    higher_is_better = True
    needs = frozenset({"source", "action"})
    description = "an IDP model scores the instructed action on (source, prediction) (logprob vs target, or caption cosine)"
    DEFAULT_PROMPT = "What action turns the first image into the second? Answer with a short instruction."

    role = "idp-model"

    def __init__(self, model: str | None = None, model_args: dict[str, Any] | None = None, mode: str = "logprob",
                 prompt: str = DEFAULT_PROMPT, weights_dir: str | None = None, adapter: Any = None,
                 text_backbone: Any = None):
        if mode not in ("logprob", "caption"):
            raise TypeError(f"idp_cycle: mode must be 'logprob' or 'caption', got {mode!r}")
        self._init_model(model, model_args, adapter)
        self.mode, self.prompt, self.weights_dir = mode, prompt, weights_dir
        self._text_backbone = text_backbone
        self._embedder = None

    def options(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_args": self.model_args, "mode": self.mode, "prompt": self.prompt}

    def needed_capability(self) -> str:
        return "action_logprob" if self.mode == "logprob" else "infer_action"

    def available(self) -> tuple[bool, str]:
        ok, reason = super().available()
        if ok and self.mode == "caption":
            return self.text_embedder().available()
        return ok, reason

    def text_embedder(self):
        if self._embedder is None:
            from .text import MiniLMEmbedder

            self._embedder = MiniLMEmbedder(weights_dir=self.weights_dir, backbone=self._text_backbone)
        return self._embedder

    def weights_info(self) -> list[dict[str, Any]]:
        caption = self.text_embedder().weights_info() if self.mode == "caption" and self.model_id() != "<none>" else []
        return super().weights_info() + caption

    def _batch(self, batch: MetricInput, indices: list[int], seconds: list[np.ndarray]):
        from ..core.types import Batch

        meta = [batch.meta[i] if i < len(batch.meta) else {} for i in indices]
        return Batch(sample_ids=[str(m.get("sample_id", i)) for m, i in zip(meta, indices)],
                     sources=[batch.sources[i] for i in indices], prompts=[self.prompt] * len(indices),
                     targets=seconds, meta=meta)

    def score(self, batch: MetricInput) -> Scores:
        n = len(batch.predictions)
        actions = batch.actions or [""] * n
        out = np.full(n, np.nan)
        model = self.adapter()
        if self.mode == "caption":
            idx = list(range(n))
            captions = model.infer_action(self._batch(batch, idx, list(batch.predictions)))
            return Scores(self.text_embedder().cosine(list(captions), list(actions)),
                          [{"idp_caption": c} for c in captions])
        have = with_targets(batch)
        if have:
            acts = [actions[i] for i in have]
            on_pred = model.action_logprob(self._batch(batch, have, [batch.predictions[i] for i in have]), acts)
            on_tgt = model.action_logprob(self._batch(batch, have, [batch.targets[i] for i in have]), acts)
            out[have] = np.asarray(on_pred, dtype=float) - np.asarray(on_tgt, dtype=float)
        details: list[dict[str, Any] | None] = [None] * n
        for j, i in enumerate(have):
            details[i] = {"logprob_prediction": float(on_pred[j]), "logprob_target": float(on_tgt[j])}
        return Scores(out, details)
