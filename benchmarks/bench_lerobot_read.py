"""LeRobot reading throughput and Meta-World generation time.

    python benchmarks/bench_lerobot_read.py [--gap 8] [--stride 8] [--repeats 3] [--quick]

1. Generates the default Meta-World dataset (6 tasks x 4 episodes, 128 px, PNG frames) and the
   same with frames_as=video (a LeRobot v3.0 dataset with one AV1 mp4) into a temporary folder,
   timing each.
2. Reads each with the generic LeRobot reader (`format: lerobot`) and with the Meta-World reader
   (motion text, segmentation aux images): transitions/s for listing the gap pairs and loading
   source + target (+ both segmentation masks for the Meta-World reader), best of --repeats,
   and the number of video decoding passes.
--quick: 2 tasks x 1 episode, to check that the script runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from wmbench.data import lerobot, metaworld, video
from wmbench.core.frames import FrameSelection
from wmbench.core.tasks import DatasetSpec


def generate(root: Path, options: dict) -> float:
    start = time.perf_counter()
    metaworld.generate(root, options, progress=False)
    return time.perf_counter() - start


def read_once(reader, root: Path, fmt: str, frames: FrameSelection) -> tuple[int, float, int]:
    decodes = []
    real = video.read_frames_seek
    video.read_frames_seek = lambda *a, **k: decodes.append(1) or real(*a, **k)  # count decoding passes
    try:
        start = time.perf_counter()
        # listed first, then loaded in order: what the runner does (it selects a subset in between)
        samples = list(reader(root, DatasetSpec(format=fmt, subfolder=root.name, split="test"), frames))
        n = 0
        for sample in samples:
            sample.source.load()
            sample.target.load()
            for image in sample.aux.values():
                image.load()
            n += 1
        return n, time.perf_counter() - start, len(decodes)
    finally:
        video.read_frames_seek = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", type=int, default=8)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    base = {"tasks": ["push-v3", "reach-v3"], "episodes": 1} if args.quick else {}
    frames = FrameSelection(mode="gap", gap=args.gap, stride=args.stride)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"images": Path(tmp) / "images", "video-av1": Path(tmp) / "video"}
        for name, extra in (("images", {}), ("video-av1", {"frames_as": "video"})):
            seconds = generate(roots[name], {**base, **extra})
            size = sum(p.stat().st_size for p in roots[name].rglob("*") if p.is_file())
            frames_total = lerobot.open_dataset(roots[name]).info["total_frames"]
            print(f"generate metaworld ({name}{', default options' if not extra and not base else ''}): "
                  f"{seconds:.1f} s, {frames_total} frames, {size / 1e6:.1f} MB")
        for name, root in roots.items():
            for fmt, reader in (("lerobot", lerobot.read), ("metaworld", metaworld.read)):
                runs = [read_once(reader, root, fmt, frames) for _ in range(args.repeats)]
                n, seconds, decodes = min(runs, key=lambda r: r[1])
                print(f"read {name:9s} with format {fmt:9s}: {n} transitions, {n / seconds:7.1f} transitions/s "
                      f"({1000 * seconds / n:.2f} ms each), {decodes} video decoding passes")


if __name__ == "__main__":
    main()
