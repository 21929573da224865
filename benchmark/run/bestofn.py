"""Best-of-N predictions through the runner: every candidate and its verifier score is stored, so a
finished run can be re-verified with another verifier or a smaller N without generating again
(the `verified` adapter's `candidates_from`). A model opts in by declaring the capability
`predict_candidates` (with `verify`); see `wmbench.models.base`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import SampleError
from ..core.types import Batch, check_image
from ..log.store import RunStore
from ..models.base import Model


@dataclass
class Candidates:
    """A best-of-N prediction: every candidate frame and its verifier score."""

    images: list[np.ndarray]
    scores: list[float]

    def best(self) -> int:
        """Highest score; ties keep the earlier candidate (as VerifiedModel.select)."""
        return min(range(len(self.scores)), key=lambda j: (-self.scores[j], j))


def predict(model: Model, batch: Batch) -> list[Candidates]:
    """N candidates per sample (one sampler call) and their verifier scores (one verifier call)."""
    candidates = model.predict_candidates(batch)
    scores = model.verify(batch, candidates)
    return [Candidates(list(c), [float(x) for x in s]) for c, s in zip(candidates, scores)]


def check(value: Candidates) -> Candidates:
    if not value.images or len(value.images) != len(value.scores):
        raise SampleError(f"best-of-N: {len(value.images)} candidates but {len(value.scores)} verifier scores")
    if not all(math.isfinite(x) for x in value.scores):
        raise SampleError(f"best-of-N: verifier returned a non-finite score {value.scores}")
    for j, image in enumerate(value.images):
        check_image(image, f"candidate {j}")
    return value


def store(store: RunStore, images: list[np.ndarray], value: Candidates) -> tuple[dict[str, Any], np.ndarray]:
    """Store every candidate (`images`: the candidates fitted to the source size) -> (the
    `Prediction` fields, the selected image)."""
    best = value.best()
    fields = {"candidates": tuple(store.put_image(c) for c in images),
              "verifier_scores": tuple(value.scores), "selected": best}
    return fields, images[best]
