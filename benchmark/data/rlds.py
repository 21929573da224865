"""RLDS / Open X-Embodiment datasets as TFDS writes them, read without TensorFlow (format `rlds`).

Layout: `<root>/[<version>/]dataset_info.json`, `features.json` and TFRecord shards
`<name>-<split>.tfrecord-00000-of-000NN` (the name from dataset_info.json). Each record is one
episode, a `tf.train.Example` whose keys are the flattened feature paths ("steps/observation/image",
"steps/language_instruction", "episode_metadata/file_path"); per-step features hold the values of
every step one after the other. features.json says which keys are encoded images, their shapes
and dtypes, and how tensors are stored (encoding none: int64/float lists; bytes/zlib: raw bytes).

A key map per dataset names the camera, the instruction and the action parts (relative to
"steps/"); each entry lists candidates and the first one present in features.json is used:
- fractal20220817_data (RT-1): observation/image, observation/natural_language_instruction,
  action = world_vector + rotation_delta + gripper_closedness_action; 3 Hz.
- bridge (alias bridge_dataset, bridge_orig, bridge_oxe): observation/image_0 (BridgeData V2 release)
  or observation/image (OXE copy); language_instruction or observation/natural_language_instruction; 5 Hz.
- droid: observation/exterior_image_1_left, language_instruction, action; 15 Hz.
- language_table: observation/rgb, observation/instruction (int32 Unicode code points, zero padded), action; 10 Hz.
Any other dataset uses the same candidates generically (fps unknown unless option `fps`).

Options: dataset (key map; default dataset_info.json's name, else the folder name), image_key,
instruction_key, action_keys (list; [] for none), episodes (N: the first N episodes of the split;
or a list of episode indices), version (subfolder; default the highest), fps, keep_unlabelled
(default false: episodes whose instruction is empty are left out, as they give no action text),
max_pixels.

Samples: frames.pairs over each episode's steps; sample_id "<split>/<shard>:<record>:<src>-<tgt>";
action_vector = the actions of steps src..tgt-1, shape (tgt - src, D). Images are re-read from the
shard when loaded (the record at its offset, CRCs checked again, a small LRU keeps the last
episodes), so enumerating a large split keeps no pixels in memory. A corrupt record (data CRC) or a
missing or unreadable shard becomes one sample that fails with the shard and offset in its message,
so the damage is counted and the run goes on.

Checked against TensorFlow Datasets 4.9 on datasets it wrote (steps of JPEG/PNG images, text,
float32/float64/bool tensors, zlib-encoded tensors, int32 code points, episode metadata): every
value equal. JPEGs decode with Pillow, pixel-identical to tf.io.decode_jpeg(dct_method=
"INTEGER_ACCURATE"); TFDS itself decodes with TF's default INTEGER_FAST, 1.5 gray levels off on average.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, decode_image, describe_folder,
                     relative_origin)
from ..core.frames import FrameSelection
from .tfrecord import FeatureSpec, RecordError, iter_frames, parse_example, parse_features, read_record, step_tensor

FORMAT = "rlds"
OPTIONS = {"dataset": None, "image_key": None, "instruction_key": None, "action_keys": None,
           "episodes": None, "version": None, "fps": None, "keep_unlabelled": False, **IMAGE_OPTIONS}


@dataclass(frozen=True)
class KeyMap:
    image: tuple[str, ...]
    instruction: tuple[str, ...]
    action: tuple[tuple[str, ...], ...]  # groups of parts; the first group fully present is used
    fps: float | None = None


_INSTRUCTIONS = ("language_instruction", "observation/natural_language_instruction", "observation/instruction")
KEY_MAPS: dict[str, KeyMap] = {
    "fractal20220817_data": KeyMap(("observation/image",), ("observation/natural_language_instruction",),
                                   (("action/world_vector", "action/rotation_delta",
                                     "action/gripper_closedness_action"),), 3.0),
    "bridge": KeyMap(("observation/image_0", "observation/image"),
                     ("language_instruction", "observation/natural_language_instruction"),
                     (("action",), ("action/world_vector", "action/rotation_delta", "action/open_gripper")), 5.0),
    "droid": KeyMap(("observation/exterior_image_1_left",), ("language_instruction",), (("action",),), 15.0),
    "language_table": KeyMap(("observation/rgb",), ("observation/instruction",), (("action",),), 10.0),
}
ALIASES = {"rt1": "fractal20220817_data", "fractal": "fractal20220817_data", "bridge_dataset": "bridge",
           "bridge_orig": "bridge", "bridge_oxe": "bridge", "r2d2": "droid"}
GENERIC = KeyMap(("observation/image", "observation/rgb", "observation/image_0",
                  "observation/exterior_image_1_left"), _INSTRUCTIONS, (("action",),))


# --- the folder -------------------------------------------------------------------------------

def _version_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def find_version_dir(root: Path, version: str | None = None) -> Path:
    expected = "dataset_info.json and features.json, in the folder or in a version subfolder such as 1.0.0/"
    if not root.is_dir():
        raise FormatError(FORMAT, root, expected, describe_folder(root))
    if version is None and (root / "dataset_info.json").is_file():
        folder = root
    else:
        versions = sorted((d for d in root.iterdir() if d.is_dir() and (d / "dataset_info.json").is_file()),
                          key=lambda d: _version_key(d.name))
        if version is not None:
            versions = [d for d in versions if d.name == str(version)]
        if not versions:
            raise FormatError(FORMAT, root, expected + (f" (version {version})" if version else ""),
                              describe_folder(root))
        folder = versions[-1]
    if not (folder / "features.json").is_file():
        raise FormatError(FORMAT, folder, expected, describe_folder(folder))
    return folder


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(FORMAT, path.parent, f"a readable JSON file {path.name}", f"{type(exc).__name__}: {exc}")


def find_shards(folder: Path, info: dict, split: str) -> list[Path]:
    """Shard paths of `split` in order: from dataset_info.json's shard count and file template when
    it has them (so a missing shard is noticed), else by globbing."""
    name = info.get("name") or folder.parent.name
    fmt = info.get("fileFormat", "tfrecord")
    if fmt != "tfrecord":
        raise FormatError(FORMAT, folder, "TFRecord shards (dataset_info.json fileFormat 'tfrecord')",
                          f"fileFormat '{fmt}', which this reader does not read")
    splits = {s.get("name"): s for s in info.get("splits", [])}
    if splits and split not in splits:
        raise FormatError(FORMAT, folder, f"split '{split}' (set the task's dataset.split)",
                          f"splits {sorted(splits)} in dataset_info.json")
    entry = splits.get(split, {})
    count = len(entry.get("shardLengths", []))
    if count:
        template = entry.get("filepathTemplate") or "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
        return [folder / template.replace("{DATASET}", name).replace("{SPLIT}", split)
                .replace("{FILEFORMAT}", fmt).replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{count:05d}")
                .replace("{SHARD_INDEX}", f"{i:05d}").replace("{NUM_SHARDS}", f"{count:05d}")
                for i in range(count)]
    pattern = re.compile(rf"{re.escape(name)}-{re.escape(split)}\.tfrecord-(\d+)-of-(\d+)$")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
    if not found:
        raise FormatError(FORMAT, folder, f"shards {name}-{split}.tfrecord-NNNNN-of-NNNNN", describe_folder(folder))
    return [p for _, p in found]


# --- keys -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Keys:
    image: str
    instruction: str
    actions: tuple[str, ...]
    fps: float | None


def _full(key: str) -> str:
    """Keys are given relative to "steps/" unless they name the top level explicitly."""
    return key if key.startswith(("steps/", "episode_metadata/")) else f"steps/{key}"


def resolve_keys(name: str, features: dict[str, FeatureSpec], options: dict) -> Keys:
    keymap = KEY_MAPS.get(ALIASES.get(name, name), GENERIC)

    def pick(override: str | None, candidates: tuple[str, ...], what: str, option: str, kinds: set[str]) -> str:
        if override is not None:
            key = _full(str(override))
            if key not in features:
                raise BadInput(f"rlds dataset '{name}': option {option} '{override}' is not a feature; "
                                   f"features: {', '.join(sorted(features))}")
            return key
        for candidate in candidates:
            if _full(candidate) in features and features[_full(candidate)].kind in kinds:
                return _full(candidate)
        options_ = sorted(k for k, f in features.items() if f.kind in kinds and f.in_steps)
        if what == "image" and len(options_) == 1:
            return options_[0]
        raise BadInput(f"rlds dataset '{name}': no {what} feature among {list(candidates)}; "
                           f"set option {option} to one of: {', '.join(options_) or '(none)'}")

    image = pick(options["image_key"], keymap.image, "image", "image_key", {"image"})
    instruction = pick(options["instruction_key"], keymap.instruction, "instruction", "instruction_key",
                       {"text", "tensor"})
    if options["action_keys"] is not None:
        actions = tuple(pick(k, (), "action", "action_keys", {"tensor"}) for k in options["action_keys"])
    else:
        groups = [tuple(_full(k) for k in g) for g in keymap.action]
        actions = next((g for g in groups if all(k in features and features[k].kind == "tensor" for k in g)), ())
    fps = float(options["fps"]) if options["fps"] is not None else keymap.fps
    return Keys(image, instruction, actions, fps)


# --- values -----------------------------------------------------------------------------------

def instructions(values: Any, spec: FeatureSpec, n: int) -> list[str]:
    """Per-step instruction strings: text, or int code points cut at the first zero (language_table)."""
    if spec.kind == "text":
        texts = [b.decode("utf-8", "replace") for b in values]
        if not spec.in_steps:
            texts = texts[:1] * n
    else:
        rows = step_tensor(values, spec, n if spec.in_steps else 1).reshape(n if spec.in_steps else 1, -1)
        texts = ["".join(map(chr, row[: int(np.argmax(row == 0)) if (row == 0).any() else len(row)])) for row in rows]
        texts = texts if spec.in_steps else texts * n
    if len(texts) != n:
        raise SampleError(f"feature {spec.key}: {len(texts)} instructions for {n} steps")
    return [t.strip() for t in texts]


class _RecordCache:
    """The image bytes of the last few episodes loaded (samples of an episode come together)."""

    def __init__(self, key: str, size: int = 2, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.key, self.size, self.max_pixels = key, size, max_pixels
        self._items: OrderedDict[tuple[Path, int], list[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def images(self, path: Path, offset: int) -> list[bytes]:
        with self._lock:
            if (path, offset) in self._items:
                self._items.move_to_end((path, offset))
                return self._items[(path, offset)]
        data = read_record(path, offset)
        try:
            images = parse_example(data, {self.key}).get(self.key, [])
        except ValueError as exc:
            raise SampleError(f"TFRecord {path}: record at byte offset {offset}: {exc}") from exc
        with self._lock:
            self._items[(path, offset)] = images
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return images

    def load(self, path: Path, offset: int, index: int, origin: str) -> np.ndarray:
        images = self.images(path, offset)
        if index >= len(images):
            raise SampleError(f"{origin}: the record has {len(images)} images")
        return decode_image(images[index], origin, self.max_pixels)


# --- the reader -------------------------------------------------------------------------------

def _episode_filter(value: Any) -> tuple[int | None, set[int] | None]:
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, None
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None, set(value)
    raise BadInput(f"rlds option episodes: expected a count N >= 0 or a list of episode indices, got {value!r}")


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    folder = find_version_dir(root, options["version"])
    info = _json(folder / "dataset_info.json")
    features = parse_features(_json(folder / "features.json"))
    name = str(options["dataset"] or info.get("name") or folder.parent.name)
    keys = resolve_keys(name, features, options)
    if frames.mode == "seconds" and not keys.fps:
        raise BadInput(f"rlds dataset '{name}': frame selection by seconds needs the control rate; set option fps")
    first_n, wanted = _episode_filter(options["episodes"])
    shards = find_shards(folder, info, spec.split)
    lengths = [int(x) for x in next((s.get("shardLengths", []) for s in info.get("splits", [])
                                     if s.get("name") == spec.split), [])]
    context = _Context(name, spec.split, keys, features, frames,
                       _RecordCache(keys.image, max_pixels=options["max_pixels"]), bool(options["keep_unlabelled"]),
                       root)
    base = 0
    for shard_index, path in enumerate(shards):
        if first_n is not None and base >= first_n:
            return
        start = base

        def want(i: int, start: int = start) -> bool:
            g = start + i
            return (first_n is None or g < first_n) and (wanted is None or g in wanted)

        count = 0
        try:
            for record in iter_frames(path, want):
                if first_n is not None and start + record.index >= first_n:
                    break  # the first N episodes are done: no need to walk the rest of the shard
                count = record.index + 1
                if record.error is not None:
                    yield context.failed(shard_index, record.offset, str(record.error))
                elif record.data is not None:
                    yield from context.episode(path, shard_index, record.index, record.offset,
                                               start + record.index, record.data)
        except RecordError as exc:  # framing lost: the rest of this shard cannot be located
            yield context.failed(shard_index, exc.offset, f"{exc}; the rest of this shard is skipped")
        except SampleError as exc:  # the shard is missing or unreadable
            yield context.failed(shard_index, 0, str(exc))
        base += lengths[shard_index] if shard_index < len(lengths) else count


class _Context:
    def __init__(self, name: str, split: str, keys: Keys, features: dict[str, FeatureSpec],
                 frames: FrameSelection, cache: _RecordCache, keep_unlabelled: bool, root: Path):
        self.name, self.split, self.keys, self.features, self.root = name, split, keys, features, root
        self.frames, self.cache, self.keep_unlabelled = frames, cache, keep_unlabelled
        self.wanted = {keys.image, keys.instruction, *keys.actions, "episode_metadata/file_path"}

    def failed(self, shard_index: int, offset: int, message: str) -> Transition:
        """A sample standing for what could not be read: it fails when loaded, naming the damage."""
        def fail() -> np.ndarray:
            raise SampleError(message)

        image = LazyImage(fail, f"{self.name} shard {shard_index:05d} @ {offset}")
        episode = f"{shard_index:05d}@{offset}"
        return Transition(sample_id=f"{self.split}/{episode}:unreadable", dataset=self.name, split=self.split,
                          episode_id=episode, source=image, target=image, action_text="",
                          meta={"frames": self.frames.describe(), "error": message})

    def episode(self, path: Path, shard_index: int, record_index: int, offset: int, global_index: int,
                data: bytes) -> Iterator[Transition]:
        episode_id = f"{shard_index:05d}:{record_index}"
        try:
            example = parse_example(data, self.wanted)
            images = example.get(self.keys.image, [])
            images = images if isinstance(images, list) else []
            n = len(images)
            texts = instructions(example.get(self.keys.instruction, []), self.features[self.keys.instruction], n)
            actions = None
            if self.keys.actions:
                parts = [step_tensor(example.get(k, []), self.features[k], n).reshape(n, -1).astype(np.float32)
                         for k in self.keys.actions]
                actions = np.concatenate(parts, axis=1)
            # the shard named relative to the dataset root: sample logs carry no machine paths
            origin = f"{relative_origin(path, self.root)}@{offset}:{self.keys.image}"
            pairs = self.frames.pairs(n, self.keys.fps,
                                      motion=lambda: _motion(images, origin, self.cache.max_pixels))
        except (ValueError, TypeError, SampleError) as exc:
            yield self.failed(shard_index, offset, f"{path}: episode record at byte offset {offset}: {exc}")
            return
        file_path = example.get("episode_metadata/file_path")
        meta_base = {"frames": self.frames.describe(), "shard": path.name, "record_offset": offset,
                     "episode_index": global_index, "image_key": self.keys.image,
                     "action_keys": list(self.keys.actions)}
        if isinstance(file_path, list) and file_path:
            meta_base["file_path"] = file_path[0].decode("utf-8", "replace")
        for s, t in pairs:
            if not texts[s] and not self.keep_unlabelled:
                continue
            load = partial(self.cache.load, path, offset)
            yield Transition(
                sample_id=f"{self.split}/{episode_id}:{s}-{t}", dataset=self.name, split=self.split,
                episode_id=episode_id,
                source=LazyImage(partial(load, s, f"{origin}[{s}]"), f"{origin}[{s}]"),
                target=LazyImage(partial(load, t, f"{origin}[{t}]"), f"{origin}[{t}]"),
                action_text=texts[s], action_vector=None if actions is None else actions[s:t],
                source_index=s, target_index=t, fps=self.keys.fps, frame_gap=t - s,
                source_time_s=s / self.keys.fps if self.keys.fps else None,
                target_time_s=t / self.keys.fps if self.keys.fps else None,
                meta=dict(meta_base))


def _motion(images: list[bytes], origin: str, max_pixels: int | None) -> np.ndarray:
    from .video import motion_magnitudes

    return motion_magnitudes(np.stack([decode_image(b, f"{origin}[{i}]", max_pixels) for i, b in enumerate(images)]))
