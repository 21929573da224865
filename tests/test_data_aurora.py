"""Aurora-Bench reader on fixtures in the published layout (test.json + data/<task>/images), and on
the real ag/kubric sample in ../shared when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS
from wmbench.data.aurora import read
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "aurora-bench-sample"


def _png(root: Path, relative: str, value: int, size=(12, 10)) -> np.ndarray:
    rng = np.random.default_rng(value)
    array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


@pytest.fixture
def bench(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A miniature AURORA checkout: every subset, entries without outputs, a missing target
    (as two `something` targets are missing upstream), an older `prompt` spelling and an escape."""
    root = tmp_path / "aurora-bench"
    images = {}
    for rel, value in [("data/magicbrush/images/1/1-input.png", 1), ("data/magicbrush/images/1/1-output1.png", 2),
                       ("data/ag/images/A.mp4_3_left.png", 3), ("data/ag/images/A.mp4_3_right.png", 4),
                       ("data/something/images/36/first.jpg", 5),
                       ("data/whatsup/images/cup_on_table.jpeg", 6), ("data/whatsup/images/cup_under_table.jpeg", 7),
                       ("data/kubric/images/closer/1/image0.jpg", 8), ("data/kubric/images/closer/1/image1.jpg", 9),
                       ("data/clevr/images/CLEVR_default_000031.png", 10), ("data/emu/images/2660.png", 11),
                       ("data/epic/images/EPIC-KITCHENS_P34_rgb_frames_frame_0000008494.jpg", 12)]:
        images[rel] = _png(root, rel, value)
    (tmp_path / "outside.png").write_bytes((root / "data/emu/images/2660.png").read_bytes())
    entries = [
        {"input": "data/magicbrush/images/1/1-input.png", "output": "data/magicbrush/images/1/1-output1.png",
         "instruction": "Put a cat on the seat.", "task": "magicbrush"},
        {"instruction": "Make her close the door", "input": "data/ag/images/A.mp4_3_left.png",
         "output": "data/ag/images/A.mp4_3_right.png", "task": "ag"},
        {"id": "36", "instruction": "Make remote fall down", "input": "data/something/images/36/first.jpg",
         "output": "data/something/images/36/last.jpg", "task": "something"},  # last.jpg is missing
        {"input": "data/whatsup/images/cup_on_table.jpeg", "output": "data/whatsup/images/cup_under_table.jpeg",
         "caption": "A cup under a table", "instruction": "Move the cup under the table", "task": "whatsup"},
        {"input": "data/kubric/images/closer/1/image0.jpg", "output": "data/kubric/images/closer/1/image1.jpg",
         "prompt": "move the mug closer", "pos": "move the mug away", "task": "kubric"},  # early spelling
        {"id": "000031", "instruction": "change the ball to red",
         "input": "data/clevr/images/CLEVR_default_000031.png", "task": "clevr"},
        {"instruction": "Make it anime.", "input": "data/emu/images/2660.png", "type": "style", "task": "emu"},
        {"input": "data/epic/images/EPIC-KITCHENS_P34_rgb_frames_frame_0000008494.jpg",
         "instruction": "Open the left drawer as well", "task": "epic"},
        {"instruction": "escape", "input": "../outside.png", "output": "data/ag/images/A.mp4_3_right.png",
         "task": "ag"},
    ]
    (root / "test.json").write_text(json.dumps(entries, indent=2))
    return root, images


def _read(root: Path, **options):
    return list(read(root, DatasetSpec("aurora", "aurora-bench", options=options), FrameSelection()))


def test_registered():
    assert FORMATS.get("aurora") is read


def test_reads_every_entry_with_ids_actions_and_targets(bench):
    root, images = bench
    ts = _read(root)
    assert [t.sample_id for t in ts] == ["magicbrush:0", "ag:1", "something:36", "whatsup:3", "kubric:4",
                                         "clevr:000031", "emu:6", "epic:7", "ag:8"]
    by_id = {t.sample_id: t for t in ts}
    assert by_id["magicbrush:0"].action_text == "Put a cat on the seat."
    assert by_id["kubric:4"].action_text == "move the mug closer"  # `prompt` spelling read
    assert by_id["kubric:4"].meta["pos"] == "move the mug away"
    assert by_id["whatsup:3"].meta["caption"] == "A cup under a table"
    assert by_id["emu:6"].meta["type"] == "style"
    for sid in ("clevr:000031", "emu:6", "epic:7"):  # subsets without a ground truth
        assert by_id[sid].target is None
    assert all(t.dataset == "aurora-bench" and t.split == "test" for t in ts)
    assert [t.episode_id for t in ts] == ["magicbrush:1", "ag:A.mp4", "something:36", "whatsup:cup_on_table.jpeg",
                                         "kubric:closer/1", "clevr:CLEVR_default_000031.png", "emu:2660.png",
                                         "epic:EPIC-KITCHENS_P34_rgb_frames_frame_0000008494.jpg", "ag:.."]
    assert {t.meta["task"] for t in ts} == {"magicbrush", "ag", "something", "whatsup", "kubric", "clevr", "emu",
                                            "epic"}


def test_pixels_are_the_files(bench):
    root, images = bench
    t = _read(root, subset="magicbrush")[0]
    np.testing.assert_array_equal(t.source.load(), images["data/magicbrush/images/1/1-input.png"])
    np.testing.assert_array_equal(t.target.load(), images["data/magicbrush/images/1/1-output1.png"])


def test_missing_target_fails_only_that_sample_naming_path_and_entry(bench):
    root, _ = bench
    t = {t.sample_id: t for t in _read(root)}["something:36"]
    assert t.source.load().shape == (10, 12, 3)
    with pytest.raises(SampleError) as info:
        t.target.load()
    message = str(info.value)
    assert "data/something/images/36/last.jpg" in message and "entry #2" in message and "id 36" in message


def test_path_escaping_the_root_is_refused(bench):
    root, _ = bench
    t = {t.sample_id: t for t in _read(root)}["ag:8"]
    with pytest.raises(SampleError, match="escapes the dataset root"):
        t.source.load()


def test_subset_option(bench):
    root, _ = bench
    assert [t.sample_id for t in _read(root, subset="ag")] == ["ag:1", "ag:8"]
    assert {t.meta["task"] for t in _read(root, subset=["clevr", "emu"])} == {"clevr", "emu"}
    with pytest.raises(BadInput, match="unknown subset"):
        _read(root, subset="pets")


def test_unknown_option_is_named(bench):
    root, _ = bench
    with pytest.raises(BadInput, match="'subsets'"):
        _read(root, subsets="ag")


def test_not_an_aurora_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(FormatError, match="test.json"):
        _read(tmp_path)
    (tmp_path / "test.json").write_text(json.dumps([{"image": "a.png", "text": "x"}]))
    with pytest.raises(FormatError, match="entry #0"):
        _read(tmp_path)
    (tmp_path / "test.json").write_text("[{]")
    with pytest.raises(BadInput, match="malformed JSON at line 1"):
        _read(tmp_path)


def test_training_format_infers_the_task_from_the_path(tmp_path):
    root = tmp_path / "aurora"
    _png(root, "data/ag/images/X.mp4_1_left.png", 1)
    _png(root, "data/ag/images/X.mp4_1_right.png", 2)
    train = [{"instruction": "Leave the door", "input": "data/ag/images/X.mp4_1_left.png",
              "output": "data/ag/images/X.mp4_1_right.png"}] * 2
    (root / "data/ag/train.json").write_text(json.dumps(train))
    ts = _read(root, file="data/ag/train.json")
    assert [t.sample_id for t in ts] == ["ag:0", "ag:1"]
    assert ts[0].target.load().shape == (10, 12, 3)
    # the same entries as JSON Lines
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(e) for e in train) + "\n")
    assert len(_read(root, file="pairs.jsonl")) == 2


def test_repeated_ids_stay_unique(tmp_path):
    root = tmp_path / "aurora"
    _png(root, "a.png", 1)
    entries = [{"id": "7", "instruction": "x", "input": "a.png", "task": "clevr"}] * 2
    (root / "test.json").write_text(json.dumps(entries))
    assert [t.sample_id for t in _read(root)] == ["clevr:7", "clevr:7@1"]


def test_file_option_cannot_leave_the_root(bench):
    root, _ = bench
    with pytest.raises(BadInput, match="escapes"):
        _read(root, file="../x.json")


@pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="../shared/data/aurora-bench-sample is not present")
def test_real_aurora_bench_sample():
    entries = json.loads((SHARED_SAMPLE / "test.json").read_text())
    ts = _read(SHARED_SAMPLE)
    assert len(ts) == len(entries)
    assert len({t.sample_id for t in ts}) == len(ts)
    for t, entry in zip(ts, entries):
        assert t.action_text == entry["instruction"].strip() and t.meta["task"] == entry["task"]
        source, target = t.source.load(), t.target.load()
        assert source.dtype == np.uint8 and source.ndim == 3 and target.ndim == 3
        with Image.open(SHARED_SAMPLE / entry["output"]) as reference:
            np.testing.assert_array_equal(target, np.asarray(reference.convert("RGB")))
    assert {t.meta["task"] for t in ts} == {e["task"] for e in entries}


def test_task_specs_select_their_subsets(bench):
    root, _ = bench
    from wmbench.core.tasks import load_task

    tasks = Path(__file__).resolve().parents[1] / "tasks" / "aurora-bench"
    specs = {p.stem: load_task(p) for p in tasks.glob("*_fdp.yaml")}
    assert set(specs) == {"aurora_fdp"} | {f"aurora_{s}_fdp" for s in ("magicbrush", "ag", "something",
                                                                      "whatsup", "kubric")}
    everything = [t for t in read(root, specs["aurora_fdp"].dataset, specs["aurora_fdp"].frames)]
    assert all(t.target is not None for t in everything)  # only subsets with a ground truth
    assert {t.meta["task"] for t in everything} == {"magicbrush", "ag", "something", "whatsup", "kubric"}
    for subset in ("magicbrush", "ag", "something", "whatsup", "kubric"):
        spec = specs[f"aurora_{subset}_fdp"]
        assert spec.kind == "fdp" and spec.dataset.subfolder == "aurora-bench"
        assert {t.meta["task"] for t in read(root, spec.dataset, spec.frames)} == {subset}
