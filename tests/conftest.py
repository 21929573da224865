"""Shared fixtures: a small dataset in the generic JSONL pairs format, written as real PNG files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))  # lets CLI tests name test adapters as "helper_models:Class"

def kill_after_calls(cmd: list[str], env: dict[str, str], calls: Path, n: int) -> list[str]:
    """Start `cmd`, SIGKILL it once the test adapter logged `n` model calls to `calls`
    (WMBENCH_TEST_CALLS), and return the calls logged before the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not calls.exists() or len(calls.read_text().splitlines()) < n):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return calls.read_text().splitlines()


ACTIONS = ["move the square right", "move the square down", "move the square left", "move the square up"]
SHIFTS = {0: (0, 6), 1: (6, 0), 2: (0, -6), 3: (-6, 0)}


def square_frame(row: int, col: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = (rng.integers(0, 40, size=(size, size, 3)) + 60).astype(np.uint8)  # textured background
    frame[row:row + 8, col:col + 8] = (230, 40, 40)
    return frame


def write_pairs(root: Path, n: int = 12, size: int = 32) -> Path:
    """n (source, target, action) pairs: a red square moved by 6 px in one of four directions."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        kind = i % 4
        r, c = 10 + (i % 3), 10 + (i % 5)
        dr, dc = SHIFTS[kind]
        Image.fromarray(square_frame(r, c, size, seed=i)).save(root / "images" / f"{i}_a.png")
        Image.fromarray(square_frame(r + dr, c + dc, size, seed=i)).save(root / "images" / f"{i}_b.png")
        lines.append(json.dumps({"id": f"pair{i:03d}", "source": f"images/{i}_a.png",
                                 "target": f"images/{i}_b.png", "action": ACTIONS[kind],
                                 "episode_id": f"ep{i // 4}"}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return root


TASK_TEMPLATE = """\
name: {name}
kind: {kind}
dataset:
  format: jsonl
  subfolder: pairs
frames: {{mode: first_last}}
prompt: "{prompt}"
metrics: [{metrics}]
"""


#: A task over the pairs dataset that belongs to suite `pairsub`, with a `{seed}` and a limit of 6.
SUBSET_TASK = TASK_TEMPLATE.replace("metrics:", "suites: [pairsub]\nlimit: 6\nseed: {seed}\nmetrics:")


def write_task(tasks: Path, name: str, kind: str, metrics: str, template: str = TASK_TEMPLATE, **fields) -> Path:
    """`<tasks>/<name>.yaml` from `template` over the pairs dataset (FDP prompt "{action}", IDP
    prompt "What happened?")."""
    path = tasks / f"{name}.yaml"
    path.write_text(template.format(name=name, kind=kind, prompt="{action}" if kind == "fdp" else "What happened?",
                                    metrics=metrics, **fields))
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A data dir with the pairs dataset, task YAMLs pairs_fdp / pairs_idp, and a tasks folder."""
    data_dir = tmp_path / "data"
    write_pairs(data_dir / "pairs")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, "pairs_fdp", "fdp", "l1, psnr, ssim, change_iou")
    write_task(tasks, "pairs_idp", "idp", "exact_match, token_f1")
    monkeypatch.setenv("WMBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WMBENCH_TASKS_PATH", str(tasks))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    return tmp_path
