"""Throughput of the weight-free FDP metric set against a per-sample reference loop.

    python benchmarks/bench_metrics.py [--pairs 256] [--size 256] [--batch 32] [--repeats 3]

Metric set: l1, psnr, ssim, change_iou, background_preservation, scored through the metric
classes exactly as the runner calls them (one MetricInput per batch, shared by the five metrics). Reference: a per-pair loop
over torchmetrics (L1), skimage (PSNR, SSIM) and scipy (change masks: gaussian_filter per
image) on the same uint8 pairs, converted to float in [0, 1] as those libraries expect. The
script checks that both give equal values (max |difference| <= 1e-4) and prints pairs/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SET = ("l1", "psnr", "ssim", "change_iou", "background_preservation")


def synthetic_pairs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random scenes; the target moves a square object, the prediction is a noisy,
    slightly misplaced version of the target (realistic, non-trivial change masks)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, size, size, 3)), sigma=(0, 6, 6, 0))
    base = (base - base.min()) / (base.max() - base.min())
    sources = (base * 255).astype(np.uint8)
    targets, predictions = sources.copy(), sources.copy()
    side = size // 6
    for i in range(n):
        y, x = rng.integers(0, size - 2 * side, 2)
        colour = rng.integers(0, 256, 3)
        sources[i, y:y + side, x:x + side] = colour
        targets[i, y + side // 2:y + side // 2 + side, x + side:x + 2 * side] = colour
        shift = rng.integers(-4, 5, 2)
        predictions[i, y + side // 2 + shift[0]:y + side // 2 + side + shift[0],
                    x + side + shift[1]:x + 2 * side + shift[1]] = colour
    noise = rng.normal(0, 6, predictions.shape)
    predictions = np.clip(predictions + noise, 0, 255).astype(np.uint8)
    return predictions, sources, targets


def reference(p: np.ndarray, s: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """One pair with the reference libraries (the per-sample loop we compare against)."""
    import torch
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional import mean_absolute_error

    pf, sf, tf = (a.astype(np.float32) / 255.0 for a in (p, s, t))
    mask = lambda a, b: gaussian_filter(np.abs(a - b).mean(axis=-1), 1.0, mode="nearest") > 0.1
    pm, tm = mask(pf, sf), mask(tf, sf)
    union = (pm | tm).sum()
    outside = ~tm
    return {
        "l1": float(mean_absolute_error(torch.from_numpy(pf), torch.from_numpy(tf))),
        "psnr": min(float(peak_signal_noise_ratio(tf, pf, data_range=1.0)), 100.0),
        "ssim": float(structural_similarity(pf, tf, channel_axis=-1, data_range=1.0)),
        "change_iou": 1.0 if union == 0 else float((pm & tm).sum() / union),
        "background_preservation": float(1.0 - np.abs(pf - tf).mean(axis=-1)[outside].mean()),
    }


def ours(metrics: dict, p: np.ndarray, s: np.ndarray, t: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    from wmbench.metrics import MetricInput

    out: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, len(p), batch):
        stop = start + batch
        data = MetricInput(kind="fdp", predictions=list(p[start:stop]), sources=list(s[start:stop]),
                           targets=list(t[start:stop]), actions=["a"] * len(p[start:stop]))
        for name, metric in metrics.items():
            out[name].append(metric.score(data))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch and numba (default: all cores; the reference loop is single-threaded)")
    args = parser.parse_args()

    import numba
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)

    from wmbench.metrics import METRICS

    p, s, t = synthetic_pairs(args.pairs, args.size)
    metrics = {name: METRICS.get(name)() for name in SET}
    ours(metrics, p[:4], s[:4], t[:4], args.batch)  # warm-up: imports, allocator
    reference(p[0], s[0], t[0])

    best_ref, best_ours = float("inf"), float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        ref_rows = [reference(p[i], s[i], t[i]) for i in range(len(p))]
        best_ref = min(best_ref, time.perf_counter() - start)
        start = time.perf_counter()
        got = ours(metrics, p, s, t, args.batch)
        best_ours = min(best_ours, time.perf_counter() - start)

    print(f"{args.pairs} pairs at {args.size}x{args.size}, batch {args.batch}, torch threads "
          f"{torch.get_num_threads()}, numba threads {numba.get_num_threads()}, best of {args.repeats}")
    worst = 0.0
    for name in SET:
        diff = float(np.nanmax(np.abs(got[name] - np.array([r[name] for r in ref_rows]))))
        worst = max(worst, diff)
        print(f"  {name:<24} max |ours - reference| = {diff:.2e}  mean = {np.nanmean(got[name]):.4f}")
    ref_rate, our_rate = args.pairs / best_ref, args.pairs / best_ours
    print(f"reference loop (torchmetrics/skimage/scipy per pair): {ref_rate:8.1f} pairs/s")
    print(f"wmbench metric classes (batched):                     {our_rate:8.1f} pairs/s")
    print(f"speed-up: {our_rate / ref_rate:.1f}x; values equal to 1e-4: {'yes' if worst <= 1e-4 else 'NO'}")


if __name__ == "__main__":
    main()
