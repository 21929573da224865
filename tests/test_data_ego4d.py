"""Ego4D FHO reader on a fixture in the published schema (fho_main.json: videos -> annotated_intervals
-> narrated_actions with critical_frames) and tiny H.264 mp4s written with PyAV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS, video
from wmbench.data.common import FormatError
from wmbench.data.ego4d import clean_narration, read
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec, load_task
from video_fixtures import decode_all, encode_video

VIDEO = "0a02a1ed-a327-4753-b270-e95298984b96"
CLIP = "c1f1b9d4-1111-2222-3333-444455556666"


def write_mp4(path: Path, n: int, seed: int, fps: int = 30, gop: int = 10) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        frame = np.full((24, 32, 3), (i * 5) % 256, np.uint8)
        frame[:, i % 32] = rng.integers(0, 256, size=3)
        frames.append(frame)
    encode_video(path, frames, "libx264", fps, "mp4", gop=gop)


def action(uid: str, text: str, pre, pnr, post, clip_offset: int = 30, **extra) -> dict:
    crit = None if pre is None else {"pre_frame": pre, "pnr_frame": pnr, "post_frame": post, "contact_frame": pnr}
    clip_crit = None if crit is None else {k: v - clip_offset for k, v in crit.items()}
    return {"warnings": [], "uid": uid, "start_sec": 1.0, "end_sec": 4.0, "start_frame": 30, "end_frame": 120,
            "is_valid_action": True, "is_partial": False, "clip_start_sec": 0.0, "clip_end_sec": 3.0,
            "clip_start_frame": 0, "clip_end_frame": 90, "narration_text": text,
            "narration_timestamp_sec": 2.0, "clip_narration_timestamp_sec": 1.0,
            "narration_annotation_uid": "n-" + uid, "structured_verb": "take_(pick,_grab,_get)",
            "freeform_verb": "picks", "state_transition": None, "critical_frames": crit,
            "clip_critical_frames": clip_crit, "frames": None, "is_rejected": False,
            "is_invalid_annotation": False, "reject_reason": None, "stage": 3, **extra}


@pytest.fixture(scope="module")
def ego4d(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ego4d")
    actions = [
        action("a1", "#C C picks up the knife", 40, 50, 60),
        action("a2", "#C C puts the knife in #O the sink #unsure", 65, 80, 95),
        action("a3", "#C C drops the cup", 70, 75, 80, is_rejected=True),
        action("a4", "#C C opens the tap", None, None, None),
        action("a5", "#C C washes hands", 100, 110, 115, is_valid_action=False),
        action("a6", "#C C closes the tap", 200, 210, 230),
    ]
    data = {"version": "v1", "date": "2022-02-22", "description": "fho main",
            "videos": [{"video_uid": VIDEO, "video_metadata": {"fps": 30.0, "duration_sec": 8.0},
                        "annotated_intervals": [{"clip_uid": CLIP, "start_sec": 1.0, "end_sec": 9.0,
                                                 "narrated_actions": actions}]},
                       {"video_uid": "missing-video", "annotated_intervals": [
                           {"clip_uid": None, "start_sec": 0, "end_sec": 8,
                            "narrated_actions": [action("b1", "#C C cuts onion", 10, 12, 14)]}]}]}
    (root / "v2/annotations").mkdir(parents=True)
    (root / "v2/annotations/fho_main.json").write_text(json.dumps(data))
    write_mp4(root / "v2/full_scale" / f"{VIDEO}.mp4", 240, seed=0)
    write_mp4(root / "v2/clips" / f"{CLIP}.mp4", 200, seed=1)
    return root


def _read(root: Path, **options):
    return list(read(root, DatasetSpec("ego4d", "ego4d", split="all", options=options), FrameSelection()))


def test_registered():
    assert FORMATS.get("ego4d") is read


@pytest.mark.parametrize("text,clean", [
    ("#C C picks up the knife", "picks up the knife"),
    ("#c c opens the door", "opens the door"),
    ("#C C gives #O man X the cup", "gives man X the cup"),
    ("#C C stirs the pot #unsure", "stirs the pot"),
    ("  #O woman Y walks  ", "woman Y walks"),
])
def test_clean_narration(text, clean):
    assert clean_narration(text) == clean


def test_pre_post_pairs_from_the_full_video(ego4d):
    ts = _read(ego4d)
    assert [t.sample_id for t in ts] == ["a1:pre-post", "a2:pre-post", "a6:pre-post", "b1:pre-post"]
    reference = decode_all(ego4d / "v2/full_scale" / f"{VIDEO}.mp4")
    for t in ts[:3]:
        np.testing.assert_array_equal(t.source.load(), reference[t.source_index])
        np.testing.assert_array_equal(t.target.load(), reference[t.target_index])
    t = ts[1]
    assert (t.source_index, t.target_index, t.frame_gap) == (65, 95, 30)
    assert t.action_text == "puts the knife in the sink"
    assert t.meta["narration_text"] == "#C C puts the knife in #O the sink #unsure"
    assert t.meta["critical_frames"] == {"pre_frame": 65, "pnr_frame": 80, "post_frame": 95}
    assert t.meta["frames"]["pair"] == "pre_frame->post_frame" and t.fps == 30.0
    assert t.source_time_s == pytest.approx(65 / 30)


def test_one_decoder_pass_per_video(ego4d, monkeypatch):
    calls = []
    real = video.read_frames_seek
    monkeypatch.setattr(video, "read_frames_seek",
                        lambda p, keys, **kw: calls.append(list(keys)) or real(p, keys, **kw))
    ts = _read(ego4d)[:3]
    for t in ts:
        t.source.load(), t.target.load()
    assert calls == [[40, 60, 65, 95, 200, 230]]


def test_missing_video_fails_naming_file_and_action(ego4d):
    t = _read(ego4d)[-1]
    with pytest.raises(SampleError, match=r"missing-video\.mp4.*narrated action b1 of video missing-video"):
        t.source.load()


def test_pair_option_and_clip_media(ego4d):
    ts = _read(ego4d, pair="pnr-post", media="clip")
    assert [t.sample_id for t in ts] == ["a1:pnr-post", "a2:pnr-post", "a6:pnr-post", "b1:pnr-post"]
    with pytest.raises(SampleError, match="no clip_uid"):  # counted as failed, not dropped
        ts[-1].source.load()
    reference = decode_all(ego4d / "v2/clips" / f"{CLIP}.mp4")
    t = ts[0]
    assert (t.source_index, t.target_index) == (20, 30)  # clip_critical_frames
    np.testing.assert_array_equal(t.source.load(), reference[20])
    np.testing.assert_array_equal(t.target.load(), reference[30])
    # a6's post frame (clip frame 200) lies past the 200-frame clip: only a6 fails
    assert ts[2].source.load().shape == (24, 32, 3)
    with pytest.raises(SampleError, match=r"no frame 200 \(narrated action a6"):
        ts[2].target.load()


def test_extracted_frames_media(ego4d, tmp_path):
    root = tmp_path / "frames_root"
    root.mkdir()
    (root / "fho_main.json").write_text((ego4d / "v2/annotations/fho_main.json").read_text())
    for f in (40, 60):
        path = root / "frames" / VIDEO / f"frame_{f:010d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), f, np.uint8)).save(path)
    ts = _read(root, media="frames")
    assert abs(float(ts[0].target.load().mean()) - 60) < 2
    with pytest.raises(SampleError, match="frame_0000000065.jpg"):
        ts[1].source.load()


def test_bad_input(tmp_path, ego4d):
    with pytest.raises(FormatError, match="fho_main.json"):
        _read(tmp_path)
    (tmp_path / "fho_main.json").write_text(json.dumps({"clips": []}))
    with pytest.raises(FormatError, match="'videos' list"):
        _read(tmp_path)
    with pytest.raises(BadInput, match="option 'pair'"):
        _read(ego4d, pair="pre-contact")
    with pytest.raises(BadInput, match="'fps'"):
        _read(ego4d, fps=30)


def test_read_frames_seek_matches_sequential_decoding(tmp_path):
    path = tmp_path / "long.mp4"
    write_mp4(path, 300, seed=3, gop=15)
    want = [0, 1, 44, 150, 151, 299]
    sequential = video.read_frames(path, want)
    seeking = video.read_frames_seek(path, want, seek_gap=20)
    for k in want:
        np.testing.assert_array_equal(seeking[k], sequential[k])
    with pytest.raises(SampleError, match="cannot get frame"):
        video.read_frames_seek(path, [300])


def test_task_spec_loads():
    tasks = Path(__file__).resolve().parents[1] / "tasks" / "ego4d"
    assert [load_task(p).name for p in tasks.glob("*.yaml")] == ["ego4d_idp"]
