"""Tables over run directories: one row per model, one column per metric, per task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .errors import WmbenchError

ANCHORS = ("oracle", "copy")


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file() and path.name == "results.json":
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob("results.json"))
        else:
            raise WmbenchError(f"{path}: neither a run directory nor a results.json")
    return found


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One row per (run, task, metric)."""
    rows = []
    for path in find_results(paths):
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            model = results["model"]["card"]["name"]
            tasks = results["tasks"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WmbenchError(f"{path}: not a wmbench results file ({type(exc).__name__}: {exc})") from exc
        for task, entry in tasks.items():
            for metric, m in entry["metrics"].items():
                rows.append({"model": model, "task": task, "kind": entry["kind"], "metric": metric,
                             "mean": m["mean"], "ci95": m["ci95"], "n": m["n"],
                             "higher_is_better": m["higher_is_better"], "available": m["available"],
                             "reason": m["reason"], "counts": entry["counts"], "run": str(path.parent)})
    return rows


def _cell(row: dict[str, Any]) -> str:
    if not row["available"]:
        return "N/A"
    if row["mean"] is None:
        return "–"
    text = f"{row['mean']:.4g}"
    if row["ci95"] and row["n"] > 1:
        text += f" ± {(row['ci95'][1] - row['ci95'][0]) / 2:.2g}"
    return text


def _model_order(models: Iterable[str]) -> list[str]:
    """Anchors first (oracle, then copy), the rest alphabetically."""
    models = set(models)
    return [a for a in ANCHORS if a in models] + sorted(models - set(ANCHORS))


def markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table per task: models x metrics (mean ± half-width of the 95% CI)."""
    if not rows:
        return "(no results)\n"
    out = []
    for task in sorted({r["task"] for r in rows}):
        task_rows = [r for r in rows if r["task"] == task]
        metrics = list(dict.fromkeys(r["metric"] for r in task_rows))
        arrows = {r["metric"]: "↑" if r["higher_is_better"] else "↓" for r in task_rows}
        header = ["model", *[f"{m} {arrows[m]}" for m in metrics], "scored / failed / skipped"]
        lines = [f"### {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model in _model_order(r["model"] for r in task_rows):
            by_metric = {r["metric"]: r for r in task_rows if r["model"] == model}
            c = next(iter(by_metric.values()))["counts"]
            cells = [_cell(by_metric[m]) if m in by_metric else "" for m in metrics]
            lines.append("| " + " | ".join([model, *cells, f"{c['scored']} / {c['failed']} / {c['skipped']}"]) + " |")
        unavailable = {r["metric"]: r["reason"] for r in task_rows if not r["available"]}
        lines += [f"N/A {m}: {reason}" for m, reason in unavailable.items()]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"
