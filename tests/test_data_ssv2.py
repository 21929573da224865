"""Something-Something v2 reader on fixtures in the published layout: labels/*.json and VP9 WebM
videos written with PyAV (whose headers, like the real ones, carry no frame count)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from wmbench.data import FORMATS, video
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.data.ssv2 import read
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec, load_task
from video_fixtures import decode_all, encode_video

LABELS = {"Putting something on a surface": "0", "Holding something next to something": "1",
          "Pushing something from left to right": "2"}
ENTRIES = [
    {"id": "74225", "label": "putting cup on a surface", "template": "Putting [something] on a surface",
     "placeholders": ["cup"]},
    {"id": "116154", "label": "holding potato next to vicks vaporub bottle",
     "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
    {"id": "198186", "label": "pushing pen from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["pen"]},
]
LENGTHS = {"74225": 14, "116154": 9, "198186": 20}


def write_webm(path: Path, n: int, seed: int, size: int = 32, fps: int = 12) -> None:
    """A VP9 WebM whose frames differ by a moving bar and a burst of motion in the middle."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=(size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = base.copy()
        frame[:, (i * 3) % size: (i * 3) % size + 4] = 255
        if i in (n // 3, 2 * n // 3):
            frame = 255 - frame
        frames.append(frame)
    encode_video(path, frames, "libvpx-vp9", fps, "webm")


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ssv2")
    (root / "labels").mkdir()
    (root / "labels/labels.json").write_text(json.dumps(LABELS))
    (root / "labels/validation.json").write_text(json.dumps(ENTRIES))
    (root / "labels/train.json").write_text(json.dumps(ENTRIES[:1]))
    (root / "labels/test.json").write_text(json.dumps([{"id": "74225"}, {"id": "198186"}]))
    for i, (vid, n) in enumerate(LENGTHS.items()):
        write_webm(root / "20bn-something-something-v2" / f"{vid}.webm", n, seed=i)
    return root


def _read(root: Path, frames=FrameSelection(mode="first_last"), split="validation", **options):
    return list(read(root, DatasetSpec("ssv2", "ssv2", split=split, options=options), frames))


def test_registered():
    assert FORMATS.get("ssv2") is read


def test_webm_header_has_no_frame_count(ssv2):
    path = ssv2 / "20bn-something-something-v2/74225.webm"
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
        assert container.streams.video[0].codec_context.name == "vp9"
    assert video.count_frames(path)[0] == LENGTHS["74225"] == len(decode_all(path))


def test_first_last_pairs_labels_and_pixels(ssv2):
    ts = _read(ssv2)
    assert [t.sample_id for t in ts] == [f"{vid}:0-{n - 1}" for vid, n in LENGTHS.items()]
    t = ts[1]
    assert t.action_text == "holding potato next to vicks vaporub bottle"
    assert t.meta["class_id"] == 1 and t.meta["class_name"] == "Holding something next to something"
    assert t.meta["placeholders"] == ["potato", "vicks vaporub bottle"]
    assert t.meta["frames"] == {"mode": "first_last"} and t.meta["n_frames"] == 9
    assert t.fps == 12 and t.target_time_s == pytest.approx(8 / 12)
    reference = decode_all(ssv2 / "20bn-something-something-v2/116154.webm")
    np.testing.assert_array_equal(t.source.load(), reference[0])
    np.testing.assert_array_equal(t.target.load(), reference[-1])


def test_template_action_text(ssv2):
    ts = _read(ssv2, action_text="template")
    assert ts[0].action_text == "Putting something on a surface" and ts[0].meta["class_id"] == 0
    with pytest.raises(BadInput, match="action_text"):
        _read(ssv2, action_text="caption")


def test_gap_pairs_decode_each_video_once(ssv2, monkeypatch):
    calls = []
    real = video.read_frames
    monkeypatch.setattr(video, "read_frames",
                        lambda p, keys, **k: calls.append((Path(p).stem, list(keys))) or real(p, keys, **k))
    ts = _read(ssv2, frames=FrameSelection(mode="gap", gap=4, stride=2))
    ids = [t.sample_id for t in ts if t.episode_id == "198186"]
    assert ids == [f"198186:{s}-{s + 4}" for s in range(0, 16, 2)]
    reference = decode_all(ssv2 / "20bn-something-something-v2/198186.webm")
    for t in ts:
        if t.episode_id == "198186":
            np.testing.assert_array_equal(t.source.load(), reference[t.source_index])
            np.testing.assert_array_equal(t.target.load(), reference[t.target_index])
        else:
            t.source.load(), t.target.load()
    assert sorted(stem for stem, _ in calls) == sorted(LENGTHS)  # one decoder pass per video


def test_only_selected_samples_are_decoded(ssv2, monkeypatch):
    calls = []
    real = video.read_frames
    monkeypatch.setattr(video, "read_frames", lambda p, keys, **k: calls.append(list(keys)) or real(p, keys, **k))
    ts = [t for t in _read(ssv2, frames=FrameSelection(mode="gap", gap=1)) if t.episode_id == "74225"]
    keep = ts[5]
    del ts  # the runner drops unselected transitions: their frames are not decoded
    keep.source.load()
    keep.target.load()
    assert calls == [[5, 6]]


def test_keyframes_follow_motion_of_decoded_frames(ssv2):
    frames = FrameSelection(mode="keyframes", top_k=3, min_interval=2)
    ts = [t for t in _read(ssv2, frames=frames) if t.episode_id == "198186"]
    reference = np.stack(decode_all(ssv2 / "20bn-something-something-v2/198186.webm"))
    expected = frames.pairs(len(reference), 12.0, motion=lambda: video.motion_magnitudes(reference))
    assert [(t.source_index, t.target_index) for t in ts] == expected
    assert ts[0].meta["frames"] == {"mode": "keyframes", "top_k": 3, "min_interval": 2}
    # the inverted frames (n//3 = 6 and 2n//3 = 13) differ most from their predecessors
    assert {6, 13} <= {i for pair in expected for i in pair}


def test_seconds_mode_uses_the_stream_rate(ssv2):
    ts = [t for t in _read(ssv2, frames=FrameSelection(mode="seconds", seconds=0.5)) if t.episode_id == "74225"]
    assert [(t.source_index, t.target_index) for t in ts] == [(0, 6), (6, 12)]


def test_missing_and_corrupt_videos_fail_one_counted_sample(tmp_path, ssv2):
    root = tmp_path / "ssv2"
    (root / "labels").mkdir(parents=True)
    (root / "labels/labels.json").write_text(json.dumps(LABELS))
    (root / "labels/validation.json").write_text(json.dumps(ENTRIES))
    videos = root / "20bn-something-something-v2"
    videos.mkdir()
    (videos / "74225.webm").write_bytes((ssv2 / "20bn-something-something-v2/74225.webm").read_bytes())
    (videos / "116154.webm").write_bytes(b"\x1a\x45\xdf\xa3 not a webm at all")
    ts = _read(root)
    assert [t.sample_id for t in ts] == ["74225:0-13", "116154:unreadable", "198186:unreadable"]
    with pytest.raises(SampleError, match=r"116154\.webm.*video 116154"):
        ts[1].source.load()
    with pytest.raises(SampleError, match=r"missing video .*198186\.webm \(video 198186\)"):
        ts[2].target.load()
    assert ts[0].target.load().shape == (32, 32, 3)


def test_older_file_names_at_the_root(tmp_path, ssv2):
    root = tmp_path / "old"
    root.mkdir()
    (root / "something-something-v2-labels.json").write_text(json.dumps(LABELS))
    (root / "something-something-v2-train.json").write_text(json.dumps(ENTRIES[2:]))
    (root / "198186.webm").write_bytes((ssv2 / "20bn-something-something-v2/198186.webm").read_bytes())
    ts = _read(root, split="train")
    assert [t.sample_id for t in ts] == ["198186:0-19"] and ts[0].meta["class_id"] == 2
    assert ts[0].source.load().shape == (32, 32, 3)


def test_test_split_needs_the_answers(ssv2, tmp_path):
    with pytest.raises(BadInput, match="test-answers.csv"):
        _read(ssv2, split="test")
    (ssv2 / "labels/test-answers.csv").write_text("74225;Putting something on a surface\n"
                                                   "198186;Pushing something from left to right\n")
    try:
        ts = _read(ssv2, split="test")
    finally:
        (ssv2 / "labels/test-answers.csv").unlink()
    assert [t.meta["class_id"] for t in ts] == [0, 2]
    assert ts[0].action_text == "Putting something on a surface"  # no filled-in label: the class name


def test_bad_folders_and_options(tmp_path, ssv2):
    with pytest.raises(FormatError, match="labels.json"):
        _read(tmp_path)
    with pytest.raises(BadInput, match="unknown split"):
        _read(ssv2, split="dev")
    with pytest.raises(BadInput, match="'fps'"):
        _read(ssv2, fps=12)
    with pytest.raises(BadInput, match="escapes"):
        _read(ssv2, videos="../elsewhere")


def test_task_specs_load():
    tasks = Path(__file__).resolve().parents[1] / "tasks" / "ssv2"
    assert {load_task(p).name for p in tasks.glob("*.yaml")} == {"ssv2_fdp", "ssv2_idp"}


def test_frame_groups_are_bounded_and_decode_on_demand():
    decoded = []

    def decode(keys):
        decoded.append(list(keys))
        return {k: np.full((10, 10, 3), k, np.uint8) for k in keys}

    cache = video.FrameCache(max_bytes=700)  # room for two frames of 300 bytes
    first, second = video.FrameGroup(decode, cache), video.FrameGroup(decode, cache)
    a, b = first.handle(1), first.handle(2)
    c, d = second.handle(3), second.handle(4)
    assert a()[0, 0, 0] == 1 and decoded == [[1, 2]]  # one pass for both images of the group
    assert c()[0, 0, 0] == 3 and decoded == [[1, 2], [3, 4]]  # 1200 bytes held: `first` is evicted
    assert b()[0, 0, 0] == 2 and decoded[-1] == [2]  # decoded again, only what is still pending
    assert d()[0, 0, 0] == 4 and len(decoded) == 4
    failing = video.FrameGroup(lambda keys: (_ for _ in ()).throw(SampleError("broken file")), cache)
    e, f = failing.handle(0, "entry e"), failing.handle(1, "entry f")
    with pytest.raises(SampleError, match=r"broken file \(entry e\)"):
        e()
    with pytest.raises(SampleError, match=r"broken file \(entry f\)"):
        f()
    assert failing.decodes == 1  # the error is kept, the file is not read again
