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
episode indices), `action_text` ("task": the episode's task string, the default).
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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from . import video
from .common import FormatError, check_options, decode_image, describe_folder, safe_join
from ..core.frames import FrameSelection

FORMAT = "lerobot"
OPTIONS = {"camera": None, "episodes": None, "action_text": "task"}
VERSIONS = ("v2.0", "v2.1", "v3.0")
VISUAL = ("video", "image")


@dataclass
class Episode:
    index: int
    tasks: list[str]
    length: int
    data_path: Path
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key -> (mp4, from_timestamp)


@dataclass
class Dataset:
    root: Path
    info: dict
    version: str
    fps: float
    episodes: list[Episode]
    tasks: dict[int, str]

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    def visual_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") in VISUAL]


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
    for pair in iter_pairs(ds, frames, camera, select_episodes(ds, options["episodes"], spec.split)):
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

def open_dataset(root: Path) -> Dataset:
    """Read meta/ of a LeRobot dataset: FormatError when it is not one, BadInput for a version
    this reader does not support."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise FormatError(FORMAT, root, "meta/info.json (a LeRobot dataset)", describe_folder(root))
    info = _load_json(info_path, root)
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict) or "fps" not in info:
        raise FormatError(FORMAT, root, "meta/info.json with 'features' and 'fps'", str(info)[:200])
    version = str(info.get("codebase_version", ""))
    if version not in VERSIONS:
        raise BadInput(f"{root}: LeRobot codebase_version {version or '(missing)'!r} is not supported; "
                           f"supported: {', '.join(VERSIONS)} (convert older datasets with LeRobot's "
                           "conversion scripts)")
    if version == "v3.0":
        episodes, tasks = _episodes_v3(root, info), _tasks_v3(root)
    else:
        episodes, tasks = _episodes_v2(root, info), _tasks_v2(root)
    return Dataset(root, info, version, float(info["fps"]), episodes, tasks)


def _load_json(path: Path, root: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(FORMAT, root, f"{path.relative_to(root)} to be JSON", f"{type(exc).__name__}: {exc}")


def _jsonl(path: Path, root: Path) -> list[dict]:
    if not path.is_file():
        raise FormatError(FORMAT, root, f"{path.relative_to(root)}", describe_folder(path.parent))
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise FormatError(FORMAT, root, f"JSON lines in {path.relative_to(root)}", f"line {n}: {exc}")
    return rows


def _path(root: Path, template: str, **fields: Any) -> Path:
    try:
        return safe_join(root, template.format(**fields), "LeRobot path")
    except (KeyError, IndexError, ValueError) as exc:
        raise FormatError(FORMAT, root, f"a path template with fields {sorted(fields)}", f"{template!r} ({exc})")
    except SampleError as exc:
        raise FormatError(FORMAT, root, "paths inside the dataset", str(exc))


def _video_keys(info: dict) -> list[str]:
    return [k for k, f in info["features"].items() if f.get("dtype") == "video"]


def _episodes_v2(root: Path, info: dict) -> list[Episode]:
    chunks = int(info.get("chunks_size", 1000))
    episodes = []
    for row in _jsonl(root / "meta" / "episodes.jsonl", root):
        try:
            ep = int(row["episode_index"])
            data = _path(root, info["data_path"], episode_chunk=ep // chunks, episode_index=ep)
            videos = {k: (_path(root, info["video_path"], episode_chunk=ep // chunks, video_key=k,
                                episode_index=ep), 0.0) for k in _video_keys(info)}
            episodes.append(Episode(ep, list(row.get("tasks") or []), int(row["length"]), data, videos))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(FORMAT, root, "episodes.jsonl rows {episode_index, tasks, length} and info "
                              "data_path/video_path", f"{row!r:.200} ({type(exc).__name__}: {exc})")
    return sorted(episodes, key=lambda e: e.index)


def _tasks_v2(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.jsonl"
    return {int(r["task_index"]): str(r["task"]) for r in _jsonl(path, root)} if path.is_file() else {}


def _read_parquet(path: Path, root: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (OSError, ValueError, KeyError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) or OSError
        raise FormatError(FORMAT, root, f"a readable parquet file {path.relative_to(root)}",
                          f"{type(exc).__name__}: {exc}")


def _episodes_v3(root: Path, info: dict) -> list[Episode]:
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise FormatError(FORMAT, root, "meta/episodes/chunk-XXX/file-XXX.parquet (v3.0)",
                          describe_folder(root / "meta" / "episodes"))
    episodes = []
    for file in files:
        table = _read_parquet(file, root)
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        for row in table.select(keep).to_pylist():
            try:
                ep = int(row["episode_index"])
                data = _path(root, info["data_path"], chunk_index=int(row["data/chunk_index"]),
                             file_index=int(row["data/file_index"]))
                videos = {k: (_path(root, info["video_path"], video_key=k,
                                    chunk_index=int(row[f"videos/{k}/chunk_index"]),
                                    file_index=int(row[f"videos/{k}/file_index"])),
                              float(row[f"videos/{k}/from_timestamp"])) for k in _video_keys(info)}
                episodes.append(Episode(ep, list(row.get("tasks") or []), int(row["length"]), data, videos))
            except (KeyError, TypeError, ValueError) as exc:
                raise FormatError(FORMAT, root, f"v3.0 episode columns in {file.relative_to(root)}",
                                  f"{type(exc).__name__}: {exc}")
    return sorted(episodes, key=lambda e: e.index)


def _tasks_v3(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        raise FormatError(FORMAT, root, "meta/tasks.parquet (v3.0)", describe_folder(root / "meta"))
    frame = _read_parquet(path, root).to_pandas()
    strings = frame["task"] if "task" in frame.columns else frame.index  # LeRobot keeps the string as index
    return {int(i): str(t) for i, t in zip(frame["task_index"], strings)}


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
               aux_keys: dict[str, str] | None = None) -> Iterator[Pair]:
    """Every frame pair of `episodes` with LazyImages of `camera` (and of `aux_keys`: {aux name:
    image feature key}). A video's frames are shared through one FrameGroup per (mp4, episode)."""
    aux_keys = aux_keys or {}
    image_keys = [k for k in [camera, *aux_keys.values()] if ds.features[k]["dtype"] == "image"]
    data = _DataFiles(ds, image_keys)
    cache = video.FrameCache()
    for ep in episodes:
        try:
            table = data.episode(ep)
            rows, order = _columns(table, ds)
            loaders = {k: _loader(ds, ep, k, table, order, rows, cache) for k in {camera, *aux_keys.values()}}
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


def _loader(ds: Dataset, ep: Episode, key: str, table, order: np.ndarray, rows: dict, cache):
    """row position -> LazyImage of feature `key`."""
    where = f"episode {ep.index}, {key}"
    if ds.features[key]["dtype"] == "image":
        cells = table[key].combine_chunks().take(order).to_pylist() if key in table.column_names else None

        def image(pos: int) -> LazyImage:
            origin = f"{_rel(ds, ep.data_path)}#episode={ep.index}&frame={int(rows['frame_index'][pos])}&key={key}"
            if cells is None:
                missing = SampleError(f"data file {ep.data_path} has no column {key} ({where})")
                return LazyImage(_raiser(missing), origin)
            cell = cells[pos] or {}
            data = cell.get("bytes") or (safe_join(ds.root, cell["path"], key) if cell.get("path") else None)
            if data is None:
                return LazyImage(_raiser(SampleError(f"empty image cell {origin}")), origin)
            return LazyImage(lambda d=data, o=origin: decode_image(d, o), origin)
        return image
    path, start = ep.videos[key]
    # frame position in the mp4 (v3: the episode's segment starts at from_timestamp)
    positions = np.rint((start + rows["timestamp"].astype(np.float64)) * ds.fps).astype(np.int64)
    group = video.FrameGroup(lambda keys, p=path: video.read_frames_seek(p, keys), cache, name=f"{path}#{ep.index}")

    def frame(pos: int) -> LazyImage:
        index = int(positions[pos])
        return LazyImage(group.handle(index, where), f"{_rel(ds, path)}#frame={index}&episode={ep.index}")
    frame.group = group  # type: ignore[attr-defined]  # tests count decodes per group
    return frame


def _rel(ds: Dataset, path: Path) -> str:
    """A file named relative to the dataset root, so sample logs carry no machine paths (as Aurora's)."""
    try:
        return str(Path(path).relative_to(ds.root))
    except ValueError:
        return str(path)


def _motion(loader, n: int) -> np.ndarray:
    """Keyframes mode: motion magnitudes of every frame of the episode (decodes it all once)."""
    images = [loader(i) for i in range(n)]  # all handles first: the group decodes them in one pass
    stack = np.stack([image.load() for image in images])
    return video.motion_magnitudes(stack)


def _unreadable(ds: Dataset, ep: Episode, camera: str, exc: Exception) -> Pair:
    error = exc if isinstance(exc, SampleError) else SampleError(f"episode {ep.index} of {ds.root}: {exc}")
    failed = LazyImage(_raiser(error), f"{ep.data_path}#episode={ep.index}")
    rows = {"frame_index": np.zeros(1, np.int64), "timestamp": np.zeros(1)}
    return Pair(ep, 0, 0, rows, failed, failed, {}, (ep.tasks or [""])[0], unreadable=True)


def _raiser(exc: Exception):
    def load():
        raise exc
    return load
