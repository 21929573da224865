"""The model adapter protocol.

An adapter is a class with a constructor taking keyword arguments (`--model-args k=v,...` or a
card's `args`) and any of three capabilities:

- `predict_next(batch, n=1) -> list[list[np.ndarray]]`: FDP. For each of the B samples, `n`
  predicted next frames, each (H, W, 3) uint8 RGB.
- `infer_action(batch) -> list[str]`: IDP. One action text per sample.
- `action_logprob(batch, actions) -> list[float]`: the log-likelihood of `actions[i]` given the
  image pair of sample i (verification and probes).
- `transition_logprob(batch, targets) -> list[float]`: log p(targets[i] | source i, action i), the
  log-probability of the target frame's image tokens (likelihood probes, FDP side).
- `answer(images, prompts) -> list[str]`: free-form answer to `prompts[i]` about the images
  `images[i]` (a list of (H, W, 3) uint8 arrays); what VLM judges call.
- `predict_candidates(batch) -> list[list[np.ndarray]]` with `verify(batch, candidates) ->
  list[list[float]]`: best-of-N, N candidate next frames per sample and a verifier score for each;
  the runner stores every candidate and score and keeps the best (FDP).

A subclass declares what it can do by overriding the methods; `capabilities()` reads that, and the
runner asks `capabilities()`, never `hasattr`.

A predicted frame may be a `Frame`: an ordinary (H, W, 3) uint8 array that also carries `details`,
a JSON-able dict of what the adapter wants recorded with the sample (e.g. `geometry`: how the
source was framed for the model and which fraction of the prediction was filled from the source).
`details_of(image)` reads it ({} for a plain array).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..core.types import Batch

CAPABILITIES = ("predict_next", "infer_action", "action_logprob", "transition_logprob", "answer",
                "predict_candidates")
TASK_CAPABILITY = {"fdp": "predict_next", "idp": "infer_action"}


class Frame(np.ndarray):
    """A predicted frame plus `details` (see the module docstring). Arithmetic on it gives plain
    arrays; views and copies (`astype`, slices) keep the details; pickling keeps them."""

    details: dict[str, Any]

    def __new__(cls, array: Any, details: dict[str, Any] | None = None) -> "Frame":
        obj = np.asarray(array).view(cls)
        obj.details = dict(details or {})
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.details = getattr(obj, "details", None) or {}

    def __array_wrap__(self, obj: Any, context: Any = None, return_scalar: bool = False) -> Any:
        out = obj.view(np.ndarray)
        return out[()] if return_scalar else out

    def __reduce__(self) -> Any:
        rebuild, args, state = super().__reduce__()
        return rebuild, args, (state, self.details)

    def __setstate__(self, state: Any) -> None:
        array_state, self.details = state
        super().__setstate__(array_state)


def details_of(image: Any) -> dict[str, Any]:
    """The details a prediction carries ({} for a plain array)."""
    return dict(getattr(image, "details", None) or {})


@dataclass(frozen=True)
class TaskInfo:
    """What a model learns about a task before its first batch (`Model.prepare`): never the
    answers. `actions` are the task's action texts where they are model inputs (FDP
    instructions); for IDP they are the answers, given only to models that declare
    `sees_reference` (anchors)."""

    name: str
    kind: str
    seed: int
    sample_ids: tuple[str, ...]
    actions: tuple[str, ...] | None = None


class Model:
    """Base class for adapters. Override the capability methods you support."""

    #: True only for anchors that are given the answer (see `Batch`).
    sees_reference: ClassVar[bool] = False
    #: One line for `wmbench list models`.
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        """No model args: an adapter that takes some declares them in its own constructor (the
        runner checks --model-args against that signature before anything is written)."""

    @classmethod
    def capabilities(cls) -> tuple[str, ...]:
        return tuple(c for c in CAPABILITIES if getattr(cls, c) is not getattr(Model, c))

    def prepare(self, task: TaskInfo) -> None:
        """Called once per task before any batch (see `TaskInfo`)."""

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        raise NotImplementedError

    def infer_action(self, batch: Batch) -> list[str]:
        raise NotImplementedError

    def action_logprob(self, batch: Batch, actions: list[str]) -> list[float]:
        raise NotImplementedError

    def transition_logprob(self, batch: Batch, targets: list[np.ndarray]) -> list[float]:
        raise NotImplementedError

    def answer(self, images: list[list[np.ndarray]], prompts: list[str]) -> list[str]:
        raise NotImplementedError

    def predict_candidates(self, batch: Batch) -> list[list[np.ndarray]]:
        raise NotImplementedError

    def verify(self, batch: Batch, candidates: list[list[np.ndarray]]) -> list[list[float]]:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this model's predictions beyond its card (e.g. weight hashes)."""
        return {}
