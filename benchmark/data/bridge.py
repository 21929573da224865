"""BridgeData V2 raw trajectories (format `bridge`).

Layout, as rail-berkeley/bridge_data_v2's data_processing/bridgedata_raw_to_numpy.py and the RLDS
builder read it: `<root>/.../<YYYY-MM-DD_HH-MM-SS>/raw/traj_group<G>/traj<N>/` holding
`images0/im_0.jpg ... im_{T-1}.jpg` (more cameras in images1..3), `lang.txt` (first line: the
instruction; absent for unlabelled trajectories), `policy_out.pkl` (a pickled list of T-1 actions,
dicts with "actions" or arrays: action t leads from image t to image t+1), `obs_dict.pkl`
(states, time stamps) and `agent_data.pkl`. Any depth of folders above the trajectories works.

Like the authors' converters: data collected before 2021-07-23 has one frame of camera latency,
so its first image and last action are dropped (option latency_shift, default true; recorded in
meta). Trajectories without an instruction are left out unless keep_unlabelled is true.

policy_out.pkl is a pickle, and unpickling runs whatever code it carries: action vectors are read
only with `trust_pickle: true`; with the default `action_vectors: true` and no trust the reader
stops (exit 2) and says how to allow it or to go without vectors (`action_vectors: false`, which
needs no pickle: images and lang.txt are plain files). obs_dict.pkl is never read.
Options: camera (default images0), trust_pickle, action_vectors, latency_shift, keep_unlabelled, max_pixels.
sample_id "<trajectory path relative to root>:<src>-<tgt>"; 5 Hz (BridgeData V2's control rate).
"""

from __future__ import annotations

import os
import pickle
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from .calvin import require_trusted_pickle
from .common import IMAGE_OPTIONS, FormatError, check_options, decode_image, describe_folder, relative_origin
from ..core.frames import FrameSelection

FORMAT = "bridge"
OPTIONS = {"camera": "images0", "trust_pickle": False, "action_vectors": True, "latency_shift": True,
           "keep_unlabelled": False, **IMAGE_OPTIONS}
FPS = 5.0
LATENCY_FIXED = datetime(2021, 7, 23)  # "data collected prior to 7-23 has a delay of 1"
_TRAJ = re.compile(r"traj\d+")
_IMAGE = re.compile(r"im_(\d+)\.jpg")


def find_trajectories(root: Path, camera: str) -> list[Path]:
    """Trajectory folders (traj<N> holding <camera>/) in natural order; image folders are not walked."""
    if not root.is_dir():
        raise FormatError(FORMAT, root, "trajectory folders .../raw/traj_group<G>/traj<N>/ with images0/",
                          describe_folder(root))
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if _TRAJ.fullmatch(here.name) and (here / camera).is_dir():
            found.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith(("images", "depth_images"))]
    if not found:
        raise FormatError(FORMAT, root, f"trajectory folders .../traj<N>/ holding {camera}/im_<t>.jpg",
                          describe_folder(root))
    return sorted(found, key=lambda p: _natural(p.relative_to(root).as_posix()))


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def read_instruction(traj: Path) -> str:
    path = traj / "lang.txt"
    if not path.is_file():
        return ""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return handle.readline().strip()


def read_actions(traj: Path) -> np.ndarray:
    """policy_out.pkl -> (T-1, D) float32. Unpickles: only after require_trusted_pickle."""
    path = traj / "policy_out.pkl"
    try:
        with path.open("rb") as handle:
            actions = pickle.load(handle)
        if actions and isinstance(actions[0], dict):
            actions = [a["actions"] for a in actions]
        return np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)
    except FileNotFoundError as exc:
        raise SampleError(f"missing {path}") from exc
    except Exception as exc:  # a damaged pickle raises anything from UnpicklingError to KeyError
        raise SampleError(f"unreadable {path}: {type(exc).__name__}: {exc}") from exc


def latency_shifted(traj: Path) -> bool:
    """True for trajectories recorded before the camera-latency fix (date folder above raw/)."""
    for parent in traj.parents:
        try:
            return datetime.strptime(parent.name, "%Y-%m-%d_%H-%M-%S") < LATENCY_FIXED
        except ValueError:
            continue
    return False


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    for name in ("action_vectors", "latency_shift", "keep_unlabelled"):
        if not isinstance(options[name], bool):
            raise BadInput(f"bridge option {name} must be true or false, got {options[name]!r}")
    camera = str(options["camera"])
    trajectories = find_trajectories(root, camera)
    if options["action_vectors"]:
        require_trusted_pickle(FORMAT, options, trajectories[0] / "policy_out.pkl", "action vectors",
                               "set `action_vectors: false` to read images and instructions without them")
    for traj in trajectories:
        yield from _trajectory(root, traj, spec.split, camera, options, frames)


def _trajectory(root: Path, traj: Path, split: str, camera: str, options: dict,
                frames: FrameSelection) -> Iterator[Transition]:
    episode = traj.relative_to(root).as_posix()
    max_pixels = options["max_pixels"]
    text = read_instruction(traj)
    if not text and not options["keep_unlabelled"]:
        return
    try:
        images = sorted(((int(m.group(1)), p) for p in (traj / camera).iterdir()
                         if (m := _IMAGE.fullmatch(p.name))), key=lambda x: x[0])
        if [i for i, _ in images] != list(range(len(images))):
            raise SampleError(f"{traj / camera}: image numbers are not 0..{len(images) - 1}")
        paths = [p for _, p in images]
        actions = read_actions(traj) if options["action_vectors"] else None
        shift = bool(options["latency_shift"]) and latency_shifted(traj)
        if shift:
            paths = paths[1:]
            actions = None if actions is None else actions[:-1]
        if actions is not None and len(actions) < len(paths) - 1:
            raise SampleError(f"{traj}: {len(actions)} actions for {len(paths)} images")
        pairs = frames.pairs(len(paths), FPS, motion=lambda: _motion(paths, max_pixels))
    except (SampleError, OSError, ValueError) as exc:
        yield _unreadable(episode, split, frames, f"trajectory {traj}: {exc}")
        return
    for s, t in pairs:
        yield Transition(
            sample_id=f"{episode}:{s}-{t}", dataset="bridge", split=split, episode_id=episode,
            source=_image(root, paths[s], max_pixels), target=_image(root, paths[t], max_pixels),
            action_text=text,
            action_vector=None if actions is None else actions[s:t],
            source_index=s, target_index=t, source_time_s=s / FPS, target_time_s=t / FPS, fps=FPS,
            frame_gap=t - s,
            meta={"frames": frames.describe(), "camera": camera, "latency_shift": shift})


def _image(root: Path, path: Path, max_pixels: int | None) -> LazyImage:
    origin = relative_origin(path, root)  # sample logs are committed: no machine-specific paths
    return LazyImage(lambda: decode_image(path, str(path), max_pixels), origin)


def _motion(paths: list[Path], max_pixels: int | None) -> np.ndarray:
    from .video import motion_magnitudes

    return motion_magnitudes(np.stack([decode_image(p, str(p), max_pixels) for p in paths]))


def _unreadable(episode: str, split: str, frames: FrameSelection, message: str) -> Transition:
    def fail() -> np.ndarray:
        raise SampleError(message)

    image = LazyImage(fail, episode)
    return Transition(sample_id=f"{episode}:unreadable", dataset="bridge", split=split, episode_id=episode,
                      source=image, target=image, action_text="", meta={"frames": frames.describe(), "error": message})
