"""Metrics (`METRICS` registry, entry-point group `wmbench.metrics`)."""

from __future__ import annotations

from ..core.registry import METRICS
from .base import Metric, MetricInput, Scores

__all__ = ["METRICS", "Metric", "MetricInput", "Scores"]
