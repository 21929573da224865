"""kill -9 at seeded random moments: one run of a slow model over the pairs dataset is killed with
SIGKILL again and again (each time after a random delay, then the same command resumes), then
left to finish. The result must equal an uninterrupted run's apart from timestamps, and every
sample must be evaluated exactly once in the store: a committed batch is never evaluated again,
nothing is lost, nothing is stored twice.

The delays are seeded fractions of the time the next start is expected to take here: the fixed cost
of a start (imports, data selection, writing results.json: an uninterrupted run's time less its
model time) plus the model time of the samples still missing, or, once every sample is stored, the
time of a re-run that computes nothing. So the kills land at comparable
moments (imports, data selection, a batch in the model, a commit, writing results.json) on fast and
slow machines alike, and few starts finish before their kill. The kill points are printed (pytest -s).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SEED = 20260601
KILLS = 10
SLEEP_S = 0.25  # per model call, one sample per call: 3 s of model time in a whole run
VOLATILE = ("written_at", "created_at", "provenance")


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "wmbench.cli", "run", "--no-progress", "--tasks", "pairs_fdp",
            "--model", "helper_models:SlowCopyModel", "--batch-size", "1", "--output", str(out)]


def stored(run_dir: Path) -> set[str]:
    """Sample ids committed in the run's store (read-only; {} before the store exists)."""
    path = run_dir / "store.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT sample_id FROM samples")}
    except sqlite3.OperationalError:  # killed before the tables were created
        return set()
    finally:
        db.close()


def calls_of(path: Path) -> list[list[str]]:
    """The model calls logged by SlowCopyModel: one line of sample ids per call (a line cut by the kill
    still names the samples that call was given)."""
    if not path.exists():
        return []
    return [line.split(",") for line in path.read_text().splitlines() if line.strip()]


def comparable(run_dir: Path) -> tuple[dict, list[dict]]:
    results = json.loads((run_dir / "results.json").read_text())
    for key in VOLATILE:
        results.pop(key)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return results, samples


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(workspace):
    started = time.perf_counter()
    env = {**os.environ, "WMBENCH_TEST_SLEEP": str(SLEEP_S)}

    # the uninterrupted run, and what a start costs here beside the model's time
    reference = workspace / "reference"
    clock = time.perf_counter()
    done = subprocess.run(command(reference), env={**env, "WMBENCH_TEST_CALLS": str(workspace / "ref_calls.txt")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    full_s = time.perf_counter() - clock
    fixed_s = max(0.5, full_s - 12 * SLEEP_S)
    clock = time.perf_counter()
    again = subprocess.run(command(reference), env={**env, "WMBENCH_TEST_CALLS": str(workspace / "ref_calls.txt")},
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rerun_s = time.perf_counter() - clock

    out, calls = workspace / "run", workspace / "calls.txt"
    env["WMBENCH_TEST_CALLS"] = str(calls)
    rng = random.Random(SEED)
    kills: list[dict] = []
    attempts = 0
    while len(kills) < KILLS and attempts < 3 * KILLS:
        attempts += 1
        missing = 12 - len(stored(out))
        expected_s = fixed_s + SLEEP_S * missing if missing else rerun_s
        delay = rng.uniform(0.1, 1.0) * expected_s
        proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGKILL:  # it finished before the kill: no kill point
            assert proc.returncode == 0, err
            continue
        kills.append({"delay_s": round(delay, 2), "stored": stored(out), "calls": len(calls_of(calls))})

    final = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    elapsed = time.perf_counter() - started

    print(f"\nkill -9 fuzz: seed {SEED}, an uninterrupted run takes {full_s:.2f} s ({fixed_s:.2f} s beside the "
          f"model's), a re-run {rerun_s:.2f} s; {len(kills)} kills in {attempts} starts, {elapsed:.1f} s in all")
    for i, k in enumerate(kills, 1):
        print(f"  kill {i:2d}: after {k['delay_s']:5.2f} s, {len(k['stored']):2d}/12 samples stored, "
              f"{k['calls']:2d} model calls so far")
    assert len(kills) == KILLS, f"only {len(kills)} of {attempts} starts were still running when killed"
    assert any(0 < len(k["stored"]) < 12 for k in kills), "no kill landed in the middle of the run"

    # a sample committed before a kill is never given to the model again
    log = calls_of(calls)
    for k in kills:
        again = {sid for call in log[k["calls"]:] for sid in call} & k["stored"]
        assert not again, f"committed samples evaluated again after a kill: {sorted(again)}"
    # the store holds each sample once, done, with each metric once
    db = sqlite3.connect(out / "store.sqlite")
    rows = db.execute("SELECT sample_id, status FROM samples WHERE task = 'pairs_fdp'").fetchall()
    scores = db.execute("SELECT sample_id, metric, COUNT(*) FROM scores GROUP BY sample_id, metric").fetchall()
    claims = db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    db.close()
    assert sorted(rows) == [(f"pair{i:03d}", "done") for i in range(12)]
    assert len(scores) == 12 * 4 and all(n == 1 for _, _, n in scores)
    assert claims == 0, "claims of killed processes are left behind"
    # and the outputs equal the uninterrupted run's, apart from timestamps
    results, samples = comparable(out)
    ref_results, ref_samples = comparable(reference)
    assert samples == ref_samples
    assert results == ref_results
