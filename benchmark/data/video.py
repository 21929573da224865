"""Video decoding with PyAV: every requested frame of a file in one sequential pass.

Readers collect all frames their samples need from one video and call `read_frames` once,
so a video is decoded once per set of samples drawn from it, not once per sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import SampleError


def read_frames(path: Path, indices: Iterable[int] | None = None,
                timestamps: Iterable[float] | None = None,
                tolerance_s: float | None = None) -> dict:
    """Decode the frames at the given 0-based `indices` (decode order) or presentation
    `timestamps` (seconds; the first frame whose time is >= ts - tolerance) of `path`.

    Returns {index or timestamp: (H, W, 3) uint8}. Stops decoding after the last one needed.
    A request past the end raises SampleError naming the file and how many frames it has.
    """
    import av

    want_idx = sorted(set(indices or []))
    want_ts = sorted(set(timestamps or []))
    out: dict = {}
    try:
        container = av.open(str(path))
    except FileNotFoundError as exc:
        raise SampleError(f"missing video {path}") from exc
    except Exception as exc:  # PyAV raises its own error classes per ffmpeg error code
        raise SampleError(f"cannot open video {path}: {exc}") from exc
    count = 0
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        tol = tolerance_s if tolerance_s is not None else (0.5 / fps if fps else 1e-3)
        ti = 0
        next_idx = set(want_idx)
        try:
            for frame in container.decode(stream):
                t = float(frame.pts * frame.time_base) if frame.pts is not None else count / (fps or 1)
                rgb = None
                if count in next_idx:
                    rgb = frame.to_ndarray(format="rgb24")
                    out[count] = rgb
                    next_idx.discard(count)
                while ti < len(want_ts) and t >= want_ts[ti] - tol:
                    rgb = rgb if rgb is not None else frame.to_ndarray(format="rgb24")
                    out[want_ts[ti]] = rgb
                    ti += 1
                count += 1
                if not next_idx and ti == len(want_ts):
                    break
        except Exception as exc:
            raise SampleError(f"corrupt video {path} at frame {count}: {exc}") from exc
    missing = sorted(next_idx) + want_ts[ti:]
    if missing:
        raise SampleError(f"video {path} has {count} decodable frames; cannot get frame(s)/time(s) {missing[:5]}")
    return out


def count_frames(path: Path) -> tuple[int, float | None]:
    """(number of frames, fps). Uses the header when it has a count; WebM often does not, then
    the packets are demuxed (no decoding) and counted."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            if stream.frames:
                return int(stream.frames), fps
            n = sum(1 for packet in container.demux(stream) if packet.size > 0)
            return n, fps
    except FileNotFoundError as exc:
        raise SampleError(f"missing video {path}") from exc
    except Exception as exc:
        raise SampleError(f"cannot read video {path}: {exc}") from exc


def motion_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Per-frame motion: mean absolute difference to the previous frame (0 for the first)."""
    diffs = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return np.concatenate([[0.0], diffs])
