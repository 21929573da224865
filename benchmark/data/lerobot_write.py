"""Writer of LeRobot v3.0 datasets, laid out exactly as LeRobot publishes them.

Used by the built-in Meta-World generator and the benchmarks. The layout follows
lerobot/src/lerobot/datasets/utils.py (v3.0):

    meta/info.json                              codebase_version "v3.0", fps, features, path templates
    meta/stats.json                             min/max/mean/std/count of the numeric features
    meta/tasks.parquet                          pandas frame: index "task" (the string), column task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode (columns below)
    data/chunk-000/file-000.parquet             one row per frame, image features as {bytes, path}
    videos/<video_key>/chunk-000/file-000.mp4   every episode of a camera back to back in one file

Episode columns: episode_index, tasks, length, data/chunk_index, data/file_index,
dataset_from_index, dataset_to_index, videos/<key>/{chunk_index, file_index, from_timestamp,
to_timestamp}, meta/episodes/{chunk_index, file_index}. LeRobot also stores per-episode
`stats/...` columns; its loader drops them (load_episodes), so they are not written here.

Data files roll over at episode boundaries past LeRobot's 100 MB (file-001, ...; chunk-001 after
1000 files), as LeRobot does; each camera's video stays in one file (the generator's videos are a
few MB, far below LeRobot's 500 MB per video file).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

CHUNKS_SIZE = 1000
DATA_FILE_SIZE_IN_MB = 100
VIDEO_FILE_SIZE_IN_MB = 500
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# LeRobot's encoder settings (video_utils.encode_video_frames: libsvtav1, yuv420p, g=2, crf=30).
# g=2 keeps seeking cheap. h264 is offered for players without AV1.
CODECS = {
    "av1": ("libsvtav1", {"g": "2", "crf": "30", "preset": "12"}),
    "h264": ("libx264", {"g": "2", "crf": "23", "preset": "veryfast"}),
}
CODEC_NAMES = {"libsvtav1": "av1", "libx264": "h264"}


def image_feature(height: int, width: int, channels: int = 3, video: bool = False, fps: float = 0,
                  codec: str = "av1") -> dict:
    """A LeRobot visual feature entry for info.json."""
    feature: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [height, width, channels],
                               "names": ["height", "width", "channels"]}
    if video:
        feature["info"] = {"video.height": height, "video.width": width, "video.codec": codec,
                           "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                           "video.channels": channels, "has_audio": False}
    return feature


class _VideoStream:
    """One mp4 that receives the frames of every episode of one camera, timestamps continuing."""

    def __init__(self, path: Path, fps: Fraction, height: int, width: int, codec: str):
        import av

        encoder, options = CODECS[codec]
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 logs its whole configuration at level info
        path.parent.mkdir(parents=True, exist_ok=True)
        # +bitexact: no encoder version string or creation time in the file, so the same frames
        # give the same bytes (the generator's determinism test relies on it).
        self.container = av.open(str(path), "w", options={"fflags": "+bitexact"})
        self.stream = self.container.add_stream(encoder, rate=fps, options=dict(options))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = Fraction(1) / fps
        self.frames = 0

    def add(self, frames: np.ndarray) -> None:
        import av

        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class V3Writer:
    """Accumulates episodes and writes a LeRobot v3.0 dataset under `root` on close().

    `features` are the dataset's own features (state, action, images, videos) as LeRobot writes
    them in info.json; the default ones (timestamp, frame_index, ...) are added here. Video
    features receive (T, H, W, 3) uint8 arrays, image features a list of PNG bytes per frame,
    numeric features (T, *shape) arrays.
    """

    def __init__(self, root: Path, fps: float, features: dict[str, dict], robot_type: str | None = None,
                 codec: str = "av1", splits: dict[str, str] | None = None):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        self.root = Path(root)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.features = {**features, **DEFAULT_FEATURES}
        self.robot_type, self.codec, self.splits = robot_type, codec, splits
        self.video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
        self.image_keys = [k for k, f in features.items() if f["dtype"] == "image"]
        self.numeric_keys = [k for k, f in features.items() if f["dtype"] not in ("video", "image")]
        for key in self.video_keys:
            self.features[key] = image_feature(*features[key]["shape"], video=True, fps=float(self.fps),
                                               codec=codec)
        self._videos: dict[str, _VideoStream] = {}
        self._columns = self._empty_columns()  # rows of the data file being filled
        self._file, self._file_bytes = 0, 0  # its number and (image + numeric) size
        self._numeric: dict[str, list] = {k: [] for k in [*self.numeric_keys, *DEFAULT_FEATURES]}  # for stats
        self._episodes: list[dict] = []
        self._tasks: dict[str, int] = {}
        self._frames = 0

    def _empty_columns(self) -> dict[str, list]:
        return {k: [] for k in [*self.numeric_keys, *self.image_keys, *DEFAULT_FEATURES]}

    def add_episode(self, task: str, numeric: dict[str, np.ndarray], images: dict[str, list[bytes]] | None = None,
                    videos: dict[str, np.ndarray] | None = None) -> int:
        images, videos = images or {}, videos or {}
        missing = (set(self.numeric_keys) - set(numeric)) | (set(self.image_keys) - set(images)) \
            | (set(self.video_keys) - set(videos))
        if missing:
            raise ValueError(f"episode lacks feature(s) {sorted(missing)}")
        length = len(next(iter([*numeric.values(), *images.values(), *videos.values()])))
        index = len(self._episodes)
        task_index = self._tasks.setdefault(task, len(self._tasks))
        frame_index = np.arange(length)
        values = {key: np.asarray(numeric[key], dtype=self.features[key]["dtype"]).reshape(length, -1)
                  for key in self.numeric_keys}
        values.update({"timestamp": (frame_index / float(self.fps)).astype(np.float32), "frame_index": frame_index,
                       "episode_index": np.full(length, index), "index": self._frames + frame_index,
                       "task_index": np.full(length, task_index)})
        size = sum(v.nbytes for v in values.values()) + sum(len(b) for key in self.image_keys for b in images[key])
        if self._file_bytes and self._file_bytes + size > DATA_FILE_SIZE_IN_MB * (1 << 20):
            self._flush()  # LeRobot starts the next data file at an episode boundary past the size limit
        self._file_bytes += size
        for key, array in values.items():
            self._columns[key].extend(array)
            self._numeric[key].extend(array)
        for key in self.image_keys:
            self._columns[key].extend(
                {"bytes": data, "path": f"frame-{i:06d}.png"} for i, data in enumerate(images[key]))
        row: dict[str, Any] = {
            "episode_index": index, "tasks": [task], "length": length,
            "data/chunk_index": self._file // CHUNKS_SIZE, "data/file_index": self._file % CHUNKS_SIZE,
            "dataset_from_index": self._frames, "dataset_to_index": self._frames + length,
        }
        for key in self.video_keys:
            frames = np.asarray(videos[key])
            if len(frames) != length:
                raise ValueError(f"video {key}: {len(frames)} frames for an episode of {length}")
            stream = self._video(key, frames.shape[1:3])
            start = stream.frames / self.fps
            stream.add(frames)
            row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                        f"videos/{key}/from_timestamp": float(start),
                        f"videos/{key}/to_timestamp": float(stream.frames / self.fps)})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self._episodes.append(row)
        self._frames += length
        return index

    def _video(self, key: str, hw: tuple[int, int]) -> _VideoStream:
        if key not in self._videos:
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            self._videos[key] = _VideoStream(path, self.fps, hw[0], hw[1], self.codec)
        return self._videos[key]

    def close(self, extra_info: dict | None = None) -> dict:
        """Finish the videos and write data, episodes, tasks, stats and info. Returns info."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        for stream in self._videos.values():
            stream.close()
        if self._columns["index"] or not self._episodes:
            self._flush()
        episodes_path = self.root / EPISODES_PATH
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self._episodes, schema=self._episodes_schema()), episodes_path)
        self._write_tasks()
        info = self._info(extra_info or {})
        _write_json(self.root / "meta" / "stats.json", self._stats())
        _write_json(self.root / "meta" / "info.json", info)
        return info

    def _flush(self) -> None:
        """Write the rows gathered so far as the next data file."""
        import pyarrow.parquet as pq

        path = self.root / DATA_PATH.format(chunk_index=self._file // CHUNKS_SIZE, file_index=self._file % CHUNKS_SIZE)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self._data_table(), path)
        self._file, self._file_bytes, self._columns = self._file + 1, 0, self._empty_columns()

    def _data_table(self):
        import pyarrow as pa

        fields, arrays, hf = [], [], {}
        for key in [*self.numeric_keys, *self.image_keys, *DEFAULT_FEATURES]:
            feature = self.features[key]
            dtype = pa.from_numpy_dtype(np.dtype(feature["dtype"])) if feature["dtype"] != "image" else None
            if feature["dtype"] == "image":
                typ = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
                hf[key] = {"_type": "Image"}
            elif key in DEFAULT_FEATURES:
                typ = dtype
                hf[key] = {"dtype": feature["dtype"], "_type": "Value"}
            else:
                # HF datasets Sequence(length=n) -> a fixed-size list column, as LeRobot's parquet files have
                typ = pa.list_(dtype, int(np.prod(feature["shape"])))
                hf[key] = {"feature": {"dtype": feature["dtype"], "_type": "Value"},
                           "length": int(np.prod(feature["shape"])), "_type": "Sequence"}
            values = self._columns[key]
            if typ is not None and pa.types.is_fixed_size_list(typ):
                flat = pa.array(np.concatenate(values) if values else np.zeros(0), type=dtype)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, typ.list_size))
            else:
                arrays.append(pa.array(values, type=typ))
            fields.append(pa.field(key, typ))
        metadata = {"huggingface": json.dumps({"info": {"features": hf}})}
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))

    def _episodes_schema(self):
        import pyarrow as pa

        fields = [("episode_index", pa.int64()), ("tasks", pa.list_(pa.string())), ("length", pa.int64()),
                  ("data/chunk_index", pa.int64()), ("data/file_index", pa.int64()),
                  ("dataset_from_index", pa.int64()), ("dataset_to_index", pa.int64())]
        for key in self.video_keys:
            fields += [(f"videos/{key}/chunk_index", pa.int64()), (f"videos/{key}/file_index", pa.int64()),
                       (f"videos/{key}/from_timestamp", pa.float64()), (f"videos/{key}/to_timestamp", pa.float64())]
        fields += [("meta/episodes/chunk_index", pa.int64()), ("meta/episodes/file_index", pa.int64())]
        return pa.schema(fields)

    def _write_tasks(self) -> None:
        import pandas as pd

        # exactly LeRobot's save_episode_tasks: the task string is the (named) index
        tasks = pd.DataFrame({"task_index": list(self._tasks.values())}, index=pd.Index(list(self._tasks), name="task"))
        tasks.to_parquet(self.root / "meta" / "tasks.parquet")

    def _stats(self) -> dict:
        stats = {}
        for key in [*self.numeric_keys, *DEFAULT_FEATURES]:
            values = np.asarray(self._numeric[key], dtype=np.float64).reshape(self._frames, -1)
            if not len(values):
                continue
            stats[key] = {"min": values.min(0).tolist(), "max": values.max(0).tolist(),
                          "mean": values.mean(0).tolist(), "std": values.std(0).tolist(), "count": [len(values)]}
        return stats

    def _info(self, extra: dict) -> dict:
        fps = float(self.fps)
        return {
            "codebase_version": "v3.0",
            "robot_type": self.robot_type,
            "total_episodes": len(self._episodes),
            "total_frames": self._frames,
            "total_tasks": len(self._tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILE_SIZE_IN_MB,
            "fps": int(fps) if fps.is_integer() else fps,
            "splits": self.splits or {"train": f"0:{len(self._episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": self.features,
            **extra,
        }


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W, 3) RGB or (H, W) label image -> PNG bytes (lossless, deterministic)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
