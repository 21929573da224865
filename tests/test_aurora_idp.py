"""The Aurora-Bench IDP tasks (aurora_{subset}_idp, suite aurora-bench-idp) and the paper's IDP
table (Qiu et al., arXiv 2506.06006): models x subsets + Avg, per metric (BLEU, ROUGE-1, ROUGE-L,
BERTScore, MiniLM cosine).

The specs are checked on a small Aurora-Bench folder written here (all eight subsets, three of them
without targets); the end-to-end test runs the oracle and majority anchors on the real sample in
../shared (ag + kubric) and builds the leaderboard from their run directories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmbench.cli import main
from wmbench.core.frames import FrameSelection
from wmbench.core.tasks import load_task, metric_refs, resolve_tasks
from wmbench.data.aurora import TASKS, TASKS_WITH_TARGET, read

REPO = Path(__file__).resolve().parents[1]
AURORA_TASKS = REPO / "tasks" / "aurora-bench"
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "aurora-bench-sample"
SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")
METRICS = ["bleu", "rouge1", "rougeL", "bertscore", "minilm_cosine"]  # the paper's columns + MiniLM
LIMIT = 10  # samples per task
needs_sample = pytest.mark.skipif(not SHARED_SAMPLE.is_dir(),
                                  reason="../shared/data/aurora-bench-sample (real Aurora-Bench ag + kubric) "
                                         "is not present")


# -- the task specs -----------------------------------------------------------------------------

@pytest.fixture
def full_bench(tmp_path):
    """An Aurora-Bench root with two entries per subset; clevr, emu and epic have no `output`."""
    root = tmp_path / "aurora-bench"
    entries = []
    for task in TASKS:
        for i in range(2):
            folder = root / "data" / task / "images" / f"scene{i}"
            folder.mkdir(parents=True)
            entry = {"instruction": f"{task} edit {i}", "input": f"data/{task}/images/scene{i}/a.png", "task": task}
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / "a.png")
            if task in TASKS_WITH_TARGET:
                Image.fromarray(np.full((8, 8, 3), 40 * i + 20, np.uint8)).save(folder / "b.png")
                entry["output"] = f"data/{task}/images/scene{i}/b.png"
            entries.append(entry)
    (root / "test.json").write_text(json.dumps(entries))
    return root


def test_idp_specs_read_one_subset_each_and_only_subsets_with_targets(full_bench):
    specs = {p.stem: load_task(p) for p in AURORA_TASKS.glob("*_idp.yaml")}
    assert set(specs) == {f"aurora_{s}_idp" for s in SUBSETS}
    assert set(TASKS_WITH_TARGET) == set(SUBSETS)
    for subset in SUBSETS:
        spec = specs[f"aurora_{subset}_idp"]
        assert spec.kind == "idp" and spec.dataset.format == "aurora" and spec.dataset.subfolder == "aurora-bench"
        assert list(spec.suites) == ["aurora-bench-idp", "paper-table1"]  # paper-table1: the paper's IDP table
        assert [m.key for m in metric_refs(spec.metrics)] == METRICS
        assert spec.prompt is None  # the default IDP prompt: the paper's prompt is not known here
        transitions = list(read(full_bench, spec.dataset, FrameSelection()))
        assert {t.meta["task"] for t in transitions} == {subset} and len(transitions) == 2
        assert all(t.target is not None for t in transitions)  # IDP needs the target as input


def test_suite_selects_the_five_idp_tasks():
    names = [spec.name for spec in resolve_tasks(["aurora-bench-idp"])]
    assert sorted(names) == sorted(f"aurora_{s}_idp" for s in SUBSETS)


def test_validate_aurora_task_yamls(capsys):
    paths = sorted(str(p) for p in AURORA_TASKS.glob("*.yaml"))
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr().out
    for subset in SUBSETS:
        assert f"ok  {AURORA_TASKS / f'aurora_{subset}_idp.yaml'}" in out


def test_idp_samples_without_target_are_skipped(full_bench, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mixed_idp.yaml").write_text(
        "name: mixed_idp\nkind: idp\ndataset: {format: aurora, subfolder: aurora-bench, "
        "options: {subset: [ag, emu]}}\nmetrics: [bleu]\n")
    out = tmp_path / "run"
    assert main(["run", "--no-progress", "--include-path", str(tasks), "--tasks", "mixed_idp", "--model", "oracle",
                 "--data-dir", str(full_bench.parent), "--output", str(out)]) == 0
    counts = json.loads((out / "results.json").read_text())["tasks"]["mixed_idp"]["counts"]
    assert counts == {"total": 4, "scored": 2, "failed": 0, "skipped": 2, "pending": 0}


# -- end to end on the real sample --------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """oracle and majority on aurora_ag_idp + aurora_kubric_idp, read in place from ../shared."""
    tmp = tmp_path_factory.mktemp("aurora_idp")
    data = tmp / "data"
    data.mkdir()
    (data / "aurora-bench").symlink_to(SHARED_SAMPLE)  # read in place, never copied
    results = {}
    for model in ("oracle", "majority"):
        out = tmp / "runs" / model
        assert main(["run", "--no-progress", "--tasks", "aurora_ag_idp,aurora_kubric_idp", "--model", model,
                     "--limit", str(LIMIT), "--data-dir", str(data), "--output", str(out)]) == 0
        results[model] = json.loads((out / "results.json").read_text())["tasks"]
    return tmp / "runs", results


@needs_sample
def test_oracle_is_the_ceiling_and_majority_lower(runs):
    _, results = runs
    for task in ("aurora_ag_idp", "aurora_kubric_idp"):
        oracle, majority = results["oracle"][task], results["majority"][task]
        for res in (oracle, majority):
            assert res["counts"] == {"total": LIMIT, "scored": LIMIT, "failed": 0, "skipped": 0, "pending": 0}
            assert set(res["metrics"]) == set(METRICS)
        for key in ("bleu", "rouge1", "rougeL"):
            assert oracle["metrics"][key]["mean"] == pytest.approx(1.0), (task, key)
        assert oracle["metrics"]["minilm_cosine"]["mean"] == pytest.approx(1.0, abs=1e-4)
        for key in METRICS:
            o, m = oracle["metrics"][key], majority["metrics"][key]
            if o["available"]:
                assert m["mean"] < o["mean"] - 0.1, (task, key, m["mean"], o["mean"])
            else:  # BERTScore without the roberta-large weights: N/A with its reason, never a number
                assert key == "bertscore"
                assert o["mean"] is None and m["mean"] is None and "bertscore-roberta-large" in o["reason"]


def _table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header cells and the rows (model -> cells) of the first Markdown table in `text`."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    return header, {row[0].strip("*"): row for row in body}


@needs_sample
@pytest.mark.parametrize("rule", ["aurora_{subset}_idp", "suite:aurora-bench-idp"])
def test_leaderboard_regenerates_the_idp_table(runs, capsys, rule):
    run_dir, results = runs
    capsys.readouterr()
    assert main(["leaderboard", str(run_dir), "--group", rule]) == 0
    out = capsys.readouterr().out
    header, rows = _table(out)
    expected = [f"{metric} ↑ · {column}" for metric in METRICS for column in ("ag", "kubric", "Avg")]
    assert header == ["model", *expected, "scored / failed / skipped"]
    assert list(rows) == ["oracle", "majority"]  # anchors, in --anchors order
    assert rows["oracle"][-1] == rows["majority"][-1] == f"{2 * LIMIT} / 0 / 0"
    cells = {model: dict(zip(header, row)) for model, row in rows.items()}
    for metric in ("bleu", "rouge1", "rougeL", "minilm_cosine"):
        for column in ("ag", "kubric", "Avg"):
            assert cells["oracle"][f"{metric} ↑ · {column}"].startswith("1.000")
    # Avg is the unweighted mean of the two subset means
    bleu = [results["majority"][t]["metrics"]["bleu"]["mean"] for t in ("aurora_ag_idp", "aurora_kubric_idp")]
    assert float(cells["majority"]["bleu ↑ · Avg"].split()[0]) == pytest.approx(np.mean(bleu), abs=6e-4)
    if not results["oracle"]["aurora_ag_idp"]["metrics"]["bertscore"]["available"]:
        for model in rows:
            for column in ("ag", "kubric", "Avg"):
                assert re.fullmatch(r"N/A<sup>[a-z]</sup>", cells[model][f"bertscore ↑ · {column}"])
        assert re.search(r"<sup>[a-z]</sup> bertscore unavailable: weights bertscore-roberta-large not found", out)


@needs_sample
def test_tidy_leaderboard_has_subsets_and_avg(runs):
    import wmbench

    run_dir, _ = runs
    frame = wmbench.leaderboard([run_dir], groups=["aurora_{subset}_idp"])
    bleu = frame[frame.metric == "bleu"]
    assert set(bleu.label) == {"ag", "kubric", "Avg"} and set(bleu.model) == {"oracle", "majority"}
    avg = bleu[(bleu.model == "majority") & (bleu.label == "Avg")]["mean"].item()
    parts = bleu[(bleu.model == "majority") & (bleu.label != "Avg")]["mean"]
    assert avg == pytest.approx(parts.mean())
