"""Meta-World generator and reader: a tiny dataset generated once per module (real simulator, real
rendering), checked for determinism, the LeRobot v3.0 layout, the reader, the segmentation masks
and the motion text against the gripper's motion in the rendered image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from wmbench.data import lerobot, metaworld, metaworld_motion, metaworld_sim
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import BadInput
from wmbench.core.tasks import DatasetSpec

pytestmark = pytest.mark.slow
os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo fixes its GL backend at import; the tests render too

OPTS = {"tasks": ["push-v3", "reach-v3"], "episodes": 1, "size": 64, "frame_skip": 4, "max_frames": 24}
KEY = "observation.images.corner4"
SEG = "observation.segmentation"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("metaworld")
    roots = {"a": base / "a", "b": base / "b", "video": base / "video", "seed1": base / "seed1"}
    metaworld.generate(roots["a"], OPTS, progress=False)
    metaworld.generate(roots["b"], OPTS, progress=False)
    metaworld.generate(roots["video"], {**OPTS, "frames_as": "video"}, progress=False)
    metaworld.generate(roots["seed1"], {**OPTS, "tasks": ["reach-v3"], "seed": 1}, progress=False)
    return roots


def spec(split: str = "test", generator: str | None = None, generator_options: dict | None = None,
         **options) -> DatasetSpec:
    return DatasetSpec(format="metaworld", subfolder="metaworld", split=split, options=options,
                       generator=generator, generator_options=generator_options or {})


def read(root: Path, gap: int = 2, stride: int | None = None, **options) -> list:
    return list(metaworld.read(root, spec(**options), FrameSelection(mode="gap", gap=gap, stride=stride)))


def manifest(root: Path) -> dict:
    return json.loads((root / "meta/wmbench.json").read_text())


def test_same_options_give_byte_identical_files(generated):
    files = sorted(p.relative_to(generated["a"]) for p in generated["a"].rglob("*") if p.is_file())
    assert Path("data/chunk-000/file-000.parquet") in files
    for rel in files:
        assert (generated["a"] / rel).read_bytes() == (generated["b"] / rel).read_bytes(), rel
    assert not generated["a"].with_name("a.partial").exists()
    # another seed: other goal variations, other trajectories
    import pyarrow.parquet as pq

    def reach_states(root: Path) -> np.ndarray:
        data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pandas()
        index = next(e["episode_index"] for e in manifest(root)["episodes"] if e["env_name"] == "reach-v3")
        return np.stack(data[data.episode_index == index]["observation.state"])

    a, other = reach_states(generated["a"]), reach_states(generated["seed1"])
    assert a.shape != other.shape or not np.array_equal(a, other)


def test_lerobot_v3_layout(generated):
    import pandas as pd
    import pyarrow.parquet as pq

    root = generated["video"]
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats[KEY]["dtype"] == "video" and feats[KEY]["shape"] == [64, 64, 3]
    assert feats[KEY]["info"]["video.codec"] == "av1"
    assert feats[SEG] == {"dtype": "image", "shape": [64, 64, 1], "names": ["height", "width", "channels"]}
    assert feats["observation.state"]["names"] == ["ee_x", "ee_y", "ee_z", "gripper_open"]
    assert feats["action"]["shape"] == [4] and feats["timestamp"]["dtype"] == "float32"
    lengths = [e["frames"] for e in manifest(root)["episodes"]]
    assert info["total_episodes"] == 2 and info["total_frames"] == sum(lengths)

    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    expected = {"episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", f"videos/{KEY}/chunk_index", f"videos/{KEY}/file_index",
                f"videos/{KEY}/from_timestamp", f"videos/{KEY}/to_timestamp"}
    assert expected <= set(episodes[0])
    assert [e["length"] for e in episodes] == lengths
    assert episodes[1]["dataset_from_index"] == episodes[0]["dataset_to_index"] == lengths[0]
    # both episodes in one mp4, back to back
    assert episodes[1][f"videos/{KEY}/from_timestamp"] == pytest.approx(lengths[0] / 20)
    assert episodes[0][f"videos/{KEY}/file_index"] == episodes[1][f"videos/{KEY}/file_index"] == 0
    assert (root / f"videos/{KEY}/chunk-000/file-000.mp4").is_file()

    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert tasks.index.name == "task" and list(tasks.index) == ["push the puck to the goal", "reach the goal position"]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert {"index", "episode_index", "frame_index", "timestamp", "task_index", "observation.state", "action",
            SEG} <= set(data.column_names)
    assert data.schema.field(SEG).type.names == ["bytes", "path"]
    assert data["index"].to_pylist() == list(range(sum(lengths)))
    image_table = pq.read_table(generated["a"] / "data/chunk-000/file-000.parquet")
    assert image_table.schema.field(KEY).type.names == ["bytes", "path"]  # frames_as=images: PNG in parquet


def test_reader_pairs_text_and_vectors(generated):
    root = generated["a"]
    lengths = [e["frames"] for e in manifest(root)["episodes"]]
    samples = read(root, action_text="both")
    assert len(samples) == sum(len(range(0, n - 2, 2)) for n in lengths)
    first = samples[0]
    assert first.sample_id == "0:0-2" and first.fps == 20 and first.frame_gap == 2
    assert first.meta["task"] == "push-v3" and first.meta["instruction"] == "push the puck to the goal"
    assert first.action_text == f"push the puck to the goal: {first.meta['motion']}"
    assert samples[-1].meta["task"] == "reach-v3"
    import pyarrow.parquet as pq

    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pandas()
    for s in samples[:5]:
        rows = data[(data.episode_index == int(s.episode_id)) & data.frame_index.between(s.source_index,
                                                                                          s.target_index - 1)]
        np.testing.assert_array_equal(s.action_vector, np.stack(rows["action"]))
        assert s.action_vector.shape == (2, 4)
    assert {s.action_text for s in read(root, action_text="instruction")} == {"push the puck to the goal",
                                                                             "reach the goal position"}
    assert all(s.meta["task"] == "reach-v3" for s in read(root, tasks=["reach-v3"]))
    # the video dataset renders the same simulation: the same frames up to AV1's loss
    for s_img, s_vid in zip(samples, read(generated["video"], action_text="both")):
        assert s_img.sample_id == s_vid.sample_id and s_img.action_text == s_vid.action_text
        err = np.abs(s_img.target.load().astype(int) - s_vid.target.load()).mean()
        assert err < 8, (s_img.sample_id, err)


def test_segmentation_masks_line_up_with_the_frames(generated):
    samples = read(generated["a"])
    object_pixels = 0
    for s in samples:
        mask, rgb = s.aux["source_segmentation"].load(), s.source.load()
        assert mask.shape == (64, 64, 3) and (mask == mask[..., :1]).all() and set(np.unique(mask)) <= {0, 1, 2}
        robot = mask[..., 0] == 1
        assert robot.mean() > 0.05
        # the Sawyer arm is red: robot pixels are red in the frame, the rest is not (alignment + rotation)
        red = rgb[..., 0].astype(int) - rgb[..., 1]
        assert red[robot].mean() > 60 > red[~robot].mean()
        object_pixels += int((mask[..., 0] == 2).sum())
    assert object_pixels > 0  # the puck / the reach target object


def test_motion_text_matches_the_gripper_motion_in_the_image(generated):
    """Replays episode 0 (push) in the simulator, locates the gripper in each frame with MuJoCo's own
    segmentation rendering (independent of the projection behind the text), and checks the text's
    left/right/up/down against the gripper's motion in the stored frames' orientation."""
    import mujoco

    root = generated["a"]
    episode = manifest(root)["episodes"][0]
    sim = metaworld_sim.Simulator(episode["env_name"], 0, "corner4", 64, segmentation=False)
    model = sim.env.model
    renderer = mujoco.Renderer(model, 64, 64)
    hand = model.body("hand").id
    in_hand = [b for b in range(model.nbody) if b == hand or _ancestor(model, b, hand)]
    gripper_geoms = np.flatnonzero(np.isin(model.geom_bodyid, in_hand))
    raw, masks = [], []

    def render(data):
        renderer.update_scene(data, camera="corner4")
        raw.append(renderer.render().copy())
        renderer.enable_segmentation_rendering()
        ids = renderer.render()
        renderer.disable_segmentation_rendering()
        masks.append((ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & np.isin(ids[..., 0], gripper_geoms))
        return raw[-1], None

    sim.camera.render = render
    try:
        replay = sim.rollout(episode["goal_index"], OPTS["frame_skip"], OPTS["max_frames"])
    finally:
        renderer.close()
        sim.close()
    samples = [s for s in read(root, gap=2, stride=1) if s.episode_id == "0"]
    import pyarrow.parquet as pq

    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pandas()
    stored = np.stack(data[data.episode_index == 0]["observation.state"])
    np.testing.assert_array_equal(stored, np.stack(replay.state))  # the replay is the stored episode
    # orientation of the stored frames: the raw render turned by 180 degrees, not as rendered
    frame0 = samples[0].source.load().astype(int)
    assert np.abs(frame0 - raw[0][::-1, ::-1]).mean() < 0.5 * np.abs(frame0 - raw[0]).mean()
    centroids = []
    for mask in masks:
        rows, cols = np.nonzero(mask[::-1, ::-1])
        centroids.append((cols.mean() / 64, rows.mean() / 64))  # (u right, v down) in frame fractions
    checked = 0
    for s in samples:
        (u0, v0), (u1, v1) = centroids[s.source_index], centroids[s.target_index]
        du, dv, text = u1 - u0, v1 - v0, s.meta["motion"]
        for word, moved in (("left", -du), ("right", du), ("up", -dv), ("down", dv)):
            if f" {word}" in text.replace("move the arm", " "):
                assert moved > 0.005, (s.sample_id, text, du, dv)
                checked += 1
        largest = max(abs(du), abs(dv))
        if abs(du) > 0.06 and abs(du) >= 0.6 * largest:
            assert ("right" if du > 0 else "left") in text, (s.sample_id, text, du, dv)
        if abs(dv) > 0.06 and abs(dv) >= 0.6 * largest:
            assert ("down" if dv > 0 else "up") in text, (s.sample_id, text, du, dv)
        if text.startswith("keep the arm still"):
            assert largest < 0.04, (s.sample_id, text, du, dv)
    assert checked >= 5  # the episode moves: the check is not vacuous


def _ancestor(model, body: int, ancestor: int) -> bool:
    while body != 0:
        body = model.body_parentid[body]
        if body == ancestor:
            return True
    return False


def test_describe_motion_thresholds():
    camera = metaworld_motion.CameraModel({"pos": [0, 0, 1], "xmat": np.eye(3).tolist(), "fovy": 90, "width": 100,
                                    "height": 100, "rot180": False})  # looks straight down, x right, y up
    still = np.array([0, 0, 0, 1.0])
    assert metaworld_motion.describe_motion(still, still + [0.001, 0, 0, 0.02], camera) == "keep the arm still"
    assert metaworld_motion.describe_motion(still, still + [0.1, 0.005, 0, -0.5], camera) == \
        "move the arm right, close the gripper"
    assert metaworld_motion.describe_motion(still, still + [-0.1, -0.1, 0, 0.5], camera) == \
        "move the arm left and down, open the gripper"
    assert metaworld_motion.describe_motion(still, still + [0, 0, 0.1, 0], camera) == "move the arm toward the camera"
    flipped = metaworld_motion.CameraModel({**camera.__dict__, "pos": [0, 0, 1], "xmat": np.eye(3).tolist(), "fovy": 90,
                                     "width": 100, "height": 100, "rot180": True})
    assert metaworld_motion.describe_motion(still, still + [0.1, 0, 0, 0], flipped) == "move the arm left"


def test_option_validation():
    for bad, match in (({"fps": 3}, "unknown option.*'fps'"),
                       ({"tasks": ["psuh-v3"]}, "unknown task 'psuh-v3'.*push-v3"),
                       ({"frames_as": "gif"}, "frames_as"), ({"size": 63}, "size"), ({"episodes": 0}, "episodes"),
                       ({"max_frames": 300, "frame_skip": 2}, "500")):
        with pytest.raises(BadInput, match=match):
            metaworld.normalize_options(bad)
    assert metaworld.normalize_options({"tasks": "push-v3,reach-v3"})["tasks"] == ["push-v3", "reach-v3"]


def test_split_format_and_generator_options_are_checked(generated, tmp_path):
    root = generated["a"]
    with pytest.raises(BadInput, match="holds the generated Meta-World split 'test' only"):
        list(metaworld.read(root, spec(split="train"), FrameSelection(mode="gap", gap=2)))
    with pytest.raises(BadInput, match="action_text"):
        read(root, action_text="verbose")
    assert list(metaworld.read(root, spec(generator="metaworld", generator_options=OPTS), FrameSelection()))
    with pytest.raises(BadInput, match="episodes: data 1 vs task 2"):
        list(metaworld.read(root, spec(generator="metaworld", generator_options={**OPTS, "episodes": 2}),
                            FrameSelection()))
    with pytest.raises(FormatError, match="wmbench.json"):
        read(tmp_path)


def test_unknown_camera_is_refused(tmp_path):
    with pytest.raises(BadInput, match="camera.*'top'.*corner4"):
        metaworld.generate(tmp_path / "m", {**OPTS, "tasks": ["reach-v3"], "camera": "top"}, progress=False)
    assert not (tmp_path / "m").exists()


def test_a_failed_generation_leaves_no_dataset(tmp_path, monkeypatch):
    def crash(self, *args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(metaworld_sim.Simulator, "rollout", crash)
    root = tmp_path / "metaworld"
    with pytest.raises(RuntimeError, match="killed"):
        metaworld.generate(root, {**OPTS, "tasks": ["reach-v3"]}, progress=False)
    assert not root.exists() and not (tmp_path / "metaworld.partial").exists()
    root.mkdir()
    (root / "keep.txt").write_text("old dataset")
    with pytest.raises(RuntimeError, match="killed"):
        metaworld.generate(root, {**OPTS, "tasks": ["reach-v3"]}, progress=False)
    assert (root / "keep.txt").read_text() == "old dataset"
    with pytest.raises(FormatError):
        lerobot.open_dataset(tmp_path / "metaworld")
