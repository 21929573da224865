"""EPIC-KITCHENS-100 action segments, read as published (RGB frames, as folders or as tar files).

Layout under the root:
- `EPIC_100_train.csv` / `EPIC_100_validation.csv` (in the root, `epic-kitchens-100-annotations/`
  or `annotations/`): narration_id, participant_id, video_id, narration_timestamp, start_timestamp,
  stop_timestamp, start_frame, stop_frame, narration, verb, verb_class, noun, noun_class, all_nouns,
  all_noun_classes. Optional `EPIC_100_video_info.csv` (video_id, duration, fps, resolution).
- RGB frames `frame_%010d.jpg`, numbered from 1 as in the CSV, for each video either in a folder or
  in the per-video tar the download scripts fetch (members `./frame_%010d.jpg`, read in place with
  `tarfile`, never unpacked). Looked up, first match wins: `<P>/rgb_frames/<video_id>[.tar]` (the
  download scripts' `EPIC-KITCHENS/` layout), `rgb_frames/<P>/<video_id>[.tar]`,
  `rgb_frames/<video_id>[.tar]`, `<P>/<video_id>[.tar]`; option `frames_layout` gives another
  template, e.g. "frames/{participant_id}/{video_id}".

Action text = `narration`; meta carries verb / noun, their classes, all_nouns and the timestamps.
Frames: the task's FrameSelection inside [start_frame, stop_frame] of each segment; indices are the
CSV's 1-based frame numbers. fps (for mode `seconds`) comes from EPIC_100_video_info.csv, else it is
estimated from the annotations' frame numbers and timestamps (meta["fps_source"] says which).
The test split (EPIC_100_test_timestamps.csv) has no narrations and is refused.
"""

from __future__ import annotations

import ast
import csv
import io
import posixpath
import statistics
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from . import video
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, decode_image, describe_folder,
                     read_text, relative_origin)
from ..core.frames import FrameSelection

FORMAT = "epic"
DATASET = "epic-kitchens-100"
OPTIONS = {"frames_layout": "auto", **IMAGE_OPTIONS}
SPLITS = {"train": "train", "validation": "validation", "val": "validation"}
ANNOTATION_DIRS = (".", "epic-kitchens-100-annotations", "annotations")
LAYOUTS = ("{participant_id}/rgb_frames/{video_id}", "rgb_frames/{participant_id}/{video_id}",
           "rgb_frames/{video_id}", "{participant_id}/{video_id}")
REQUIRED = ("narration_id", "participant_id", "video_id", "narration", "start_frame", "stop_frame")
FRAME_NAME = "frame_{:010d}.jpg"


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    if spec.split not in SPLITS:
        hint = " (EPIC_100_test_timestamps.csv has no narrations to evaluate against)" if spec.split == "test" else ""
        raise BadInput(f"format '{FORMAT}': unknown split '{spec.split}'; known: train, validation{hint}")
    csv_path = _annotation_file(root, f"EPIC_100_{SPLITS[spec.split]}.csv")
    rows = load_rows(root, csv_path)
    fps_table, fps_source = _fps_table(csv_path.parent, rows)
    layouts = LAYOUTS if options["frames_layout"] == "auto" else (str(options["frames_layout"]),)
    cache = video.FrameCache()
    by_video: dict[str, list[dict]] = {}
    for row in rows:  # keep one video's segments together: one tar is opened once for all of them
        by_video.setdefault(row["video_id"], []).append(row)
    for video_id, segments in by_video.items():
        source = frame_source(root, segments[0]["participant_id"], video_id, layouts, options["max_pixels"])
        fps = fps_table.get(video_id)
        group = video.FrameGroup(source.decode, cache, name=source.name) if source.is_tar else None
        for row in segments:
            yield from _segment_samples(row, source, group, fps, fps_source, spec.split, frames)


class FrameSource:
    """Where one video's frames live: a folder, a tar file, or nowhere (every load fails)."""

    def __init__(self, root: Path, video_id: str, path: Path | None, is_tar: bool, tried: list[str],
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.path, self.is_tar, self.tried, self.max_pixels = path, is_tar, tried, max_pixels
        # origins are relative to the root: sample logs are committed, machine paths are not
        self.name = relative_origin(path, root) if path else f"{video_id} (no frames found)"

    def origin(self, frame: int) -> str:
        name = FRAME_NAME.format(frame)
        return f"{self.name}:{name}" if self.is_tar else f"{self.name}/{name}"

    def missing(self) -> SampleError:
        return SampleError(f"no RGB frames for this video: tried {', '.join(self.tried)}")

    def load_one(self, frame: int) -> np.ndarray:
        if self.path is None:
            raise self.missing()
        path = self.path / FRAME_NAME.format(frame)
        return decode_image(path, str(path), self.max_pixels)

    def decode(self, frames: list[int]) -> dict[int, Any]:
        """{frame: image or SampleError}; a tar is scanned once, stopping when all are found."""
        if self.path is None:
            raise self.missing()
        if not self.is_tar:
            return {f: _try(lambda f=f: self.load_one(f)) for f in frames}
        return read_tar_frames(self.path, frames, self.max_pixels)


def read_tar_frames(path: Path, frames: list[int], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[int, Any]:
    import tarfile

    wanted = {FRAME_NAME.format(f): f for f in frames}
    out: dict[int, Any] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                frame = wanted.get(posixpath.basename(member.name))
                if frame is None or not member.isfile():
                    continue
                data = archive.extractfile(member).read()
                out[frame] = _try(lambda: decode_image(data, f"{path}:{member.name}", max_pixels))
                if len(out) == len(wanted):
                    break
    except FileNotFoundError as exc:
        raise SampleError(f"missing frames tar {path}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SampleError(f"corrupt or unreadable frames tar {path}: {exc}") from exc
    for name, frame in wanted.items():
        out.setdefault(frame, SampleError(f"frame {name} is not in {path}"))
    return out


def frame_source(root: Path, participant: str, video_id: str, layouts: tuple[str, ...],
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FrameSource:
    tried = []
    for layout in layouts:
        try:
            relative = layout.format(participant_id=participant, video_id=video_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise BadInput(f"format '{FORMAT}': option 'frames_layout' {layout!r} is not a valid template "
                               f"(fields: participant_id, video_id): {exc}") from None
        folder = root / relative
        if not folder.resolve().is_relative_to(root.resolve()):
            raise BadInput(f"format '{FORMAT}': frames layout {layout!r} leaves the dataset root {root}")
        if folder.is_dir():
            return FrameSource(root, video_id, folder, False, tried, max_pixels)
        tar = folder.with_name(folder.name + ".tar")
        if tar.is_file():
            return FrameSource(root, video_id, tar, True, tried, max_pixels)
        tried += [f"{relative}/", f"{relative}.tar"]
    return FrameSource(root, video_id, None, False, tried, max_pixels)


def _segment_samples(row: dict, source: FrameSource, group: video.FrameGroup | None, fps: float | None,
                     fps_source: str, split: str, frames: FrameSelection) -> Iterator[Transition]:
    start, stop = row["start_frame"], row["stop_frame"]
    where = f"narration {row['narration_id']}"
    meta = {k: row[k] for k in ("narration_id", "participant_id", "video_id", "verb", "verb_class", "noun",
                                "noun_class", "all_nouns", "all_noun_classes", "start_timestamp",
                                "stop_timestamp", "start_frame", "stop_frame") if k in row}
    meta.update({"frames": frames.describe(), "fps_source": fps_source if fps else None})
    # episode = the recording: segments of one video share a kitchen and a person, so confidence
    # intervals resample whole videos
    common = dict(dataset=DATASET, split=split, episode_id=row["video_id"], action_text=row["narration"],
                  fps=fps)
    try:
        pairs = _pairs(source, start, stop, fps, frames)
    except SampleError as exc:
        failed = LazyImage(_raiser(SampleError(f"{exc} ({where})")), f"{source.name} frames {start}-{stop}")
        yield Transition(sample_id=f"{row['narration_id']}:unreadable", source=failed, target=failed,
                         meta=meta, **common)
        return
    for s, t in pairs:
        yield Transition(
            sample_id=f"{row['narration_id']}:{s}-{t}",
            source=_image(source, group, s, where), target=_image(source, group, t, where),
            source_index=s, target_index=t,
            source_time_s=(s - 1) / fps if fps else None, target_time_s=(t - 1) / fps if fps else None,
            frame_gap=t - s, meta=dict(meta), **common)


def _image(source: FrameSource, group: video.FrameGroup | None, frame: int, where: str) -> LazyImage:
    if group is not None:
        return LazyImage(group.handle(frame, where), source.origin(frame))

    def load():
        try:
            return source.load_one(frame)
        except SampleError as exc:
            raise SampleError(f"{exc} ({where})") from exc
    return LazyImage(load, source.origin(frame))


def _pairs(source: FrameSource, start: int, stop: int, fps: float | None,
           frames: FrameSelection) -> list[tuple[int, int]]:
    n = stop - start + 1
    motion: Callable[[], np.ndarray] | None = None
    if frames.mode == "keyframes":
        decoded = source.decode(list(range(start, stop + 1)))
        errors = [v for v in decoded.values() if isinstance(v, Exception)]
        if errors:
            raise errors[0]
        values = video.motion_magnitudes(np.stack([decoded[f] for f in range(start, stop + 1)]))
        motion = lambda: values  # noqa: E731
    try:
        return [(start + s, start + t) for s, t in frames.pairs(n, fps, motion=motion)]
    except ValueError as exc:
        raise SampleError(f"segment {start}-{stop}: {exc}") from exc


def _annotation_file(root: Path, name: str) -> Path:
    for folder in ANNOTATION_DIRS:
        if (root / folder / name).is_file():
            return root / folder / name
    raise FormatError(FORMAT, root, f"{name} in the root, epic-kitchens-100-annotations/ or annotations/",
                      describe_folder(root))


def load_rows(root: Path, path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise FormatError(FORMAT, root, f"{path.name} with columns {', '.join(REQUIRED)}",
                          f"columns {reader.fieldnames} (missing {missing})")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        try:
            row["start_frame"], row["stop_frame"] = int(row["start_frame"]), int(row["stop_frame"])
            for key in ("verb_class", "noun_class"):
                if row.get(key) not in (None, ""):
                    row[key] = int(row[key])
        except ValueError as exc:
            raise BadInput(f"{path}: line {lineno}: {exc}") from None
        for key in ("all_nouns", "all_noun_classes"):
            row[key] = _literal(row.get(key))
        rows.append(row)
    return rows


def _fps_table(folder: Path, rows: list[dict]) -> tuple[dict[str, float], str]:
    info = folder / "EPIC_100_video_info.csv"
    if info.is_file():
        table = {r["video_id"]: float(r["fps"]) for r in csv.DictReader(io.StringIO(read_text(info), newline=""))
                 if r.get("fps")}
        return table, "EPIC_100_video_info.csv"
    # frame = round(seconds * fps) + 1 in the annotations: the median ratio recovers the rate
    ratios: dict[str, list[float]] = {}
    for row in rows:
        seconds = _seconds(row.get("start_timestamp"))
        if seconds and seconds > 1.0:
            ratios.setdefault(row["video_id"], []).append((row["start_frame"] - 1) / seconds)
    return {v: round(statistics.median(r), 2) for v, r in ratios.items()}, "estimated from the annotations"


def _seconds(stamp: str | None) -> float | None:
    try:
        h, m, s = (stamp or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def _literal(text: str | None) -> Any:
    if text in (None, ""):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except SampleError as exc:
        return exc


def _raiser(exc: Exception):
    def fail():
        raise exc
    return fail
