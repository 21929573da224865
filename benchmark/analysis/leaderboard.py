"""Leaderboards over run directories: a pandas table of models x (task group, metric, column),
rendered as Markdown, LaTeX (booktabs), CSV or HTML.

Layout (docs/leaderboard.md): every task is its own column group unless a grouping rule puts
several tasks into one group (e.g. `aurora_{subset}_fdp`, or `suite:aurora-bench-subsets`); a
group shows, per metric, one column per member task (its subset) plus `Avg`, the unweighted mean
of the subset means, as in the paper's main table. Anchor models (copy, oracle, ...) are rows set
apart and never count for "best".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..log.runlog import find_runs, read_run
from .board import Board, Cell, Column
from .formats import render
from ..core.stats import across_seeds, macro_mean_ci
from ..core.tasks import metric_refs
from ..core.yamlspec import content_hash

ANCHORS = ("oracle", "copy", "blur", "majority")  # the built-in floor/ceiling baselines


def _spec_key(spec: dict[str, Any]) -> str:
    """What must agree for runs to be seeds of one evaluation: the spec without seed and prose."""
    return content_hash({k: v for k, v in spec.items() if k not in ("seed", "metrics", "description", "suites")})


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """One row per (run, task, metric)."""
    rows = []
    for run in map(read_run, find_runs(paths)):
        for task in run.tasks.values():
            spec = task.spec
            order = {ref.key: i for i, ref in enumerate(metric_refs(spec.get("metrics") or []))}  # the task's own order
            for metric, m in sorted(task.metrics.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
                try:
                    rows.append({"model": run.model_name, "adapter": run.card.get("adapter"),
                                 "fingerprint": run.fingerprint, "task": task.name, "kind": task.kind,
                                 "metric": metric, "mean": m["mean"], "ci95": m["ci95"], "n": m["n"],
                                 "higher_is_better": m["higher_is_better"], "available": m["available"],
                                 "reason": m["reason"], "counts": task.counts, "seed": spec.get("seed"),
                                 "suites": list(spec.get("suites") or []), "spec_key": _spec_key(spec),
                                 "run": str(run.path)})
                except (KeyError, TypeError) as exc:
                    raise BadInput(f"{run.path / 'results.json'}: not a wmbench results file (task '{task.name}', "
                                   f"metric '{metric}': {type(exc).__name__}: {exc})") from exc
    return rows


# layout ----------------------------------------------------------------------------------------
@dataclass
class Grouping:
    """`LABEL=aurora_{subset}_fdp` (a task-name pattern) or `LABEL=suite:NAME` (LABEL= optional)."""

    label: str
    regex: re.Pattern | None = None
    suite: str | None = None

    @classmethod
    def parse(cls, text: str) -> Grouping:
        label, _, rule = text.rpartition("=") if "=" in text else ("", "", text)
        if rule.startswith("suite:") and rule[6:]:
            return cls(label or rule[6:], suite=rule[6:])
        if rule.count("{subset}") != 1:
            raise BadInput(f"--group '{text}': give a task-name pattern with one {{subset}} "
                               f"(e.g. aurora_{{subset}}_fdp) or suite:NAME")
        head, tail = rule.split("{subset}")
        regex = re.compile(re.escape(head).replace(r"\*", ".*") + "(.+?)" + re.escape(tail).replace(r"\*", ".*") + "$")
        return cls(label or rule.replace("{subset}", "*"), regex=regex)

    def subset(self, task: str, suites: list[str]) -> str | None:
        if self.suite is not None:
            return task if self.suite in suites else None
        match = self.regex.match(task)
        return match.group(1) if match else None


def _strip_common(names: list[str]) -> list[str]:
    """Suite members aurora_ag_fdp, aurora_kubric_fdp -> ag, kubric (common '_' parts dropped)."""
    if len(names) < 2:
        return names
    parts = [n.split("_") for n in names]
    head = 0
    while all(len(p) > head + 1 for p in parts) and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while all(len(p) > head + tail + 1 for p in parts) and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    return ["_".join(p[head:len(p) - tail]) for p in parts]


def _select_tasks(rows: list[dict], tasks: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(sorted(r["task"] for r in rows)))
    if not tasks:
        return present
    chosen: list[str] = []
    for pattern in tasks:
        hits = [t for t in present if fnmatch.fnmatchcase(t, pattern)]
        if not hits:
            raise BadInput(f"--tasks: no results for task '{pattern}' (have: {', '.join(present) or 'none'})")
        chosen += [t for t in hits if t not in chosen]
    return chosen


def _layout(rows: list[dict], tasks: list[str], metrics: list[str] | None,
            groupings: list[Grouping], average: bool) -> list[Column]:
    suites = {r["task"]: r["suites"] for r in rows}
    members: dict[str, list[tuple[str, str]]] = {}  # group -> [(task, subset)]
    for task in tasks:
        rule = next((g for g in groupings if g.subset(task, suites[task]) is not None), None)
        group = rule.label if rule else task
        members.setdefault(group, []).append((task, rule.subset(task, suites[task]) if rule else ""))
    higher = {r["metric"]: r["higher_is_better"] for r in rows}
    columns = []
    for group, items in members.items():
        group_tasks = [t for t, _ in items]
        labels = _strip_common(group_tasks) if any(g.suite for g in groupings if g.label == group) \
            else [s for _, s in items]
        have = list(dict.fromkeys(r["metric"] for r in rows if r["task"] in group_tasks))
        chosen = [m for m in (metrics or have) if m in have]
        for metric in chosen:
            for task, label in zip(group_tasks, labels):
                columns.append(Column(group, metric, label, (task,), higher[metric]))
            if average and len(group_tasks) > 1:
                columns.append(Column(group, metric, "Avg", tuple(group_tasks), higher[metric]))
    if metrics and not columns:
        raise BadInput(f"--metrics: none of {', '.join(metrics)} was measured on the selected tasks")
    return columns


# cells -----------------------------------------------------------------------------------------
def _labels(rows: list[dict]) -> dict[str, str]:
    """run -> row label: the card name, plus the run directory where one name has several models."""
    fingerprints: dict[str, set[str]] = {}
    for r in rows:
        fingerprints.setdefault(r["model"], set()).add(r["fingerprint"])
    return {r["run"]: r["model"] if len(fingerprints[r["model"]]) == 1 else f"{r['model']} ({Path(r['run']).name})"
            for r in rows}


def _entries(rows: list[dict], labels: dict[str, str]) -> dict[tuple[str, str, str], list[dict]]:
    """(label, task, metric) -> one row per seed; refuses duplicates and mixed task specs."""
    entries: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        entries.setdefault((labels[r["run"]], r["task"], r["metric"]), []).append(r)
    for (label, task, _), seeds in entries.items():
        if len({r["spec_key"] for r in seeds}) > 1:
            raise BadInput(f"model '{label}', task '{task}': runs {sorted({r['run'] for r in seeds})} evaluate "
                               f"different task specs; pass only one of them")
        if len({r["seed"] for r in seeds}) < len(seeds):
            raise BadInput(f"model '{label}', task '{task}': the same evaluation appears in several runs "
                               f"({', '.join(sorted(r['run'] for r in seeds))}); pass only one of them")
        seeds.sort(key=lambda r: (r["seed"] is None, r["seed"]))
    return entries


class _Notes:
    def __init__(self) -> None:
        self.text: dict[str, str] = {}

    def add(self, text: str) -> str:
        for marker, known in self.text.items():
            if known == text:
                return marker
        marker = "abcdefghijklmnopqrstuvwxyz"[len(self.text) % 26] * (1 + len(self.text) // 26)
        self.text[marker] = text
        return marker


def _task_cell(seeds: list[dict] | None, notes: _Notes) -> Cell:
    if not seeds:
        return Cell("missing")
    bad = next((r for r in seeds if not r["available"]), None)
    if bad:
        return Cell("na", note=notes.add(f"{bad['metric']} unavailable: {bad['reason']}"))
    if any(r["mean"] is None for r in seeds):
        return Cell("empty", note=notes.add(f"{seeds[0]['task']}: no sample has a {seeds[0]['metric']} score "
                                            f"(see scored / failed / skipped)"))
    if len(seeds) == 1:
        r = seeds[0]
        lo, hi = r["ci95"] or (None, None)
        return Cell("ok", r["mean"], lo, hi, r["n"])
    spread = across_seeds([r["mean"] for r in seeds])
    return Cell("ok", spread["mean"], spread["mean"] - spread["std"], spread["mean"] + spread["std"],
                min(r["n"] for r in seeds), seeds=len(seeds))


def _sample_scores(run: str, task: str, metric: str, cache: dict) -> tuple[list[float], list[Any]] | None:
    """(values, episode ids) of one metric from a run's samples.jsonl; None if it cannot be read."""
    if run not in cache:
        try:
            log = read_run(run)
            log.samples  # noqa: B018 - parse samples.jsonl now: an unreadable one means no interval, not an error
            cache[run] = log
        except BadInput:
            cache[run] = None
    if cache[run] is None:
        return None
    return cache[run].tasks[task].values(metric) if task in cache[run].tasks else ([], [])


def _avg_cell(parts: list[Cell], entries: list[list[dict]], metric: str, cache: dict) -> Cell:
    """Macro average of the subsets; a stratified clustered bootstrap from samples.jsonl gives its
    interval (several seeds: mean -/+ s.d. of the per-seed averages)."""
    for state in ("na", "empty", "missing"):
        hit = next((c for c in parts if c.state == state), None)
        if hit:
            return Cell(state, note=hit.note)
    seed_sets = [[r["seed"] for r in e] for e in entries]
    if len(entries[0]) > 1:
        if any(s != seed_sets[0] for s in seed_sets):
            return Cell("ok", sum(c.mean for c in parts) / len(parts), n=min(c.n for c in parts))
        per_seed = [sum(e[i]["mean"] for e in entries) / len(entries) for i in range(len(seed_sets[0]))]
        spread = across_seeds(per_seed)
        return Cell("ok", spread["mean"], spread["mean"] - spread["std"], spread["mean"] + spread["std"],
                    min(c.n for c in parts), seeds=len(per_seed))
    groups = [_sample_scores(e[0]["run"], e[0]["task"], metric, cache) for e in entries]
    mean = sum(c.mean for c in parts) / len(parts)
    if any(g is None or not g[0] for g in groups):
        return Cell("ok", mean, n=min(c.n for c in parts))
    _, (lo, hi) = macro_mean_ci(groups)
    return Cell("ok", mean, lo, hi, min(c.n for c in parts))


def _decimals(values: list[float]) -> int:
    top = max((abs(v) for v in values), default=0.0)
    return 1 if top >= 100 else 2 if top >= 10 else 3 if top >= 0.1 else 4  # >= 3 significant digits


def build(rows: list[dict], tasks: list[str] | None = None, metrics: list[str] | None = None,
          groups: list[str] | None = None, anchors: Iterable[str] = ANCHORS, average: bool = True) -> Board:
    """The leaderboard of `rows` (from `collect`): chosen tasks (names or globs) and metrics."""
    import pandas as pd

    if not rows:
        raise BadInput("no results to tabulate (no results.json under the given paths)")
    task_names = _select_tasks(rows, tasks)
    rows = [r for r in rows if r["task"] in task_names]
    columns = _layout(rows, task_names, metrics, [Grouping.parse(g) for g in groups or []], average)
    labels = _labels(rows)
    entries = _entries(rows, labels)
    anchor_set = set(anchors)
    is_anchor = {labels[r["run"]]: r["model"] in anchor_set or r["adapter"] in anchor_set for r in rows}
    order = list(anchors)
    models = sorted(is_anchor, key=lambda m: (not is_anchor[m], order.index(m) if m in order else 0, m))
    notes, cache = _Notes(), {}
    table: dict[tuple[str, str, str], list[Cell]] = {}
    for col in columns:
        cells = []
        for model in models:
            found = [entries.get((model, t, col.metric)) for t in col.tasks]
            if col.label == "Avg":
                parts = [_task_cell(e, notes) for e in found]
                cells.append(_avg_cell(parts, found, col.metric, cache) if all(found) else Cell("missing"))
            else:
                cells.append(_task_cell(found[0], notes))
        _mark_best(col, cells, [is_anchor[m] for m in models])
        table[col.key] = cells
    frame = pd.DataFrame(table, index=pd.Index(models, name="model"))
    frame.columns = pd.MultiIndex.from_tuples([c.key for c in columns], names=["group", "metric", "column"])
    coverage: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        per_task = coverage.setdefault(labels[r["run"]], {}).setdefault(r["task"], {})
        if r["run"] not in per_task.setdefault("_runs", set()):  # once per run, not per metric
            per_task["_runs"].add(r["run"])
            for k in ("total", "scored", "failed", "skipped"):
                per_task[k] = per_task.get(k, 0) + r["counts"][k]
    for per_model in coverage.values():
        for counts in per_model.values():
            counts.pop("_runs")
    return Board(frame, columns, [m for m in models if is_anchor[m]], coverage, notes.text)


def _mark_best(col: Column, cells: list[Cell], anchor: list[bool]) -> None:
    """Bold the best contender at the shown precision (ties: all), if there are two or more."""
    scored = [c for c, a in zip(cells, anchor) if c.state == "ok" and not a]
    col.decimals = _decimals([c.mean for c in scored] or [c.mean for c in cells if c.state == "ok"])
    if len(scored) < 2:
        return
    shown = [round(c.mean, col.decimals) for c in scored]
    best = max(shown) if col.higher_is_better else min(shown)
    for c, value in zip(scored, shown):
        c.best = value == best


def markdown(rows: list[dict[str, Any]]) -> str:
    """The Markdown leaderboard of `rows`, every task on its own (what `wmbench run` prints)."""
    if not rows:
        return "(no results)\n"
    return render(build(rows), "md")


TIDY_COLUMNS = ["model", "anchor", "group", "metric", "label", "task", "mean", "ci_lo", "ci_hi", "n", "seeds",
                "state", "best", "higher_is_better", "note"]


def tidy(board: Board):
    """The board as a tidy pandas DataFrame: one row per (model, column) in the board's order."""
    import pandas as pd

    records = []
    for col in board.columns:
        for model, cell in zip(board.models, board.cells[col.key]):
            records.append({"model": model, "anchor": model in board.anchors, "group": col.group,
                            "metric": col.metric, "label": col.label,
                            "task": col.tasks[0] if len(col.tasks) == 1 else None,
                            "mean": cell.mean, "ci_lo": cell.lo, "ci_hi": cell.hi, "n": cell.n, "seeds": cell.seeds,
                            "state": cell.state, "best": cell.best, "higher_is_better": col.higher_is_better,
                            "note": board.notes.get(cell.note) if cell.note else None})
    frame = pd.DataFrame.from_records(records, columns=TIDY_COLUMNS)
    return frame.astype({"mean": float, "ci_lo": float, "ci_hi": float})


def leaderboard(run_dirs: Iterable[str | Path], *, tasks: list[str] | None = None, metrics: list[str] | None = None,
                groups: list[str] | None = None, anchors: Iterable[str] = ANCHORS, average: bool = True):
    """The leaderboard of the runs under `run_dirs` as a tidy pandas DataFrame (the numbers of
    `wmbench leaderboard`, for notebooks): one row per model x column with `model`, `anchor`,
    `group`, `metric`, `label` (the subset, "Avg", or "" for a task shown alone), `task` (missing
    for "Avg"), `mean`, `ci_lo` / `ci_hi` (the 95% interval; with `seeds` > 1, mean -/+ the s.d. across
    seeds), `n`, `seeds`, `state` (ok, na: metric unavailable, missing: not evaluated, empty: no
    sample scored), `best`, `higher_is_better` and `note` (why a value is absent).
    `tasks` (names or globs), `metrics`, `groups`, `anchors`, `average`: as for `build`."""
    anchors = tuple(anchors)
    return tidy(build(collect(run_dirs), tasks=tasks, metrics=metrics, groups=groups, anchors=anchors,
                      average=average))
