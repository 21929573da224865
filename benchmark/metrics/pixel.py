"""Pixel-space fidelity to the target: L1, PSNR, SSIM. None of them is edit-aware: `copy`
scores well whenever little of the frame changes.

The functions take (N, H, W, C) arrays, either float in [0, data_range] or uint8 (then
data_range is 255 and the result equals the float version on x / 255 with data_range 1).
SSIM is skimage's definition (7x7 uniform window, sample covariance, channels averaged, border
of 3 px cropped). uint8 input (what the runner passes) goes to a fused numba kernel with exact
integer window sums (_kernels.py: 0.65 ms per 256x256 pair vs 8 ms for skimage); float input
uses box sums in torch float64. L1 and PSNR come exactly from a histogram of |pred - target|.
Speed against a per-pair reference loop: benchmarks/bench_metrics.py.
"""

from __future__ import annotations

import numpy as np

from .base import MetricInput, PairedImageMetric, shape_groups, stacked, with_targets

PSNR_MAX_DB = 100.0  # identical images have infinite PSNR; capped so means stay finite
SSIM_WIN = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
_CHUNK = 2  # samples per torch SSIM chunk (float path): keeps the working set in cache


def as_tensor(array: np.ndarray):
    """torch.from_numpy without copying, also for read-only arrays (decoded frames often are):
    the metrics only read their inputs, so torch's non-writable warning does not apply."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def _range(a: np.ndarray, data_range: float | None) -> float:
    return 255.0 if a.dtype == np.uint8 else (1.0 if data_range is None else data_range)


def l1(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean absolute error per sample, in units of the data range ([0, 1] images)."""
    if predictions.dtype == np.uint8:
        return l1_from_histogram(absdiff_histogram(absdiff(predictions, targets)))
    return np.abs(predictions - targets).reshape(len(predictions), -1).mean(axis=1)


def l1_from_histogram(hist: np.ndarray) -> np.ndarray:
    """Mean |difference| in [0, 1] from per-sample counts of each |difference| 0..255."""
    return hist @ np.arange(256.0) / (255.0 * hist.sum(axis=1))


def psnr_from_histogram(hist: np.ndarray) -> np.ndarray:
    mse = hist @ np.arange(256.0) ** 2 / hist.sum(axis=1)
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(255.0**2 / mse), PSNR_MAX_DB)


def psnr(predictions: np.ndarray, targets: np.ndarray, data_range: float | None = None) -> np.ndarray:
    """PSNR in dB per sample (as skimage.metrics.peak_signal_noise_ratio), capped at 100 dB."""
    n = len(predictions)
    value_range = _range(predictions, data_range)
    if predictions.dtype == np.uint8:
        return psnr_from_histogram(absdiff_histogram(absdiff(predictions, targets)))
    diff = predictions.astype(np.float64) - targets.astype(np.float64)
    mse = (diff**2).reshape(n, -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(value_range**2 / mse)
    return np.minimum(value, PSNR_MAX_DB)


def _box(z, dim: int):
    """Sums over windows of 7 along `dim` ('valid' positions only) with 4 additions."""
    n = z.shape[dim]
    s2 = z.narrow(dim, 0, n - 1) + z.narrow(dim, 1, n - 1)
    s4 = s2.narrow(dim, 0, n - 3) + s2.narrow(dim, 2, n - 3)
    out = s4.narrow(dim, 0, n - 6)
    out += s2.narrow(dim, 4, n - 6)
    out += z.narrow(dim, 6, n - 6)
    return out


def _ssim_chunk(x, y, value_range: float):
    """x, y: (n, H, W, C) float64 tensors -> (n,) mean SSIM over the valid (cropped) windows
    (the float-input path; uint8 input goes to the fused kernel in _kernels.py)."""
    import torch

    nw = SSIM_WIN * SSIM_WIN
    # Window sums instead of means turn skimage's formula (cov_norm N/(N-1)) into
    #   S = (2P + c1)(2(N*sxy - P) + c2) / ((Q + c1)(N*(sxx + syy) - Q + c2)),
    # P = sx*sy, Q = sx^2 + sy^2, c1 = (K1 R)^2 N^2, c2 = (K2 R)^2 N (N-1). On uint8 input every
    # term up to the last products is an exact int32 (< 2^31), so the variance differences
    # suffer no cancellation; in-place ops keep the passes over memory few (memory-bound).
    c1 = (SSIM_K1 * value_range) ** 2 * nw * nw
    c2 = (SSIM_K2 * value_range) ** 2 * nw * (nw - 1)
    maps = torch.empty((4, *x.shape), dtype=x.dtype)
    maps[0], maps[1] = x, y
    torch.mul(maps[0], maps[0], out=maps[2]).addcmul_(maps[1], maps[1])
    torch.mul(maps[0], maps[1], out=maps[3])
    sx, sy, sq, sxy = _box(_box(maps, 2), 3).unbind(0)
    p = sx * sy
    q = (sx * sx).addcmul_(sy, sy)
    cov = sxy.mul_(nw).sub_(p).mul_(2)  # 2 (N sxy - P)
    var = sq.mul_(nw).sub_(q)  # N (sxx + syy) - Q
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    num = p.to(real).mul_(2).add_(c1).mul_(cov.to(real).add_(c2))
    den = q.to(real).add_(c1).mul_(var.to(real).add_(c2))
    return num.div_(den).reshape(len(num), -1).mean(dim=1, dtype=torch.float64)


def ssim(predictions: np.ndarray, targets: np.ndarray, data_range: float | None = None) -> np.ndarray:
    """Mean SSIM per sample, equal to skimage.metrics.structural_similarity(p, t, channel_axis=-1,
    data_range=...) with its defaults (7x7 uniform window)."""

    if min(predictions.shape[1:3]) < SSIM_WIN:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}, got {predictions.shape[1:3]}")
    value_range = _range(predictions, data_range)
    if predictions.dtype == np.uint8:
        from ._kernels import ssim_uint8

        nw = SSIM_WIN * SSIM_WIN
        grey = predictions.ndim == 3
        p = np.ascontiguousarray(predictions[..., None] if grey else predictions)
        t = np.ascontiguousarray(targets[..., None] if grey else targets)
        return ssim_uint8(p, t, (SSIM_K1 * 255) ** 2 * nw * nw, (SSIM_K2 * 255) ** 2 * nw * (nw - 1))
    out = []
    for start in range(0, len(predictions), _CHUNK):
        x = as_tensor(predictions[start:start + _CHUNK]).double()
        y = as_tensor(targets[start:start + _CHUNK]).double()
        if x.dim() == 3:  # grey images without a channel axis
            x, y = x[..., None], y[..., None]
        out.append(_ssim_chunk(x, y, value_range).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def absdiff(a: np.ndarray, b: np.ndarray):
    """(N, H, W, C) uint8 twice -> uint8 tensor |a - b| (max - min: no widening pass)."""
    import torch

    ta, tb = as_tensor(a), as_tensor(b)
    return torch.maximum(ta, tb) - torch.minimum(ta, tb)


def absdiff_histogram(diff) -> np.ndarray:
    """uint8 tensor (N, ...) -> (N, 256) float64 counts of each value: L1 and MSE both follow
    exactly (sum v*h, sum v^2*h), and bincount is 4x faster than a widening sum."""
    import torch

    flat = diff.reshape(len(diff), -1)
    return torch.stack([torch.bincount(row, minlength=256) for row in flat]).double().numpy()


def channel_absdiff(a: np.ndarray, b: np.ndarray, diff=None) -> np.ndarray:
    """(N, H, W, C) uint8 twice -> (N, H, W) int16 sum over channels of |a - b| (exact);
    `diff` = absdiff(a, b) when already computed."""
    import torch

    diff = absdiff(a, b) if diff is None else diff
    return diff.sum(dim=-1, dtype=torch.int16).numpy()  # <= 3 * 255 fits int16


def cached_absdiff(batch: MetricInput, a: str, b: str, group: list[int]):
    """absdiff of two batch fields for `group`, memoised in batch.cache (L1, PSNR and the
    background metric share prediction-vs-target; change masks share target-vs-source)."""
    key = ("absdiff", a, b, tuple(group))
    if key not in batch.cache:
        batch.cache[key] = absdiff(stacked(batch, a, group, uint8=True), stacked(batch, b, group, uint8=True))
    return batch.cache[key]


def cached_histogram(batch: MetricInput, group: list[int]) -> np.ndarray:
    key = ("histogram", tuple(group))
    if key not in batch.cache:
        batch.cache[key] = absdiff_histogram(cached_absdiff(batch, "predictions", "targets", group))
    return batch.cache[key]


class _HistogramMetric(PairedImageMetric):
    def from_histogram(self, hist: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        for group in shape_groups(batch, with_targets(batch)):
            out[group] = self.from_histogram(cached_histogram(batch, group))
        return out


class L1(_HistogramMetric):
    name = "l1"
    higher_is_better = False
    uint8_inputs = True
    description = "mean absolute pixel error to the target, pixels in [0, 1]"

    def compare(self, predictions, targets):
        return l1(predictions, targets)

    def from_histogram(self, hist):
        return l1_from_histogram(hist)


class PSNR(_HistogramMetric):
    name = "psnr"
    higher_is_better = True
    uint8_inputs = True
    description = f"peak signal-to-noise ratio to the target in dB (capped at {PSNR_MAX_DB:g})"

    def compare(self, predictions, targets):
        return psnr(predictions, targets)

    def from_histogram(self, hist):
        return psnr_from_histogram(hist)


class SSIM(PairedImageMetric):
    name = "ssim"
    higher_is_better = True
    uint8_inputs = True
    description = "structural similarity to the target (skimage, 7x7 window, channel mean)"

    def compare(self, predictions, targets):
        return ssim(predictions, targets)
