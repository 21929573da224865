"""Metrics (`METRICS` registry, entry-point group `wmbench.metrics`)."""

from __future__ import annotations

from ..registry import Registry
from .base import Metric, MetricInput

METRICS: Registry = Registry("metric", "wmbench.metrics")
for _name, _target in {
    "l1": "benchmark.metrics.pixel:L1",
    "psnr": "benchmark.metrics.pixel:PSNR",
    "ssim": "benchmark.metrics.pixel:SSIM",
    "change_iou": "benchmark.metrics.change:ChangeIoU",
    "exact_match": "benchmark.metrics.text:ExactMatch",
    "token_f1": "benchmark.metrics.text:TokenF1",
    "bleu": "benchmark.metrics.text:BLEU",
}.items():
    METRICS.register(_name, _target)

__all__ = ["METRICS", "Metric", "MetricInput"]
