"""Scale-out figures (docs/scaling.md): harness efficiency with a fixed-latency stand-in model, the
throughput of 2 ranks against 1, and peak memory against the number of samples.

    python benchmarks/bench_scale.py efficiency [--task metaworld_fdp] [--batch-size 8] [--a 0.05 --b 0.01]
    python benchmarks/bench_scale.py ranks      [--task metaworld_fdp] [--batch-size 8]
    python benchmarks/bench_scale.py memory     [--sizes 1000,10000]

The stand-in model copies the source after sleeping a + b*B seconds for a batch of B samples, the
way an accelerator's batch time behaves; it holds no GIL while it waits, like a GPU kernel or an
HTTP call. `efficiency` = model time / wall time of the evaluation (data generation excluded).
`ranks` runs the same evaluation as one process, then as two processes at once (`--shard 0/2`,
`--shard 1/2`, merged by the last), into fresh folders. `memory` writes synthetic JSONL datasets
(64 px PNG pairs) of each size and reports the peak RSS of `wmbench run --model copy` on them
(/usr/bin/time-like, from the child's rusage).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wmbench
from wmbench.data import resolve_data_dir
from wmbench.run.api import task_specs
from wmbench.run.selection import dataset_root, select

HERE = Path(__file__).resolve().parent


class FixedLatencyCopy(wmbench.Model):
    """Copies the source after a + b*B seconds (B = batch size): an accelerator stand-in."""

    description = "benchmark stand-in: copy after a fixed latency a + b*B"

    def __init__(self, a: float = 0.2, b: float = 0.05):
        super().__init__()
        self.a, self.b = float(a), float(b)
        self.calls, self.slept = 0, 0.0

    def predict_next(self, batch, n=1):
        self.calls += 1
        self.slept += self.a + self.b * len(batch)
        time.sleep(self.a + self.b * len(batch))
        return [[s] * n for s in batch.sources]


def _task(name: str, data_dir: Path):
    task = task_specs(name)[0]
    dataset_root(task, data_dir, progress=True)  # generate first: not timed
    return task


def efficiency(args) -> None:
    data_dir = resolve_data_dir(args.data_dir)
    task = _task(args.task, data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        model = FixedLatencyCopy(args.a, args.b)
        result = wmbench.evaluate(task, model, output=Path(tmp) / "run", batch_size=args.batch_size,
                                  data_dir=data_dir, progress=False)
        wall = time.perf_counter() - clock
    n = result.outcomes[0].selected
    print(f"{args.task}: {n} samples, batch {args.batch_size}, latency {args.a} + {args.b}*B s per call; "
          f"{model.calls} calls (counterfactual predictions included), {model.slept:.2f} s of latency")
    print(f"wall {wall:.2f} s, model time {result.timings['model']:.2f} s -> harness efficiency "
          f"{result.timings['model'] / wall:.3f}; {n / wall:.1f} samples/s")
    print("stage seconds (data, metrics and harness overlap with the model in threads): "
          + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))


def _run_cmd(task: str, out: Path, batch: int, data_dir: Path, extra: list[str], a: float, b: float) -> list[str]:
    return [sys.executable, "-m", "wmbench", "run", "--tasks", task, "--model", "bench_scale:FixedLatencyCopy",
            "--model-args", f"a={a},b={b}", "--batch-size", str(batch), "--output", str(out), "--data-dir",
            str(data_dir), "--no-progress", *extra]


def ranks(args) -> None:
    data_dir = resolve_data_dir(args.data_dir)
    n = len(select(_task(args.task, data_dir), data_dir, progress=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        subprocess.run(_run_cmd(args.task, Path(tmp) / "one", args.batch_size, data_dir, [], args.a, args.b), env=env, check=True,
                       capture_output=True)
        one = time.perf_counter() - clock
        clock = time.perf_counter()
        procs = [subprocess.Popen(_run_cmd(args.task, Path(tmp) / "two", args.batch_size, data_dir,
                                           ["--shard", f"{i}/2"], args.a, args.b), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for i in range(2)]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(proc.stderr.read().decode())
        two = time.perf_counter() - clock
        same = (json.loads((Path(tmp) / "one" / "results.json").read_text())["tasks"]
                == json.loads((Path(tmp) / "two" / "results.json").read_text())["tasks"])
    print(f"{args.task}: {n} samples, batch {args.batch_size}; process start-up included")
    print(f"1 rank: {one:.2f} s ({n / one:.1f} samples/s); 2 ranks: {two:.2f} s ({n / two:.1f} samples/s) "
          f"-> speed-up {one / two:.2f}x; merged results equal the single run's: {same}")


def _pairs(root: Path, n: int, size: int = 64) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        for side in "ab":
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i}{side}.png")
        lines.append(json.dumps({"id": f"p{i:06d}", "source": f"images/{i}a.png", "target": f"images/{i}b.png",
                                 "action": f"move {i % 7}", "episode_id": f"e{i // 20}"}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")


def memory(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        task = Path(tmp) / "pairs_mem.yaml"
        task.write_text("name: pairs_mem\nkind: fdp\ndataset: {format: jsonl, subfolder: pairs}\n"
                        "frames: {mode: first_last}\nmetrics: [l1, psnr, ssim, change_iou]\n")
        peaks = {}
        for n in sizes:
            data = Path(tmp) / f"data{n}"
            _pairs(data / "pairs", n)
            clock = time.perf_counter()
            run = [sys.executable, "-m", "wmbench", "run", "--tasks", str(task), "--model", "copy",
                   "--output", str(Path(tmp) / f"run{n}"), "--data-dir", str(data), "--no-progress"]
            # a fresh parent per size: RUSAGE_CHILDREN's ru_maxrss is the peak of that one run (KiB)
            out = subprocess.run([sys.executable, "-c", _PEAK, *run], check=True, capture_output=True, text=True)
            wall = time.perf_counter() - clock
            peaks[n] = int(out.stdout.split()[-1])
            print(f"{n} samples: peak RSS {peaks[n] / 1024:.0f} MiB, {wall:.1f} s ({n / wall:.0f} samples/s)")
    if len(sizes) > 1:
        print(f"peak RSS {sizes[-1]} / {sizes[0]} samples: {peaks[sizes[-1]] / peaks[sizes[0]]:.2f}x")


_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, fn in (("efficiency", efficiency), ("ranks", ranks), ("memory", memory)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--data-dir")
        if name != "memory":
            p.add_argument("--task", default="metaworld_fdp")
            p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--a", type=float, default=0.2, help="seconds per call (default 0.2)")
        p.add_argument("--b", type=float, default=0.05, help="seconds per sample of a call (default 0.05)")
        p.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
