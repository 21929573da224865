"""Something-Something v2 (20BN / Qualcomm), read as published.

Layout under the root:
- annotations in `labels/` (or the root): `labels.json` ({class name: "index"}) and `train.json`,
  `validation.json`, `test.json` - or the older names `something-something-v2-labels.json`,
  `something-something-v2-<split>.json`. Entries: `{id, label, template, placeholders}`; `template`
  has bracketed placeholders ("Putting [something] on [something]") and matches a labels.json key
  once the brackets are removed. `test.json` holds ids only: the test split needs the later released
  `test-answers.csv` (`id;template` per line) beside it.
- videos `<id>.webm` (VP9, 12 fps, no frame count in the header) in `20bn-something-something-v2/`,
  `videos/` or the root (option `videos` names another folder).

Options: `action_text` = "label" (default: the filled-in template, e.g. "putting a cup on a table")
or "template" (brackets removed, e.g. "Putting something on something": the class name);
`videos` (folder of the .webm files, relative to the root).
meta["class_id"] is the labels.json index of the template (for accuracy metrics).

Frames: the task's FrameSelection over each video (frame indices are 0-based decode order; the
number of frames comes from demuxing, as the header has none). `keyframes` decodes each video once
at listing time to measure motion. At load time, all frames a video's selected samples need are
decoded in one pass (`video.FrameGroup`). A video that cannot be read yields one sample
"<id>:unreadable" that fails with the reason, so it is counted, not dropped.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from . import video
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, describe_folder,
                     read_text, relative_origin, safe_join)
from ..core.frames import FrameSelection

FORMAT = "ssv2"
DATASET = "something-something-v2"
OPTIONS = {"action_text": "label", "videos": None, **IMAGE_OPTIONS}
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
VIDEO_DIRS = ("20bn-something-something-v2", "videos", ".")


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    if options["action_text"] not in ("label", "template"):
        raise BadInput(f"format '{FORMAT}': option 'action_text' must be 'label' or 'template', "
                           f"got {options['action_text']!r}")
    if spec.split not in SPLITS:
        raise BadInput(f"format '{FORMAT}': unknown split '{spec.split}'; known: train, validation, test")
    ann_dir, classes = load_labels(root)
    entries = load_split(root, ann_dir, SPLITS[spec.split])
    videos = video_dir(root, options["videos"])
    cache = video.FrameCache()
    for entry in entries:
        yield from _video_samples(root, entry, videos, classes, options["action_text"], spec.split, frames, cache,
                                  options["max_pixels"])


def _video_samples(root: Path, entry: dict, videos: Path, classes: dict[str, int], action_text: str, split: str,
                   frames: FrameSelection, cache: video.FrameCache,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[Transition]:
    vid = str(entry["id"])
    template = entry["template"]
    class_name = template.replace("[", "").replace("]", "")
    action = entry.get("label") if action_text == "label" else None
    meta = {"video_id": vid, "template": template, "class_name": class_name,
            "class_id": classes.get(class_name), "label": entry.get("label"),
            "placeholders": entry.get("placeholders"), "frames": frames.describe()}
    path = videos / f"{vid}.webm"
    origin = relative_origin(path, root)  # sample logs are committed: no machine-specific paths
    where = f"video {vid}"
    common = dict(dataset=DATASET, split=split, episode_id=vid, action_text=action or class_name)
    try:
        pairs, n_frames, fps = _pairs(path, frames, max_pixels)
    except SampleError as exc:
        failed = LazyImage(_raiser(SampleError(f"{exc} ({where})")), origin)
        yield Transition(sample_id=f"{vid}:unreadable", source=failed, target=failed, meta=meta, **common)
        return
    meta["n_frames"] = n_frames
    group = video.FrameGroup(lambda keys, p=path: video.read_frames(p, keys, max_pixels=max_pixels), cache,
                             name=str(path))
    for s, t in pairs:
        yield Transition(
            sample_id=f"{vid}:{s}-{t}",
            source=LazyImage(group.handle(s, where), f"{origin}#frame={s}"),
            target=LazyImage(group.handle(t, where), f"{origin}#frame={t}"),
            source_index=s, target_index=t,
            source_time_s=s / fps if fps else None, target_time_s=t / fps if fps else None,
            fps=fps, frame_gap=t - s, meta=dict(meta), **common)


def _pairs(path: Path, frames: FrameSelection,
           max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[list[tuple[int, int]], int, float | None]:
    if frames.mode == "keyframes":
        stack, fps = decode_all(path, max_pixels)
        motion = video.motion_magnitudes(stack)
        n_frames = len(stack)
        del stack
        return frames.pairs(n_frames, fps, motion=lambda: motion), n_frames, fps
    n_frames, fps = video.count_frames(path)
    try:
        return frames.pairs(n_frames, fps), n_frames, fps
    except ValueError as exc:  # e.g. mode seconds on a video without a frame rate
        raise SampleError(f"video {path}: {exc}") from exc


def decode_all(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Every frame of a (short) video as one (T, H, W, 3) array, and its fps."""
    import av
    import numpy as np

    try:
        with av.open(str(path)) as container:
            stream = video.video_stream(container, path, max_pixels)
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            stack = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    except SampleError:
        raise
    except FileNotFoundError as exc:
        raise SampleError(f"missing video {path}") from exc
    except Exception as exc:
        raise SampleError(f"cannot decode video {path}: {exc}") from exc
    return stack, fps


def load_labels(root: Path) -> tuple[Path, dict[str, int]]:
    """(annotation folder, {class name: index}) from labels.json."""
    for folder in (root / "labels", root):
        for name in ("labels.json", "something-something-v2-labels.json"):
            if (folder / name).is_file():
                data = _json(folder / name)
                if not isinstance(data, dict):
                    raise FormatError(FORMAT, root, f"{name} to map class names to indices", type(data).__name__)
                try:
                    return folder, {str(k): int(v) for k, v in data.items()}
                except (TypeError, ValueError):
                    raise FormatError(FORMAT, root, f"{name} values to be class indices",
                                      "non-numeric values") from None
    raise FormatError(FORMAT, root, "labels/labels.json (or something-something-v2-labels.json)", describe_folder(root))


def load_split(root: Path, ann_dir: Path, split: str) -> list[dict]:
    names = (f"{split}.json", f"something-something-v2-{split}.json")
    path = next((ann_dir / n for n in names if (ann_dir / n).is_file()), None)
    if path is None:
        raise FormatError(FORMAT, root, f"{' or '.join(names)} in {ann_dir}", describe_folder(ann_dir))
    entries = _json(path)
    if not isinstance(entries, list):
        raise FormatError(FORMAT, root, f"{path.name} to be a JSON list", type(entries).__name__)
    if split == "test":
        entries = _with_test_answers(root, ann_dir, path, entries)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("template"), str):
            raise FormatError(FORMAT, root, f"entry #{i} of {path.name} to have 'id' and 'template'",
                              repr(entry)[:200])
    return entries


def _with_test_answers(root: Path, ann_dir: Path, path: Path, entries: list) -> list[dict]:
    """The test split's templates come from test-answers.csv (`id;template`); without it there is
    nothing to evaluate against."""
    answers_path = next((p for p in (ann_dir / "test-answers.csv", root / "test-answers.csv") if p.is_file()), None)
    if answers_path is None:
        raise BadInput(f"{path} holds video ids only; the SSv2 test split needs test-answers.csv "
                           f"(id;template per line) in {ann_dir}, or use split validation")
    rows = csv.reader(io.StringIO(read_text(answers_path), newline=""), delimiter=";")
    answers = {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2}
    out = []
    for entry in entries:
        vid = str(entry.get("id")) if isinstance(entry, dict) else None
        if vid not in answers:
            raise BadInput(f"{answers_path}: no answer for test video id {vid!r}")
        # the answers file gives class names without brackets; keep them as the template
        out.append({**entry, "template": entry.get("template") or answers[vid]})
    return out


def video_dir(root: Path, option: str | None) -> Path:
    if option is not None:
        try:
            folder = safe_join(root, str(option), what="option 'videos'")
        except SampleError as exc:
            raise BadInput(str(exc)) from None
        if not folder.is_dir():
            raise BadInput(f"format '{FORMAT}': option 'videos': no folder {folder}")
        return folder
    for name in VIDEO_DIRS:
        folder = root / name
        if folder.is_dir() and next(folder.glob("*.webm"), None) is not None:
            return folder
    # no video found anywhere: every sample fails naming the missing file (the annotations are valid)
    return next((root / n for n in VIDEO_DIRS if (root / n).is_dir()), root)


def _json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _raiser(exc: Exception):
    def fail():
        raise exc
    return fail
