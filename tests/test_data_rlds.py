"""RLDS / Open X-Embodiment reader: hand-framed TFRecord shards of real tf.train.Example protos,
written by a small protobuf encoder in this file, with features.json / dataset_info.json in the
layout TensorFlow Datasets writes. A 160-byte file written by TensorFlow 2.21's TFRecordWriter
is the reference for the framing, the masked CRCs and the Example wire format."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS, rlds, tfrecord
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec

# tf.io.TFRecordWriter output for Example{"steps/observation/image": [b"ab", b""], "steps/action":
# [1.5, -2.0, 0.25], "steps/is_first": [1, 0, 300, -5, 2**40], "empty": Feature()} then b"".
TF_GOLDEN = bytes.fromhex(
    "80000000000000002a5b60ec0a7e0a090a05656d70747912000a200a0c73746570732f616374696f6e1210120e0a0c"
    "0000c03f000000c00000803e0a2a0a0e73746570732f69735f666972737412181a160a140100ac02fbffffffffffff"
    "ffff018080808080200a230a1773746570732f6f62736572766174696f6e2f696d61676512080a060a0261620a00c3"
    "228130000000000000000029039807d8ea82a2")


# --- an independent writer: protobuf wire format + TFRecord framing ---------------------------

def _masked(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % (1 << 32)


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _feature(kind: str, values, packed: bool) -> bytes:
    if kind == "none":  # a Feature with no list set
        return b""
    if kind == "bytes":
        return _ld(1, b"".join(_ld(1, v) for v in values))
    if kind == "float":
        values = [float(v) for v in np.ravel(values)]
        body = _ld(1, struct.pack(f"<{len(values)}f", *values)) if packed else \
            b"".join(_varint(1 << 3 | 5) + struct.pack("<f", v) for v in values)
        return _ld(2, body)
    values = [int(v) for v in np.ravel(values)]
    body = _ld(1, b"".join(_varint(v) for v in values)) if packed else \
        b"".join(_varint(1 << 3) + _varint(v) for v in values)
    return _ld(3, body)


def example(features: dict[str, tuple[str, object]], packed: bool = True) -> bytes:
    entries = b"".join(_ld(1, _ld(1, key.encode()) + _ld(2, _feature(kind, values, packed)))
                       for key, (kind, values) in features.items())
    return _ld(1, entries)


# --- features.json in TFDS's serialization ----------------------------------------------------

TFDS = "tensorflow_datasets.core.features."


def image(shape, fmt="png"):
    return {"pythonClassName": TFDS + "image_feature.Image",
            "image": {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": "uint8", "encodingFormat": fmt}}


def tensor(shape, dtype="float32", encoding="none"):
    cls = "scalar.Scalar" if not shape else "tensor_feature.Tensor"
    return {"pythonClassName": TFDS + cls, "tensor": {"shape": {"dimensions": [str(d) for d in shape]} if shape else {},
                                                   "dtype": dtype, "encoding": encoding}}


def text():
    return {"pythonClassName": TFDS + "text_feature.Text", "text": {}}


def fdict(features):
    return {"pythonClassName": TFDS + "features_dict.FeaturesDict", "featuresDict": {"features": features}}


def episode_features(steps, metadata=None):
    top = {"steps": {"pythonClassName": TFDS + "dataset_feature.Dataset",
                     "sequence": {"feature": fdict(steps), "length": "-1"}}}
    if metadata:
        top["episode_metadata"] = fdict(metadata)
    return fdict(top)


def write_tfds(folder: Path, name: str, features: dict, shards: dict[str, list[list[bytes]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "features.json").write_text(json.dumps(features, indent=4))
    splits = []
    for split, records in shards.items():
        for i, shard in enumerate(records):
            path = folder / f"{name}-{split}.tfrecord-{i:05d}-of-{len(records):05d}"
            path.write_bytes(b"".join(frame(r) for r in shard))
        splits.append({"filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}", "name": split,
                       "numBytes": "0", "shardLengths": [str(len(s)) for s in records]})
    info = {"fileFormat": "tfrecord", "moduleName": f"{name}.{name}_dataset_builder", "name": name,
            "splits": splits, "version": folder.name}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return folder


def pixels(e: int, t: int, h: int = 12, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 9 + e * 40) % 256, (y * 13 + t * 30) % 256, np.full_like(x, 17 * t + e)], -1).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def read(root: Path, split: str = "train", frames: FrameSelection | None = None, **options):
    spec = DatasetSpec(format="rlds", subfolder=root.name, split=split, options=options)
    return list(rlds.read(root, spec, frames or FrameSelection(mode="gap", gap=1)))


# --- RT-1 (fractal20220817_data) ----------------------------------------------------------------

FRACTAL_FEATURES = episode_features({
    "observation": fdict({"image": image((12, 16, 3), "png"), "natural_language_instruction": text(),
                          "natural_language_embedding": tensor((4,)), "base_pose_tool_reached": tensor((7,)),
                          "gripper_closed": tensor((1,))}),
    "action": fdict({"world_vector": tensor((3,)), "rotation_delta": tensor((3,)),
                     "gripper_closedness_action": tensor((1,)), "terminate_episode": tensor((3,), "int32"),
                     "base_displacement_vector": tensor((2,)), "base_displacement_vertical_rotation": tensor((1,))}),
    "is_first": tensor((), "bool"), "is_last": tensor((), "bool"), "is_terminal": tensor((), "bool"),
    "reward": tensor(()),
})


def fractal_actions(e: int, n: int) -> np.ndarray:
    return (np.arange(n * 7, dtype=np.float32).reshape(n, 7) + 100 * e) / 8


def fractal_episode(e: int, n: int, instruction: str | None = None, packed: bool = True) -> bytes:
    a = fractal_actions(e, n)
    return example({
        "steps/observation/image": ("bytes", [encode(pixels(e, t)) for t in range(n)]),
        "steps/observation/natural_language_instruction": ("bytes", [(instruction or f"pick coke can {e}").encode()] * n),
        "steps/observation/natural_language_embedding": ("float", np.zeros((n, 4))),
        "steps/observation/base_pose_tool_reached": ("float", np.ones((n, 7))),
        "steps/observation/gripper_closed": ("float", np.zeros((n, 1))),
        "steps/action/world_vector": ("float", a[:, :3]), "steps/action/rotation_delta": ("float", a[:, 3:6]),
        "steps/action/gripper_closedness_action": ("float", a[:, 6:]),
        "steps/action/terminate_episode": ("int", np.tile([0, 1, 0], n)),
        "steps/action/base_displacement_vector": ("float", np.zeros((n, 2))),
        "steps/action/base_displacement_vertical_rotation": ("float", np.zeros((n, 1))),
        "steps/is_first": ("int", [1] + [0] * (n - 1)), "steps/is_last": ("int", [0] * (n - 1) + [1]),
        "steps/is_terminal": ("int", [0] * (n - 1) + [1]), "steps/reward": ("float", [0.0] * (n - 1) + [1.0]),
    }, packed)


@pytest.fixture()
def fractal(tmp_path: Path) -> Path:
    """Ragged episodes (3, 5, 2 steps) in two shards; one episode with unpacked lists."""
    root = tmp_path / "fractal20220817_data"
    write_tfds(root / "0.1.0", "fractal20220817_data", FRACTAL_FEATURES,
               {"train": [[fractal_episode(0, 3), fractal_episode(1, 5, packed=False)], [fractal_episode(2, 2)]]})
    return root


def test_framing_and_crc_match_tensorflow(tmp_path):
    assert google_crc32c.value(b"123456789") == 0xE3069283  # the CRC-32C check value
    path = tmp_path / "golden.tfrecord"
    path.write_bytes(TF_GOLDEN)
    records = list(tfrecord.iter_frames(path))
    assert [(r.index, r.offset, r.error) for r in records] == [(0, 0, None), (1, 144, None)]
    assert b"".join(frame(r.data) for r in records) == TF_GOLDEN  # this file's writer
    assert b"".join(tfrecord.frame_record(r.data) for r in records) == TF_GOLDEN
    assert tfrecord.read_record(path, 144) == b""


def test_example_decoding_matches_tensorflow_and_both_list_encodings():
    data = TF_GOLDEN[12:12 + 128]
    mine = example({"empty": ("none", None), "steps/action": ("float", [1.5, -2.0, 0.25]),
                    "steps/is_first": ("int", [1, 0, 300, -5, 2 ** 40]),
                    "steps/observation/image": ("bytes", [b"ab", b""])})
    assert mine == data  # this file's encoder writes what TensorFlow writes (keys in sorted order)
    ex = tfrecord.parse_example(data)
    assert ex["steps/observation/image"] == [b"ab", b""]
    assert ex["steps/action"].tolist() == [1.5, -2.0, 0.25] and ex["steps/action"].dtype == np.float32
    assert ex["steps/is_first"].tolist() == [1, 0, 300, -5, 2 ** 40]
    assert ex["empty"] == []
    assert tfrecord.parse_example(data, {"steps/action"}).keys() == {"steps/action"}
    values = {"f": ("float", [0.5, -1e30, 3.25]), "i": ("int", [0, 127, 128, -1, -(2 ** 63), 2 ** 62])}
    for packed in (True, False):
        ex = tfrecord.parse_example(example(values, packed))
        assert ex["f"].tolist() == np.float32([0.5, -1e30, 3.25]).tolist()
        assert ex["i"].tolist() == [0, 127, 128, -1, -(2 ** 63), 2 ** 62]
    with pytest.raises(ValueError, match="tf.train.Example"):
        tfrecord.parse_example(b"\x0a\x05\x0a")


def test_fractal_ragged_episodes_pixels_actions_and_ids(fractal):
    ts = read(fractal)
    assert len(ts) == (3 - 1) + (5 - 1) + (2 - 1)
    assert [t.sample_id for t in ts[:3]] == ["train/00000:0:0-1", "train/00000:0:1-2", "train/00000:1:0-1"]
    assert ts[-1].sample_id == "train/00001:0:0-1" and ts[-1].meta["episode_index"] == 2
    for t in ts:
        e = t.meta["episode_index"]
        assert np.array_equal(t.source.load(), pixels(e, t.source_index))
        assert np.array_equal(t.target.load(), pixels(e, t.target_index))
        assert t.action_text == f"pick coke can {e}"
        expected = fractal_actions(e, 5)[:, :7] if e == 1 else fractal_actions(e, 3 if e == 0 else 2)
        assert np.array_equal(t.action_vector, expected[t.source_index:t.target_index])
        assert t.fps == 3.0 and t.frame_gap == 1 and t.meta["frames"] == {"mode": "gap", "gap": 1, "stride": None}
    assert [t.sample_id for t in read(fractal)] == [t.sample_id for t in ts]  # stable


def test_frame_selection_modes(fractal):
    ts = read(fractal, frames=FrameSelection(mode="first_last"))
    assert [(t.episode_id, t.source_index, t.target_index) for t in ts] == [("00000:0", 0, 2), ("00000:1", 0, 4),
                                                                            ("00001:0", 0, 1)]
    ts = read(fractal, frames=FrameSelection(mode="seconds", seconds=1.0))  # 3 Hz -> gap 3
    assert [(t.episode_id, t.source_index, t.target_index) for t in ts] == [("00000:1", 0, 3)]
    ts = read(fractal, frames=FrameSelection(mode="keyframes", top_k=2, min_interval=2))
    assert ts and all(t.target_index - t.source_index >= 2 for t in ts)
    assert ts[0].meta["frames"] == {"mode": "keyframes", "top_k": 2, "min_interval": 2}


def test_episode_selection_and_one_record_read_per_episode(fractal, monkeypatch):
    assert {t.meta["episode_index"] for t in read(fractal, episodes=2)} == {0, 1}
    assert {t.meta["episode_index"] for t in read(fractal, episodes=[2, 0])} == {0, 2}
    calls = []
    real = rlds.read_record
    monkeypatch.setattr(rlds, "read_record", lambda p, o: calls.append(o) or real(p, o))
    ts = read(fractal, episodes=[1])
    for t in ts:
        t.source.load(), t.target.load()
    assert len(ts) == 4 and len(calls) == 1
    with pytest.raises(BadInput, match="episodes"):
        read(fractal, episodes="all")


def test_corrupt_data_crc_fails_one_sample_naming_shard_and_offset(fractal):
    shard = fractal / "0.1.0" / "fractal20220817_data-train.tfrecord-00000-of-00002"
    raw = bytearray(shard.read_bytes())
    second = 16 + struct.unpack("<Q", raw[:8])[0]  # offset of the second record
    raw[second + 12 + 40] ^= 0xFF
    shard.write_bytes(bytes(raw))
    ts = read(fractal)
    bad = [t for t in ts if t.sample_id.endswith(":unreadable")]
    assert len(bad) == 1 and len(ts) == 2 + 1 + 1  # episodes 0 and 2 unharmed
    with pytest.raises(SampleError, match=rf"{shard.name}.*byte offset {second}: data CRC mismatch"):
        bad[0].source.load()


def test_corrupt_length_crc_skips_rest_of_shard_and_is_named(fractal):
    shard = fractal / "0.1.0" / "fractal20220817_data-train.tfrecord-00000-of-00002"
    raw = bytearray(shard.read_bytes())
    raw[9] ^= 0x01  # the first record's length CRC
    shard.write_bytes(bytes(raw))
    ts = read(fractal)
    assert [t.sample_id for t in ts] == ["train/00000@0:unreadable", "train/00001:0:0-1"]
    with pytest.raises(SampleError, match=r"byte offset 0: length CRC mismatch.*rest of this shard"):
        ts[0].target.load()


def test_corruption_after_listing_is_caught_at_load(fractal):
    ts = read(fractal)
    shard = fractal / "0.1.0" / "fractal20220817_data-train.tfrecord-00001-of-00002"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(SampleError, match=rf"{shard.name}: record at byte offset 0: data CRC mismatch"):
        ts[-1].source.load()


def test_missing_shard_is_a_failed_sample(fractal):
    (fractal / "0.1.0" / "fractal20220817_data-train.tfrecord-00001-of-00002").unlink()
    ts = read(fractal)
    assert ts[-1].sample_id == "train/00001@0:unreadable" and len(ts) == 7
    with pytest.raises(SampleError, match="missing TFRecord file"):
        ts[-1].source.load()


def test_language_table_code_point_instructions(tmp_path):
    features = episode_features({
        "observation": fdict({"rgb": image((12, 16, 3), "png"), "instruction": tensor((512,), "int32"),
                              "effector_translation": tensor((2,))}),
        "action": tensor((2,)), "reward": tensor(()), "is_first": tensor((), "bool")})
    episodes = []
    for e, words in enumerate(["push the red star to the top left", "slide the blue cube ü"]):
        code = np.zeros(512, dtype=np.int64)
        code[:len(words)] = [ord(c) for c in words]
        n = 2 + e
        episodes.append(example({"steps/observation/rgb": ("bytes", [encode(pixels(e, t)) for t in range(n)]),
                                 "steps/observation/instruction": ("int", np.tile(code, n)),
                                 "steps/observation/effector_translation": ("float", np.zeros(2 * n)),
                                 "steps/action": ("float", np.arange(2 * n) - 1.5), "steps/reward": ("float", [0] * n),
                                 "steps/is_first": ("int", [1] + [0] * (n - 1))}))
    root = tmp_path / "language_table"
    write_tfds(root / "0.0.1", "language_table", features, {"train": [episodes]})
    ts = read(root)
    assert [t.action_text for t in ts] == ["push the red star to the top left"] + ["slide the blue cube ü"] * 2
    assert ts[1].action_vector.tolist() == [[-1.5, -0.5]] and ts[0].fps == 10.0
    assert np.array_equal(ts[2].target.load(), pixels(1, 2))


def _bridge(tmp_path: Path, oxe: bool) -> Path:
    cam = "image" if oxe else "image_0"
    steps = {"observation": fdict({cam: image((12, 16, 3), "jpeg"), "image_1": image((12, 16, 3), "jpeg"),
                                   "state": tensor((7,))}),
             "is_first": tensor((), "bool"), "discount": tensor(())}
    if oxe:  # the OXE copy: instruction in the observation, action as a dict
        steps["observation"]["featuresDict"]["features"]["natural_language_instruction"] = text()
        steps["action"] = fdict({"world_vector": tensor((3,)), "rotation_delta": tensor((3,)),
                                 "open_gripper": tensor((), "bool"), "terminate_episode": tensor(())})
    else:
        steps.update(language_instruction=text(), action=tensor((7,)))
    meta = None if oxe else {"file_path": text(), "has_language": tensor((), "bool")}
    name, records = ("bridge", []) if oxe else ("bridge_dataset", [])
    for e, words in enumerate(["put the spoon in the pot", "", "open the drawer"]):
        n = 3
        ex = {f"steps/observation/{cam}": ("bytes", [encode(pixels(e, t), "JPEG") for t in range(n)]),
              "steps/observation/image_1": ("bytes", [encode(pixels(9, t), "JPEG") for t in range(n)]),
              "steps/observation/state": ("float", np.zeros(7 * n)), "steps/is_first": ("int", [1, 0, 0]),
              "steps/discount": ("float", [1.0] * n)}
        if oxe:
            ex["steps/observation/natural_language_instruction"] = ("bytes", [words.encode()] * n)
            ex.update({"steps/action/world_vector": ("float", np.full(3 * n, e)),
                       "steps/action/rotation_delta": ("float", np.zeros(3 * n)),
                       "steps/action/open_gripper": ("int", [1, 0, 1]), "steps/action/terminate_episode": ("float", [0] * n)})
        else:
            ex["steps/language_instruction"] = ("bytes", [words.encode()] * n)
            ex["steps/action"] = ("float", np.full(7 * n, e))
            ex["episode_metadata/file_path"] = ("bytes", [f"/raw/traj{e}".encode()])
            ex["episode_metadata/has_language"] = ("int", [int(bool(words))])
        records.append(example(ex))
    root = tmp_path / name
    write_tfds(root / "1.0.0", name, episode_features(steps, meta), {"train": [records], "val": [records[:1]]})
    return root


@pytest.mark.parametrize("oxe", [False, True])
def test_bridge_release_and_oxe_copy(tmp_path, oxe):
    root = _bridge(tmp_path, oxe)
    ts = read(root)
    assert [t.action_text for t in ts] == ["put the spoon in the pot"] * 2 + ["open the drawer"] * 2  # unlabelled left out
    assert ts[0].meta["image_key"] == ("steps/observation/image" if oxe else "steps/observation/image_0")
    assert np.abs(ts[2].source.load().astype(int) - pixels(2, 0)).mean() < 3  # JPEG, quality 95
    assert ts[0].fps == 5.0
    if oxe:
        assert ts[0].action_vector.tolist() == [[0, 0, 0, 0, 0, 0, 1.0]]  # world_vector, rotation_delta, open_gripper
    else:
        assert ts[2].meta["file_path"] == "/raw/traj2" and ts[2].action_vector.shape == (1, 7)
    assert len(read(root, keep_unlabelled=True)) == 6
    assert len(read(root, split="val")) == 2
    ts = read(root, image_key="observation/image_1")
    assert np.abs(ts[0].source.load().astype(int) - pixels(9, 0)).mean() < 3


def test_droid_key_map_and_overrides(tmp_path):
    steps = {"observation": fdict({"exterior_image_1_left": image((12, 16, 3)), "exterior_image_2_left": image((12, 16, 3)),
                                   "wrist_image_left": image((12, 16, 3)), "joint_position": tensor((7,), "float64")}),
             "language_instruction": text(), "language_instruction_2": text(), "action": tensor((7,), "float64")}
    meta = {"file_path": text(), "recording_folderpath": text()}
    n = 2
    record = example({"steps/observation/exterior_image_1_left": ("bytes", [encode(pixels(0, t)) for t in range(n)]),
                      "steps/observation/exterior_image_2_left": ("bytes", [encode(pixels(1, t)) for t in range(n)]),
                      "steps/observation/wrist_image_left": ("bytes", [encode(pixels(2, t)) for t in range(n)]),
                      "steps/observation/joint_position": ("float", np.zeros(7 * n)),
                      "steps/language_instruction": ("bytes", [b"put the marker in the cup"] * n),
                      "steps/language_instruction_2": ("bytes", [b"marker into cup"] * n),
                      "steps/action": ("float", np.arange(7 * n) / 4), "episode_metadata/file_path": ("bytes", [b"/d/a.h5"]),
                      "episode_metadata/recording_folderpath": ("bytes", [b"/d"])})
    root = tmp_path / "droid"
    write_tfds(root / "1.0.0", "droid", episode_features(steps, meta), {"train": [[record]]})
    (t,) = read(root)
    assert t.action_text == "put the marker in the cup" and t.fps == 15.0
    assert np.array_equal(t.target.load(), pixels(0, 1)) and t.action_vector.dtype == np.float32
    (t,) = read(root, image_key="observation/wrist_image_left", instruction_key="language_instruction_2", fps=5)
    assert np.array_equal(t.source.load(), pixels(2, 0)) and t.action_text == "marker into cup" and t.fps == 5.0
    (t,) = read(root, dataset="some_new_dataset", action_keys=[])  # no key map: the generic candidates
    assert t.action_vector is None and t.meta["image_key"] == "steps/observation/exterior_image_1_left"
    with pytest.raises(BadInput, match="image_key 'observation/nope' is not a feature"):
        read(root, image_key="observation/nope")


def test_tensor_encodings_and_dtypes():
    spec = tfrecord.FeatureSpec("steps/depth", "tensor", (2, 3), "uint16", "zlib", True)
    arrays = [np.arange(6, dtype=np.uint16).reshape(2, 3) * (t + 1) + 60000 for t in range(2)]
    got = tfrecord.step_tensor([zlib.compress(a.tobytes()) for a in arrays], spec, 2)
    assert got.dtype == np.uint16 and np.array_equal(got, np.stack(arrays))
    flags = tfrecord.step_tensor(np.array([1, 0, 1]), tfrecord.FeatureSpec("steps/is_first", "tensor", (), "bool"), 3)
    assert flags.tolist() == [True, False, True]
    with pytest.raises(SampleError, match="6 values for 4 steps"):
        tfrecord.step_tensor(np.zeros(6), tfrecord.FeatureSpec("steps/action", "tensor", (2,), "float32"), 4)


def test_bad_folders_options_and_splits(tmp_path, fractal):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="dataset_info.json and features.json"):
        read(tmp_path / "empty")
    with pytest.raises(BadInput, match="unknown option"):
        read(fractal, camera="image")
    with pytest.raises(FormatError, match=r"split 'test'.*\['train'\]"):
        read(fractal, split="test")
    info = json.loads((fractal / "0.1.0" / "dataset_info.json").read_text())
    (fractal / "0.1.0" / "dataset_info.json").write_text(json.dumps({**info, "fileFormat": "array_record"}))
    with pytest.raises(FormatError, match="array_record"):
        read(fractal)
    assert FORMATS.get("rlds") is rlds.read


def test_origins_are_relative_to_the_dataset_root(fractal, tmp_path):
    (fractal / "0.1.0" / "fractal20220817_data-train.tfrecord-00001-of-00002").unlink()  # one failed sample
    ts = read(fractal)
    assert ts[-1].sample_id.endswith(":unreadable")
    for t in ts:
        for origin in (t.describe()["source"], t.describe()["target"]):
            assert not origin.startswith("/") and str(tmp_path) not in origin, origin
    assert ts[0].describe()["source"] == \
        "0.1.0/fractal20220817_data-train.tfrecord-00000-of-00002@0:steps/observation/image[0]"
    assert np.array_equal(ts[0].source.load(), pixels(0, 0))
