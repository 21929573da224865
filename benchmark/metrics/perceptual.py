"""Realism / fidelity in a learned feature space: LPIPS, CLIP-I, CLIP-T, DINO.

None of these is edit-aware: the paper (Qiu et al.) shows CLIP-I and DINO rank `copy` best,
and LPIPS to the target likewise rewards a frame that barely differs from the source. They
measure how close the prediction looks to the target, not whether the action happened.

Options (task `metrics: [{name: clip_i, args: {...}}]`): `weights_dir` (else --weights-dir /
$WMBENCH_WEIGHTS_DIR / hub caches), `pretrained` for CLIP (laion2b_s34b_b79k | openai).
`backbone=` is for tests only (a tiny random model, reported as injected).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Metric, MetricInput, pick, score_with_targets
from .embedders import ClipEmbedder, DinoEmbedder, Embedder, LpipsNet, cosine_rows


class WeightedMetric(Metric):
    """A metric backed by one `Embedder`; availability and weight hashes come from it."""

    kind = "fdp"
    embedder_class: type[Embedder] = Embedder

    def __init__(self, weights_dir: str | None = None, backbone: Any = None, **embedder_options: Any):
        self._options = {"weights_dir": weights_dir, **embedder_options}
        self.embedder = self.embedder_class(weights_dir=weights_dir, backbone=backbone, **embedder_options)

    def available(self) -> tuple[bool, str]:
        return self.embedder.available()

    def weights_info(self) -> list[dict[str, Any]]:
        return self.embedder.weights_info()

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if v is not None}

    def ready(self) -> Embedder:
        self.embedder.device = self.device  # the runner may have set the metric's device
        return self.embedder


def same_shape_pairs(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    """b[i] resized (bilinear) to a[i]'s size where they differ: LPIPS compares pixel grids."""
    from PIL import Image

    out = []
    for x, y in zip(a, b):
        if np.shape(x) != np.shape(y):
            y = np.asarray(Image.fromarray(y).resize((x.shape[1], x.shape[0]), Image.BILINEAR))
        out.append(y)
    return out


def lpips_distances(net: LpipsNet, a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """LPIPS(a[i], b[i]) for uint8 images of any sizes (grouped by shape for batching)."""
    b = same_shape_pairs(a, b)
    out = np.zeros(len(a))
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(a):
        groups.setdefault(np.shape(x), []).append(i)
    for idx in groups.values():
        out[idx] = net.distance([a[i] for i in idx], [b[i] for i in idx])
    return out


class LPIPS(WeightedMetric):
    name = "lpips"
    higher_is_better = False
    needs = frozenset({"target", "weights"})
    embedder_class = LpipsNet
    description = "LPIPS (AlexNet, v0.1) distance to the target; 0 = identical; rewards near-copies"

    def score(self, batch: MetricInput) -> np.ndarray:
        return score_with_targets(batch, lambda have: lpips_distances(
            self.ready(), pick(batch.predictions, have), pick(batch.targets, have)))


class _EmbeddingSimilarity(WeightedMetric):
    """Cosine of the prediction's and the target's image embeddings (`embedder_class`)."""

    higher_is_better = True
    needs = frozenset({"target", "weights"})

    def score(self, batch: MetricInput) -> np.ndarray:
        return score_with_targets(batch, lambda have: cosine_rows(
            self.ready().images(pick(batch.predictions, have)), self.ready().images(pick(batch.targets, have))))


class ClipI(_EmbeddingSimilarity):
    name = "clip_i"
    embedder_class = ClipEmbedder
    description = "cosine of CLIP ViT-B-32 image embeddings of prediction and target; rewards copy (paper)"


def caption_of(batch: MetricInput, i: int) -> str:
    """What CLIP-T compares the prediction with: meta["target_caption"] when the dataset has one
    (InstructPix2Pix-style data), else the action text."""
    meta = batch.meta[i] if i < len(batch.meta) else {}
    return str(meta.get("target_caption") or (batch.actions or [""] * len(batch.predictions))[i])


class ClipT(WeightedMetric):
    name = "clip_t"
    higher_is_better = True
    needs = frozenset({"action", "weights"})
    embedder_class = ClipEmbedder
    description = "cosine of CLIP image embedding of the prediction and text embedding of the target caption / action"

    def score(self, batch: MetricInput) -> np.ndarray:
        clip = self.ready()
        texts = [caption_of(batch, i) for i in range(len(batch.predictions))]
        return cosine_rows(clip.images(list(batch.predictions)), clip.texts(texts))


class Dino(_EmbeddingSimilarity):
    name = "dino"
    embedder_class = DinoEmbedder
    description = "cosine of DINOv2-small CLS embeddings of prediction and target; rewards copy (paper)"
