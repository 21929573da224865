"""LIBERO demonstrations (HDF5, format `libero`).

Layout, as LIBERO's `scripts/create_dataset.py` writes it: `<root>/<suite>/<task>_demo.hdf5`
(suites libero_spatial, libero_object, libero_goal, libero_10, libero_90; a root holding the
.hdf5 files directly is one suite), each file with
- `data.attrs["problem_info"]`: JSON with "language_instruction" (string, or a list of pieces);
- `data.attrs["macros_image_convention"]`: robosuite's image convention at recording, "opengl"
  or "opencv";
- `data/demo_N/obs/agentview_rgb` (T, 128, 128, 3) uint8, `obs/eye_in_hand_rgb`, `actions` (T, 7)
  (action t is applied at frame t), `states`, `rewards`, `dones`.

Orientation: robosuite renders with OpenGL, whose rows run bottom-up; with the "opengl"
convention (robosuite's default, and what the released LIBERO files record) the stored frames are
upside down (LIBERO issue #11). Option `orientation` names the upright frame:
- `rotate180` (default): `stored[::-1, ::-1]`, the frame rotated 180 degrees, as OpenVLA's and
  openpi's LIBERO code do (OpenVLA's `get_libero_image` and its HDF5 -> RLDS conversion, from
  which openpi's LeRobot copy of LIBERO was made). A demonstration read from the raw HDF5 here
  then matches those conversions read through the `rlds`/`lerobot` readers, and models fine-tuned
  on them see what they were trained on.
- `vflip`: `stored[::-1]`, rows reversed only, which undoes exactly what OpenGL's read-out does
  (reported to match the camera poses: openvla/openvla#295; `rotate180` is its left-right mirror).
Option `flip: auto` (default) corrects files that say "opengl" or say nothing; an "opencv" file
(robosuite already reversed its rows) gets the rest of the same correction, that is nothing for
`vflip` and a left-right mirror (`stored[:, ::-1]`) for `rotate180`, so both conventions give the
same upright frame. `flip: true` corrects as for "opengl" whatever the file says; `flip: false`
returns the frames as stored. Each sample records `meta["flipped"]` (whether the stored frame was
changed) and `meta["orientation"]` (rotate180, vflip, hflip or none).

Instruction: problem_info's language_instruction, else the file name without the scene prefix
(KITCHEN_SCENE3_...) and `_demo`, underscores as spaces (`meta["instruction_source"]` says which).
Options: suites (name or list; default all found), camera (default agentview_rgb), flip, orientation,
max_pixels (checked from the HDF5 dataset's shape before its frames are read).
sample_id "<suite>/<task>/<demo_N>:<src>-<tgt>"; action_vector = actions[src:tgt] (float32). An
unreadable file or demo becomes one sample that fails with the path in its message.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, check_pixels, describe_folder,
                     relative_origin)
from ..core.frames import FrameSelection

FORMAT = "libero"
OPTIONS = {"suites": None, "camera": "agentview_rgb", "flip": "auto", "orientation": "rotate180", **IMAGE_OPTIONS}
ORIENTATIONS = ("rotate180", "vflip")
FPS = 20.0  # create_dataset.py replays every demonstration with control_freq=20
_SCENE_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*?SCENE\d+_")


def find_files(root: Path, suites: Any = None) -> list[tuple[str, Path]]:
    """(suite, file) pairs in a stable order; FormatError when there are none."""
    expected = "<suite>/<task>_demo.hdf5 files (or .hdf5 files directly in the folder)"
    if not root.is_dir():
        raise FormatError(FORMAT, root, expected, describe_folder(root))
    found: dict[str, list[Path]] = {}
    direct = sorted(root.glob("*.hdf5"))
    if direct:
        found[root.name] = direct
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.hdf5"))
        if files:
            found[sub.name] = files
    if not found:
        raise FormatError(FORMAT, root, expected, describe_folder(root))
    if suites is not None:
        wanted = [suites] if isinstance(suites, str) else list(suites)
        unknown = [s for s in wanted if s not in found]
        if unknown:
            raise BadInput(f"libero option suites: {unknown} not under {root}; found: {', '.join(found)}")
        found = {s: found[s] for s in wanted}
    return [(suite, path) for suite, files in found.items() for path in files]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def instruction(attrs: Any, path: Path) -> tuple[str, str]:
    """(instruction, where it came from)."""
    if "problem_info" in attrs:
        try:
            text = json.loads(_text(attrs["problem_info"])).get("language_instruction")
        except (ValueError, AttributeError):
            text = None
        if isinstance(text, list):
            text = "".join(map(str, text))  # LIBERO's get_dataset_info.py joins the pieces
        if isinstance(text, str) and text.strip().strip('"').strip():
            return text.strip().strip('"').strip(), "problem_info"
    stem = re.sub(r"_demo$", "", path.stem)
    return _SCENE_PREFIX.sub("", stem).replace("_", " ").strip(), "file name"


def should_flip(option: Any, convention: str | None) -> bool:
    """Whether the stored frames are in OpenGL's bottom-up row order (and need the full correction)."""
    if option == "auto":
        return convention != "opencv"
    if isinstance(option, bool):
        return option
    raise BadInput(f"libero option flip: expected auto, true or false, got {option!r}")


def correction(flip_option: Any, convention: str | None, orientation: str) -> str:
    """The transform from stored to upright frames: "rotate180", "vflip", "hflip" or "none"."""
    if orientation not in ORIENTATIONS:
        raise BadInput(f"libero option orientation: expected one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    bottom_up = should_flip(flip_option, convention)
    if flip_option is False:
        return "none"
    if orientation == "rotate180":
        return "rotate180" if bottom_up else "hflip"  # an opencv file has its rows reversed already
    return "vflip" if bottom_up else "none"


def orient(frames: np.ndarray, transform: str) -> np.ndarray:
    """Apply `correction`'s transform to frames (..., H, W, C)."""
    rows, cols = {"rotate180": (True, True), "vflip": (True, False), "hflip": (False, True),
                  "none": (False, False)}[transform]
    if not (rows or cols):
        return frames
    row_step, col_step = (-1 if rows else 1), (-1 if cols else 1)
    return np.ascontiguousarray(frames[..., ::row_step, ::col_step, :])


class _EpisodeFrames:
    """All frames of the last few (file, demo, camera) episodes read, each read once."""

    def __init__(self, size: int = 2, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.size, self.max_pixels = size, max_pixels
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def frames(self, path: Path, demo: str, camera: str, transform: str) -> np.ndarray:
        key = (path, demo, camera, transform)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        array = orient(_read_frames(path, demo, camera, self.max_pixels), transform)
        with self._lock:
            self._items[key] = array
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return array

    def load(self, path: Path, demo: str, camera: str, transform: str, index: int) -> np.ndarray:
        return self.frames(path, demo, camera, transform)[index]


def _read_frames(path: Path, demo: str, camera: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            dataset = f[f"data/{demo}/obs/{camera}"]
            if len(dataset.shape) == 4:  # (T, H, W, 3): the frame size is known before reading
                check_pixels(int(dataset.shape[2]), int(dataset.shape[1]), f"{path}#data/{demo}/obs/{camera}",
                             max_pixels)
            return np.asarray(dataset[()])
    except FileNotFoundError as exc:
        raise SampleError(f"missing LIBERO file {path}") from exc
    except (OSError, KeyError) as exc:
        raise SampleError(f"cannot read {camera} of {demo} in {path}: {exc}") from exc


def _demos(group: Any) -> list[str]:
    names = [k for k in group.keys() if re.fullmatch(r"demo_\d+", k)]
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    correction(options["flip"], None, options["orientation"])  # validate before any file is opened
    cache = _EpisodeFrames(max_pixels=options["max_pixels"])
    for suite, path in find_files(root, options["suites"]):
        yield from _file(root, path, suite, spec.split, str(options["camera"]), options["flip"],
                         options["orientation"], frames, cache)


def _file(root: Path, path: Path, suite: str, split: str, camera: str, flip_option: Any, orientation: str,
          frames: FrameSelection, cache: _EpisodeFrames) -> Iterator[Transition]:
    import h5py

    task = re.sub(r"_demo$", "", path.stem)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        yield _unreadable(f"{suite}/{task}", split, frames, f"cannot open LIBERO file {path}: {exc}")
        return
    with handle:
        if "data" not in handle:
            yield _unreadable(f"{suite}/{task}", split, frames, f"{path} has no 'data' group (not a LIBERO demo file)")
            return
        data = handle["data"]
        text, source = instruction(data.attrs, path)
        convention = _text(data.attrs["macros_image_convention"]) if "macros_image_convention" in data.attrs else None
        transform = correction(flip_option, convention, orientation)
        origin_file = relative_origin(path, root)  # sample logs are committed: no machine paths
        for demo in _demos(data):
            episode = f"{suite}/{task}/{demo}"
            try:
                obs = data[demo]["obs"]
                if camera not in obs:
                    raise SampleError(f"{path}: {demo} has no obs/{camera}; it has {', '.join(sorted(obs.keys()))}")
                n = int(obs[camera].shape[0])
                actions = np.asarray(data[demo]["actions"][()], dtype=np.float32) if "actions" in data[demo] else None
                pairs = frames.pairs(n, FPS, motion=lambda: _motion(cache.frames(path, demo, camera, transform)))
            except (SampleError, OSError, KeyError, ValueError) as exc:
                yield _unreadable(episode, split, frames, f"{path}: {demo}: {exc}")
                continue
            meta = {"frames": frames.describe(), "suite": suite, "task": task, "demo": demo, "camera": camera,
                    "flipped": transform != "none", "orientation": transform, "image_convention": convention,
                    "instruction_source": source}
            for s, t in pairs:
                load = partial(cache.load, path, demo, camera, transform)
                origin = f"{origin_file}#data/{demo}/obs/{camera}"
                yield Transition(
                    sample_id=f"{episode}:{s}-{t}", dataset="libero", split=split, episode_id=episode,
                    source=LazyImage(partial(load, s), f"{origin}[{s}]"),
                    target=LazyImage(partial(load, t), f"{origin}[{t}]"),
                    action_text=text, action_vector=None if actions is None else actions[s:t],
                    source_index=s, target_index=t, source_time_s=s / FPS, target_time_s=t / FPS, fps=FPS,
                    frame_gap=t - s, meta=dict(meta))


def _motion(array: np.ndarray) -> np.ndarray:
    from .video import motion_magnitudes

    return motion_magnitudes(array)


def _unreadable(episode: str, split: str, frames: FrameSelection, message: str) -> Transition:
    """A sample standing for what could not be read: it fails when loaded, with the reason."""
    def fail() -> np.ndarray:
        raise SampleError(message)

    image = LazyImage(fail, episode)
    return Transition(sample_id=f"{episode}:unreadable", dataset="libero", split=split, episode_id=episode,
                      source=image, target=image, action_text="",
                      meta={"frames": frames.describe(), "error": message})
