"""Physical plausibility: where the prediction changes the scene, against where it truly changed.

All masks and magnitudes are those of `change.py` (blurred mean |frame - source| in [0, 1],
threshold 0.1). P = predicted change mask(prediction, source), T = true change mask(target,
source); dp, dt their blurred magnitudes.

- `change_iou_weighted`: sum(min(dp*P, dt*T)) / sum(max(dp*P, dt*T)), the single-frame analogue
  of Physics-IQ's weighted spatial IoU. copy: 0; oracle: 1; both empty: 1.
- `masked_mse`: MSE (channel mean, [0, 1] pixels) between prediction and target inside P | T, so
  a change in the wrong place costs as much as a missed one. Empty union: 0.
- `background_preservation`: 1 - mean |prediction - target| outside T. Rewards copying by
  construction (copy is near 1): it is a guard against regenerating the whole frame, not a
  measure of editing.
- `counterfactual_sensitivity`: how much the prediction moves when the action changes, relative
  to the true change: min(1, mean|pred - pred_cf| / mean|target - source|). Needs
  aux["counterfactual_prediction"]; NaN without it.
- `sim_motion`: simulator ground truth (Meta-World segmentation, labels 0 background, 1 robot,
  2 objects): moved = label differs between source and target; static = background in both.
  score = recall of P on moved * (1 - fraction of static pixels in P). copy: 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Metric, MetricInput, stacked, with_targets
from .change import THRESHOLD, ChangeMetric, change_magnitude, magnitudes
from .pixel import cached_absdiff, channel_absdiff


def weighted_change_iou(dp: np.ndarray, dt: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(N, H, W) predicted and true change magnitudes -> (N,) soft IoU of the masked magnitudes."""
    wp = np.where(dp > threshold, dp, 0.0)
    wt = np.where(dt > threshold, dt, 0.0)
    n = len(dp)
    inter = np.minimum(wp, wt).reshape(n, -1).sum(axis=1, dtype=np.float64)
    union = np.maximum(wp, wt).reshape(n, -1).sum(axis=1, dtype=np.float64)
    return np.where(union == 0, 1.0, inter / np.where(union == 0, 1.0, union))


def _channel_mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 twice -> (N, H, W) mean |a - b| in [0, 1] (float64)."""
    return channel_absdiff(a, b) / (a.shape[-1] * 255.0)


def masked_mse(predictions: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 twice, (N, H, W) bool -> (N,) squared error (averaged over channels,
    pixels in [0, 1]) averaged inside `mask`; an empty mask scores 0 (nothing to get wrong)."""
    diff = (predictions.astype(np.int32) - targets.astype(np.int32))
    per_pixel = (diff * diff).sum(axis=-1) / (predictions.shape[-1] * 255.0**2)
    n = len(mask)
    count = mask.reshape(n, -1).sum(axis=1)
    total = np.where(mask, per_pixel, 0.0).reshape(n, -1).sum(axis=1)
    return np.where(count == 0, 0.0, total / np.maximum(count, 1))


def background_preservation(predictions: np.ndarray, targets: np.ndarray, true_mask: np.ndarray,
                            diff=None) -> np.ndarray:
    """1 - mean |prediction - target| over pixels outside the true change (NaN if none); `diff`
    = pixel.absdiff(predictions, targets) when already computed."""
    n = len(true_mask)
    error = channel_absdiff(predictions, targets, diff).reshape(n, -1)  # exact integers
    outside = ~true_mask.reshape(n, -1)
    count = outside.sum(axis=1)
    total = np.einsum("ij,ij->i", error, outside, dtype=np.int64) / (predictions.shape[-1] * 255.0)
    with np.errstate(invalid="ignore"):
        return np.where(count == 0, np.nan, 1.0 - total / np.maximum(count, 1))


def counterfactual_sensitivity(predictions: np.ndarray, counterfactuals: np.ndarray, sources: np.ndarray,
                               targets: np.ndarray) -> np.ndarray:
    """min(1, mean|pred - pred_cf| / mean|target - source|), uint8 (N, H, W, C) arrays; NaN when
    nothing truly changed (no scale to compare against)."""
    n = len(predictions)
    moved = _channel_mean_abs(predictions, counterfactuals).reshape(n, -1).mean(axis=1)
    true = _channel_mean_abs(targets, sources).reshape(n, -1).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(true > 0, np.minimum(1.0, moved / np.where(true > 0, true, 1.0)), np.nan)


def labels_of(segmentation: Any, shape: tuple[int, int]) -> np.ndarray:
    """A label map ((H, W) or (H, W, 3) with the label in channel 0) at `shape` (nearest)."""
    seg = np.asarray(segmentation)
    seg = seg[..., 0] if seg.ndim == 3 else seg
    if seg.shape != shape:
        rows = (np.arange(shape[0]) * seg.shape[0] // shape[0])[:, None]
        cols = (np.arange(shape[1]) * seg.shape[1] // shape[1])[None, :]
        seg = seg[rows, cols]
    return seg


def sim_motion(predicted_mask: np.ndarray, source_labels: np.ndarray, target_labels: np.ndarray) -> float:
    """(H, W) predicted change mask, label maps -> recall on moved * (1 - false change on static);
    NaN when nothing moved in the simulator."""
    moved = source_labels != target_labels
    static = (source_labels == 0) & (target_labels == 0)
    if not moved.any():
        return float("nan")
    recall = (predicted_mask & moved).sum() / moved.sum()
    false_change = (predicted_mask & static).sum() / max(int(static.sum()), 1)
    return float(recall * (1.0 - false_change))


class ChangeIoUWeighted(ChangeMetric):
    name = "change_iou_weighted"
    higher_is_better = True
    edit_aware = True
    description = "soft IoU of predicted vs true change magnitudes (Physics-IQ weighted IoU, one frame); copy 0"

    def compare(self, batch: MetricInput, group: list[int]) -> np.ndarray:
        return weighted_change_iou(magnitudes(batch, "predictions", group), magnitudes(batch, "targets", group))


class MaskedMSE(ChangeMetric):
    name = "masked_mse"
    higher_is_better = False
    description = "MSE to the target inside the predicted-or-true change region ([0, 1] pixels)"

    def compare(self, batch: MetricInput, group: list[int]) -> np.ndarray:
        union = (magnitudes(batch, "predictions", group) > THRESHOLD) | (magnitudes(batch, "targets", group) > THRESHOLD)
        return masked_mse(stacked(batch, "predictions", group, uint8=True),
                          stacked(batch, "targets", group, uint8=True), union)


class BackgroundPreservation(ChangeMetric):
    name = "background_preservation"
    higher_is_better = True
    description = "1 - mean |prediction - target| outside the true change region; copy scores near 1"

    def compare(self, batch: MetricInput, group: list[int]) -> np.ndarray:
        return background_preservation(stacked(batch, "predictions", group, uint8=True),
                                       stacked(batch, "targets", group, uint8=True),
                                       magnitudes(batch, "targets", group) > THRESHOLD,
                                       cached_absdiff(batch, "predictions", "targets", group))


class CounterfactualSensitivity(Metric):
    name = "counterfactual_sensitivity"
    kind = "fdp"
    higher_is_better = True
    needs = frozenset({"source", "target"})
    aux_keys = frozenset({"counterfactual_prediction"})
    description = ("change of the prediction under a different action, relative to the true change "
                   "(needs aux counterfactual_prediction; NaN without)")

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        have = [i for i in with_targets(batch) if batch.aux_of(i, "counterfactual_prediction") is not None]
        for i in have:
            cf = np.asarray(batch.aux_of(i, "counterfactual_prediction"))
            if cf.shape != np.shape(batch.predictions[i]):
                continue  # the runner resizes it like the prediction; anything else is not comparable
            out[i] = counterfactual_sensitivity(*(np.asarray(a)[None] for a in (
                batch.predictions[i], cf, batch.sources[i], batch.targets[i])))[0]
        return out


class SimMotion(Metric):
    name = "sim_motion"
    kind = "fdp"
    higher_is_better = True
    edit_aware = True
    needs = frozenset({"source"})
    aux_keys = frozenset({"source_segmentation", "target_segmentation"})
    description = ("simulator-grounded: predicted change covers what moved (segmentation label changed) "
                   "and spares the static background; copy 0; NaN without segmentation")

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        for i in range(len(batch.predictions)):
            src_seg = batch.aux_of(i, "source_segmentation")
            tgt_seg = batch.aux_of(i, "target_segmentation")
            if src_seg is None or tgt_seg is None:
                continue
            pred, src = np.asarray(batch.predictions[i]), np.asarray(batch.sources[i])
            mask = change_magnitude(pred[None], src[None])[0] > THRESHOLD
            shape = mask.shape
            out[i] = sim_motion(mask, labels_of(src_seg, shape), labels_of(tgt_seg, shape))
        return out
