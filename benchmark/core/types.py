"""The boundary types: one sample (`Transition`), lazily loaded images, and the batch models see.

Pixels at every boundary are uint8 arrays of shape (H, W, 3), RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import SampleError


def check_image(array: Any, what: str) -> np.ndarray:
    """Return `array` if it is an (H, W, 3) uint8 image, else raise SampleError naming `what`."""
    if not isinstance(array, np.ndarray):
        raise SampleError(f"{what}: expected a numpy uint8 array (H, W, 3), got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise SampleError(f"{what}: expected dtype uint8, got {array.dtype}")
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise SampleError(f"{what}: expected shape (H, W, 3), got {tuple(array.shape)}")
    return array


class LazyImage:
    """An image that is decoded only when `load()` is called.

    `origin` names where the pixels come from (a path, a video and frame index) so that a failure
    to load names it.
    """

    __slots__ = ("_loader", "origin")

    def __init__(self, loader: Callable[[], np.ndarray], origin: str):
        self._loader = loader
        self.origin = origin

    @classmethod
    def from_array(cls, array: np.ndarray, origin: str = "<array>") -> "LazyImage":
        return cls(lambda: array, origin)

    def load(self) -> np.ndarray:
        try:
            array = self._loader()
        except SampleError:
            raise
        except Exception as exc:  # any decoder error becomes a per-sample failure naming the source
            raise SampleError(f"cannot load image {self.origin}: {type(exc).__name__}: {exc}") from exc
        return check_image(array, f"image {self.origin}")

    def __repr__(self) -> str:
        return f"LazyImage({self.origin!r})"


@dataclass
class Transition:
    """One sample: an observation, the action taken, and (when known) the next observation."""

    sample_id: str
    dataset: str
    split: str
    episode_id: str
    source: LazyImage
    target: LazyImage | None
    action_text: str
    action_vector: np.ndarray | None = None
    source_index: int | None = None
    target_index: int | None = None
    source_time_s: float | None = None
    target_time_s: float | None = None
    fps: float | None = None
    frame_gap: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Extra per-sample images that are not model inputs (e.g. simulator segmentation masks).
    aux: dict[str, LazyImage] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (no pixels) for sample logs and `wmbench data inspect`."""
        return {
            "sample_id": self.sample_id,
            "dataset": self.dataset,
            "split": self.split,
            "episode_id": self.episode_id,
            "source": self.source.origin,
            "target": None if self.target is None else self.target.origin,
            "action_text": self.action_text,
            "action_vector": None if self.action_vector is None else np.asarray(self.action_vector).round(6).tolist(),
            "source_index": self.source_index,
            "target_index": self.target_index,
            "source_time_s": self.source_time_s,
            "target_time_s": self.target_time_s,
            "fps": self.fps,
            "frame_gap": self.frame_gap,
            "meta": self.meta,
        }


@dataclass
class Batch:
    """What a model adapter receives: B samples with their pixels loaded.

    Inputs follow the task: FDP gives `sources` and `actions` (the instruction), IDP gives
    `sources` and `targets` (the observed next frame). The answer of the task (FDP `targets`,
    IDP `actions`) is filled in only for models that declare `sees_reference = True` (the
    `oracle` anchor); it is None for every other model, so a model under test can never peek. For
    the same reason an IDP batch's `meta` is empty for them (a reader's meta can hold the label).
    `prompts` is the task's prompt template rendered for each sample; `task` names the task and
    `seed` is its seed.
    """

    sample_ids: list[str]
    sources: list[np.ndarray]
    prompts: list[str]
    targets: list[np.ndarray] | None = None
    actions: list[str] | None = None
    action_vectors: list[np.ndarray | None] | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)
    task: str = ""
    #: The task's seed (`--seed`): adapters that sample mix it into their generators.
    seed: int = 0

    def __len__(self) -> int:
        return len(self.sample_ids)
