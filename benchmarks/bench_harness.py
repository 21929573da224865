"""Harness throughput: samples/s of `copy` on a task with all its metrics, and how the wall time
splits between data loading, model, metrics and harness overhead (store, PNG encoding, results).

    python benchmarks/bench_harness.py [--task metaworld_fdp] [--limit 200] [--batch-size 8]

Runs into a fresh temporary run directory, so nothing is resumed. The data dir is the usual one
($WMBENCH_DATA_DIR or ~/.cache/wmbench/data); Meta-World data is generated first if missing
(that time is reported separately and not counted).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import wmbench
from wmbench.data import resolve_data_dir
from wmbench.run.api import task_specs
from wmbench.run.selection import dataset_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="metaworld_fdp")
    parser.add_argument("--model", default="copy")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    task = task_specs(args.task, limit=args.limit)[0]
    data_dir = resolve_data_dir(args.data_dir)
    clock = time.perf_counter()
    dataset_root(task, data_dir, progress=True)
    generation = time.perf_counter() - clock
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        result = wmbench.evaluate(task, args.model, output=Path(tmp) / "run", batch_size=args.batch_size,
                                  data_dir=data_dir, progress=False)
        end = time.perf_counter()
    timings = dict(result.timings)
    wall = end - clock
    n = result.outcomes[0].selected
    print(f"task {args.task}, model {args.model}, {n} samples, batch {args.batch_size}, "
          f"metrics: {', '.join(task.metrics)}")
    if generation > 0.5:
        print(f"(dataset generation before the run: {generation:.1f} s, not counted)")
    print(f"wall {wall:.2f} s -> {n / wall:.1f} samples/s")
    accounted = sum(timings.values())
    for stage, seconds in timings.items():
        print(f"  {stage:8s} {seconds:7.2f} s  {100 * seconds / wall:5.1f} %")
    print(f"  {'other':8s} {wall - accounted:7.2f} s  {100 * (wall - accounted) / wall:5.1f} %  "
          "(progress bar, bookkeeping between stages)")


if __name__ == "__main__":
    main()
