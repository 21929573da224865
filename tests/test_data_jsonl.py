"""Generic JSONL pairs reader (format `jsonl`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.data import FORMATS
from wmbench.data.common import FormatError
from wmbench.core.frames import FrameSelection
from wmbench.data.jsonl import read
from wmbench.core.errors import SampleError, BadInput
from wmbench.core.tasks import DatasetSpec


def _png(path: Path, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, size=(8, 9, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _read(root: Path, **options):
    return list(read(root, DatasetSpec("jsonl", root.name, options=options), FrameSelection()))


@pytest.fixture
def pairs(tmp_path: Path):
    root = tmp_path / "mine"
    a, b = _png(root / "imgs/a.png", 1), _png(root / "imgs/b.png", 2)
    lines = [
        {"source": "imgs/a.png", "target": "imgs/b.png", "action": "open the drawer", "id": "s1",
         "episode_id": "ep1", "meta": {"robot": "x"}, "action_vector": [0.5, -1, 2]},
        {"source": "imgs/b.png", "action": "close it"},  # no target, no id
        {"source": "imgs/a.png", "target": None, "action": "wave", "id": 7},
        {"source": "../../etc/passwd", "target": "imgs/b.png", "action": "escape", "id": "bad"},
        {"source": "imgs/missing.png", "target": "imgs/b.png", "action": "gone", "id": "missing"},
    ]
    text = json.dumps(lines[0]) + "\n\n// a comment line\n" + "\n".join(json.dumps(x) for x in lines[1:]) + "\n"
    (root / "pairs.jsonl").write_text(text)
    return root, a, b


def test_registered():
    assert FORMATS.get("jsonl") is read


def test_reads_pairs(pairs):
    root, a, b = pairs
    ts = _read(root)
    assert [t.sample_id for t in ts] == ["s1", "line4", "7", "bad", "missing"]
    first = ts[0]
    assert first.action_text == "open the drawer" and first.episode_id == "ep1"
    assert first.meta["robot"] == "x" and first.meta["line"] == 1
    np.testing.assert_allclose(first.action_vector, [0.5, -1, 2])
    np.testing.assert_array_equal(first.source.load(), a)
    np.testing.assert_array_equal(first.target.load(), b)
    assert ts[1].target is None and ts[2].target is None and ts[1].action_vector is None
    assert ts[1].episode_id == "line4" and ts[0].dataset == "mine"


def test_escape_and_missing_fail_their_sample(pairs):
    root, _, _ = pairs
    by_id = {t.sample_id: t for t in _read(root)}
    with pytest.raises(SampleError, match="escapes the dataset root"):
        by_id["bad"].source.load()
    with pytest.raises(SampleError, match=r"missing image file .*missing\.png.*line 7 of pairs\.jsonl"):
        by_id["missing"].source.load()


@pytest.mark.parametrize("line,message", [
    ('{"source": "a.png", "action": "x"', "line 2 is not valid JSON"),
    ('{"source": "a.png"}', "line 2: field 'action' is required"),
    ('{"source": "a.png", "action": "x", "colour": 1}', "line 2: unknown field"),
    ('["a.png", "x"]', "line 2: expected a JSON object"),
    ('{"source": "a.png", "action": "x", "action_vector": [[1], [2]]}', "line 2: 'action_vector'"),
    ('{"source": "a.png", "action": "x", "id": "one"}', "line 2: id 'one' already used on line 1"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    (tmp_path / "pairs.jsonl").write_text('{"source": "a.png", "action": "x", "id": "one"}\n' + line + "\n")
    with pytest.raises(BadInput) as info:
        _read(tmp_path)
    assert message in str(info.value) and "pairs.jsonl" in str(info.value)


def test_file_option_and_missing_file(tmp_path):
    _png(tmp_path / "a.png", 3)
    (tmp_path / "other.jsonl").write_text('{"source": "a.png", "action": "x"}\n')
    assert len(_read(tmp_path, file="other.jsonl")) == 1
    with pytest.raises(FormatError, match="pairs.jsonl"):
        _read(tmp_path)
    with pytest.raises(BadInput, match="unknown option"):
        _read(tmp_path, path="other.jsonl")
