"""CALVIN reader: per-step .npz files and a pickled lang_annotations/auto_lang_ann.npy, written as
the CALVIN release lays them out. The annotation pickle carries a payload that creates a file when
unpickled, to show that nothing is unpickled without `trust_pickle: true`."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np
import pytest

from wmbench.data import FORMATS, calvin
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec

WINDOWS = [(100, 105), (110, 112), (103, 108)]  # inclusive, ragged, overlapping
TEXTS = ["push the sliding door to the left", "turn on the led", "lift the red block from the table"]
TASKS = ["move_slider_left", "turn_on_led", "lift_red_block_table"]


class Touch:
    """Unpickling this creates `path`: what any pickle can do, and why loading one needs consent."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def static(k: int) -> np.ndarray:
    y, x = np.mgrid[0:20, 0:20]
    return np.stack([(x * 11 + k) % 256, (y * 5 + 3 * k) % 256, np.full_like(x, k)], -1).astype(np.uint8)


def rel_action(k: int) -> np.ndarray:
    return (np.arange(7, dtype=np.float32) + k) / 100


def write_split(root: Path, marker: Path, split: str = "validation", fps: int = 15) -> Path:
    folder = root / split
    (folder / "lang_annotations").mkdir(parents=True)
    for k in range(100, 113):
        np.savez(folder / f"episode_{k:07d}.npz", actions=rel_action(k) * 2, rel_actions=rel_action(k),
                 robot_obs=np.zeros(15, np.float32), scene_obs=np.zeros(24, np.float32), rgb_static=static(k),
                 rgb_gripper=static(k)[:8, :8], rgb_tactile=np.zeros((16, 12, 6), np.uint8),
                 depth_static=np.zeros((20, 20), np.float32), depth_gripper=np.zeros((8, 8), np.float32),
                 depth_tactile=np.zeros((16, 12, 2), np.float32))
    np.save(folder / "ep_start_end_ids.npy", np.array([[100, 112]]))
    annotations = {"language": {"ann": TEXTS, "task": TASKS, "emb": np.zeros((3, 1, 384), np.float32)},
                   "info": {"episodes": [], "indx": WINDOWS}, "payload": Touch(marker)}
    np.save(folder / "lang_annotations" / "auto_lang_ann.npy", annotations, allow_pickle=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "merged_config.yaml").write_text(f"env:\n  control_freq: {fps}\n")
    return folder


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "calvin"
    write_split(root, tmp_path / "unpickled")
    return root


def read(root: Path, split: str = "validation", frames: FrameSelection | None = None, **options):
    spec = DatasetSpec(format="calvin", subfolder=root.name, split=split, options=options)
    return list(calvin.read(root, spec, frames or FrameSelection(mode="gap", gap=1)))


def test_refuses_to_unpickle_without_trust(root, tmp_path):
    with pytest.raises(BadInput, match=r"language annotations come from .*auto_lang_ann.npy, a Python pickle.*run any code.*trust_pickle: true"):
        read(root)
    assert not (tmp_path / "unpickled").exists()
    with pytest.raises(BadInput, match="trust_pickle must be true or false"):
        read(root, trust_pickle="yes")
    assert not (tmp_path / "unpickled").exists()
    read(root, trust_pickle=True)
    assert (tmp_path / "unpickled").exists()  # the payload ran: that is what the option consents to


def test_windows_images_actions_and_ids(root):
    ts = read(root, trust_pickle=True)
    assert len(ts) == 5 + 2 + 5
    assert [t.sample_id for t in ts[:2]] == ["validation/ann0:0-1", "validation/ann0:1-2"]
    for t in ts:
        start = WINDOWS[t.meta["annotation"]][0]
        k0, k1 = start + t.source_index, start + t.target_index
        assert t.meta["frame_ids"] == [k0, k1] and t.action_text == TEXTS[t.meta["annotation"]]
        assert t.meta["task"] == TASKS[t.meta["annotation"]]
        assert np.array_equal(t.source.load(), static(k0)) and np.array_equal(t.target.load(), static(k1))
        assert np.array_equal(t.action_vector, np.stack([rel_action(k) for k in range(k0, k1)]))
    assert ts[0].fps == 15.0 and ts[0].meta["frames"] == {"mode": "gap", "gap": 1, "stride": None}
    ts = read(root, trust_pickle=True, frames=FrameSelection(mode="seconds", seconds=0.2))  # 15 Hz -> gap 3
    assert [(t.episode_id, t.source_index, t.target_index) for t in ts] == [
        ("validation/ann0", 0, 3), ("validation/ann2", 0, 3)]


def test_camera_action_key_and_keyframes(root):
    t = read(root, trust_pickle=True, camera="rgb_gripper", action_key="actions")[0]
    assert np.array_equal(t.source.load(), static(100)[:8, :8]) and np.allclose(t.action_vector, [rel_action(100) * 2])
    assert read(root, trust_pickle=True, action_key=None)[0].action_vector is None
    ts = read(root, trust_pickle=True, frames=FrameSelection(mode="keyframes", top_k=2, min_interval=3))
    assert ts and all(t.target_index - t.source_index >= 3 for t in ts)
    with pytest.raises(BadInput, match="camera"):
        read(root, trust_pickle=True, camera="rgb_tactile")


def test_missing_frame_fails_only_its_samples(root):
    (root / "validation" / "episode_0000111.npz").unlink()
    ts = read(root, trust_pickle=True)
    by_id = {t.sample_id: t for t in ts}
    assert len(ts) == 12  # nothing dropped
    bad = by_id["validation/ann1:1-2"]  # needs the action of frame 111
    with pytest.raises(SampleError, match=r"missing CALVIN frame file .*episode_0000111.npz \(annotation 1"):
        bad.source.load()
    with pytest.raises(SampleError, match="episode_0000111.npz"):
        by_id["validation/ann1:0-1"].target.load()
    assert by_id["validation/ann1:0-1"].source.load().shape == (20, 20, 3)


def test_not_calvin_folders(root, tmp_path):
    with pytest.raises(FormatError, match="split folder 'training/'"):
        read(root, split="training", trust_pickle=True)
    (root / "validation" / "lang_annotations" / "auto_lang_ann.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(FormatError, match="language.ann"):
        read(root, trust_pickle=True)
    (root / "validation" / "lang_annotations" / "auto_lang_ann.npy").unlink()
    with pytest.raises(FormatError, match="auto_lang_ann.npy"):
        read(root, trust_pickle=True)
    with pytest.raises(BadInput, match="unknown option"):
        read(root, trust=True)
    assert FORMATS.get("calvin") is calvin.read


def test_origins_are_relative_to_the_dataset_root(root, tmp_path):
    ts = read(root, trust_pickle=True)
    for t in ts:
        for origin in (t.describe()["source"], t.describe()["target"]):
            assert not origin.startswith("/") and str(tmp_path) not in origin, origin
    assert ts[0].describe()["source"].startswith("validation/episode_")
    assert ts[0].describe()["source"].endswith(".npz:rgb_static")
