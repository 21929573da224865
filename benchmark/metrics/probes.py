"""Likelihood-preference probe metrics (task kind `probe`, see run/probe.py): the prediction of a
sample is the model's log-likelihood of the real transition and of each negative; these compare
the real one with the negative named by the `negative` option."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core.tasks import PROBE_NEGATIVES
from .base import Metric, MetricInput


class _ProbeMetric(Metric):
    kind = "probe"
    version = "1"
    compare: ClassVar[Any]

    def __init__(self, negative: str = "random_action"):
        if negative not in PROBE_NEGATIVES:
            raise TypeError(f"{self.name}: negative must be one of {list(PROBE_NEGATIVES)}, got {negative!r}")
        self.negative = negative

    def options(self) -> dict[str, Any]:
        return {"negative": self.negative}

    def score(self, batch: MetricInput) -> np.ndarray:
        """NaN (not applicable) where the sample has no such negative (e.g. a single-action task)."""
        out = np.full(len(batch.predictions), np.nan)
        for i, logprobs in enumerate(batch.predictions):
            real, negative = logprobs.get("real"), logprobs.get(self.negative)
            if real is not None and negative is not None:
                out[i] = type(self).compare(float(real), float(negative))
        return out


class PreferenceAccuracy(_ProbeMetric):
    name = "preference_accuracy"
    higher_is_better = True
    description = ("1 when the model finds the real transition more likely than the negative, 0 when less, "
                   "0.5 on a tie; its mean is the preference accuracy (chance 0.5)")
    compare = staticmethod(lambda real, negative: 1.0 if real > negative else 0.5 if real == negative else 0.0)


class LogprobMargin(_ProbeMetric):
    name = "logprob_margin"
    higher_is_better = True
    description = "log-likelihood of the real transition minus that of the negative (nats; > 0 prefers the real one)"
    compare = staticmethod(lambda real, negative: real - negative)
