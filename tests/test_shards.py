"""Data-parallel runs: shards evaluated separately (by --shard, RANK/WORLD_SIZE or torchrun) and
merged equal a single-process run; a relaunch with another number of ranks repeats nothing; merge
refuses shards of another configuration; set-level metrics are scored once over the merged set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import wmbench
from wmbench.metrics.base import Metric
from wmbench.run import shards


@wmbench.register_metric()
class SetBrightness(Metric):
    """A set-level stand-in for FID: the mean brightness of every predicted frame of the set."""

    name = "set_brightness"
    kind = "fdp"
    set_level = True
    higher_is_better = True
    description = "mean brightness over the whole set of predictions (tests set-level metrics under sharding)"

    def score(self, batch):
        return np.full(len(batch.predictions), np.nan)

    def score_set(self, predictions, targets):
        return float(np.mean([p.mean() for p in predictions])), {"n_predictions": len(predictions)}


class CountingBlur(wmbench.Model):
    """Blurs the source; counts every sample it is asked for (no sample may be evaluated twice)."""

    calls: list[str] = []

    def predict_next(self, batch, n=1):
        CountingBlur.calls += batch.sample_ids
        return [[np.clip(s.astype(int) // 2 + 60, 0, 255).astype(np.uint8)] for s in batch.sources]


def task_file(workspace) -> str:
    path = workspace / "tasks" / "pairs_set.yaml"
    path.write_text((workspace / "tasks" / "pairs_fdp.yaml").read_text()
                    .replace("pairs_fdp", "pairs_set").replace("change_iou", "change_iou, set_brightness"))
    return str(path)


def comparable(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("written_at", "created_at", "provenance"):
        results.pop(key)
    results["config"].pop("batch_size")  # the runs below use different batch sizes on purpose
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return results, samples


def test_shards_merged_equal_a_single_process_run(workspace):
    task = task_file(workspace)
    single = wmbench.evaluate(task, CountingBlur(), output=workspace / "single", progress=False, batch_size=3)
    CountingBlur.calls = []
    first = wmbench.evaluate(task, CountingBlur(), output=workspace / "sharded", shard="0/2", progress=False)
    assert not (workspace / "sharded" / "results.json").exists()  # not merged while shard 1 is missing
    assert first.run_dir == workspace / "sharded" / "shards" / "0-of-2"
    merged = wmbench.evaluate(task, CountingBlur(), output=workspace / "sharded", shard="1/2", progress=False,
                              batch_size=5)
    assert merged.run_dir == workspace / "sharded" and sorted(CountingBlur.calls) == sorted(set(CountingBlur.calls))
    assert len(CountingBlur.calls) == 12
    assert comparable(workspace / "sharded") == comparable(workspace / "single")
    brightness = merged.metrics["pairs_set"]["set_brightness"]
    assert brightness.mean == single.metrics["pairs_set"]["set_brightness"].mean
    assert merged.results["tasks"]["pairs_set"]["metrics"]["set_brightness"]["set_details"]["n_predictions"] == 12


def test_relaunch_with_another_number_of_ranks_repeats_nothing(workspace):
    task = task_file(workspace)
    wmbench.evaluate(task, CountingBlur(), output=workspace / "single", progress=False)
    CountingBlur.calls = []
    out = workspace / "sharded"
    wmbench.evaluate(task, CountingBlur(), output=out, shard="0/2", progress=False)  # then the job is lost
    for i in range(3):
        wmbench.evaluate(task, CountingBlur(), output=out, shard=f"{i}/3", progress=False)
    assert len(CountingBlur.calls) == 12 and len(set(CountingBlur.calls)) == 12
    assert comparable(out) == comparable(workspace / "single")


def test_the_launchers_environment_picks_the_shard(monkeypatch):
    assert shards.from_environment(None, {"RANK": "1", "WORLD_SIZE": "4"}) == shards.Shard(1, 4)
    assert shards.from_environment(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1",
                                          "SLURM_ARRAY_TASK_COUNT": "4"}) == shards.Shard(2, 4)
    assert shards.from_environment("2/3", {"RANK": "0", "WORLD_SIZE": "2"}) == shards.Shard(2, 3)
    assert shards.from_environment(None, {"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert shards.rank_device("cuda", {"LOCAL_RANK": "3"}) == "cuda:3"
    # the partition covers every sample once, is balanced to one sample and ignores the order given
    ids = [f"s{i}" for i in range(200)]
    parts = [shards.Shard(i, 3).part(ids) for i in range(3)]
    assert sorted(s for p in parts for s in p) == sorted(ids) and {len(p) for p in parts} == {66, 67}
    assert shards.Shard(1, 3).part(ids[::-1]) == parts[1]


@pytest.mark.parametrize("text", ["3/2", "2/2", "-1/2", "1/0", "a/b", "1"])
def test_bad_shards_are_bad_input(text):
    with pytest.raises(wmbench.BadInput, match="--shard"):
        shards.Shard.parse(text)


def test_merge_refuses_shards_of_another_configuration(workspace):
    task = task_file(workspace)
    out = workspace / "sharded"
    wmbench.evaluate(task, "copy", output=out, shard="0/2", progress=False)
    wmbench.evaluate(task, "blur", output=workspace / "other", shard="1/2", progress=False)
    (out / "shards" / "1-of-2").parent.mkdir(exist_ok=True)
    os.replace(workspace / "other" / "shards" / "1-of-2", out / "shards" / "1-of-2")
    with pytest.raises(wmbench.BadInput, match="cannot merge .*1-of-2.*holds model 'blur'"):
        wmbench.merge(out)


@pytest.mark.slow
def test_torchrun_with_two_processes_equals_one(workspace):
    base = [sys.executable, "-m", "wmbench", "run", "--tasks", "pairs_fdp", "--model", "blur", "--no-progress"]
    subprocess.run(base + ["--output", str(workspace / "single")], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", "29517", "-m", "wmbench", "run", "--tasks", "pairs_fdp", "--model", "blur",
                           "--no-progress", "--output", str(workspace / "ranks")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (workspace / "ranks" / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    assert comparable(workspace / "ranks") == comparable(workspace / "single")
