"""EPIC-KITCHENS-100 reader on fixtures in the published layout: EPIC_100_*.csv and RGB frames as
frame_%010d.jpg folders and as the per-video tar files of the download scripts."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS
from wmbench.data import epic as epic_module
from wmbench.data.common import FormatError
from wmbench.data.epic import read
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec, load_task

COLUMNS = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
           "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
           "noun_class", "all_nouns", "all_noun_classes"]
ROWS = [
    ["P01_01_0", "P01", "P01_01", "00:00:01.089", "00:00:00.14", "00:00:00.30", "8", "18", "open door",
     "open", "3", "door", "3", "['door']", "[3]"],
    ["P01_01_1", "P01", "P01_01", "00:00:02.629", "00:00:01.20", "00:00:01.40", "73", "85", "turn on light",
     "turn-on", "6", "light", "114", "['light']", "[114]"],
    ["P02_101_0", "P02", "P02_101", "00:00:01.000", "00:00:01.10", "00:00:01.30", "56", "66",
     "take plate and cup", "take", "0", "plate", "2", "['plate', 'cup']", "[2, 13]"],
    ["P03_03_0", "P03", "P03_03", "00:00:01.000", "00:00:01.00", "00:00:01.20", "61", "73", "wash pan",
     "wash", "2", "pan", "11", "['pan']", "[11]"],
]


def frame_value(frame: int) -> int:
    return (frame * 3) % 250


def frame_jpeg(frame: int) -> bytes:
    """A flat-coloured frame whose level encodes its number (JPEG keeps flat colours within ~1)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 20, 3), frame_value(frame), np.uint8)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_csv(path: Path, rows, columns=COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def write_tar(path: Path, frames: range, skip: set[int] = frozenset()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for f in frames:
            if f in skip:
                continue
            data = frame_jpeg(f)
            info = tarfile.TarInfo(f"./frame_{f:010d}.jpg")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def epic(tmp_path: Path) -> Path:
    root = tmp_path / "epic-kitchens"
    write_csv(root / "epic-kitchens-100-annotations/EPIC_100_validation.csv", ROWS)
    folder = root / "P01/rgb_frames/P01_01"  # extracted frames
    folder.mkdir(parents=True)
    for f in list(range(8, 19)) + list(range(73, 86)):
        (folder / f"frame_{f:010d}.jpg").write_bytes(frame_jpeg(f))
    write_tar(root / "P02/rgb_frames/P02_101.tar", range(1, 80), skip={60})  # as downloaded, not unpacked
    return root  # P03_03 has no frames at all


def _read(root: Path, frames=FrameSelection(mode="first_last"), split="validation", **options):
    return list(read(root, DatasetSpec("epic", "epic-kitchens", split=split, options=options), frames))


def level(image: np.ndarray) -> float:
    return float(image.mean())


def test_registered():
    assert FORMATS.get("epic") is read


def test_first_last_within_segments_from_folders_and_tars(epic):
    ts = _read(epic)
    assert [t.sample_id for t in ts] == ["P01_01_0:8-18", "P01_01_1:73-85", "P02_101_0:56-66", "P03_03_0:61-73"]
    for t in ts[:3]:
        assert abs(level(t.source.load()) - frame_value(t.source_index)) < 2
        assert abs(level(t.target.load()) - frame_value(t.target_index)) < 2
    t = ts[2]
    assert t.action_text == "take plate and cup" and t.episode_id == "P02_101" and t.meta["narration_id"] == "P02_101_0"
    assert t.meta["verb"] == "take" and t.meta["verb_class"] == 0 and t.meta["noun_class"] == 2
    assert t.meta["all_nouns"] == ["plate", "cup"] and t.meta["all_noun_classes"] == [2, 13]
    assert t.meta["frames"] == {"mode": "first_last"}
    assert t.source.origin.endswith("P02_101.tar:frame_0000000056.jpg")
    assert not (epic / "P02/rgb_frames/P02_101").exists()  # read in place, nothing unpacked


def test_gap_pairs_and_one_tar_pass_per_video(epic, monkeypatch):
    opened = []
    real = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda p, *a, **k: opened.append(Path(p).name) or real(p, *a, **k))
    ts = [t for t in _read(epic, frames=FrameSelection(mode="gap", gap=3)) if t.meta["video_id"] == "P02_101"]
    assert [(t.source_index, t.target_index) for t in ts] == [(56, 59), (59, 62), (62, 65)]
    for t in ts:
        if 60 in (t.source_index, t.target_index):
            continue
        assert abs(level(t.target.load()) - frame_value(t.target_index)) < 2
        assert abs(level(t.source.load()) - frame_value(t.source_index)) < 2
    assert opened == ["P02_101.tar"]


def test_frame_missing_from_a_tar_fails_only_its_samples(epic):
    ts = [t for t in _read(epic, frames=FrameSelection(mode="gap", gap=2)) if t.meta["video_id"] == "P02_101"]
    bad = next(t for t in ts if t.target_index == 60)
    good = next(t for t in ts if t.source_index == 62)
    with pytest.raises(SampleError, match=r"frame_0000000060\.jpg is not in .*P02_101\.tar.*narration P02_101_0"):
        bad.target.load()
    assert good.source.load().shape == (16, 20, 3)


def test_video_without_frames_names_what_was_tried(epic):
    t = _read(epic)[-1]
    with pytest.raises(SampleError) as info:
        t.source.load()
    message = str(info.value)
    assert "P03/rgb_frames/P03_03.tar" in message and "rgb_frames/P03/P03_03/" in message
    assert "narration P03_03_0" in message


def test_other_layouts_and_the_layout_option(tmp_path):
    root = tmp_path / "epic"
    write_csv(root / "EPIC_100_train.csv", ROWS[:1])
    folder = root / "rgb_frames/P01/P01_01"
    folder.mkdir(parents=True)
    for f in range(8, 19):
        (folder / f"frame_{f:010d}.jpg").write_bytes(frame_jpeg(f))
    t = _read(root, split="train")[0]
    assert abs(level(t.target.load()) - frame_value(18)) < 2
    write_tar(root / "custom/P01_01.tar", range(8, 19))
    t = _read(root, split="train", frames_layout="custom/{video_id}")[0]
    assert t.source.origin.endswith("custom/P01_01.tar:frame_0000000008.jpg")
    assert abs(level(t.source.load()) - frame_value(8)) < 2
    with pytest.raises(BadInput, match="frames_layout"):
        _read(root, split="train", frames_layout="{camera}/{video_id}")


def test_fps_from_video_info_or_estimated(epic):
    ts = _read(epic, frames=FrameSelection(mode="seconds", seconds=0.1))
    p01 = [t for t in ts if t.meta["video_id"] == "P01_01"]
    # P01_01_1 starts at 1.20 s on frame 73: (73 - 1) / 1.2 = 60 fps (segment 0 starts before 1 s)
    assert p01[0].fps == 60.0 and p01[0].meta["fps_source"] == "estimated from the annotations"
    assert [(t.source_index, t.target_index) for t in p01 if t.meta["narration_id"] == "P01_01_0"] == [(8, 14)]
    write_csv(epic / "epic-kitchens-100-annotations/EPIC_100_video_info.csv",
              [["P01_01", "1652.15", "59.94", "1920x1080"], ["P02_101", "100.0", "50.0", "1920x1080"]],
              columns=["video_id", "duration", "fps", "resolution"])
    ts = _read(epic, frames=FrameSelection(mode="seconds", seconds=0.1))
    assert {t.meta["video_id"]: t.fps for t in ts if t.fps} == {"P01_01": 59.94, "P02_101": 50.0}
    assert ts[0].meta["fps_source"] == "EPIC_100_video_info.csv"
    assert ts[0].source_time_s == pytest.approx(7 / 59.94)


def test_keyframes_inside_a_segment(epic):
    frames = FrameSelection(mode="keyframes", top_k=2, min_interval=3)
    ts = [t for t in _read(epic, frames=frames) if t.meta["video_id"] == "P01_01"]
    # flat frames whose level steps by 3 per frame, except 83 -> 84 (249 -> 2) in segment 1:
    assert (ts[-1].meta["narration_id"], ts[-1].target_index) == ("P01_01_1", 84)
    assert all(8 <= t.source_index < t.target_index <= 18 for t in ts if t.meta["narration_id"] == "P01_01_0")


def test_bad_input(tmp_path, epic):
    with pytest.raises(FormatError, match="EPIC_100_validation.csv"):
        _read(tmp_path)
    with pytest.raises(BadInput, match="no narrations"):
        _read(epic, split="test")
    write_csv(tmp_path / "EPIC_100_train.csv", [r[:3] for r in ROWS], columns=COLUMNS[:3])
    with pytest.raises(FormatError, match="missing"):
        _read(tmp_path, split="train")
    with pytest.raises(BadInput, match="'fps'"):
        _read(epic, fps=50)


def test_corrupt_tar_fails_its_samples(tmp_path):
    root = tmp_path / "epic"
    write_csv(root / "EPIC_100_train.csv", ROWS[2:3])
    (root / "P02/rgb_frames").mkdir(parents=True)
    (root / "P02/rgb_frames/P02_101.tar").write_bytes(b"\x00garbage" * 10)
    t = _read(root, split="train")[0]
    with pytest.raises(SampleError, match="P02_101"):
        t.source.load()
    assert epic_module.DATASET == t.dataset


def test_task_spec_loads():
    tasks = Path(__file__).resolve().parents[1] / "tasks" / "epic-kitchens"
    assert [load_task(p).name for p in tasks.glob("*.yaml")] == ["epic_idp"]
