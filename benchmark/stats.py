"""Summary statistics for per-sample scores."""

from __future__ import annotations

import math
from typing import Sequence


def summarize(values: Sequence[float]) -> dict:
    """Mean with a 95% confidence interval by the normal approximation (mean +/- 1.96 s/sqrt(n)).

    Values are the finite per-sample scores; samples where the metric did not apply are left
    out before this point and counted separately.
    """
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "stderr": None, "ci95": None, "n": 0, "ci_method": "normal"}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    stderr = std / math.sqrt(n)
    return {"mean": mean, "std": std, "stderr": stderr,
            "ci95": [mean - 1.96 * stderr, mean + 1.96 * stderr], "n": n, "ci_method": "normal"}
