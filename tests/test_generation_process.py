"""Generation on first use runs in its own process: MuJoCo's EGL context must not share a process
with a later torch import (that combination crashed `wmbench run` with a segfault)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TASK = """\
name: tiny_mw_idp
kind: idp
dataset:
  format: metaworld
  subfolder: tiny-metaworld
  generator: metaworld
  generator_options: {tasks: [reach-v3], episodes: 1, size: 64}
frames: {mode: gap, gap: 4}
prompt: "What did the arm do?"
metrics: [exact_match, minilm_cosine]
"""


@pytest.mark.slow
def test_first_use_generation_then_torch_metrics_in_one_command(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tiny_mw_idp.yaml").write_text(TASK)
    env = {**os.environ, "WMBENCH_DATA_DIR": str(tmp_path / "data"), "WMBENCH_TASKS_PATH": str(tmp_path / "tasks")}
    done = subprocess.run([sys.executable, "-m", "wmbench.cli", "run", "--no-progress", "--tasks", "tiny_mw_idp",
                           "--model", "majority", "--output", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generating the metaworld dataset" in done.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]["tiny_mw_idp"]
    assert results["counts"]["scored"] > 0 and results["metrics"]["minilm_cosine"]["available"]


def test_generator_errors_reach_the_user(tmp_path, capsys):
    from wmbench.cli import main

    assert main(["data", "make", "metaworld", "--tasks", "nope-v3", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    assert "nope-v3" in capsys.readouterr().err
