"""Anchor baselines: floors and ceilings every table shows next to real models."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..core.types import Batch
from .base import Model, TaskInfo


class CopyModel(Model):
    """FDP floor: the source frame, unchanged, is the prediction (the paper's `copy`)."""

    description = "FDP anchor: predicts the source frame unchanged"

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        return [[source.copy() for _ in range(n)] for source in batch.sources]


class BlurModel(Model):
    """FDP floor: a box-blurred source, i.e. a change everywhere that follows no action."""

    description = "FDP anchor: predicts a box-blurred source frame (changes everything, follows no action)"

    def __init__(self, radius: int = 4):
        super().__init__()
        self.radius = int(radius)

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        from PIL import Image, ImageFilter

        out = []
        for source in batch.sources:
            blurred = np.asarray(Image.fromarray(source).filter(ImageFilter.BoxBlur(self.radius)))
            out.append([blurred.copy() for _ in range(n)])
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {"radius": self.radius}


class OracleModel(Model):
    """Ceiling: returns the ground truth (the target frame for FDP, the action text for IDP)."""

    description = "anchor: returns the ground truth (FDP target frame, IDP reference action)"
    sees_reference = True

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        assert batch.targets is not None
        return [[target.copy() for _ in range(n)] for target in batch.targets]

    def infer_action(self, batch: Batch) -> list[str]:
        assert batch.actions is not None
        return list(batch.actions)


class MajorityModel(Model):
    """IDP floor: always answers the most common action text of the evaluated split."""

    description = "IDP anchor: answers the most common action text of the evaluated samples"
    sees_reference = True  # an anchor built from the answers of the evaluated split

    def __init__(self) -> None:
        super().__init__()
        self.reply = ""

    def prepare(self, task: TaskInfo) -> None:
        counts = Counter(task.actions or ())
        # ties broken alphabetically so the answer does not depend on sample order
        self.reply = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else ""

    def infer_action(self, batch: Batch) -> list[str]:
        return [self.reply] * len(batch)
