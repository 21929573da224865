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


def test_duplicate_task_names_name_both_files(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WMBENCH_TASKS_PATH", raising=False)
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "a.yaml").write_text(GOOD.replace("name: t", "name: twin"))
    (mine / "sub" / "b.yaml").write_text(GOOD.replace("name: t", "name: twin"))
    with pytest.raises(BadInput, match=r"task name 'twin' is defined twice: in .*a\.yaml and in .*b\.yaml"):
        resolve_tasks(["twin"], include=[mine])
    with pytest.raises(BadInput, match="defined twice"):
        resolve_tasks(["metaworld_fdp"], include=[mine])  # any duplicate in the search path stops the run
    assert main(["list", "tasks", "--include-path", str(mine)]) == 2
    err = capsys.readouterr().err
    assert str(mine / "a.yaml") in err and str(mine / "sub" / "b.yaml") in err
    # the same folder reached twice (environment and --include-path) is not a duplicate
    (mine / "sub" / "b.yaml").unlink()
    monkeypatch.setenv("WMBENCH_TASKS_PATH", str(mine))
    assert [t.name for t in resolve_tasks(["twin"], include=[mine])] == ["twin"]


def test_an_included_task_may_not_shadow_a_built_in_one(tmp_path, monkeypatch):
    monkeypatch.delenv("WMBENCH_TASKS_PATH", raising=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "fdp.yaml").write_text(GOOD.replace("name: t", "name: metaworld_fdp"))
    with pytest.raises(BadInput) as info:
        resolve_tasks(["metaworld_fdp"], include=[mine])
    message = str(info.value)
    builtin = next(p for p in TASKS_DIR.rglob("*.yaml") if load_task(p).name == "metaworld_fdp")
    assert str(builtin) in message and str(mine / "fdp.yaml") in message
    assert f"{mine / 'fdp.yaml'} shadows the built-in task" in message
    # a task file given by path whose name is selected twice with another file is refused too
    other = tmp_path / "other.yaml"
    other.write_text(GOOD.replace("name: t", "name: metaworld_fdp"))
    with pytest.raises(BadInput, match="defined twice"):
        resolve_tasks(["metaworld_fdp", str(other)])
    assert [t.path for t in resolve_tasks([str(other)])] == [str(other)]


CARD = "name: soft\nadapter: blur\nargs: {radius: 1}\ncitation: none\n"


@pytest.mark.parametrize("folder, text", [
    ("baselines", CARD.replace("adapter:", "adaptor:")),  # a card key misspelled, in a baselines/ folder
    ("elsewhere", CARD.replace("adapter:", "adaptor:")),  # ... recognised by its other card keys
    ("elsewhere", "name: soft\nadaptor: blur\n"),  # ... or by the misspelled key alone
])
def test_validate_a_card_with_a_misspelled_key(tmp_path, capsys, folder, text):
    path = tmp_path / folder / "soft.yaml"
    path.parent.mkdir()
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: field 'adaptor': unknown field (did you mean 'adapter'?)" in err
    assert "checked as a model card" in err and "kind" not in err  # not told about task fields


def test_validate_decides_card_or_task_by_keys_then_folder(tmp_path, capsys):
    cards, tasks = tmp_path / "baselines", tmp_path / "tasks"
    cards.mkdir(), tasks.mkdir()
    (cards / "bare.yaml").write_text("name: bare\n")
    assert main(["validate", str(cards / "bare.yaml")]) == 2
    err = capsys.readouterr().err
    assert "field 'adapter': required field is missing" in err and "under a baselines/ folder" in err
    (tasks / "bare.yaml").write_text("name: bare\n")
    assert main(["validate", str(tasks / "bare.yaml")]) == 2
    assert "field 'kind': required field is missing" in capsys.readouterr().err
    # a task misfiled under baselines/ is still checked as a task: its keys say so
    (cards / "task.yaml").write_text(GOOD.replace("metrics:", "metrcs:"))
    assert main(["validate", str(cards / "task.yaml")]) == 2
    err = capsys.readouterr().err
    assert "field 'metrcs': unknown field (did you mean 'metrics'?)" in err and "checked as a task" in err
    (cards / "good.yaml").write_text(CARD)
    assert main(["validate", str(cards / "good.yaml")]) == 0
    assert "model card 'soft'" in capsys.readouterr().out
