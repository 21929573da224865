"""Frame selection shared by every video-like source: which (source, target) frame pairs to take.

Modes:
- `first_last`: one pair per episode, its first and last frame.
- `gap`: pairs (t, t + gap) for t = 0, stride, 2*stride, ... (stride defaults to gap).
- `seconds`: like `gap`, with the gap given in seconds and turned into frames with the fps.
- `keyframes`: the `top_k` frames of largest motion magnitude, at least `min_interval` frames
  apart, sorted; consecutive keyframes form the pairs (the paper's choice for unlabelled video).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

Mode = Literal["first_last", "gap", "seconds", "keyframes"]


@dataclass(frozen=True)
class FrameSelection:
    mode: Mode = "gap"
    gap: int = 1
    seconds: float | None = None
    stride: int | None = None
    top_k: int = 4
    min_interval: int = 8

    def __post_init__(self) -> None:
        if self.gap < 1:
            raise ValueError("gap: must be >= 1")
        if self.stride is not None and self.stride < 1:
            raise ValueError("stride: must be >= 1")
        if self.mode == "seconds" and (self.seconds is None or self.seconds <= 0):
            raise ValueError("seconds: mode 'seconds' needs seconds > 0")
        if self.top_k < 2:
            raise ValueError("top_k: must be >= 2 (pairs are formed between keyframes)")
        if self.min_interval < 1:
            raise ValueError("min_interval: must be >= 1")

    def describe(self) -> dict:
        """What is recorded in each sample's meta, so a reader of the results knows the rule."""
        keys = {"first_last": (), "gap": ("gap", "stride"), "seconds": ("seconds", "stride"),
                "keyframes": ("top_k", "min_interval")}[self.mode]
        return {"mode": self.mode, **{k: getattr(self, k) for k in keys}}

    def pairs(self, n_frames: int, fps: float | None = None,
              motion: Callable[[], np.ndarray] | None = None) -> list[tuple[int, int]]:
        """Frame index pairs for an episode of `n_frames` frames.

        `motion` is called only in keyframes mode; it returns one motion magnitude per frame
        (length n_frames), e.g. the mean absolute difference to the previous frame.
        """
        if n_frames < 2:
            return []
        if self.mode == "first_last":
            return [(0, n_frames - 1)]
        if self.mode == "keyframes":
            if motion is None:
                raise ValueError("keyframes selection needs per-frame motion magnitudes")
            keys = select_keyframes(np.asarray(motion(), dtype=np.float64), self.top_k, self.min_interval)
            return list(zip(keys[:-1], keys[1:]))
        gap = self.gap
        if self.mode == "seconds":
            if not fps:
                raise ValueError("frame selection by seconds needs the source's fps")
            gap = max(1, int(round(self.seconds * fps)))
        stride = self.stride or gap
        return [(t, t + gap) for t in range(0, n_frames - gap, stride)]


def select_keyframes(motion: np.ndarray, top_k: int, min_interval: int) -> list[int]:
    """Greedy non-maximum suppression: largest motion first, none closer than `min_interval`."""
    chosen: list[int] = []
    for index in np.argsort(-motion, kind="stable"):
        if all(abs(int(index) - c) >= min_interval for c in chosen):
            chosen.append(int(index))
            if len(chosen) == top_k:
                break
    return sorted(chosen)
