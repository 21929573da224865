"""Edit-aware metrics on change masks, in the style of Physics-IQ's motion masks.

A change mask marks the pixels that differ between two frames:
    mask(a, b) = gaussian_blur(mean_over_channels(|a - b|), sigma) > threshold
with pixels in [0, 1], `sigma` = 1.0 px (suppresses isolated noise and compression speckle) and
`threshold` = 0.1 (about 25 grey levels). The predicted change is mask(prediction, source), the
true change is mask(target, source). Predicting "no change" (`copy`) gives an empty predicted
mask and an IoU of 0 whenever something truly changed; both masks empty scores 1.
"""

from __future__ import annotations

import numpy as np

from .base import Metric, MetricInput, stack

THRESHOLD = 0.1
SIGMA = 1.0


def change_mask(a: np.ndarray, b: np.ndarray, threshold: float = THRESHOLD, sigma: float = SIGMA) -> np.ndarray:
    """(N, H, W, C) in [0, 1] twice -> (N, H, W) bool."""
    from scipy.ndimage import gaussian_filter

    diff = np.abs(a - b).mean(axis=-1)
    if sigma > 0:
        diff = gaussian_filter(diff, sigma=(0, sigma, sigma), mode="nearest")
    return diff > threshold


def change_iou(predictions: np.ndarray, sources: np.ndarray, targets: np.ndarray,
               threshold: float = THRESHOLD, sigma: float = SIGMA) -> np.ndarray:
    predicted = change_mask(predictions, sources, threshold, sigma)
    true = change_mask(targets, sources, threshold, sigma)
    inter = (predicted & true).reshape(len(predicted), -1).sum(axis=1)
    union = (predicted | true).reshape(len(predicted), -1).sum(axis=1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


class ChangeIoU(Metric):
    name = "change_iou"
    kind = "fdp"
    higher_is_better = True
    needs = frozenset({"source", "target"})
    edit_aware = True
    description = (f"IoU of predicted vs true change masks (|frame - source| blurred with sigma {SIGMA:g}, "
                   f"> {THRESHOLD:g}); copy scores 0")

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        targets = batch.targets or [None] * len(batch.predictions)
        have = [i for i, t in enumerate(targets) if t is not None]
        if have:
            pick = lambda xs: stack([xs[i] for i in have])  # noqa: E731
            out[have] = change_iou(pick(batch.predictions), pick(batch.sources), pick(targets))
        return out
