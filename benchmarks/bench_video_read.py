"""Transitions per second the SSv2 reader delivers from VP9 WebM videos (listing + loading pixels).

Writes N short VP9 WebM videos in the published SSv2 layout to a temporary folder, then for several
frame-selection modes lists the transitions and loads every source and target image in reader
order, as the runner does. For comparison, "per-sample decode" decodes the video again for every
image (what a reader without shared decoding would do).

    python benchmarks/bench_video_read.py [--videos 50] [--frames 48] [--size 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wmbench.data import video  # noqa: E402
from wmbench.core.frames import FrameSelection  # noqa: E402
from wmbench.data.ssv2 import read  # noqa: E402
from wmbench.core.tasks import DatasetSpec  # noqa: E402


def write_dataset(root: Path, videos: int, frames: int, size: int) -> None:
    (root / "labels").mkdir(parents=True)
    (root / "labels/labels.json").write_text(json.dumps({"Moving something from left to right": "0"}))
    entries = [{"id": str(1000 + i), "label": "moving a box from left to right",
                "template": "Moving [something] from left to right", "placeholders": ["a box"]} for i in range(videos)]
    (root / "labels/validation.json").write_text(json.dumps(entries))
    rng = np.random.default_rng(0)
    out = root / "20bn-something-something-v2"
    out.mkdir()
    for entry in entries:
        base = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        with av.open(str(out / f"{entry['id']}.webm"), "w", format="webm") as container:
            stream = container.add_stream("libvpx-vp9", rate=12)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for t in range(frames):
                frame = np.roll(base, 2 * t, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def run(root: Path, frames: FrameSelection) -> tuple[int, float, float]:
    spec = DatasetSpec("ssv2", "ssv2", split="validation")
    clock = time.perf_counter()
    transitions = list(read(root, spec, frames))
    listed = time.perf_counter() - clock
    clock = time.perf_counter()
    for t in transitions:
        t.source.load()
        t.target.load()
    return len(transitions), listed, time.perf_counter() - clock


def per_sample(root: Path, frames: FrameSelection) -> tuple[int, float]:
    """The same transitions, decoding the video again for each image."""
    spec = DatasetSpec("ssv2", "ssv2", split="validation")
    pairs = [(root / "20bn-something-something-v2" / f"{t.episode_id}.webm", t.source_index, t.target_index)
             for t in read(root, spec, frames)]
    clock = time.perf_counter()
    for path, s, t in pairs:
        video.read_frames(path, [s])
        video.read_frames(path, [t])
    return len(pairs), time.perf_counter() - clock


def median_of(repeats: int, fn, *args):
    """Median (by total time) of `repeats` runs: the machine is shared, single runs are noisy."""
    results = sorted((fn(*args) for _ in range(repeats)), key=lambda r: sum(r[1:]))
    return results[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--frames", type=int, default=48, help="frames per video (SSv2 averages ~45 at 12 fps)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode; the median is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ssv2"
        clock = time.perf_counter()
        write_dataset(root, args.videos, args.frames, args.size)
        print(f"wrote {args.videos} VP9 WebM videos, {args.frames} frames of {args.size}x{args.size} "
              f"({time.perf_counter() - clock:.1f} s)")
        run(root, FrameSelection(mode="first_last"))  # warm-up: file cache, codec and thread start-up
        modes = [("first_last", FrameSelection(mode="first_last")), ("gap=4", FrameSelection(mode="gap", gap=4)),
                 ("keyframes top_k=4", FrameSelection(mode="keyframes", top_k=4, min_interval=6))]
        print(f"{'mode':<20}{'transitions':>12}{'list s':>9}{'load s':>9}{'transitions/s':>15}")
        for name, frames in modes:
            n, listed, loaded = median_of(args.repeats, run, root, frames)
            print(f"{name:<20}{n:>12}{listed:>9.2f}{loaded:>9.2f}{n / (listed + loaded):>15.1f}")
        for name, frames in modes[:2]:
            n, loaded = median_of(args.repeats, per_sample, root, frames)
            print(f"{name + ' per-sample':<20}{n:>12}{'-':>9}{loaded:>9.2f}{n / loaded:>15.1f}"
                  "  (decode per image, load only)")


if __name__ == "__main__":
    main()
