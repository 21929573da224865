"""The metric protocol: every metric scores a batch into one number per sample.

Per-sample scores (not only a running mean, as in torchmetrics) are what the store keeps, what
confidence intervals and paired tests need, and what `--rescore` recomputes. A score of NaN
means "not applicable to this sample" (e.g. no target): it is counted, never averaged as zero.
Each metric class wraps a functional twin in the same module that works on plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

Need = Literal["source", "target", "action", "weights"]


@dataclass
class MetricInput:
    """One batch to score. FDP: `predictions` are (H, W, 3) uint8 images, resized to the source's
    size; IDP: `predictions` are texts and `references` the reference action texts."""

    kind: Literal["fdp", "idp"]
    predictions: list[Any]
    sources: list[np.ndarray] | None = None
    targets: list[np.ndarray | None] | None = None
    actions: list[str] | None = None
    references: list[str] | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)


class Metric:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    kind: ClassVar[Literal["fdp", "idp"]]
    higher_is_better: ClassVar[bool]
    needs: ClassVar[frozenset[str]] = frozenset()
    #: True when the metric ranks "copy the source" below the ground truth by design.
    edit_aware: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def available(self) -> tuple[bool, str]:
        """(False, reason) when the metric cannot run here (e.g. its weights are missing)."""
        return True, ""

    def score(self, batch: MetricInput) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def info(cls) -> dict[str, Any]:
        return {"name": cls.name, "version": cls.version, "kind": cls.kind,
                "higher_is_better": cls.higher_is_better, "needs": sorted(cls.needs),
                "edit_aware": cls.edit_aware, "description": cls.description}


def stack(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images).astype(np.float32) / 255.0


class PairedImageMetric(Metric):
    """Compares each prediction with its target; samples without a target score NaN."""

    kind = "fdp"
    needs = frozenset({"target"})

    def compare(self, predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float in [0, 1] twice -> (N,) scores."""
        raise NotImplementedError

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        targets = batch.targets or [None] * len(batch.predictions)
        have = [i for i, t in enumerate(targets) if t is not None]
        if have:
            out[have] = self.compare(stack([batch.predictions[i] for i in have]), stack([targets[i] for i in have]))
        return out
