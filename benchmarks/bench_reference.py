"""Wall time of the reference models' pipeline (issue 13: all models in <= 10 minutes on 2 CPU
cores, generation time reported), and whether a retrain reproduces the committed checkpoints.

    python benchmarks/bench_reference.py [--fresh-data] [--seed 0] [--evaluate]

Trains into a temporary folder with `wmbench.run.reference.train_references` and prints each stage's
seconds (generating the train/unlabelled splits only with --fresh-data, which uses an empty
temporary data dir, so the test split is generated too when --evaluate runs), the total, the torch
threads, and for seed 0 whether each checkpoint's sha256 equals the one its committed card pins.
--evaluate also times `evaluate_references` on the new checkpoints (the committed protocol).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from wmbench.run.reference import evaluate_references, train_references

CARDS = Path(__file__).resolve().parents[1] / "baselines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-data", action="store_true", help="generate the splits into an empty data dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true", help="also run the committed protocol on the checkpoints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data" if args.fresh_data else None
        start = time.perf_counter()
        result = train_references(Path(tmp) / "ref", seed=args.seed, data_dir=data_dir, progress=False)
        total = time.perf_counter() - start
        print(f"torch threads: {result.record['threads']}")
        for stage, seconds in result.record["times_s"].items():
            print(f"  {stage:24s} {seconds:7.1f} s")
        print(f"  {'total (wall)':24s} {total:7.1f} s = {total / 60:.1f} min")
        for name, digest in result.sha256.items():
            pinned = yaml.safe_load((CARDS / f"{name}.yaml").read_text())["args"]["sha256"]
            same = "equals the committed card's" if digest == pinned else "differs from the committed card's"
            print(f"  {name:13s} sha256 {digest[:16]}... {same if args.seed == 0 else '(seed != 0)'}")
        if args.evaluate:
            start = time.perf_counter()
            runs = evaluate_references(args.seed, checkpoints=result.output, output=Path(tmp) / "results",
                                       data_dir=data_dir, progress=False)
            print(f"evaluate_references: {len(runs)} runs in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
