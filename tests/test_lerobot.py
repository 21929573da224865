"""LeRobot reader: tiny v2.1 and v3.0 datasets written here with pyarrow + PyAV in the published layout
(info.json, episodes.jsonl / episodes parquet, tasks, data parquet, mp4 per episode / several episodes
per mp4), read back and compared with the frames that were written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wmbench.data import lerobot, video
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec
from video_fixtures import encode_video

FPS = 10
SIZE = 64
KEY = "observation.images.top"
TASKS = ["pick up the cube", "open the drawer"]
LENGTHS = [7, 12, 9]  # ragged on purpose


def make_frame(i: int) -> np.ndarray:
    """Frame i: flat colours that change a lot from frame to frame, and a square that moves."""
    frame = np.empty((SIZE, SIZE, 3), np.uint8)
    frame[..., 0] = 30 + (i * 53) % 190
    frame[..., 1] = 30 + (i * 97) % 190
    frame[..., 2] = np.linspace(40, 200, SIZE, dtype=np.uint8)[None, :]
    r = 4 + (i * 7) % 40
    frame[r:r + 16, 8:24] = 250
    return frame


def episode_frames(ep: int) -> np.ndarray:
    start = sum(LENGTHS[:ep])
    return np.stack([make_frame(start + i) for i in range(LENGTHS[ep])])


def actions(ep: int) -> np.ndarray:
    n = LENGTHS[ep]
    return (np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * ep)


def encode(path: Path, frames: np.ndarray, codec: str) -> None:
    options = {"g": "2", "crf": "30", "preset": "12"} if codec == "libsvtav1" else {"g": "2", "crf": "18"}
    encode_video(path, frames, codec, FPS, options=options)


def png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def features(visual: str) -> dict:
    return {
        KEY: {"dtype": visual, "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["dx", "dy"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def data_table(episodes: list[int], images: bool = False):
    import pyarrow as pa

    cols: dict[str, list] = {k: [] for k in ["observation.state", "action", "timestamp", "frame_index",
                                             "episode_index", "index", "task_index"]}
    if images:
        cols[KEY] = []
    for ep in episodes:
        n, start = LENGTHS[ep], sum(LENGTHS[:ep])
        cols["observation.state"] += [[float(i), float(ep)] for i in range(n)]
        cols["action"] += actions(ep).tolist()
        cols["timestamp"] += [i / FPS for i in range(n)]
        cols["frame_index"] += list(range(n))
        cols["episode_index"] += [ep] * n
        cols["index"] += list(range(start, start + n))
        cols["task_index"] += [ep % 2] * n
        if images:
            cols[KEY] += [{"bytes": png(f), "path": f"frame-{i:06d}.png"} for i, f in enumerate(episode_frames(ep))]
    types = {"observation.state": pa.list_(pa.float32()), "action": pa.list_(pa.float32()),
             "timestamp": pa.float32(), KEY: pa.struct([("bytes", pa.binary()), ("path", pa.string())])}
    return pa.table({k: pa.array(v, type=types.get(k, pa.int64())) for k, v in cols.items()})


def write_v21(root: Path, codec: str = "libx264", version: str = "v2.1") -> Path:
    """v2.1 (v2.0 is the same layout with meta/stats.json instead of meta/episodes_stats.jsonl)."""
    import pyarrow.parquet as pq

    info = {"codebase_version": version, "robot_type": "test", "total_episodes": 3, "total_frames": sum(LENGTHS),
            "total_tasks": 2, "total_videos": 3, "total_chunks": 1, "chunks_size": 1000, "fps": FPS,
            "splits": {"train": "0:3"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features("video")}
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (root / "meta" / "tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n"
                                                       for i, t in enumerate(TASKS)))
    (root / "meta" / "episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": ep, "tasks": [TASKS[ep % 2]], "length": n}) + "\n"
        for ep, n in enumerate(LENGTHS)))
    for ep in range(3):
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(data_table([ep]), root / f"data/chunk-000/episode_{ep:06d}.parquet")
        encode(root / f"videos/chunk-000/{KEY}/episode_{ep:06d}.mp4", episode_frames(ep), codec)
    return root


def write_v3(root: Path, images: bool = False) -> Path:
    """v3.0: all episodes in one data file and (video) one AV1 mp4, back to back."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = {"codebase_version": "v3.0", "robot_type": "test", "total_episodes": 3, "total_frames": sum(LENGTHS),
            "total_tasks": 2, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": FPS, "splits": {"train": "0:3"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": None if images else "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features("image" if images else "video")}
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    pd.DataFrame({"task_index": [0, 1]}, index=pd.Index(TASKS, name="task")).to_parquet(root / "meta/tasks.parquet")
    pq.write_table(data_table([0, 1, 2], images), root / "data/chunk-000/file-000.parquet")
    rows = []
    for ep, n in enumerate(LENGTHS):
        start = sum(LENGTHS[:ep])
        row = {"episode_index": ep, "tasks": [TASKS[ep % 2]], "length": n, "data/chunk_index": 0,
               "data/file_index": 0, "dataset_from_index": start, "dataset_to_index": start + n,
               "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
               "stats/action/mean": [0.0, 0.0]}  # per-episode stats columns, as LeRobot writes them
        if not images:
            row.update({f"videos/{KEY}/chunk_index": 0, f"videos/{KEY}/file_index": 0,
                        f"videos/{KEY}/from_timestamp": start / FPS, f"videos/{KEY}/to_timestamp": (start + n) / FPS})
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    if not images:
        encode(root / f"videos/{KEY}/chunk-000/file-000.mp4", np.concatenate([episode_frames(e) for e in range(3)]),
               "libsvtav1")
    return root


def spec(**options) -> DatasetSpec:
    return DatasetSpec(format="lerobot", subfolder="robot", split="test", options=options)


def read(root: Path, frames: FrameSelection | None = None, **options) -> list:
    return list(lerobot.read(root, spec(**options), frames or FrameSelection(mode="gap", gap=3)))


def assert_frame(image: np.ndarray, ep: int, index: int, tolerance: float) -> None:
    """The decoded image is the written frame `index` of episode `ep`: closest of all written frames,
    and within `tolerance` mean absolute error (0 for lossless)."""
    written = np.concatenate([episode_frames(e) for e in range(3)]).astype(np.int16)
    errors = np.abs(written - image.astype(np.int16)).mean(axis=(1, 2, 3))
    assert int(np.argmin(errors)) == sum(LENGTHS[:ep]) + index
    assert errors.min() <= tolerance


@pytest.mark.parametrize("layout", ["v3-av1", "v21-h264", "v20-av1", "v3-images"])
def test_frames_timestamps_and_episode_boundaries(tmp_path, layout):
    root = {"v3-av1": lambda: write_v3(tmp_path / "d"), "v21-h264": lambda: write_v21(tmp_path / "d"),
            "v20-av1": lambda: write_v21(tmp_path / "d", "libsvtav1", "v2.0"),
            "v3-images": lambda: write_v3(tmp_path / "d", images=True)}[layout]()
    samples = read(root)
    expected = [(ep, t) for ep, n in enumerate(LENGTHS) for t in range(0, n - 3, 3)]
    assert [s.sample_id for s in samples] == [f"{ep}:{t}-{t + 3}" for ep, t in expected]
    tolerance = 0 if layout == "v3-images" else 6
    for s, (ep, t) in zip(samples, expected):
        assert s.episode_id == str(ep) and s.source_index == t and s.target_index == t + 3 and s.frame_gap == 3
        assert s.source_time_s == pytest.approx(t / FPS) and s.target_time_s == pytest.approx((t + 3) / FPS)
        assert s.fps == FPS and s.action_text == TASKS[ep % 2] and s.meta["frames"] == {"mode": "gap", "gap": 3,
                                                                                         "stride": None}
        np.testing.assert_array_equal(s.action_vector, actions(ep)[t:t + 3])
        assert_frame(s.source.load(), ep, t, tolerance)
        assert_frame(s.target.load(), ep, t + 3, tolerance)


def test_first_last_frames_of_each_episode_in_a_shared_v3_video(tmp_path):
    root = write_v3(tmp_path / "d")
    samples = read(root, FrameSelection(mode="first_last"))
    assert [s.sample_id for s in samples] == [f"{ep}:0-{n - 1}" for ep, n in enumerate(LENGTHS)]
    for ep, s in enumerate(samples):  # the last frame of an episode is not the first of the next one
        assert_frame(s.source.load(), ep, 0, 6)
        assert_frame(s.target.load(), ep, LENGTHS[ep] - 1, 6)


@pytest.mark.parametrize("layout", ["v3", "v21"])
def test_one_decode_per_episode_video_segment(tmp_path, monkeypatch, layout):
    root = write_v3(tmp_path / "d") if layout == "v3" else write_v21(tmp_path / "d")
    calls: list[tuple[str, list[int]]] = []
    real = video.read_frames_seek
    monkeypatch.setattr(video, "read_frames_seek", lambda path, keys, *a, **k: calls.append(
        (Path(path).name, list(keys))) or real(path, keys, *a, **k))
    samples = read(root, FrameSelection(mode="gap", gap=2, stride=1))
    for s in samples:
        s.source.load()
        s.target.load()
    assert len(calls) == len(LENGTHS)  # one decoding pass per episode (v3: per segment of the shared mp4)
    for (name, keys), (ep, n) in zip(calls, enumerate(LENGTHS)):
        offset = sum(LENGTHS[:ep]) if layout == "v3" else 0  # v3 frames sit at from_timestamp in the file
        assert keys == [offset + i for i in range(n)]
    # the runner keeps a subset and drops the rest: only the kept samples' frames are decoded
    calls.clear()
    kept = [s for s in read(root, FrameSelection(mode="gap", gap=2, stride=1)) if s.episode_id == "1"][:2]
    for s in kept:
        s.source.load()
        s.target.load()
    assert len(calls) == 1 and calls[0][1] == [LENGTHS[0] * (layout == "v3") + i for i in (0, 1, 2, 3)]


def test_keyframes_selection_measures_motion_from_the_decoded_episode(tmp_path):
    root = write_v3(tmp_path / "d")
    samples = read(root, FrameSelection(mode="keyframes", top_k=3, min_interval=2))
    assert len(samples) == 2 * len(LENGTHS)
    for s in samples:
        assert 0 <= s.source_index < s.target_index < LENGTHS[int(s.episode_id)]
        assert s.target_index - s.source_index >= 2
        assert_frame(s.target.load(), int(s.episode_id), s.target_index, 6)


def test_missing_and_corrupt_video_fail_the_sample_naming_the_path(tmp_path):
    root = write_v21(tmp_path / "d")
    (root / f"videos/chunk-000/{KEY}/episode_000001.mp4").unlink()
    bad = root / f"videos/chunk-000/{KEY}/episode_000002.mp4"
    bad.write_bytes(bad.read_bytes()[:200])
    samples = {s.episode_id: s for s in read(root)}
    samples["0"].source.load()  # the intact episode still loads
    with pytest.raises(SampleError, match=r"episode_000001\.mp4.*episode 1"):
        samples["1"].source.load()
    with pytest.raises(SampleError, match=r"episode_000002\.mp4"):
        samples["2"].target.load()


def test_unreadable_data_parquet_yields_one_failing_sample(tmp_path):
    root = write_v21(tmp_path / "d")
    (root / "data/chunk-000/episode_000001.parquet").write_bytes(b"not parquet")
    samples = read(root)
    failed = [s for s in samples if s.episode_id == "1"]
    assert [s.sample_id for s in failed] == ["1:unreadable"]
    with pytest.raises(SampleError, match="episode_000001.parquet"):
        failed[0].source.load()
    assert len(samples) > 1


def test_corrupt_shared_v3_data_file_fails_every_episode_naming_it(tmp_path):
    root = write_v3(tmp_path / "d")
    (root / "data/chunk-000/file-000.parquet").write_bytes(b"PAR1 garbage")
    samples = read(root)
    assert [s.sample_id for s in samples] == ["0:unreadable", "1:unreadable", "2:unreadable"]
    for ep, s in enumerate(samples):
        with pytest.raises(SampleError, match=rf"file-000.parquet.*\(episode {ep}\)"):
            s.target.load()


def test_not_a_lerobot_folder_is_a_format_error(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(FormatError, match=r"expected meta/info.json.*found readme.txt, videos/"):
        read(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("{not json")
    with pytest.raises(FormatError, match="info.json to be JSON"):
        read(tmp_path)


def test_unsupported_version_and_bad_options(tmp_path):
    root = write_v3(tmp_path / "d", images=True)
    with pytest.raises(BadInput, match="unknown option.*'fps'"):
        read(root, fps=3)
    with pytest.raises(BadInput, match="camera.*'wrist'.*observation.images.top"):
        read(root, camera="wrist")
    with pytest.raises(BadInput, match=r"no episode\(s\) \[7\]"):
        read(root, episodes=[7])
    assert {s.episode_id for s in read(root, episodes=[2, 0])} == {"0", "2"}
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(BadInput, match="codebase_version 'v1.6' is not supported"):
        read(root)


def test_writer_round_trip(tmp_path):
    """wmbench.data.lerobot_write (used by the Meta-World generator) writes what the reader reads."""
    from wmbench.data.lerobot_write import V3Writer, image_feature, png_bytes

    feats = {KEY: image_feature(SIZE, SIZE, video=True), "observation.mask": image_feature(SIZE, SIZE, 1),
             "action": {"dtype": "float32", "shape": [2], "names": None}}
    writer = V3Writer(tmp_path / "w", FPS, feats, codec="av1")
    for ep in range(3):
        masks = [png_bytes(np.full((SIZE, SIZE), ep + i % 3, np.uint8)) for i in range(LENGTHS[ep])]
        writer.add_episode(TASKS[ep % 2], {"action": actions(ep)}, images={"observation.mask": masks},
                           videos={KEY: episode_frames(ep)})
    info = writer.close()
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == sum(LENGTHS)
    ds = lerobot.open_dataset(tmp_path / "w")
    assert [e.videos[KEY][1] for e in ds.episodes] == pytest.approx([0, 0.7, 1.9])
    pairs = list(lerobot.iter_pairs(ds, FrameSelection(mode="first_last"), KEY, ds.episodes,
                                    {"mask": "observation.mask"}))
    for ep, pair in enumerate(pairs):
        assert_frame(pair.target.load(), ep, LENGTHS[ep] - 1, 6)
        mask = pair.aux["target_mask"].load()
        assert mask.shape == (SIZE, SIZE, 3) and (mask == ep + (LENGTHS[ep] - 1) % 3).all()
        np.testing.assert_array_equal(pair.action_vector(), actions(ep)[:LENGTHS[ep] - 1])


def test_writer_rolls_data_files_over_at_episode_boundaries(tmp_path, monkeypatch):
    from wmbench.data import lerobot_write

    monkeypatch.setattr(lerobot_write, "DATA_FILE_SIZE_IN_MB", 1e-4)  # ~100 bytes: one episode per file
    feats = {KEY: lerobot_write.image_feature(SIZE, SIZE), "action": {"dtype": "float32", "shape": [2], "names": None}}
    writer = lerobot_write.V3Writer(tmp_path / "w", FPS, feats)
    for ep in range(3):
        writer.add_episode(TASKS[ep % 2], {"action": actions(ep)},
                           images={KEY: [lerobot_write.png_bytes(f) for f in episode_frames(ep)]})
    writer.close()
    assert sorted(p.name for p in (tmp_path / "w/data/chunk-000").iterdir()) == [
        "file-000.parquet", "file-001.parquet", "file-002.parquet"]
    samples = list(lerobot.read(tmp_path / "w", spec(), FrameSelection(mode="first_last")))
    for ep, s in enumerate(samples):
        assert s.action_text == TASKS[ep % 2]
        assert_frame(s.target.load(), ep, LENGTHS[ep] - 1, 0)


def test_origins_are_relative_to_the_dataset_root(tmp_path):
    root = write_v21(tmp_path / "d")
    (root / "data/chunk-000/episode_000001.parquet").write_bytes(b"not parquet")  # one unreadable episode
    samples = read(root) + read(write_v3(tmp_path / "images", images=True))
    assert any(s.sample_id.endswith(":unreadable") for s in samples)
    for s in samples:
        for origin in (s.describe()["source"], s.describe()["target"]):
            assert not origin.startswith("/") and str(tmp_path) not in origin, origin
