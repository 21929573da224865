"""The LeRobot dataset layout (codebase versions v2.0, v2.1, v3.0): info.json, the episodes and
tasks metadata, and where each episode's rows and videos live. `lerobot.read` builds samples on it;
the format itself is described in `lerobot`'s docstring."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, SampleError
from .common import FormatError, describe_folder, safe_join

FORMAT = "lerobot"
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
