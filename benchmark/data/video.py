"""Video decoding with PyAV: every requested frame of a file in one sequential pass.

Readers collect all frames their samples need from one video and call `read_frames` once,
so a video is decoded once per set of samples drawn from it, not once per sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.errors import SampleError
from .common import DEFAULT_MAX_PIXELS, check_pixels


def read_frames(path: Path, indices: Iterable[int] | None = None,
                timestamps: Iterable[float] | None = None,
                tolerance_s: float | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict:
    """Decode the frames at the given 0-based `indices` (decode order) or presentation
    `timestamps` (seconds; the first frame whose time is >= ts - tolerance) of `path`.

    Returns {index or timestamp: (H, W, 3) uint8}. Stops decoding after the last one needed.
    A request past the end raises SampleError naming the file and how many frames it has; a frame
    size over `max_pixels` (from the stream header, before decoding) raises one naming the limit.
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
        stream = video_stream(container, path, max_pixels)
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


def video_stream(container, path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """The first video stream of an open container, its frame size checked against `max_pixels`
    from the stream header (width and height of the codec parameters) before any frame is decoded."""
    if not container.streams.video:
        raise SampleError(f"video {path} has no video stream")
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    check_pixels(width, height, f"{path} (video frames)", max_pixels)
    return stream


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


def read_frames_seek(path: Path, indices: Iterable[int], seek_gap: int = 150,
                     partial: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[int, np.ndarray]:
    """Frames at 0-based `indices` of a constant-frame-rate video, seeking over long gaps.

    `read_frames` decodes from the start; for long videos with a few wanted frames (Ego4D full-scale
    videos are minutes long) this seeks to the keyframe before a wanted frame whenever it lies more
    than `seek_gap` frames past the decoder's position. A frame's index is its presentation time
    (relative to the stream start) times the stream's frame rate, rounded. With `partial`, frames
    past the end map to a SampleError instead of failing the whole call (one bad annotation then
    fails only its own samples). Frames over `max_pixels` fail as in `read_frames`.
    """
    import av

    want = sorted(set(int(i) for i in indices))
    out: dict[int, np.ndarray] = {}
    if not want:
        return out
    try:
        container = av.open(str(path))
    except FileNotFoundError as exc:
        raise SampleError(f"missing video {path}") from exc
    except Exception as exc:
        raise SampleError(f"cannot open video {path}: {exc}") from exc
    with container:
        stream = video_stream(container, path, max_pixels)
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if not fps or stream.time_base is None:
            raise SampleError(f"video {path} declares no frame rate; cannot locate frames by index")
        tb = float(stream.time_base)
        start = stream.start_time or 0
        pos, i, restarted = -1, 0, False
        try:
            while i < len(want):
                if pos < 0 or want[i] - pos > seek_gap:
                    target_pts = start if restarted else start + int(want[i] / fps / tb)
                    container.seek(target_pts, stream=stream, backward=True)
                first = True
                for frame in container.decode(stream):
                    if frame.pts is None:
                        raise SampleError(f"video {path}: a frame without a timestamp; cannot seek by index")
                    pos = int(round((frame.pts - start) * tb * fps))
                    if first and pos > want[i] and not restarted:
                        break  # the seek landed past the wanted frame: decode from the start instead
                    first = False
                    if pos < want[i]:
                        continue
                    rgb = frame.to_ndarray(format="rgb24")
                    while i < len(want) and want[i] <= pos:
                        if pos - want[i] > 1:
                            raise SampleError(f"video {path}: no frame at index {want[i]} (next frame is {pos})")
                        out[want[i]] = rgb
                        i += 1
                    if i >= len(want) or want[i] - pos > seek_gap:
                        break
                else:
                    break  # end of stream
                if first and not restarted and i < len(want):
                    restarted, pos, seek_gap = True, -1, 1 << 62  # from now on: one sequential pass
        except SampleError:
            raise
        except Exception as exc:
            raise SampleError(f"corrupt video {path} near frame {pos}: {exc}") from exc
    missing = want[i:]
    if missing and partial:
        out.update({k: SampleError(f"video {path} ends at frame {pos}; no frame {k}") for k in missing})
    elif missing:
        raise SampleError(f"video {path} ends at frame {pos}; cannot get frame(s) {missing[:5]}")
    return out


class FrameCache:
    """A byte-bounded LRU of decoded `FrameGroup`s, one per reader call (no global state).

    Keeps memory bounded when the runner loads only some images of a group (a failed source
    leaves its target unloaded): the least recently decoded groups drop their frames first.
    """

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._groups: list["FrameGroup"] = []

    def admit(self, group: "FrameGroup") -> None:
        if group in self._groups:
            self._groups.remove(group)
        self._groups.append(group)
        while len(self._groups) > 1 and sum(g.nbytes for g in self._groups) > self.max_bytes:
            self._groups.pop(0).release()

    def forget(self, group: "FrameGroup") -> None:
        if group in self._groups:
            self._groups.remove(group)


class FrameHandle:
    """The loader of one LazyImage in a `FrameGroup` (weakly tracked by the group)."""

    __slots__ = ("group", "key", "where", "done", "__weakref__")

    def __init__(self, group: "FrameGroup", key, where: str = ""):
        self.group, self.key, self.where, self.done = group, key, where, False

    def __call__(self) -> np.ndarray:
        try:
            return self.group.get(self)
        except SampleError as exc:
            if self.where and self.where not in str(exc):
                raise SampleError(f"{exc} ({self.where})") from exc
            raise


class FrameGroup:
    """Frames of one source (a video, a tar of frames) shared by the LazyImages of its samples.

    On the first load, `decode(keys) -> {key: frame or SampleError}` is called ONCE with the keys of
    every image still alive, so images of samples the runner did not select (dropped, hence
    garbage-collected) cost nothing. Frames are released when every live image has been loaded, or
    evicted by the `FrameCache`; a decoding error is kept and re-raised for every image of the group.
    """

    def __init__(self, decode, cache: FrameCache, name: str = ""):
        import weakref

        self._decode = decode
        self._cache = cache
        self._handles: "weakref.WeakSet[FrameHandle]" = weakref.WeakSet()
        self._frames: dict | None = None
        self._error: SampleError | None = None
        self.name = name
        self.decodes = 0  # how many times this group decoded its source (for tests and benchmarks)

    def handle(self, key, where: str = "") -> FrameHandle:
        """The loader of one image; `where` (the dataset entry) is added to its error messages."""
        h = FrameHandle(self, key, where)
        self._handles.add(h)
        return h

    @property
    def nbytes(self) -> int:
        return sum(getattr(a, "nbytes", 0) for a in (self._frames or {}).values())

    def get(self, handle: FrameHandle) -> np.ndarray:
        if self._error is not None:
            raise SampleError(str(self._error))
        if self._frames is None or handle.key not in self._frames:
            keys = sorted({h.key for h in list(self._handles) if not h.done} | {handle.key})
            self.decodes += 1
            try:
                self._frames = self._decode(keys)
            except SampleError as exc:
                self._error = exc
                raise
            self._cache.admit(self)
        frame = self._frames[handle.key]
        handle.done = True
        if all(h.done for h in list(self._handles)):
            self.release()
        if isinstance(frame, Exception):  # `decode` may fail single keys (a frame missing from a tar)
            raise frame
        return frame

    def release(self) -> None:
        self._frames = None
        self._cache.forget(self)
