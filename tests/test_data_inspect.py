"""`wmbench data inspect`: JSON lines of Transition.describe() and the contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.core.frames import FrameSelection
from wmbench.data.inspect import contact_sheet, inspect, main, transitions
from wmbench.core.errors import BadInput


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    (root / "imgs").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(root / f"imgs/{i}.png")
    lines = [{"source": "imgs/0.png", "target": "imgs/1.png", "action": "brighten", "id": "a"},
             {"source": "imgs/1.png", "target": "imgs/2.png", "action": "brighten more", "id": "b"},
             {"source": "imgs/2.png", "action": "no target here", "id": "c"},
             {"source": "imgs/9.png", "target": "imgs/1.png", "action": "missing source", "id": "d"}]
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def test_inspect_yields_descriptions_up_to_the_limit(pairs):
    rows = list(inspect("jsonl", pairs, {}, None, limit=2))
    assert [r["sample_id"] for r in rows] == ["a", "b"]
    assert rows[0]["source"] == "imgs/0.png" and rows[0]["action_text"] == "brighten"
    assert len(list(inspect("jsonl", pairs, {}, FrameSelection(), limit=None))) == 4


def test_main_prints_json_lines(pairs, capsys):
    assert main("jsonl", pairs, {}, None, 3, None) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["sample_id"] for line in lines] == ["a", "b", "c"]


def test_contact_sheet_rows_and_failures(pairs, tmp_path, capsys):
    sheet = tmp_path / "out/sheet.png"
    assert main("jsonl", pairs, {}, None, 4, sheet) == 1  # sample d's source is missing
    with Image.open(sheet) as image:
        array = np.asarray(image.convert("RGB"))
    assert array.shape[0] == 4 + 4 * (160 + 4)
    # row a: source tile (level 0) then target tile (level 40), scaled to 160 px high; column 0 is
    # as wide as its widest tile, the 320 px failure tile of row d
    assert array[4 + 80, 4 + 10].tolist() == [0, 0, 0]
    assert array[4 + 80, 4 + 320 + 4 + 10].tolist() == [40, 40, 40]
    assert array[4 + 3 * 164 + 80, 4 + 10].tolist() == [250, 220, 220]  # the failure tile of row d
    assert "1 image(s) failed" in capsys.readouterr().err
    assert contact_sheet(transitions("jsonl", pairs, {}, None, 2), tmp_path / "two.png") == 0


def test_options_split_and_unknown_format(tmp_path, pairs):
    (pairs / "other.jsonl").write_text('{"source": "imgs/0.png", "action": "x"}\n')
    ts = transitions("jsonl", pairs, {"file": "other.jsonl", "split": "train"}, None, None)
    assert len(ts) == 1 and ts[0].split == "train"
    with pytest.raises(BadInput, match="unknown dataset format"):
        transitions("jsonnl", pairs, {}, None, 1)
    with pytest.raises(BadInput, match="unknown option"):
        transitions("jsonl", pairs, {"fiel": "x"}, None, 1)
