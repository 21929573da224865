"""The README's examples run as written: every line of the "Running" block that needs no GPU,
weights or dataset of the user's, in order, and the Python API block, on a small Meta-World
dataset generated once (the built-in tasks read it because its folder exists)."""

from __future__ import annotations

import glob
import os
import re
import shlex
from pathlib import Path

import pytest

from wmbench.cli import main
from wmbench.run.selection import run_generator

REPO = Path(__file__).resolve().parents[1]
SHARED_AURORA = REPO.parent / "shared" / "data" / "aurora-bench-sample"
#: Lines not run here, and why; every other line must exit 0.
NOT_RUN = {
    "instruct-pix2pix": "needs the InstructPix2Pix weights and a GPU",
    "<checkpoint folder>": "a checkpoint of the user's",
    "calvin_fdp": "needs the CALVIN dataset",
    "qwen2.5-vl-7b": "needs the Qwen2.5-VL weights",
    "janus-pro-7b": "needs the Janus-Pro weights and GPUs",
    "reference train": "6 minutes of CPU; tests/test_reference.py runs the same pipeline on tiny data",
    "reference report": "rewrites docs/; tests/test_reference.py checks the committed doc is its output",
    "reference evaluate": "rewrites results/; tests/test_reference.py runs it on tiny checkpoints",
}

pytestmark = pytest.mark.slow


def _block(heading: str, language: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under {heading!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def readme_env(tmp_path_factory):
    """A working folder with the repository's tasks, cards and committed results, and a data dir
    holding a small Meta-World dataset (one episode per simulator task, 64 px)."""
    work = tmp_path_factory.mktemp("readme")
    for name in ("tasks", "baselines", "results"):
        (work / name).symlink_to(REPO / name)
    data = work / "data"
    run_generator("metaworld", data / "metaworld", {"episodes": 1, "size": 64}, progress=False)
    return work, data


def _commands() -> list[str]:
    return [line.split("  #")[0].strip() for line in _block("## Running", "bash").splitlines()
            if line.strip().startswith(("wmbench ", "torchrun "))]


def test_every_readme_command_is_run_or_excused():
    for line in _commands():
        placeholder = re.search(r"<[^>]+>", line)
        excused = any(key in line for key in NOT_RUN) or (placeholder and "aurora" in line)
        assert excused or not placeholder, f"unmarked placeholder in README line: {line}"


def test_readme_commands_run_in_order(readme_env, monkeypatch, capsys):
    work, data = readme_env
    monkeypatch.chdir(work)
    monkeypatch.setenv("WMBENCH_DATA_DIR", str(data))
    ran = []
    for line in _commands():
        if any(key in line for key in NOT_RUN):
            continue
        if "<aurora-bench folder>" in line:
            if not SHARED_AURORA.is_dir():
                continue
            line = line.replace("<aurora-bench folder>", str(SHARED_AURORA))
        assert line.startswith("wmbench "), f"no rule to run README line: {line}"
        argv = []
        for word in shlex.split(line)[1:]:
            argv += sorted(glob.glob(word)) if "*" in word else [word]
        code = main(argv + (["--no-progress"] if argv[0] == "run" else []))
        captured = capsys.readouterr()
        assert code == 0, f"`{line}` exited {code}:\n{captured.err[-2000:]}"
        ran.append(line)
    assert len(ran) >= 10
    assert (work / "report.html").stat().st_size > 10_000 and (work / "sheet.png").is_file()
    assert (data / "metaworld-small" / "meta" / "info.json").is_file()


def test_readme_python_block_runs(readme_env, monkeypatch, capsys):
    work, data = readme_env
    monkeypatch.chdir(work)
    monkeypatch.setenv("WMBENCH_DATA_DIR", str(data))
    code = _block("## Python API", "python")
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)  # noqa: S102 - the README's own example
    result, table = namespace["result"], namespace["table"]
    assert result.metrics["metaworld_fdp"]["change_iou"].mean == 0.0
    assert set(table["model"]) >= {"MyModel", "copy"}
    assert "0.0" in capsys.readouterr().out
    os.chdir(work)
