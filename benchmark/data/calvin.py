"""CALVIN (format `calvin`): one .npz per time step plus pickled language annotations.

Layout of a split folder (`<root>/training/`, `<root>/validation/`; the task's dataset.split
names it): `episode_0000000.npz` ... (keys rgb_static (200,200,3), rgb_gripper (84,84,3),
actions, rel_actions (7,), robot_obs, scene_obs, depth_*), `ep_start_end_ids.npy`, and
`lang_annotations/auto_lang_ann.npy`, a pickled dict: language.ann (instructions), language.task
(task ids), language.emb, info.indx ((start, end) frame ids, end inclusive, as calvin_agent's
disk_dataset reads them). Each annotated window is one episode: frames.pairs runs over its
end - start + 1 frames, the action text is its instruction.

auto_lang_ann.npy is a pickle, and `np.load(..., allow_pickle=True)` runs whatever code a
pickle carries. It is loaded only when the task or the user sets option `trust_pickle: true`;
otherwise the reader stops (exit 2) and says so. The .npz frames hold plain arrays and are read
with allow_pickle=False.

Options: trust_pickle (default false), camera (rgb_static | rgb_gripper), action_key
(rel_actions (default) | actions | null: no action vectors; the vectors are read from the .npz
files of the sampled steps while enumerating, ~0.1 ms a file). fps: env.control_freq from the
split's .hydra/merged_config.yaml, else 30 (CALVIN's control rate).
sample_id "<split>/ann<i>:<src>-<tgt>" (window-relative indices; meta["frame_ids"] has the file numbers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from .common import FormatError, check_options, describe_folder, relative_origin
from ..core.frames import FrameSelection

FORMAT = "calvin"
OPTIONS = {"trust_pickle": False, "camera": "rgb_static", "action_key": "rel_actions"}
DEFAULT_FPS = 30.0
ANNOTATIONS = Path("lang_annotations") / "auto_lang_ann.npy"


def require_trusted_pickle(fmt: str, options: dict, path: Path, what: str, alternative: str = "") -> None:
    """Refuse to unpickle unless the task or the user opted in (exit 2, saying how to allow it)."""
    value = options.get("trust_pickle", False)
    if not isinstance(value, bool):
        raise BadInput(f"format '{fmt}': option trust_pickle must be true or false, got {value!r}")
    if not value:
        raise BadInput(
            f"format '{fmt}': {what} come from {path}, a Python pickle; unpickling a file can run any code "
            f"it contains, so wmbench loads pickles only when you trust where the dataset came from: set "
            f"`trust_pickle: true` under dataset.options in the task YAML (or in your own copy of the task)"
            f"{'; or ' + alternative if alternative else ''}.")


def load_annotations(path: Path) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """(instructions, task ids, (start, end) inclusive) from auto_lang_ann.npy. Call only after
    require_trusted_pickle: this unpickles."""
    try:
        data = np.load(path, allow_pickle=True).item()
        anns = [str(a) for a in data["language"]["ann"]]
        tasks = [str(t) for t in data["language"]["task"]]
        indx = [(int(s), int(e)) for s, e in data["info"]["indx"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(FORMAT, path.parent, "auto_lang_ann.npy holding a dict with language.ann, "
                          "language.task and info.indx", f"{type(exc).__name__}: {exc}") from exc
    if not len(anns) == len(tasks) == len(indx):
        raise FormatError(FORMAT, path.parent, "as many language.ann and language.task entries as info.indx windows",
                          f"{len(anns)} ann, {len(tasks)} task, {len(indx)} indx")
    return anns, tasks, indx


def split_fps(split_dir: Path) -> float:
    config = split_dir / ".hydra" / "merged_config.yaml"
    if config.is_file():
        import yaml

        try:
            freq = ((yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("env") or {}).get("control_freq")
            if isinstance(freq, (int, float)) and freq > 0:
                return float(freq)
        except (yaml.YAMLError, OSError, AttributeError):
            pass
    return DEFAULT_FPS


def _digits(split_dir: Path, first: int) -> int:
    """File-number width: 7 in the released data; detected from one file name otherwise."""
    if (split_dir / f"episode_{first:07d}.npz").exists():
        return 7
    for entry in split_dir.iterdir():
        match = re.fullmatch(r"episode_(\d+)\.npz", entry.name)
        if match:
            return len(match.group(1))
    return 7


def _npz(path: Path, key: str, what: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise SampleError(f"{path} ({what}) has no '{key}'; it has {', '.join(z.files)}")
            return z[key]
    except FileNotFoundError as exc:
        raise SampleError(f"missing CALVIN frame file {path} ({what})") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise SampleError(f"corrupt CALVIN frame file {path} ({what}): {exc}") from exc


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    split_dir = root / spec.split
    expected = (f"a split folder '{spec.split}/' (the task's dataset.split; CALVIN has training/ and "
                f"validation/) with episode_XXXXXXX.npz files and {ANNOTATIONS.as_posix()}")
    if not split_dir.is_dir():
        raise FormatError(FORMAT, root, expected, describe_folder(root))
    ann_path = split_dir / ANNOTATIONS
    if not ann_path.is_file():
        raise FormatError(FORMAT, split_dir, expected, describe_folder(split_dir))
    if options["camera"] not in ("rgb_static", "rgb_gripper"):
        raise BadInput(f"calvin option camera: expected rgb_static or rgb_gripper, got {options['camera']!r}")
    if options["action_key"] not in ("rel_actions", "actions", None):
        raise BadInput(f"calvin option action_key: expected rel_actions, actions or null, "
                           f"got {options['action_key']!r}")
    require_trusted_pickle(FORMAT, options, ann_path, "the language annotations")
    anns, tasks, windows = load_annotations(ann_path)
    fps = split_fps(split_dir)
    width = _digits(split_dir, windows[0][0]) if windows else 7
    for i, (start, end) in enumerate(windows):
        yield from _window(split_dir, spec.split, i, start, end, anns[i], tasks[i], width, fps,
                           options["camera"], options["action_key"], frames)


def _window(split_dir: Path, split: str, i: int, start: int, end: int, text: str, task: str, width: int,
            fps: float, camera: str, action_key: str | None, frames: FrameSelection) -> Iterator[Transition]:
    episode = f"{split}/ann{i}"
    what = f"annotation {i} '{text}', frames {start}-{end}"

    def frame_path(k: int) -> Path:
        return split_dir / f"episode_{start + k:0{width}d}.npz"

    def motion() -> np.ndarray:
        from .video import motion_magnitudes

        return motion_magnitudes(np.stack([_npz(frame_path(k), camera, what) for k in range(end - start + 1)]))

    try:
        pairs = frames.pairs(end - start + 1, fps, motion=motion)
    except (SampleError, ValueError) as exc:
        yield _unreadable(f"{episode}:unreadable", episode, split, frames, f"{what}: {exc}")
        return
    actions: dict[int, np.ndarray] = {}
    for s, t in pairs:
        sample_id = f"{episode}:{s}-{t}"
        vector = None
        if action_key is not None:
            try:
                for k in range(s, t):
                    if k not in actions:
                        actions[k] = np.asarray(_npz(frame_path(k), action_key, what), dtype=np.float32).reshape(-1)
                vector = np.stack([actions[k] for k in range(s, t)])
            except SampleError as exc:
                yield _unreadable(sample_id, episode, split, frames, str(exc))
                continue

        def image(k: int) -> LazyImage:
            path = frame_path(k)
            # named relative to the dataset root (the split folder's parent): no machine paths in logs
            return LazyImage(lambda: _npz(path, camera, what), f"{relative_origin(path, split_dir.parent)}:{camera}")

        yield Transition(
            sample_id=sample_id, dataset="calvin", split=split, episode_id=episode,
            source=image(s), target=image(t), action_text=text, action_vector=vector,
            source_index=s, target_index=t, source_time_s=s / fps, target_time_s=t / fps, fps=fps,
            frame_gap=t - s,
            meta={"frames": frames.describe(), "task": task, "annotation": i, "window": [start, end],
                  "frame_ids": [start + s, start + t], "camera": camera, "action_key": action_key})


def _unreadable(sample_id: str, episode: str, split: str, frames: FrameSelection, message: str) -> Transition:
    def fail() -> np.ndarray:
        raise SampleError(message)

    image = LazyImage(fail, episode)
    return Transition(sample_id=sample_id, dataset="calvin", split=split, episode_id=episode, source=image,
                      target=image, action_text="", meta={"frames": frames.describe(), "error": message})
