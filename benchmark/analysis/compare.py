"""`wmbench compare RUN_A RUN_B`: a paired comparison of two runs on the samples both scored.

Per task and metric: the number of paired samples, both means, the mean difference B - A with
a 95% percentile-bootstrap interval (whole episodes resampled together), and the Wilcoxon
signed-rank test (two-sided p-value, matched-pairs rank-biserial effect size). The p-values are
not corrected for the number of (task, metric) pairs tested; docs/leaderboard.md says how to read them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..log.runlog import RunLog, SampleLog, read_run
from ..core.stats import paired

SAME_SAMPLES = ("dataset", "frames")  # spec fields that must agree for sample ids to mean the same thing


def _tasks(a: RunLog, b: RunLog, wanted: list[str] | None) -> list[str]:
    common = [t for t in a.tasks if t in b.tasks]
    if wanted:
        for t in wanted:
            if t not in common:
                where = [name for name, r in (("A", a), ("B", b)) if t not in r.tasks]
                raise BadInput(f"--tasks: task '{t}' is not in run {' and '.join(where)}")
        common = [t for t in common if t in wanted]
    for t in common:
        spec_a, spec_b = a.tasks[t].spec, b.tasks[t].spec
        differ = [k for k in SAME_SAMPLES if spec_a.get(k) != spec_b.get(k)]
        if differ:
            raise BadInput(f"task '{t}': the runs read different samples ({', '.join(differ)} differ); "
                               f"paired comparison needs the same dataset and frame selection")
    return common


def compare_task(task: str, a: RunLog, b: RunLog, metrics: list[str] | None, seed: int) -> list[dict[str, Any]]:
    ma, mb = a.tasks[task].metrics, b.tasks[task].metrics
    samples_a: dict[str, SampleLog] = a.tasks[task].by_id
    samples_b: dict[str, SampleLog] = b.tasks[task].by_id
    names = [m for m in (metrics or ma) if m in ma and m in mb]
    done_a = {sid for sid, s in samples_a.items() if s.done}
    done_b = {sid for sid, s in samples_b.items() if s.done}
    rows = []
    for metric in names:
        row: dict[str, Any] = {"task": task, "metric": metric, "higher_is_better": ma[metric]["higher_is_better"],
                               "only_a": len(done_a - done_b), "only_b": len(done_b - done_a)}
        missing = [r for r, m in (("A", ma), ("B", mb)) if not m[metric]["available"]]
        if missing:
            reason = (ma if missing[0] == "A" else mb)[metric]["reason"]
            rows.append({**row, "n": 0, "note": f"unavailable in run {' and '.join(missing)}: {reason}"})
            continue
        differ = [k for k in ("version", "options") if ma[metric].get(k) != mb[metric].get(k)]
        if differ:  # scores of two metric versions or option sets are not paired measurements
            rows.append({**row, "n": 0, "note": f"not comparable: the runs scored it with different {' and '.join(differ)}"})
            continue
        x, y, episodes = [], [], []
        for sid, s in samples_a.items():  # run A's order: the reader's order
            if sid in done_b and s.done:
                va, vb = s.scores.get(metric), samples_b[sid].scores.get(metric)
                if va is not None and vb is not None:
                    x.append(va)
                    y.append(vb)
                    episodes.append(s.episode_id)
        if not x:
            rows.append({**row, "n": 0, "note": "no sample scored in both runs"})
            continue
        result = paired(x, y, episodes, seed=seed)
        lo, hi = result["ci"]
        better = "B" if (lo > 0) == row["higher_is_better"] else "A"
        verdict = f"{better} better" if lo > 0 or hi < 0 else "no clear difference"
        rows.append({**row, **result, "n_episodes": len({e if e is not None else i for i, e in enumerate(episodes)}),
                     "verdict": verdict, "note": ""})
    return rows


def compare(run_a: Path, run_b: Path, tasks: list[str] | None = None, metrics: list[str] | None = None,
            seed: int = 0) -> list[dict[str, Any]]:
    a, b = read_run(run_a), read_run(run_b)
    common = _tasks(a, b, tasks)
    if not common:
        raise BadInput(f"{run_a} and {run_b} share no task (A: {', '.join(a.tasks) or 'none'}; "
                           f"B: {', '.join(b.tasks) or 'none'})")
    rows = []
    for task in common:
        rows += compare_task(task, a, b, metrics, seed)
    if metrics and not rows:
        raise BadInput(f"--metrics: neither run scored {', '.join(metrics)} on {', '.join(common)}")
    if not any(r["n"] for r in rows):
        raise BadInput(f"{run_a} and {run_b} share no scored samples on {', '.join(common)}: nothing to pair "
                           f"(different sample subsets, e.g. another --limit or --seed, or every sample failed)")
    for r in rows:
        r["model_a"], r["model_b"] = a.model_name, b.model_name
    return rows


COLUMNS = ["task", "metric", "n", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value", "rank_biserial",
           "verdict"]


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    ci = row.get("ci") or (None, None)
    return {**row, "ci_low": ci[0], "ci_high": ci[1], "metric": row["metric"] + (" ↑" if row["higher_is_better"]
                                                                                 else " ↓")}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def render(rows: list[dict[str, Any]], fmt: str, name_a: str, name_b: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    flat = [_flat(r) for r in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "n_nonzero", "only_a", "only_b", "note"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flat)
        return buffer.getvalue()
    header = ["task", "metric", "n", "mean A", "mean B", "B - A [95% CI]", "Wilcoxon p", "r_rb", "verdict"]
    table = [[r["task"], r["metric"], str(r["n"]), _fmt(r.get("mean_a")), _fmt(r.get("mean_b")),
              f"{_fmt(r['diff'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if r["n"] else "–",
              _fmt(r.get("p_value")), _fmt(r.get("rank_biserial")), r.get("verdict") or r["note"]] for r in flat]
    first = rows[0]
    intro = [f"A = {first['model_a']} ({name_a})", f"B = {first['model_b']} ({name_b})"]
    unpaired = {(r["task"], r["only_a"], r["only_b"]) for r in rows if r["only_a"] or r["only_b"]}
    intro += [f"{task}: {oa} sample(s) scored only in A, {ob} only in B (left out)" for task, oa, ob in sorted(unpaired)]
    outro = ("CI: paired percentile bootstrap of the mean difference (episodes resampled together); Wilcoxon: "
             "two-sided signed-rank test, zero differences dropped; r_rb: matched-pairs rank-biserial "
             "correlation (+1: B higher on every pair, -1: A higher); p-values are not corrected for multiple tests.")
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in table]
        return "\n".join([*(f"- {line}" for line in intro), "", *lines, "", outro]) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in table]
    return "\n".join([*intro, "", *lines, "", outro]) + "\n"
