"""The runner's metric plumbing: options and labels, counterfactual predictions, per-sample
details (judge replies), failed metric samples, and set-level metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wmbench.cli import main
from wmbench.metrics import METRICS
from wmbench.metrics.base import Metric

TASK = """\
name: pairs_plus
kind: fdp
dataset: {format: jsonl, subfolder: pairs}
frames: {mode: first_last}
metrics:
  - change_iou
  - counterfactual_sensitivity
  - {name: vlm_judge, args: {model: "helper_models:JudgeModel", retries: 1}, label: judge}
"""


def run(workspace, model, name="run"):
    (workspace / "tasks" / "pairs_plus.yaml").write_text(TASK)
    out = workspace / name
    code = main(["run", "--no-progress", "--tasks", "pairs_plus", "--model", model, "--output", str(out)])
    results = json.loads((out / "results.json").read_text())["tasks"]["pairs_plus"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return code, results, samples


def test_counterfactual_sensitivity_separates_a_world_model_from_anchors(workspace):
    _, shift, samples = run(workspace, "helper_models:ShiftModel", "shift")
    _, oracle, _ = run(workspace, "oracle", "oracle")
    _, copy, _ = run(workspace, "copy", "copy")
    assert shift["metrics"]["counterfactual_sensitivity"]["mean"] > 0.5
    # oracle and copy ignore the action: another action gives the same frame
    assert oracle["metrics"]["counterfactual_sensitivity"]["mean"] == 0
    assert copy["metrics"]["counterfactual_sensitivity"]["mean"] == 0
    stored = samples[0]["prediction"]["counterfactual"]
    assert stored["action"] != samples[0]["sample"]["action_text"] and len(stored["image"]) == 64


def test_judge_details_are_kept_and_unparseable_replies_are_failed_scores(workspace, monkeypatch):
    calls = workspace / "calls.txt"
    monkeypatch.setenv("WMBENCH_TEST_CALLS", str(calls))
    code, results, samples = run(workspace, "helper_models:ShiftModel")
    assert code == 1  # a failed score makes the run exit 1, as a failed sample does
    judge = results["metrics"]["judge"]
    assert judge["mean"] == 6.0 and judge["n"] == 9 and judge["n_failed"] == 3  # min(8, 6) where parsed
    assert judge["options"]["model"] == "helper_models:JudgeModel"
    assert results["counts"]["failed"] == 0 and results["metrics"]["change_iou"]["n"] == 12  # other scores stand
    left = [s for s in samples if "left" in s["sample"]["action_text"]]
    assert len(left) == 3 and all(s["scores"]["judge"] is None and s["details"]["judge"]["failed"] for s in left)
    ok = next(s for s in samples if "left" not in s["sample"]["action_text"])
    assert ok["details"]["judge"]["replies"] and ok["scores"]["judge"] == 6.0


def test_retry_failed_rescores_failed_scores_without_the_model(workspace, monkeypatch, capsys):
    calls = workspace / "calls.txt"
    monkeypatch.setenv("WMBENCH_TEST_CALLS", str(calls))
    run(workspace, "helper_models:SlowCopyModel")
    n_calls = len(calls.read_text().splitlines())
    (workspace / "tasks" / "pairs_plus.yaml").write_text(TASK)
    out = workspace / "run"
    code = main(["run", "--no-progress", "--tasks", "pairs_plus", "--model", "helper_models:SlowCopyModel",
                 "--output", str(out), "--retry-failed"])
    assert code == 1  # the judge still cannot parse 'left' replies
    assert len(calls.read_text().splitlines()) == n_calls  # rescored from stored predictions only
    assert "0 evaluated now, 3 rescored" in capsys.readouterr().err


def test_unknown_metric_option_is_a_spec_error(workspace, capsys):
    (workspace / "tasks" / "pairs_plus.yaml").write_text(TASK.replace("retries: 1", "retrys: 1"))
    assert main(["run", "--tasks", "pairs_plus", "--model", "copy", "--output", str(workspace / "x")]) == 2
    assert "metrics[2].args" in capsys.readouterr().err


class SetL1(Metric):
    """A set-level metric for the test: mean absolute error over the whole set (a real, simple one)."""

    name, kind, higher_is_better, set_level = "set_l1", "fdp", False, True
    needs = frozenset({"target"})
    calls = 0

    def score(self, batch):
        return np.full(len(batch.predictions), np.nan)

    def score_set(self, predictions, targets):
        type(self).calls += 1
        return float(np.mean([np.abs(p.astype(float) - t).mean() for p, t in zip(predictions, targets)]))


@pytest.fixture
def set_metric():
    METRICS.register("set_l1", SetL1)
    yield SetL1
    METRICS._targets.pop("set_l1"), METRICS._loaded.pop("set_l1", None)


def test_set_level_metric_is_computed_once_per_set(workspace, set_metric):
    task = TASK.split("metrics:")[0] + "metrics: [l1, set_l1]\n"
    (workspace / "tasks" / "pairs_plus.yaml").write_text(task)
    out = workspace / "run"
    args = ["run", "--no-progress", "--tasks", "pairs_plus", "--model", "copy", "--output", str(out)]
    assert main([*args, "--limit", "6"]) == 0
    entry = json.loads((out / "results.json").read_text())["tasks"]["pairs_plus"]["metrics"]
    assert entry["set_l1"]["n"] == 6 and entry["set_l1"]["ci_method"] == "set"
    assert entry["set_l1"]["mean"] == pytest.approx(entry["l1"]["mean"] * 255, rel=1e-6)
    assert main([*args, "--limit", "6"]) == 0 and set_metric.calls == 1  # same set: not recomputed
    assert main([*args, "--limit", "8"]) == 0 and set_metric.calls == 2  # two samples more: recomputed
