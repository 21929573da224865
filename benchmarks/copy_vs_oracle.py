"""Which FDP metrics reward copying? Mean score of `copy` (source as prediction), `oracle`
(target as prediction) and a degraded oracle (the target blurred + JPEG: the right edit, imperfectly
rendered) for every FDP metric that can run here, and how often copy beats the degraded oracle.

    python benchmarks/copy_vs_oracle.py aurora [--root ../shared/data/aurora-bench-sample]
    python benchmarks/copy_vs_oracle.py metaworld [--episodes 1 --tasks push-v3,drawer-open-v3]

Aurora-Bench images are read directly with PIL from test.json (input / output / instruction /
task); Meta-World data is generated into a temporary folder with the built-in generator and read
with its reader (segmentation included, so `sim_motion` runs). Metrics whose weights are missing
are listed as N/A with the reason; set-level metrics (FID/KID) compare the two sets.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from wmbench.metrics import METRICS, MetricInput, Scores

SKIP = {"idp_cycle", "vlm_judge", "counterfactual_sensitivity"}  # need a model or a second prediction


def aurora_samples(root: Path, limit: int | None):
    from PIL import Image

    entries = json.loads((root / "test.json").read_text())[:limit]
    load = lambda rel: np.asarray(Image.open(root / rel).convert("RGB"))
    for e in entries:
        source, target = load(e["input"]), load(e["output"])
        if target.shape != source.shape:  # as the runner does for predictions
            target = np.asarray(Image.fromarray(target).resize(source.shape[1::-1], Image.BILINEAR))
        yield e["task"], source, target, e["instruction"], {}


def metaworld_samples(episodes: int, tasks: list[str], limit: int | None):
    from wmbench.data import metaworld
    from wmbench.core.frames import FrameSelection
    from wmbench.core.tasks import DatasetSpec

    root = Path(tempfile.mkdtemp(prefix="wmbench-mw-"))
    metaworld.generate(root, {"tasks": tasks, "episodes": episodes}, progress=False)
    spec = DatasetSpec(format="metaworld", subfolder="metaworld")
    for i, t in enumerate(metaworld.read(root, spec, FrameSelection(mode="gap", gap=8))):
        if limit is not None and i >= limit:
            break
        aux = {k: v.load() for k, v in t.aux.items()}
        yield t.meta.get("task", "metaworld"), t.source.load(), t.target.load(), t.action_text, aux


def degrade(image: np.ndarray) -> np.ndarray:
    """A correct edit rendered imperfectly: the target, Gaussian-blurred (radius 1.5) and
    JPEG-compressed (quality 50), as an image model's output typically is."""
    import io

    from PIL import Image, ImageFilter

    buffer = io.BytesIO()
    Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.5)).save(buffer, format="JPEG", quality=50)
    return np.asarray(Image.open(buffer).convert("RGB"))


def scores_of(metric, samples: list, preds: list, batch: int) -> np.ndarray:
    out = []
    for start in range(0, len(samples), batch):
        part = samples[start:start + batch]
        inp = MetricInput("fdp", preds[start:start + batch], [s[1] for s in part], [s[2] for s in part],
                          [s[3] for s in part], aux=[s[4] for s in part])
        out.append(Scores.of(metric.score(inp), len(part)).values)
    return np.concatenate(out)


def _value(result) -> float:
    """`score_set` returns a value or (value, details)."""
    return float(result[0] if isinstance(result, tuple) else result)


def table(groups: dict[str, list], batch: int = 16) -> str:
    """Per group: mean of copy, oracle and degraded oracle, and how often copy beats the degraded
    oracle (a metric that often prefers copy to a correct-but-imperfect edit rewards copying)."""
    head = " | ".join(f"{g}: copy / oracle / degraded oracle | {g}: copy beats degraded" for g in groups)
    rows = [f"| metric | direction | edit-aware | {head} |", "|---|---|---|" + "---|---|" * len(groups)]
    degraded = {g: [degrade(s[2]) for s in samples] for g, samples in groups.items()}
    for name in METRICS.names():
        metric = METRICS.get(name)()
        if metric.kind != "fdp" or name in SKIP:
            continue
        direction = "higher" if metric.higher_is_better else "lower"
        ok, reason = metric.available()
        if not ok:
            na = [f"N/A: {reason.split(' in ')[0]}"] + ["N/A"] * (2 * len(groups) - 1)
            rows.append(f"| {name} | {direction} | {metric.edit_aware} | " + " | ".join(na) + " |")
            continue
        cells = []
        for g, samples in groups.items():
            preds = {"copy": [s[1] for s in samples], "oracle": [s[2] for s in samples], "degraded": degraded[g]}
            targets = [s[2] for s in samples]
            if metric.set_level:
                means = {a: _value(metric.score_set(p, targets)) for a, p in preds.items()}
                cells += [" / ".join(f"{means[a]:.4g}" for a in preds), "(set-level)"]
                continue
            values = {a: scores_of(metric, samples, p, batch) for a, p in preds.items()}
            means = {a: np.nanmean(v) if np.isfinite(v).any() else float("nan") for a, v in values.items()}
            both = np.isfinite(values["copy"]) & np.isfinite(values["degraded"])
            wins = (values["copy"] > values["degraded"]) if metric.higher_is_better else (values["copy"] < values["degraded"])
            share = f"{100 * wins[both].mean():.0f}%" if both.any() else "n/a"
            cells += [" / ".join(f"{means[a]:.4g}" for a in preds), share]
        rows.append(f"| {name} | {direction} | {metric.edit_aware} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["aurora", "metaworld"])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data/aurora-bench-sample"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--tasks", default="push-v3,drawer-open-v3,button-press-v3")
    args = parser.parse_args()
    groups: dict[str, list] = {}
    if args.source == "aurora":
        for sample in aurora_samples(Path(args.root), args.limit):
            groups.setdefault(sample[0], []).append(sample)
    else:
        for sample in metaworld_samples(args.episodes, args.tasks.split(","), args.limit):
            groups.setdefault("metaworld", []).append(sample)
    print(f"samples: {', '.join(f'{g}={len(s)}' for g, s in groups.items())}")
    print(table(groups))


if __name__ == "__main__":
    main()
