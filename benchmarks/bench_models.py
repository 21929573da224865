"""Throughput of the model adapters on tiny random checkpoints (CPU unless a GPU is visible).

Prints samples/s at batch 1 vs batch 8, and the wall time of best-of-4 verified sampling vs a
single sample. Tiny models make per-call overhead dominant, which is what batching removes.

    python benchmarks/bench_models.py [--samples 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tiny_models  # noqa: E402

from wmbench.models.editors import InstructPix2PixEditor  # noqa: E402
from wmbench.models.hf_vlm import HFVisionLanguageModel  # noqa: E402
from wmbench.models.unified import ChameleonWorldModel, JanusWorldModel  # noqa: E402
from wmbench.models.verified import VerifiedModel  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402


def make_batch(ids: list[int]) -> Batch:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(max(ids) + 1)]
    actions = [f"move the cup {i}" for i in ids]
    return Batch(sample_ids=[f"s{i}" for i in ids], sources=[images[i] for i in ids],
                 targets=[images[-1 - i] for i in ids], prompts=actions, actions=actions)


def throughput(fn, samples: int, batch_size: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for lo in range(0, samples, batch_size):
            fn(make_batch(list(range(lo, min(samples, lo + batch_size)))))
        best = min(best, time.perf_counter() - start)
    return samples / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wmbench-bench-"))
    qwen = tiny_models.build_qwen2_vl(root / "qwen")
    janus = tiny_models.build_janus(root / "janus")
    chameleon = tiny_models.build_chameleon(root / "chameleon")
    ip2p = tiny_models.build_instruct_pix2pix(root / "ip2p")
    vlm = HFVisionLanguageModel(path=str(qwen), max_new_tokens=8, max_batch=8)
    cases = {
        "hf-vlm infer_action (qwen2-vl)": vlm.infer_action,
        "hf-vlm action_logprob (qwen2-vl)": lambda b: vlm.action_logprob(b, list(b.actions)),
        "janus predict_next": JanusWorldModel(path=str(janus), max_batch=8).predict_next,
        "chameleon predict_next": ChameleonWorldModel(path=str(chameleon), max_batch=8).predict_next,
        "instruct-pix2pix predict_next (4 steps)": InstructPix2PixEditor(path=str(ip2p), steps=4, resolution=32,
                                                                         max_batch=8).predict_next,
    }
    print(f"{'adapter':45s} {'batch 1':>12s} {'batch 8':>12s} {'speed-up':>9s}")
    for name, fn in cases.items():
        fn(make_batch([0, 1]))  # warm-up: loading and first-call costs out of the timing
        one = throughput(fn, args.samples, 1, args.repeats)
        eight = throughput(fn, args.samples, 8, args.repeats)
        print(f"{name:45s} {one:9.2f}/s {eight:9.2f}/s {eight / one:8.1f}x")

    single = JanusWorldModel(path=str(janus), max_batch=8)
    verified = VerifiedModel(sampler="janus", verifier="hf-vlm", n=4, sampler_args={"path": str(janus), "max_batch": 32},
                             verifier_args={"path": str(qwen), "max_batch": 32})
    batch = make_batch(list(range(8)))
    single.predict_next(batch)
    verified.predict_next(batch)
    timings = {}
    for name, fn in {"single sample (janus, n=1)": single.predict_next,
                     "best-of-4 (janus x4 + qwen2-vl verifier)": verified.predict_next}.items():
        start = time.perf_counter()
        for _ in range(args.repeats):
            fn(batch)
        timings[name] = (time.perf_counter() - start) / args.repeats
        print(f"{name:45s} {timings[name]:8.3f} s per batch of 8")
    ratio = timings["best-of-4 (janus x4 + qwen2-vl verifier)"] / timings["single sample (janus, n=1)"]
    print(f"best-of-4 / single wall time: {ratio:.2f}x (4x would be no batching gain)")


if __name__ == "__main__":
    main()
