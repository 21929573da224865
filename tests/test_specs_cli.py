"""Task specs, model cards and the light CLI commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wmbench.cli import main
from wmbench.core.frames import FrameSelection
from wmbench.core.frames import select_keyframes
from wmbench.core.errors import SpecError, BadInput
from wmbench.models import parse_model_args, resolve_card
from wmbench.core.tasks import TASKS_DIR, load_task, resolve_tasks

GOOD = """\
name: t
kind: fdp
dataset: {format: jsonl, subfolder: pairs}
metrics: [l1]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, field, words", [
    (GOOD.replace("metrics:", "metircs:"), "metircs", "did you mean 'metrics'"),
    (GOOD + "frames: {mode: gap, gpa: 3}\n", "frames.gpa", "unknown field"),
    (GOOD.replace("[l1]", "[l1, lpipz]"), "metrics[1]", "unknown metric 'lpipz'"),
    (GOOD.replace("[l1]", "[bleu]"), "metrics[0]", "scores idp predictions"),
    (GOOD.replace("kind: fdp", "kind: fpd"), "kind", "must be one of"),
    (GOOD.replace("format: jsonl", "format: jsnol"), "dataset.format", "did you mean 'jsonl'"),
    (GOOD.replace("subfolder: pairs", "subfolder: ../../etc"), "dataset.subfolder", "without '..'"),
    (GOOD + "limit: 0\n", "limit", ">= 1"),
    (GOOD + "frames: {mode: gap, gap: 0}\n", "frames.gap", ">= 1"),
    (GOOD.replace("kind: fdp", "kind: idp").replace("[l1]", "[bleu]") + 'prompt: "{action}?"\n', "prompt",
     "not allowed for kind idp"),
    (GOOD.replace("name: t\n", ""), "name", "required field is missing"),
])
def test_bad_task_files_name_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_task(path)
    assert info.value.field == field and str(path) in str(info.value) and words in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(SpecError, match=r"malformed YAML at line 3, column 1"):
        load_task(write(tmp_path, "name: t\nkind: [fdp\n"))


def test_validate_command_exit_codes(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("prompt", "x").replace("metrics:", "metrcs:"))
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: field 'metrcs': unknown field (did you mean 'metrics'?)" in err


def test_run_with_misspelled_task_field_exits_2(workspace, capsys):
    path = workspace / "tasks" / "pairs_fdp.yaml"
    path.write_text(path.read_text().replace("prompt:", "promt:"))
    assert main(["run", "--tasks", "pairs_fdp", "--model", "copy", "--output", str(workspace / "r")]) == 2
    assert "field 'promt'" in capsys.readouterr().err


def test_every_shipped_task_and_card_validates():
    paths = sorted(TASKS_DIR.rglob("*.yaml")) + sorted((TASKS_DIR.parent / "baselines").glob("*.yaml"))
    assert paths
    assert main(["validate", *map(str, paths)]) == 0


def test_default_suite_and_unknown_names():
    assert {t.name for t in resolve_tasks(["default"])} >= {"metaworld_fdp", "metaworld_idp"}
    with pytest.raises(BadInput, match="did you mean 'metaworld_fdp'"):
        resolve_tasks(["metaworld_fpd"])
    with pytest.raises(BadInput, match="unknown model 'coppy'.*did you mean 'copy'"):
        resolve_card("coppy")


def test_model_args_parsing_and_card_merge():
    assert parse_model_args("radius=2, name=x,flag=true,t=0.7") == {"radius": 2, "name": "x", "flag": True, "t": 0.7}
    with pytest.raises(BadInput, match="key=value"):
        parse_model_args("radius")
    card = resolve_card("blur", {"radius": 1})
    assert card.args == {"radius": 1} and card.fingerprint != resolve_card("blur").fingerprint


def test_frame_selection_modes():
    assert FrameSelection(mode="first_last").pairs(10) == [(0, 9)]
    assert FrameSelection(mode="gap", gap=3).pairs(10) == [(0, 3), (3, 6), (6, 9)]
    assert FrameSelection(mode="gap", gap=3, stride=2).pairs(8) == [(0, 3), (2, 5), (4, 7)]
    assert FrameSelection(mode="seconds", seconds=0.5).pairs(30, fps=10) == [(0, 5), (5, 10), (10, 15),
                                                                             (15, 20), (20, 25)]
    motion = [0, 5, 1, 1, 9, 1, 1, 1, 7, 8]
    assert select_keyframes(__import__("numpy").array(motion, float), top_k=3, min_interval=3) == [1, 4, 9]
    assert FrameSelection(mode="keyframes", top_k=3, min_interval=3).pairs(10, motion=lambda: motion) == [(1, 4), (4, 9)]
    assert FrameSelection(mode="gap", gap=4).pairs(3) == []


def test_light_commands_do_not_import_heavy_libraries():
    code = ("import sys; from wmbench.cli import main; "
            "[main(a) for a in (['list', 'tasks'], ['list', 'models'], ['list', 'metrics'])]; "
            "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'diffusers', 'mujoco', 'av', 'pyarrow', "
            "'lpips', 'sentence_transformers') "
            "if m in sys.modules]; print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_checkpoint_runs_are_named_after_the_folder():
    card = resolve_card("hf-vlm", {"path": "/ckpts/my-vlm-step1000"})
    assert card.name == "hf-vlm@my-vlm-step1000"
    assert resolve_card("blur", {"radius": 2}).name == "blur"
    assert resolve_card("qwen2.5-vl-7b").name == "qwen2.5-vl-7b"  # a card keeps its own name


def test_data_inspect_reads_what_a_task_reads(workspace, capsys):
    import json

    assert main(["data", "inspect", "--task", "pairs_fdp", "--limit", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["sample_id"] for t in lines] == ["pair000", "pair001"]
    assert lines[0]["target"] == "images/0_b.png"
    assert main(["data", "inspect"]) == 2
