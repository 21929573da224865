"""The run loop end to end through the CLI: scores, resume, failures, rescoring, results schema."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from conftest import kill_after_calls
from wmbench.cli import main
from wmbench.log.results import RESULTS_SCHEMA


def run_cli(*argv: str) -> int:
    return main(["run", "--no-progress", *argv])


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def samples_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_oracle_beats_copy_and_copy_scores_zero_change_iou(workspace):
    for model in ("copy", "oracle"):
        assert run_cli("--tasks", "pairs_fdp", "--model", model, "--output", str(workspace / model)) == 0
    copy = results_of(workspace / "copy")["tasks"]["pairs_fdp"]["metrics"]
    oracle = results_of(workspace / "oracle")["tasks"]["pairs_fdp"]["metrics"]
    assert oracle["l1"]["mean"] == 0 < copy["l1"]["mean"]
    assert oracle["psnr"]["mean"] > copy["psnr"]["mean"]
    assert oracle["ssim"]["mean"] == pytest.approx(1.0) and copy["ssim"]["mean"] < 1.0
    assert oracle["change_iou"]["mean"] == 1.0 and copy["change_iou"]["mean"] == 0.0
    for run in ("copy", "oracle"):
        jsonschema.validate(results_of(workspace / run), RESULTS_SCHEMA)


def test_idp_anchors(workspace):
    assert run_cli("--tasks", "pairs_idp", "--model", "oracle,majority", "--output", str(workspace / "runs")) == 0
    oracle = results_of(workspace / "runs" / "oracle")["tasks"]["pairs_idp"]["metrics"]
    majority = results_of(workspace / "runs" / "majority")["tasks"]["pairs_idp"]["metrics"]
    assert oracle["exact_match"]["mean"] == 1.0
    # 12 pairs, 3 of each of the 4 actions: the majority answer is right on exactly 3
    assert majority["exact_match"]["mean"] == pytest.approx(3 / 12)


def test_second_run_computes_nothing_and_results_are_identical(workspace, monkeypatch):
    calls = workspace / "calls.txt"
    monkeypatch.setenv("WMBENCH_TEST_CALLS", str(calls))
    out = workspace / "run"
    args = ("--tasks", "pairs_fdp", "--model", "helper_models:SlowCopyModel", "--limit", "8", "--output", str(out))
    assert run_cli(*args) == 0
    first = results_of(out)
    first_samples = (out / "samples.jsonl").read_text()
    assert len(calls.read_text().splitlines()) == 1  # 8 samples, batch size 8
    assert run_cli(*args) == 0
    assert len(calls.read_text().splitlines()) == 1  # nothing new was computed
    second = results_of(out)
    first.pop("written_at"), second.pop("written_at")
    assert first == second
    assert (out / "samples.jsonl").read_text() == first_samples
    assert first["tasks"]["pairs_fdp"]["counts"] == {"total": 8, "scored": 8, "failed": 0, "skipped": 0, "pending": 0}


def test_limit_is_a_stable_seeded_subset(workspace):
    run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "4", "--output", str(workspace / "a"))
    run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "8", "--output", str(workspace / "b"))
    run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "4", "--seed", "1", "--output", str(workspace / "c"))
    ids = {k: {s["sample_id"] for s in samples_of(workspace / k)} for k in "abc"}
    assert len(ids["a"]) == 4 and ids["a"] < ids["b"]
    assert ids["c"] != ids["a"]


def test_model_failures_are_counted_not_scored(workspace, capsys):
    out = workspace / "faulty"
    code = run_cli("--tasks", "pairs_fdp", "--model", "helper_models:FaultyModel", "--output", str(out))
    assert code == 1
    results = results_of(out)
    task = results["tasks"]["pairs_fdp"]
    assert task["counts"] == {"total": 12, "scored": 9, "failed": 3, "skipped": 0, "pending": 0}
    assert task["failures_by_stage"] == {"model": 1, "output": 2}
    assert task["metrics"]["l1"]["n"] == 9  # failed samples are not scored as zero
    errors = {s["sample_id"]: s["error"] for s in samples_of(out) if s["status"] == "failed"}
    assert "simulated model crash on pair001" in errors["pair001"]
    assert "shape" in errors["pair002"] and "dtype" in errors["pair003"]
    assert "3 sample(s) failed" in capsys.readouterr().err


def test_wrong_number_of_outputs_fails_the_samples(workspace):
    out = workspace / "short"
    assert run_cli("--tasks", "pairs_idp", "--model", "helper_models:WrongLengthModel", "--limit", "4",
                   "--output", str(out)) == 1
    assert results_of(out)["tasks"]["pairs_idp"]["counts"]["failed"] == 4
    assert all("length 2 for a batch of 1" in s["error"] for s in samples_of(out))


def test_capability_mismatch_exits_2_before_loading(workspace, capsys):
    code = run_cli("--tasks", "pairs_idp", "--model", "copy", "--output", str(workspace / "x"))
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot run task 'pairs_idp'" in err and "infer_action" in err
    assert not (workspace / "x").exists()


def test_added_metric_is_scored_from_stored_predictions(workspace, monkeypatch):
    calls = workspace / "calls.txt"
    monkeypatch.setenv("WMBENCH_TEST_CALLS", str(calls))
    task = workspace / "tasks" / "pairs_fdp.yaml"
    task.write_text(task.read_text().replace("metrics: [l1, psnr, ssim, change_iou]", "metrics: [l1]"))
    out = workspace / "run"
    args = ("--tasks", "pairs_fdp", "--model", "helper_models:SlowCopyModel", "--output", str(out))
    assert run_cli(*args) == 0
    assert list(results_of(out)["tasks"]["pairs_fdp"]["metrics"]) == ["l1"]
    n_calls = len(calls.read_text().splitlines())
    task.write_text(task.read_text().replace("metrics: [l1]", "metrics: [l1, psnr]"))
    assert run_cli(*args) == 0
    assert len(calls.read_text().splitlines()) == n_calls  # no model call
    assert results_of(out)["tasks"]["pairs_fdp"]["metrics"]["psnr"]["n"] == 12
    assert run_cli(*args, "--rescore") == 0
    assert len(calls.read_text().splitlines()) == n_calls


def test_changed_task_in_same_run_dir_is_refused(workspace, capsys):
    out = workspace / "run"
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--output", str(out)) == 0
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--seed", "3", "--output", str(out)) == 2
    assert "different task spec" in capsys.readouterr().err


def test_missing_image_fails_one_sample(workspace):
    (workspace / "data" / "pairs" / "images" / "5_b.png").unlink()
    (workspace / "data" / "pairs" / "images" / "6_a.png").write_bytes(b"not a png")
    out = workspace / "run"
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--output", str(out)) == 1
    failed = {s["sample_id"]: s for s in samples_of(out) if s["status"] == "failed"}
    assert set(failed) == {"pair005", "pair006"}
    assert all(s["stage"] == "data" for s in failed.values())
    assert "5_b.png" in failed["pair005"]["error"] and "6_a.png" in failed["pair006"]["error"]


def slow_copy_command(out: Path) -> list[str]:
    """`wmbench run` in a subprocess with the slow test adapter, two samples per batch."""
    return [sys.executable, "-m", "wmbench.cli", "run", "--no-progress", "--tasks", "pairs_fdp",
            "--model", "helper_models:SlowCopyModel", "--batch-size", "2", "--output", str(out)]


def test_kill_9_then_resume_loses_and_duplicates_nothing(workspace):
    calls = workspace / "calls.txt"
    out = workspace / "run"
    env = {**os.environ, "WMBENCH_TEST_CALLS": str(calls), "WMBENCH_TEST_SLEEP": "0.4"}
    cmd = slow_copy_command(out)
    started = kill_after_calls(cmd, env, calls, 3)
    assert 3 <= len(started) < 6, "the run should have been killed mid-way"
    with sqlite3.connect(out / "store.sqlite") as db:
        done_before = {sid for (sid,) in db.execute("SELECT sample_id FROM samples WHERE status = 'done'")}
    # pipelined: what is lost is at most the batch the model was on and the one being scored
    assert len(done_before) >= 2 * (len(started) - 2)
    env["WMBENCH_TEST_SLEEP"] = "0"
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    batches = calls.read_text().splitlines()
    ids = [sid for line in batches[len(started):] for sid in line.split(",")]
    assert not done_before & set(ids), "committed batches must not be evaluated again"
    samples = samples_of(out)
    assert sorted(s["sample_id"] for s in samples) == [f"pair{i:03d}" for i in range(12)]
    assert results_of(out)["tasks"]["pairs_fdp"]["counts"]["scored"] == 12


def test_two_processes_share_one_run_directory(workspace):
    calls = workspace / "calls.txt"
    out = workspace / "run"
    env = {**os.environ, "WMBENCH_TEST_CALLS": str(calls), "WMBENCH_TEST_SLEEP": "0.2"}
    cmd = slow_copy_command(out)
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    ids = [sid for line in calls.read_text().splitlines() for sid in line.split(",")]
    assert sorted(ids) == [f"pair{i:03d}" for i in range(12)], "each sample evaluated exactly once"
    assert results_of(out)["tasks"]["pairs_fdp"]["counts"]["scored"] == 12


def test_dataset_option_overrides_the_task(workspace, capsys):
    pairs = workspace / "data" / "pairs"
    (pairs / "pairs.jsonl").rename(pairs / "mine.jsonl")
    out = workspace / "run"
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--output", str(out)) == 2
    assert "pairs.jsonl" in capsys.readouterr().err
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--dataset-option", "file=mine.jsonl",
                   "--output", str(out)) == 0
    assert results_of(out)["tasks"]["pairs_fdp"]["spec"]["dataset"]["options"] == {"file": "mine.jsonl"}


def test_model_name_names_the_row(workspace):
    out = workspace / "run"
    assert run_cli("--tasks", "pairs_fdp", "--model", "blur", "--model-name", "blur-r4", "--output", str(out)) == 0
    assert results_of(out)["model"]["card"]["name"] == "blur-r4"
    assert run_cli("--tasks", "pairs_fdp", "--model", "blur,copy", "--model-name", "x",
                   "--output", str(workspace / "two")) == 2


def test_claims_of_dead_or_zombie_processes_are_void():
    from wmbench.log.claims import owner_alive as _owner_alive, owner_id as _owner_id

    me = _owner_id()
    host = me.split(":")[0]
    assert _owner_alive(me)
    zombie = subprocess.Popen(["true"])  # exits, and stays a zombie until waited for
    time.sleep(0.3)
    assert not _owner_alive(f"{host}:{zombie.pid}:")
    zombie.wait()
    assert not _owner_alive(f"{host}:{zombie.pid}:")  # gone
    pid, started = me.split(":")[1:]
    if started:
        assert not _owner_alive(f"{host}:{pid}:{int(started) - 1}")  # same pid, another process
    assert _owner_alive(f"another-host:{pid}:1")  # cannot tell: trusted until the claim expires


def test_default_output_is_one_directory_per_model(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "2") == 0
    assert run_cli("--tasks", "pairs_fdp", "--model", "oracle", "--limit", "2") == 0
    assert results_of(workspace / "runs" / "copy")["model"]["card"]["name"] == "copy"
    assert results_of(workspace / "runs" / "oracle")["model"]["card"]["name"] == "oracle"


def test_a_smaller_limit_reports_the_smaller_selection_and_says_so(workspace, capsys):
    out = workspace / "run"
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "8", "--output", str(out)) == 0
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "4", "--output", str(out)) == 0
    assert "now selects 4 samples where the previous command" in capsys.readouterr().err
    task = results_of(out)["tasks"]["pairs_fdp"]
    assert task["counts"]["total"] == 4 and task["metrics"]["l1"]["n"] == 4 and task["spec"]["limit"] == 4
    # samples.jsonl, and so report and compare, hold exactly the samples results.json reports;
    # the store keeps all 8, and the larger limit brings them back without evaluating again
    assert len(samples_of(out)) == 4
    other = workspace / "other"
    assert run_cli("--tasks", "pairs_fdp", "--model", "blur", "--output", str(other)) == 0
    from wmbench.analysis.compare import compare

    (row, *_) = compare(out, other, metrics=["l1"])
    assert row["n"] == 4
    assert run_cli("--tasks", "pairs_fdp", "--model", "copy", "--limit", "8", "--output", str(out)) == 0
    assert "8 samples, 0 evaluated now" in capsys.readouterr().err and len(samples_of(out)) == 8


def test_a_model_that_cannot_load_exits_2_and_keeps_finished_batches(workspace, capsys):
    out = workspace / "run"
    code = run_cli("--tasks", "pairs_fdp", "--model", "helper_models:UnloadableModel", "--batch-size", "2",
                   "--output", str(out))
    assert code == 2 and "cannot load checkpoint" in capsys.readouterr().err
    import sqlite3

    stored = sqlite3.connect(out / "store.sqlite").execute("SELECT status, COUNT(*) FROM samples GROUP BY status")
    assert dict(stored.fetchall()) == {"done": 6}  # pair000-005 kept, none recorded as failed
