"""LeRobot datasets (Hugging Face LeRobot), codebase versions v2.0, v2.1 and v3.0, read as published.

v2.0 / v2.1: meta/info.json, meta/episodes.jsonl ({episode_index, tasks, length}), meta/tasks.jsonl
({task_index, task}), one parquet per episode (info "data_path", e.g.
data/chunk-000/episode_000000.parquet) and one mp4 per episode and camera (info "video_path", e.g.
videos/chunk-000/<video_key>/episode_000000.mp4); a frame is at its `timestamp` in the mp4.
v3.0: meta/info.json, meta/tasks.parquet (index "task", column task_index),
meta/episodes/chunk-XXX/file-XXX.parquet (episode_index, tasks, length, data/chunk_index,
data/file_index, dataset_from_index, dataset_to_index, videos/<key>/{chunk_index, file_index,
from_timestamp, to_timestamp}), data files holding many episodes and mp4s holding many episodes
back to back: a frame is at from_timestamp + timestamp, as LeRobot's _query_videos does.
Image features ("dtype": "image") are {bytes, path} structs in the data parquet.

Options: `camera` (a visual feature key; default the first one in info.json), `episodes` (list of
episode indices), `action_text` ("task": the episode's task string, the default), `max_pixels`.
Split: `spec.split` picks info["splits"][split] ("0:N" episode ranges) when the dataset declares
it; LeRobot datasets usually declare only "train" (all episodes), and then every episode is read
whatever the split name (a benchmark reads them as evaluation data).

Samples: the task's FrameSelection over each episode's frames; sample_id "<episode>:<src>-<tgt>"
(frame_index values); `action_vector` is the (k, action_dim) float32 array of the `action` rows
of frames src..tgt-1 (absent when the dataset has no `action`). Decoding: the frames that one
episode's selected samples need are decoded in one seek-then-sequential pass over its mp4 segment
(`video.FrameGroup` per (mp4, episode); in v2.x that is the whole file). An episode whose parquet
cannot be read yields one sample "<episode>:unreadable" that fails with the reason (counted,
never dropped); a missing or corrupt mp4 fails the samples that need it, naming path and episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from . import video
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, decode_image,
                     relative_origin, safe_join)
from ..core.frames import FrameSelection
from .lerobot_meta import FORMAT, VISUAL, Dataset, Episode, open_dataset

OPTIONS = {"camera": None, "episodes": None, "action_text": "task", **IMAGE_OPTIONS}


@dataclass
class Pair:
    """One (source, target) frame pair of an episode, with the episode's numeric columns."""

    episode: Episode
    src: int  # row positions inside the episode
    tgt: int
    rows: dict[str, np.ndarray]  # numeric columns of the whole episode, sorted by frame_index
    source: LazyImage
    target: LazyImage
    aux: dict[str, LazyImage]
    task: str  # the task string of the source frame (its task_index), else the episode's first task
    unreadable: bool = False  # the episode could not be listed: this pair only carries the error

    @property
    def frame_index(self) -> np.ndarray:
        return self.rows["frame_index"]

    @property
    def sample_id(self) -> str:
        if self.unreadable:
            return f"{self.episode.index}:unreadable"
        return f"{self.episode.index}:{int(self.frame_index[self.src])}-{int(self.frame_index[self.tgt])}"

    def action_vector(self) -> np.ndarray | None:
        actions = self.rows.get("action")
        return None if actions is None else np.asarray(actions[self.src:self.tgt], dtype=np.float32)


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    if options["action_text"] != "task":
        raise BadInput(f"format '{FORMAT}': option 'action_text' must be 'task', got {options['action_text']!r}")
    ds = open_dataset(root)
    camera = pick_camera(ds, options["camera"])
    for pair in iter_pairs(ds, frames, camera, select_episodes(ds, options["episodes"], spec.split),
                           max_pixels=options["max_pixels"]):
        yield make_transition(ds, pair, spec, frames, camera, pair.task)


def make_transition(ds: Dataset, pair: Pair, spec: Any, frames: FrameSelection, camera: str, action_text: str,
                    meta: dict | None = None, action_vector: np.ndarray | None = None) -> Transition:
    ts = pair.rows["timestamp"]
    return Transition(
        sample_id=pair.sample_id, dataset=ds.root.name, split=spec.split, episode_id=str(pair.episode.index),
        source=pair.source, target=pair.target, action_text=action_text,
        action_vector=pair.action_vector() if action_vector is None else action_vector,
        source_index=int(pair.frame_index[pair.src]), target_index=int(pair.frame_index[pair.tgt]),
        source_time_s=float(ts[pair.src]), target_time_s=float(ts[pair.tgt]), fps=ds.fps,
        frame_gap=int(pair.frame_index[pair.tgt] - pair.frame_index[pair.src]),
        meta={"frames": frames.describe(), "episode_index": pair.episode.index, "camera": camera,
              "codebase_version": ds.version, "task": pair.task, **(meta or {})},
        aux=pair.aux)


# ----------------------------------------------------------------------------- metadata

def pick_camera(ds: Dataset, camera: str | None) -> str:
    keys = ds.visual_keys()
    if not keys:
        raise FormatError(FORMAT, ds.root, "at least one image or video feature in meta/info.json",
                          f"features {sorted(ds.features)}")
    if camera is None:
        return keys[0]
    if camera not in keys:
        raise BadInput(f"format '{FORMAT}': option 'camera' {camera!r} is not a visual feature of "
                           f"{ds.root}; known: {', '.join(keys)}")
    return camera


def select_episodes(ds: Dataset, wanted: Any, split: str) -> list[Episode]:
    episodes = ds.episodes
    splits = ds.info.get("splits") or {}
    if split in splits:
        try:
            lo, hi = (int(x) for x in str(splits[split]).split(":"))
        except ValueError:
            raise FormatError(FORMAT, ds.root, "info.json splits as 'start:stop'", repr(splits[split])) from None
        episodes = [e for e in episodes if lo <= e.index < hi]
    if wanted is None:
        return episodes
    if not isinstance(wanted, (list, tuple)) or not all(isinstance(i, int) for i in wanted):
        raise BadInput(f"format '{FORMAT}': option 'episodes' must be a list of episode indices, got {wanted!r}")
    by_index = {e.index: e for e in episodes}
    unknown = [i for i in wanted if i not in by_index]
    if unknown:
        raise BadInput(f"format '{FORMAT}': option 'episodes': no episode(s) {unknown[:10]} in {ds.root} "
                           f"(split {split!r} has {len(episodes)} episodes)")
    return [by_index[i] for i in sorted(set(wanted))]


# ----------------------------------------------------------------------------- frames

class _DataFiles:
    """The data parquet of the current file, grouped by episode (v3 files hold many episodes)."""

    def __init__(self, ds: Dataset, image_keys: list[str]):
        self.ds, self.image_keys = ds, image_keys
        self.path: Path | None = None
        self.groups: dict[int, Any] = {}
        self.error: SampleError | None = None  # a file shared by many episodes fails each of them alike

    def episode(self, ep: Episode):
        if ep.data_path != self.path:
            self.path, self.groups, self.error = ep.data_path, {}, None
            try:
                self._load(ep)
            except SampleError as exc:
                self.error = exc
        if self.error is not None:
            raise SampleError(f"{self.error} (episode {ep.index})")
        if ep.index not in self.groups:
            raise SampleError(f"data file {ep.data_path} has no rows of episode {ep.index}")
        return self.groups[ep.index]

    def _load(self, ep: Episode) -> None:
        import pyarrow.parquet as pq

        numeric = [k for k, f in self.ds.features.items() if f.get("dtype") not in VISUAL]
        try:
            present = set(pq.read_schema(ep.data_path).names)
            table = pq.read_table(ep.data_path, columns=[c for c in numeric + self.image_keys if c in present])
        except FileNotFoundError as exc:
            raise SampleError(f"missing data file {ep.data_path}") from exc
        except Exception as exc:  # pyarrow's error classes for a corrupt file
            raise SampleError(f"cannot read data file {ep.data_path}: {exc}") from exc
        if "episode_index" not in table.column_names:
            raise SampleError(f"data file {ep.data_path} has no episode_index column")
        eps = table["episode_index"].to_numpy()
        order = np.argsort(eps, kind="stable")
        values, starts = np.unique(eps[order], return_index=True)
        bounds = list(starts[1:]) + [len(order)]
        self.groups = {int(v): table.take(order[s:e]) for v, s, e in zip(values, starts, bounds)}


def _columns(table, ds: Dataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Numeric columns of an episode as numpy with rows sorted by frame_index, and that order."""
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if pa.types.is_struct(column.type):
            continue
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) \
                or pa.types.is_large_list(column.type):
            out[name] = np.asarray(column.flatten().to_numpy(zero_copy_only=False)).reshape(len(column), -1)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    n = table.num_rows
    if "frame_index" not in out:
        out["frame_index"] = np.arange(n)
    if "timestamp" not in out:
        out["timestamp"] = out["frame_index"] / ds.fps
    order = np.argsort(out["frame_index"], kind="stable")
    return {k: v[order] for k, v in out.items()}, order


def iter_pairs(ds: Dataset, frames: FrameSelection, camera: str, episodes: list[Episode],
               aux_keys: dict[str, str] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[Pair]:
    """Every frame pair of `episodes` with LazyImages of `camera` (and of `aux_keys`: {aux name:
    image feature key}). A video's frames are shared through one FrameGroup per (mp4, episode).
    Images and video frames of more than `max_pixels` pixels fail their samples."""
    aux_keys = aux_keys or {}
    image_keys = [k for k in [camera, *aux_keys.values()] if ds.features[k]["dtype"] == "image"]
    data = _DataFiles(ds, image_keys)
    cache = video.FrameCache()
    for ep in episodes:
        try:
            table = data.episode(ep)
            rows, order = _columns(table, ds)
            loaders = {k: _loader(ds, ep, k, table, order, rows, cache, max_pixels)
                       for k in {camera, *aux_keys.values()}}
            pairs = frames.pairs(len(order), ds.fps, motion=lambda: _motion(loaders[camera], len(order)))
        except (SampleError, ValueError) as exc:
            yield _unreadable(ds, ep, camera, exc)
            continue
        task_index = rows.get("task_index")
        for s, t in pairs:
            task = ds.tasks.get(int(task_index[s])) if task_index is not None else None
            yield Pair(ep, s, t, rows, loaders[camera](s), loaders[camera](t),
                       {f"source_{a}": loaders[k](s) for a, k in aux_keys.items()}
                       | {f"target_{a}": loaders[k](t) for a, k in aux_keys.items()},
                       task if task is not None else (ep.tasks or [""])[0])


def _loader(ds: Dataset, ep: Episode, key: str, table, order: np.ndarray, rows: dict, cache,
            max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """row position -> LazyImage of feature `key`."""
    where = f"episode {ep.index}, {key}"
    rel = relative_origin  # files are named relative to the dataset root: sample logs carry no machine paths
    if ds.features[key]["dtype"] == "image":
        cells = table[key].combine_chunks().take(order).to_pylist() if key in table.column_names else None

        def image(pos: int) -> LazyImage:
            origin = f"{rel(ep.data_path, ds.root)}#episode={ep.index}&frame={int(rows['frame_index'][pos])}&key={key}"
            if cells is None:
                missing = SampleError(f"data file {ep.data_path} has no column {key} ({where})")
                return LazyImage(_raiser(missing), origin)
            cell = cells[pos] or {}
            data = cell.get("bytes") or (safe_join(ds.root, cell["path"], key) if cell.get("path") else None)
            if data is None:
                return LazyImage(_raiser(SampleError(f"empty image cell {origin}")), origin)
            return LazyImage(lambda d=data, o=origin: decode_image(d, o, max_pixels), origin)
        return image
    path, start = ep.videos[key]
    # frame position in the mp4 (v3: the episode's segment starts at from_timestamp)
    positions = np.rint((start + rows["timestamp"].astype(np.float64)) * ds.fps).astype(np.int64)
    group = video.FrameGroup(lambda keys, p=path: video.read_frames_seek(p, keys, max_pixels=max_pixels), cache,
                             name=f"{path}#{ep.index}")

    def frame(pos: int) -> LazyImage:
        index = int(positions[pos])
        return LazyImage(group.handle(index, where), f"{rel(path, ds.root)}#frame={index}&episode={ep.index}")
    frame.group = group  # type: ignore[attr-defined]  # tests count decodes per group
    return frame


def _motion(loader, n: int) -> np.ndarray:
    """Keyframes mode: motion magnitudes of every frame of the episode (decodes it all once)."""
    images = [loader(i) for i in range(n)]  # all handles first: the group decodes them in one pass
    stack = np.stack([image.load() for image in images])
    return video.motion_magnitudes(stack)


def _unreadable(ds: Dataset, ep: Episode, camera: str, exc: Exception) -> Pair:
    error = exc if isinstance(exc, SampleError) else SampleError(f"episode {ep.index} of {ds.root}: {exc}")
    failed = LazyImage(_raiser(error), f"{relative_origin(ep.data_path, ds.root)}#episode={ep.index}")
    rows = {"frame_index": np.zeros(1, np.int64), "timestamp": np.zeros(1)}
    return Pair(ep, 0, 0, rows, failed, failed, {}, (ep.tasks or [""])[0], unreadable=True)


def _raiser(exc: Exception):
    def load():
        raise exc
    return load
