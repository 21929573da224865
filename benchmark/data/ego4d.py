"""Ego4D Forecasting + Hands & Objects (FHO) narrated actions, read from `fho_main.json` as published.

Schema (Ego4D v1/v2 `fho_main.json`): `{"videos": [{"video_uid", "video_metadata"?: {"fps", ...},
"annotated_intervals": [{"clip_uid", "start_sec", "end_sec", "narrated_actions": [{"uid",
"narration_text", "structured_verb", "freeform_verb", "is_valid_action", "is_rejected",
"is_partial", "start_sec", "end_sec", "critical_frames": {"pre_frame", "pnr_frame", "post_frame",
...} | null, "clip_critical_frames": {...} | null, ...}]}]}]}`. Critical frames are frame numbers of
the full video (`critical_frames`) or of the clip (`clip_critical_frames`).

Narrated actions the dataset itself marks rejected (`is_rejected`) or invalid (`is_valid_action`
false), or without the two critical frames of the pair, are not samples and are skipped.

Action text: `narration_text` without the camera-wearer tag ("#C C picks up the knife" ->
"picks up the knife"); other tags (#O, #unsure, #summary) are removed the same way; the raw
narration is kept in meta["narration_text"].

Options:
- `file` (default "fho_main.json", also looked up under `annotations/`, `v1/annotations/`,
  `v2/annotations/`);
- `pair`: "pre-post" (default), "pre-pnr" or "pnr-post": which critical frames form the transition;
- `media`: "video" (full-scale `<video_uid>.mp4`, critical_frames; default), "clip"
  (`<clip_uid>.mp4`, clip_critical_frames) or "frames" (extracted frames, see `frames_template`);
- `video_dir` / `clip_dir`: folders of the mp4s (default: the first of `v2/full_scale`,
  `v1/full_scale`, `full_scale`, `videos`, the root - resp. `v2/clips`, `v1/clips`, `clips`);
- `frames_template`: for media "frames", the path of one frame relative to the root (default
  "frames/{video_uid}/frame_{frame:010d}.jpg"; fields video_uid, clip_uid, frame).
The FrameSelection of the task does not apply (the annotation gives the frames); meta["frames"]
records the critical-frame pair. Videos are decoded once per set of samples drawn from them,
seeking over long gaps (`video.read_frames_seek`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from . import video
from .common import (IMAGE_OPTIONS, FormatError, check_options, decode_image, describe_folder, read_text,
                     relative_origin, safe_join)
from ..core.frames import FrameSelection

FORMAT = "ego4d"
DATASET = "ego4d-fho"
OPTIONS = {"file": "fho_main.json", "pair": "pre-post", "media": "video", "video_dir": None,
           "clip_dir": None, "frames_template": "frames/{video_uid}/frame_{frame:010d}.jpg", **IMAGE_OPTIONS}
PAIRS = {"pre-post": ("pre_frame", "post_frame"), "pre-pnr": ("pre_frame", "pnr_frame"),
         "pnr-post": ("pnr_frame", "post_frame")}
ANNOTATION_DIRS = (".", "annotations", "v2/annotations", "v1/annotations")
VIDEO_DIRS = ("v2/full_scale", "v1/full_scale", "full_scale", "videos", ".")
CLIP_DIRS = ("v2/clips", "v1/clips", "clips", ".")
TAG = re.compile(r"#\s*(?:c\s+c|c|o|unsure|summary)\b", re.IGNORECASE)


def clean_narration(text: str) -> str:
    """'#C C picks up the knife' -> 'picks up the knife'; other '#' tags dropped likewise."""
    cleaned = TAG.sub(" ", text).replace("#", " ")
    return re.sub(r"\s+", " ", cleaned).strip()


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    if options["pair"] not in PAIRS:
        raise BadInput(f"format '{FORMAT}': option 'pair' must be one of {list(PAIRS)}, got {options['pair']!r}")
    if options["media"] not in ("video", "clip", "frames"):
        raise BadInput(f"format '{FORMAT}': option 'media' must be video, clip or frames, got {options['media']!r}")
    data = _load(root, str(options["file"]))
    first, second = PAIRS[options["pair"]]
    media = options["media"]
    folder = _media_dir(root, media, options)
    cache = video.FrameCache()
    for v_index, entry in enumerate(data["videos"]):
        if not isinstance(entry, dict) or "video_uid" not in entry:
            raise FormatError(FORMAT, root, f"videos[{v_index}] to have a video_uid", repr(entry)[:200])
        video_uid = entry["video_uid"]
        groups: dict[str, video.FrameGroup] = {}  # one decoder pass per mp4
        for i_index, interval in enumerate(entry.get("annotated_intervals") or []):
            clip_uid = interval.get("clip_uid")
            for a_index, action in enumerate(interval.get("narrated_actions") or []):
                if action.get("is_rejected") or action.get("is_valid_action") is False:
                    continue
                crit = action.get("clip_critical_frames" if media == "clip" else "critical_frames") or {}
                src, tgt = _frame_number(crit.get(first)), _frame_number(crit.get(second))
                if src is None or tgt is None:
                    continue
                key = clip_uid if media == "clip" else video_uid
                uid = action.get("uid") or f"{video_uid}:{i_index}:{a_index}"
                where = f"narrated action {uid} of video {video_uid}"
                text = action.get("narration_text") or ""
                meta = {"video_uid": video_uid, "clip_uid": clip_uid, "narration_text": text,
                        "structured_verb": action.get("structured_verb"),
                        "freeform_verb": action.get("freeform_verb"),
                        "structured_noun": action.get("structured_noun"),
                        "critical_frames": {k: crit.get(k) for k in ("pre_frame", "pnr_frame", "post_frame")},
                        "frames": {"mode": "critical_frames", "pair": f"{first}->{second}", "media": media}}
                fps = _fps(entry)
                source, target = _images(root, folder, media, options, key, video_uid, clip_uid, src, tgt,
                                         where, groups, cache)
                yield Transition(
                    sample_id=f"{uid}:{options['pair']}", dataset=DATASET, split=spec.split,
                    episode_id=video_uid, source=source, target=target, action_text=clean_narration(text),
                    source_index=src, target_index=tgt,
                    source_time_s=src / fps if fps else None, target_time_s=tgt / fps if fps else None,
                    fps=fps, frame_gap=tgt - src, meta=meta)


def _images(root: Path, folder: Path | None, media: str, options: dict, key: str | None, video_uid: str,
            clip_uid: str | None, src: int, tgt: int, where: str, groups: dict, cache: video.FrameCache):
    if media == "frames":
        return (_frame_file(root, options["frames_template"], video_uid, clip_uid, src, where, options["max_pixels"]),
                _frame_file(root, options["frames_template"], video_uid, clip_uid, tgt, where, options["max_pixels"]))
    if key is None:
        failed = LazyImage(_raiser(SampleError(f"{where}: no clip_uid for media 'clip'")), f"{where}")
        return failed, failed
    path = folder / f"{key}.mp4"
    if key not in groups:
        decode = lambda keys, p=path, m=options["max_pixels"]: video.read_frames_seek(  # noqa: E731
            p, keys, partial=True, max_pixels=m)
        groups[key] = video.FrameGroup(decode, cache, name=str(path))
    group = groups[key]
    origin = relative_origin(path, root)  # sample logs are committed: no machine-specific paths
    return (LazyImage(group.handle(src, where), f"{origin}#frame={src}"),
            LazyImage(group.handle(tgt, where), f"{origin}#frame={tgt}"))


def _frame_file(root: Path, template: str, video_uid: str, clip_uid: str | None, frame: int, where: str,
                max_pixels: int | None) -> LazyImage:
    try:
        relative = template.format(video_uid=video_uid, clip_uid=clip_uid, frame=frame)
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(f"format '{FORMAT}': option 'frames_template' {template!r} is not a valid template "
                           f"(fields: video_uid, clip_uid, frame): {exc}") from None

    def load():
        path = safe_join(root, relative, what=f"frame of {where}")
        return decode_image(path, f"{path} ({where})", max_pixels)
    return LazyImage(load, relative)


def _media_dir(root: Path, media: str, options: dict) -> Path | None:
    if media == "frames":
        return None
    option = options["clip_dir" if media == "clip" else "video_dir"]
    if option is not None:
        try:
            folder = safe_join(root, str(option), what=f"option '{'clip_dir' if media == 'clip' else 'video_dir'}'")
        except SampleError as exc:
            raise BadInput(str(exc)) from None
        return folder
    for name in CLIP_DIRS if media == "clip" else VIDEO_DIRS:
        if (root / name).is_dir() and next((root / name).glob("*.mp4"), None) is not None:
            return root / name
    return root  # no mp4 anywhere: each sample fails naming the missing file


def _load(root: Path, name: str) -> dict:
    try:
        candidates = [safe_join(root, str(Path(d) / name), what="option 'file'") for d in ANNOTATION_DIRS]
    except SampleError as exc:
        raise BadInput(str(exc)) from None
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FormatError(FORMAT, root, f"{name} (in the root or annotations/)", describe_folder(root))
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise FormatError(FORMAT, root, f"{path.name} to be an object with a 'videos' list",
                          f"{type(data).__name__} with keys {sorted(data)[:8] if isinstance(data, dict) else '-'}")
    return data


def _frame_number(value: Any) -> int | None:
    """Critical frames are ints in fho_main.json; some releases nest them as {"frame": n}."""
    if isinstance(value, dict):
        value = value.get("frame", value.get("frame_number"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _fps(entry: dict) -> float | None:
    meta = entry.get("video_metadata") or {}
    fps = meta.get("fps") if isinstance(meta, dict) else None
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else None


def _raiser(exc: Exception):
    def fail():
        raise exc
    return fail
