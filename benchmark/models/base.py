"""The model adapter protocol.

An adapter is a class with a constructor taking keyword arguments (`--model-args k=v,...` or a
card's `args`) and any of three capabilities:

- `predict_next(batch, n=1) -> list[list[np.ndarray]]`: FDP. For each of the B samples, `n`
  predicted next frames, each (H, W, 3) uint8 RGB.
- `infer_action(batch) -> list[str]`: IDP. One action text per sample.
- `action_logprob(batch, actions) -> list[float]`: the log-likelihood of `actions[i]` given the
  image pair of sample i (verification and probes).
- `answer(images, prompts) -> list[str]`: free-form answer to `prompts[i]` about the images
  `images[i]` (a list of (H, W, 3) uint8 arrays); what VLM judges call.

A subclass declares what it can do simply by overriding the method; `capabilities()` reads that.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from ..core.types import Batch, Transition

CAPABILITIES = ("predict_next", "infer_action", "action_logprob", "answer")
TASK_CAPABILITY = {"fdp": "predict_next", "idp": "infer_action"}


class Model:
    """Base class for adapters. Override the capability methods you support."""

    #: True only for anchors that are given the answer (see `Batch`).
    sees_reference: ClassVar[bool] = False
    #: One line for `wmbench list models`.
    description: ClassVar[str] = ""

    def __init__(self, **kwargs: Any):
        if kwargs:
            raise TypeError(f"{type(self).__name__} takes no model args, got {sorted(kwargs)}")

    @classmethod
    def capabilities(cls) -> tuple[str, ...]:
        return tuple(c for c in CAPABILITIES if getattr(cls, c) is not getattr(Model, c))

    def prepare(self, kind: str, transitions: Sequence[Transition]) -> None:
        """Called once per task before any batch, with every selected sample (no pixels loaded)."""

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        raise NotImplementedError

    def infer_action(self, batch: Batch) -> list[str]:
        raise NotImplementedError

    def action_logprob(self, batch: Batch, actions: list[str]) -> list[float]:
        raise NotImplementedError

    def answer(self, images: list[list[np.ndarray]], prompts: list[str]) -> list[str]:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this model's predictions beyond its card (e.g. weight hashes)."""
        return {}
