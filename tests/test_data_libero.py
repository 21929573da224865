"""LIBERO reader: HDF5 files written with h5py in the layout of LIBERO's scripts/create_dataset.py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from wmbench.data import FORMATS, libero
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec


MARKER = (255, 0, 255)


def upright(task: int, demo: int, t: int, camera: int = 0) -> np.ndarray:
    """An asymmetric frame: red ramps down the rows, green across the columns, and a marker in the
    top-left corner only, so a vertical flip, a left-right mirror and a 180-degree rotation of it
    all differ from it and from each other."""
    y, x = np.mgrid[0:16, 0:16]
    frame = np.stack([y * 15, (x * 7 + 40 * demo + camera * 100) % 256, np.full_like(x, 10 * t + task)], -1)
    frame = frame.astype(np.uint8)
    frame[:3, :2] = MARKER
    return frame


def as_stored(frames: np.ndarray, convention: str | None) -> np.ndarray:
    """Frames (T, H, W, 3) as LIBERO stores them: with OpenGL's read-out (robosuite's "opengl"
    convention, also assumed when the file says nothing) the upright frame is stored rotated by 180
    degrees (upright = stored[::-1, ::-1], as OpenVLA and openpi read it); "opencv" files have
    their rows reversed once more by robosuite, which leaves a left-right mirror."""
    return frames[:, :, ::-1] if convention == "opencv" else frames[:, ::-1, ::-1]


def write_demo_file(path: Path, task: int, lengths: list[int], language: str | None = "open the top drawer",
                    convention: str | None = "opengl") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        grp = f.create_group("data")
        info = {"problem_name": "libero_kitchen_tabletop_manipulation", "domain_name": "kitchen"}
        if language is not None:
            info["language_instruction"] = language
        grp.attrs["problem_info"] = json.dumps(info)
        grp.attrs["env_name"] = "Libero_Kitchen_Tabletop_Manipulation"
        grp.attrs["env_args"] = json.dumps({"type": 1, "env_name": "x", "env_kwargs": {"control_freq": 20}})
        grp.attrs["bddl_file_name"] = "libero/bddl_files/x.bddl"
        if convention is not None:
            grp.attrs["macros_image_convention"] = convention
        for d, n in enumerate(lengths):
            ep = grp.create_group(f"demo_{d}")
            obs = ep.create_group("obs")
            frames = np.stack([upright(task, d, t) for t in range(n)])
            wrist = np.stack([upright(task, d, t, camera=1) for t in range(n)])
            frames, wrist = as_stored(frames, convention), as_stored(wrist, convention)
            obs.create_dataset("agentview_rgb", data=frames, compression="gzip")
            obs.create_dataset("eye_in_hand_rgb", data=wrist)
            obs.create_dataset("joint_states", data=np.zeros((n, 7)))
            obs.create_dataset("gripper_states", data=np.zeros((n, 2)))
            ep.create_dataset("actions", data=np.arange(n * 7, dtype=np.float64).reshape(n, 7) / 10 + d)
            ep.create_dataset("states", data=np.zeros((n, 9)))
            ep.create_dataset("robot_states", data=np.zeros((n, 9)))
            ep.create_dataset("rewards", data=np.eye(1, n, n - 1, dtype=np.uint8)[0])
            ep.create_dataset("dones", data=np.eye(1, n, n - 1, dtype=np.uint8)[0])
            ep.attrs["num_samples"] = n
        grp.attrs["num_demos"] = len(lengths)
        grp.attrs["total"] = sum(lengths)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "libero"
    # 11 demos so that numeric order (demo_2 before demo_10) is exercised
    write_demo_file(root / "libero_goal" / "open_the_top_drawer_of_the_cabinet_demo.hdf5", 0,
                    [3, 4, 2] + [2] * 8, language="open the top drawer of the cabinet")
    write_demo_file(root / "libero_goal" / "KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5", 1, [3],
                    language=None, convention="opencv")
    write_demo_file(root / "libero_10" / "LIVING_ROOM_SCENE2_put_both_the_soup_and_the_box_in_the_basket_demo.hdf5", 2,
                    [2], language="put both the soup and the box in the basket")
    return root


def read(root: Path, frames: FrameSelection | None = None, **options):
    spec = DatasetSpec(format="libero", subfolder=root.name, split="train", options=options)
    return list(libero.read(root, spec, frames or FrameSelection(mode="gap", gap=1)))


def test_demos_in_order_upright_frames_actions_and_instruction(root):
    ts = read(root)
    goal = [t for t in ts if t.meta["task"] == "open_the_top_drawer_of_the_cabinet"]
    assert len(goal) == 2 + 3 + 1 + 8 and len(ts) == 14 + 2 + 1
    demos = list(dict.fromkeys(t.meta["demo"] for t in goal))
    assert demos == [f"demo_{i}" for i in range(11)]
    first = goal[0]
    assert first.sample_id == "libero_goal/open_the_top_drawer_of_the_cabinet/demo_0:0-1"
    assert first.action_text == "open the top drawer of the cabinet" and first.meta["instruction_source"] == "problem_info"
    for t in goal[:6]:
        d = int(t.meta["demo"].split("_")[1])
        assert np.array_equal(t.source.load(), upright(0, d, t.source_index))  # rotated back upright
        assert np.array_equal(t.target.load(), upright(0, d, t.target_index))
        assert tuple(t.source.load()[0, 0]) == MARKER and tuple(t.source.load()[-1, -1]) != MARKER
        expected = np.arange(7 * 4, dtype=np.float32).reshape(4, 7) / 10 + d
        assert np.allclose(t.action_vector, expected[t.source_index:t.target_index])
    assert first.meta["flipped"] is True and first.meta["image_convention"] == "opengl"
    assert first.meta["orientation"] == "rotate180"
    assert first.fps == 20.0 and first.meta["frames"] == {"mode": "gap", "gap": 1, "stride": None}


def test_upright_is_the_stored_frame_rotated_180_degrees(root):
    path = root / "libero_goal" / "open_the_top_drawer_of_the_cabinet_demo.hdf5"
    with h5py.File(path, "r") as f:
        stored = f["data/demo_1/obs/agentview_rgb"][()]
    ts = [t for t in read(root, suites="libero_goal") if t.meta["demo"] == "demo_1" and "drawer" in t.meta["task"]]
    for t in ts:
        frame = t.source.load()
        assert np.array_equal(frame, stored[t.source_index][::-1, ::-1])  # rotated, as OpenVLA/openpi read it
        assert not np.array_equal(frame, stored[t.source_index][::-1])  # not just flipped vertically
    # orientation: vflip reverses the rows only: the left-right mirror of the rotate180 frame
    (t, *_) = [t for t in read(root, suites="libero_10", orientation="vflip")]
    assert np.array_equal(t.source.load(), upright(2, 0, 0)[:, ::-1]) and t.meta["orientation"] == "vflip"
    with pytest.raises(BadInput, match="orientation: expected one of rotate180, vflip"):
        read(root, orientation="upside")


def test_file_name_instruction_and_opencv_files_reach_the_same_upright(root):
    ts = [t for t in read(root, suites="libero_goal") if t.meta["task"] == "KITCHEN_SCENE3_turn_on_the_stove"]
    assert [t.action_text for t in ts] == ["turn on the stove"] * 2 and ts[0].meta["instruction_source"] == "file name"
    # robosuite already reversed the rows of an opencv file: only the left-right mirror is left to undo
    assert ts[0].meta["flipped"] is True and ts[0].meta["orientation"] == "hflip"
    assert np.array_equal(ts[1].target.load(), upright(1, 0, 2))
    (t, *_) = [t for t in read(root, suites="libero_goal", orientation="vflip")
               if t.meta["task"] == "KITCHEN_SCENE3_turn_on_the_stove"]
    assert t.meta["flipped"] is False and np.array_equal(t.source.load(), upright(1, 0, 0)[:, ::-1])
    (t,) = read(root, suites=["libero_10"])
    assert t.action_text == "put both the soup and the box in the basket"
    assert libero.instruction({}, Path("LIVING_ROOM_SCENE2_pick_up_the_book_demo.hdf5")) == ("pick up the book", "file name")


def test_flip_and_camera_options(root):
    (t,) = read(root, suites="libero_10", flip=False)
    assert np.array_equal(t.source.load(), upright(2, 0, 0)[::-1, ::-1]) and t.meta["flipped"] is False
    assert t.meta["orientation"] == "none"
    (t,) = [t for t in read(root, suites="libero_goal", flip=True) if "stove" in t.meta["task"]][:1]
    assert np.array_equal(t.source.load(), upright(1, 0, 0)[::-1])  # an opencv file corrected as if opengl
    (t,) = read(root, suites="libero_10", camera="eye_in_hand_rgb")
    assert np.array_equal(t.source.load(), upright(2, 0, 0, camera=1))
    (t,) = read(root, suites="libero_10", camera="agentview_depth")
    assert t.sample_id.endswith(":unreadable")
    with pytest.raises(SampleError, match="no obs/agentview_depth; it has agentview_rgb, eye_in_hand_rgb"):
        t.source.load()
    with pytest.raises(BadInput, match="flip"):
        read(root, flip="sometimes")
    with pytest.raises(BadInput, match=r"suites: \['libero_90'\]"):
        read(root, suites="libero_90")
    with pytest.raises(BadInput, match="unknown option"):
        read(root, suite="libero_10")


def test_one_read_per_episode_and_keyframes(root, monkeypatch):
    calls = []
    real = libero._read_frames
    monkeypatch.setattr(libero, "_read_frames", lambda *a: calls.append(a) or real(*a))
    ts = [t for t in read(root) if t.meta["demo"] == "demo_1"]
    for t in ts:
        t.source.load(), t.target.load()
    assert len(ts) == 3 and len(calls) == 1  # demo_1 of the drawer file: 4 frames, read once for 6 images
    ts = read(root, suites="libero_goal", frames=FrameSelection(mode="keyframes", top_k=2, min_interval=2))
    assert ts and all(t.target_index - t.source_index >= 2 for t in ts)


def test_corrupt_file_fails_its_sample_and_empty_folder_is_not_libero(root, tmp_path):
    bad = root / "libero_10" / "broken_demo.hdf5"
    bad.write_bytes(b"not an hdf5 file")
    ts = read(root, suites="libero_10")
    assert [t.sample_id for t in ts][1] == "libero_10/broken:unreadable" and len(ts) == 2
    with pytest.raises(SampleError, match="broken_demo.hdf5"):
        ts[1].source.load()
    assert ts[0].source.load().shape == (16, 16, 3)  # the other file of the suite still reads
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FormatError, match="_demo.hdf5"):
        read(tmp_path / "nothing")
    assert FORMATS.get("libero") is libero.read


def test_origins_are_relative_to_the_dataset_root(root, tmp_path):
    (root / "libero_10" / "broken_demo.hdf5").write_bytes(b"not an hdf5 file")
    ts = read(root)
    assert any(t.sample_id.endswith(":unreadable") for t in ts)
    for t in ts:
        described = t.describe()
        for origin in (described["source"], described["target"]):
            assert not origin.startswith("/") and str(tmp_path) not in origin, origin
    assert ts[0].describe()["source"] == ("libero_10/LIVING_ROOM_SCENE2_put_both_the_soup_and_the_box_in_the_basket"
                                          "_demo.hdf5#data/demo_0/obs/agentview_rgb[0]")


def test_max_pixels_is_checked_from_the_dataset_shape(root):
    (t, *_) = read(root, suites="libero_10", max_pixels=255)  # frames are 16x16 = 256 pixels
    with pytest.raises(SampleError, match=r"16x16 = 256 pixels, more than the limit of 255 .*max_pixels"):
        t.source.load()
    (t, *_) = read(root, suites="libero_10", max_pixels=256)
    assert t.source.load().shape == (16, 16, 3)
    with pytest.raises(BadInput, match="max_pixels"):
        read(root, max_pixels=0)
