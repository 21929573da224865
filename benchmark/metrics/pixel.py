"""Pixel-space fidelity to the target: L1, PSNR, SSIM. None of them is edit-aware: `copy`
scores well whenever little of the frame changes."""

from __future__ import annotations

import numpy as np

from .base import PairedImageMetric

PSNR_MAX_DB = 100.0  # identical images have infinite PSNR; capped so means stay finite


def l1(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean absolute error per sample; images (N, H, W, C) in [0, 1]."""
    return np.abs(predictions - targets).reshape(len(predictions), -1).mean(axis=1)


def psnr(predictions: np.ndarray, targets: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB per sample (as skimage.metrics.peak_signal_noise_ratio), capped at 100 dB."""
    diff = predictions.astype(np.float64) - targets.astype(np.float64)
    mse = (diff**2).reshape(len(predictions), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(data_range**2 / mse)
    return np.minimum(value, PSNR_MAX_DB)


def ssim(predictions: np.ndarray, targets: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Mean SSIM per sample with skimage's defaults (7x7 uniform window, RGB channels averaged)."""
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(p, t, channel_axis=-1, data_range=data_range)
                     for p, t in zip(predictions, targets)])


class L1(PairedImageMetric):
    name = "l1"
    higher_is_better = False
    description = "mean absolute pixel error to the target, pixels in [0, 1]"

    def compare(self, predictions, targets):
        return l1(predictions, targets)


class PSNR(PairedImageMetric):
    name = "psnr"
    higher_is_better = True
    description = f"peak signal-to-noise ratio to the target in dB (capped at {PSNR_MAX_DB:g})"

    def compare(self, predictions, targets):
        return psnr(predictions, targets)


class SSIM(PairedImageMetric):
    name = "ssim"
    higher_is_better = True
    description = "structural similarity to the target (skimage, 7x7 window, channel mean)"

    def compare(self, predictions, targets):
        return ssim(predictions, targets)
