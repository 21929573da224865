"""BridgeData V2 raw reader: trajectory folders written as the raw release lays them out
(<date>/raw/traj_group0/traj<N>/ with images0/im_<t>.jpg, lang.txt, policy_out.pkl, obs_dict.pkl)."""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS, bridge
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec


class Touch:
    """Unpickling this creates `path` (any pickle can run code: the reason for trust_pickle)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def picture(traj: int, t: int, camera: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([(x * 8 + traj * 30) % 256, (y * 10 + t * 25) % 256, np.full_like(x, 60 * camera)], -1).astype(np.uint8)


def actions_of(traj: int, n: int) -> np.ndarray:
    return (np.arange(n * 7, dtype=np.float32).reshape(n, 7) + 1000 * traj) / 64


def write_traj(folder: Path, traj: int, n: int, text: str | None, as_dicts: bool = True, marker: Path | None = None):
    for camera in (0, 1):
        (folder / f"images{camera}").mkdir(parents=True)
        for t in range(n):
            Image.fromarray(picture(traj, t, camera)).save(folder / f"images{camera}" / f"im_{t}.jpg", quality=95)
    if text is not None:
        (folder / "lang.txt").write_text(f"{text}\nconfidence: 1\n")
    acts = actions_of(traj, n - 1)
    policy = [{"actions": a, "new_robot_transform": np.eye(4), **({"info": Touch(marker)} if marker else {})}
              for a in acts] if as_dicts else list(acts)
    (folder / "policy_out.pkl").write_bytes(pickle.dumps(policy))
    (folder / "obs_dict.pkl").write_bytes(pickle.dumps({"full_state": np.zeros((n, 7)), "time_stamp": list(range(n))}))
    (folder / "agent_data.pkl").write_bytes(pickle.dumps({"term_t": n}))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "bridge"
    dated = root / "bridge_data_v2" / "toykitchen2" / "set_table" / "00" / "2022-01-01_00-00-00"
    (dated / "collection_metadata.json").parent.mkdir(parents=True)
    (dated / "collection_metadata.json").write_text("{}")
    group = dated / "raw" / "traj_group0"
    write_traj(group / "traj0", 0, 3, "put the pot on the stove", marker=tmp_path / "unpickled")
    write_traj(group / "traj1", 1, 4, "put the spoon in the pot", as_dicts=False)
    write_traj(group / "traj2", 2, 3, None)  # no lang.txt: unlabelled
    write_traj(group / "traj10", 10, 2, "wipe the table")
    old = root / "bridge_data_v1" / "berkeley" / "toykitchen1" / "open_box" / "2021-06-01_10-00-00" / "raw" / "traj_group0"
    write_traj(old / "traj0", 5, 4, "open the box")
    return root


def read(root: Path, frames: FrameSelection | None = None, **options):
    spec = DatasetSpec(format="bridge", subfolder=root.name, split="train", options=options)
    return list(bridge.read(root, spec, frames or FrameSelection(mode="gap", gap=1)))


def test_actions_need_trust_pickle(root, tmp_path):
    with pytest.raises(BadInput, match=r"policy_out.pkl.*pickle.*run any code.*trust_pickle: true.*action_vectors: false"):
        read(root)
    ts = read(root, action_vectors=False)
    assert ts and all(t.action_vector is None for t in ts)
    assert not (tmp_path / "unpickled").exists()
    ts = read(root, trust_pickle=True)
    assert (tmp_path / "unpickled").exists()


def test_trajectories_images_text_and_actions(root):
    ts = read(root, trust_pickle=True)
    episodes = list(dict.fromkeys(t.episode_id for t in ts))
    assert [e.split("/")[0] + "/" + e.split("/")[-1] for e in episodes] == [
        "bridge_data_v1/traj0", "bridge_data_v2/traj0", "bridge_data_v2/traj1", "bridge_data_v2/traj10"]
    new = [t for t in ts if t.episode_id.startswith("bridge_data_v2")]
    assert len(new) == 2 + 3 + 1
    assert new[0].sample_id == "bridge_data_v2/toykitchen2/set_table/00/2022-01-01_00-00-00/raw/traj_group0/traj0:0-1"
    for t in new:
        traj = int(t.episode_id.rsplit("traj", 1)[1])
        folder = root / Path(t.source.origin).parent  # origins are relative to the dataset root
        assert np.array_equal(t.source.load(), np.asarray(Image.open(folder / f"im_{t.source_index}.jpg").convert("RGB")))
        assert np.abs(t.target.load().astype(int) - picture(traj, t.target_index)).mean() < 8  # JPEG of sharp ramps
        assert np.array_equal(t.action_vector, actions_of(traj, 3)[t.source_index:t.target_index])
        assert t.meta["latency_shift"] is False and t.fps == 5.0
    assert [t.action_text for t in new] == ["put the pot on the stove"] * 2 + ["put the spoon in the pot"] * 3 + \
        ["wipe the table"]


def test_latency_shift_for_data_before_2021_07_23(root):
    old = [t for t in read(root, trust_pickle=True) if t.episode_id.startswith("bridge_data_v1")]
    assert len(old) == 2 and old[0].meta["latency_shift"] is True
    assert Path(old[0].source.origin).name == "im_1.jpg"  # first image dropped
    assert np.array_equal(old[1].action_vector, actions_of(5, 3)[1:2])  # last action dropped
    old = [t for t in read(root, trust_pickle=True, latency_shift=False) if t.episode_id.startswith("bridge_data_v1")]
    assert len(old) == 3 and Path(old[0].source.origin).name == "im_0.jpg"


def test_unlabelled_camera_and_first_last(root):
    assert len(read(root, action_vectors=False, keep_unlabelled=True)) == 2 + 2 + 3 + 2 + 1
    ts = read(root, action_vectors=False, camera="images1", frames=FrameSelection(mode="first_last"))
    assert len(ts) == 4 and Path(ts[1].target.origin).parent.name == "images1"
    assert ts[1].meta["frames"] == {"mode": "first_last"} and (ts[1].source_index, ts[1].target_index) == (0, 2)


def test_damaged_trajectories_fail_their_samples(root):
    group = root / "bridge_data_v2" / "toykitchen2" / "set_table" / "00" / "2022-01-01_00-00-00" / "raw" / "traj_group0"
    (group / "traj1" / "images0" / "im_2.jpg").write_bytes(b"not a jpeg")
    (group / "traj10" / "images0" / "im_1.jpg").rename(group / "traj10" / "images0" / "im_5.jpg")
    (group / "traj0" / "policy_out.pkl").write_bytes(b"garbage")
    ts = {t.sample_id.split("traj_group0/")[-1]: t for t in read(root, trust_pickle=True)
          if t.episode_id.startswith("bridge_data_v2")}
    with pytest.raises(SampleError, match=r"corrupt or unreadable image .*traj1/images0/im_2.jpg"):
        ts["traj1:1-2"].target.load()
    with pytest.raises(SampleError, match="image numbers are not 0..1"):
        ts["traj10:unreadable"].source.load()
    with pytest.raises(SampleError, match=r"unreadable .*traj0/policy_out.pkl"):
        ts["traj0:unreadable"].source.load()


def test_not_bridge(tmp_path, root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="traj"):
        read(tmp_path / "empty", action_vectors=False)
    with pytest.raises(BadInput, match="unknown option"):
        read(root, actions=False)
    assert FORMATS.get("bridge") is bridge.read


def test_origins_are_relative_to_the_dataset_root(root, tmp_path):
    group = root / "bridge_data_v2" / "toykitchen2" / "set_table" / "00" / "2022-01-01_00-00-00" / "raw" / "traj_group0"
    (group / "traj10" / "images0" / "im_1.jpg").rename(group / "traj10" / "images0" / "im_5.jpg")  # one unreadable
    ts = read(root, trust_pickle=True)
    for t in ts:
        for origin in (t.describe()["source"], t.describe()["target"]):
            assert not origin.startswith("/") and str(tmp_path) not in origin, origin
    new = [t for t in ts if t.episode_id.startswith("bridge_data_v2")]
    assert new[0].describe()["source"] == \
        "bridge_data_v2/toykitchen2/set_table/00/2022-01-01_00-00-00/raw/traj_group0/traj0/images0/im_0.jpg"
