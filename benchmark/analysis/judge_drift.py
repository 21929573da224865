"""`wmbench judge-drift RUN_A RUN_B`: how far two judges (or one judge at two dates) disagree on
the same stored predictions.

A judge's scores are comparable only under the same judge: API models change under one name,
and another judge has another scale. Re-judge a finished run into a copy (`cp -r runs/m
runs/m-judge-b; wmbench run ... --output runs/m-judge-b --rescore --judge B`: no generation) and
compare, per task and judged metric, on the samples whose stored predictions are identical in
both runs (others are counted, never paired):

- rank agreement: Spearman's rho and Kendall's tau-b (scipy) of the per-sample scores;
- the mean shift B - A with a 95% percentile-bootstrap interval (samples of one episode resampled
  together; core.stats.paired) and the Wilcoxon signed-rank p-value;
- the samples that moved most (largest |B - A|, ties by sample id), with both judges' sub-scores;
- who judged: the metric entry's `judge` (card, API model, temperature, prompt hash) and what the
  replies said (`api`: the served model and system_fingerprint, from samples.jsonl details).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.stats import paired
from ..log.runlog import RunLog, SampleLog, read_run
from ..metrics import METRICS
from ..metrics.base import ModelBackedMetric


def _judged_keys(task_metrics: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key, entry in task_metrics.items():
        cls = METRICS.get(entry["name"]) if entry.get("name") in METRICS else None
        if isinstance(cls, type) and issubclass(cls, ModelBackedMetric) and cls.role == "judge":
            out.append(key)
    return out


def _key(run: RunLog, task: str, wanted: str | None, side: str) -> str:
    metrics = run.tasks[task].metrics
    if wanted:
        if wanted not in metrics:
            raise BadInput(f"--metric-{side.lower()}: run {side} ({run.path}) has no metric '{wanted}' in task '{task}' "
                           f"(it has {', '.join(metrics)})")
        return wanted
    keys = _judged_keys(metrics)
    if len(keys) != 1:
        what = "no judged metric" if not keys else f"several judged metrics ({', '.join(keys)})"
        raise BadInput(f"run {side} ({run.path}), task '{task}': {what}; name one with --metric-{side.lower()}")
    return keys[0]


def _same_prediction(a: SampleLog, b: SampleLog) -> bool:
    pa, pb = a.prediction, b.prediction
    return pa is not None and pb is not None and (pa.images, pa.text) == (pb.images, pb.text)


def _observed(samples: list[SampleLog], key: str) -> list[str]:
    """Distinct "model / system_fingerprint" of the judge replies behind `key` (API judges)."""
    seen: dict[str, int] = {}
    for s in samples:
        for meta in ((s.details or {}).get(key) or {}).get("api") or []:
            if meta:
                label = f"{meta.get('model')} / {meta.get('system_fingerprint')}"
                seen[label] = seen.get(label, 0) + 1
    return [f"{label} ({n} replies)" for label, n in seen.items()]


def _correlations(a: list[float], b: list[float]) -> dict[str, float | None]:
    from scipy.stats import kendalltau, spearmanr

    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:  # a constant side has no ranking to agree with
        return {"spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho, tau = spearmanr(a, b), kendalltau(a, b)
    clean = (lambda v: None if v is None or math.isnan(v) else float(v))
    return {"spearman": clean(rho.statistic), "spearman_p": clean(rho.pvalue),
            "kendall": clean(tau.statistic), "kendall_p": clean(tau.pvalue)}


def drift_task(a: RunLog, b: RunLog, task: str, metric_a: str | None, metric_b: str | None, top: int,
               seed: int) -> dict[str, Any]:
    ka, kb = _key(a, task, metric_a, "A"), _key(b, task, metric_b, "B")
    ta, tb = a.tasks[task], b.tasks[task]
    row: dict[str, Any] = {"task": task, "metric_a": ka, "metric_b": kb,
                           "judge_a": ta.metrics[ka].get("judge") or {"model": (ta.metrics[ka].get("options") or {}).get("model")},
                           "judge_b": tb.metrics[kb].get("judge") or {"model": (tb.metrics[kb].get("options") or {}).get("model")},
                           "api_a": _observed(ta.samples, ka), "api_b": _observed(tb.samples, kb)}
    scored_a = {s.sample_id: s for s in ta.samples if s.done and s.scores.get(ka) is not None}
    scored_b = {s.sample_id: s for s in tb.samples if s.done and s.scores.get(kb) is not None}
    common = [sid for sid in scored_a if sid in scored_b]
    same = [sid for sid in common if _same_prediction(scored_a[sid], scored_b[sid])]
    row.update(n_other_prediction=len(common) - len(same), n_only_a=len(scored_a) - len(common),
               n_only_b=len(scored_b) - len(common), n=len(same))
    if not same:
        return {**row, "note": "no sample has the same stored prediction and a score in both runs"}
    xa = [float(scored_a[sid].scores[ka]) for sid in same]
    xb = [float(scored_b[sid].scores[kb]) for sid in same]
    stats = paired(xa, xb, [scored_a[sid].episode_id for sid in same], seed=seed)
    row.update(mean_a=stats["mean_a"], mean_b=stats["mean_b"], shift=stats["diff"], ci=stats["ci"],
               wilcoxon_p=stats["p_value"], agree=sum(x == y for x, y in zip(xa, xb)) / len(same),
               **_correlations(xa, xb))
    order = sorted(range(len(same)), key=lambda i: (-abs(xb[i] - xa[i]), same[i]))[:max(0, top)]
    row["moved"] = [_moved(scored_a[same[i]], scored_b[same[i]], ka, kb) for i in order if xb[i] != xa[i]]
    return row


def _moved(a: SampleLog, b: SampleLog, ka: str, kb: str) -> dict[str, Any]:
    da, db = (a.details or {}).get(ka) or {}, (b.details or {}).get(kb) or {}
    return {"sample_id": a.sample_id, "action": a.sample.get("action_text"), "a": a.scores[ka], "b": b.scores[kb],
            "diff": b.scores[kb] - a.scores[ka],
            "a_parts": [da.get("editing_success"), da.get("minimal_editing")],
            "b_parts": [db.get("editing_success"), db.get("minimal_editing")]}


def judge_drift(run_a: Path, run_b: Path, *, tasks: list[str] | None = None, metric_a: str | None = None,
                metric_b: str | None = None, top: int = 10, seed: int = 0) -> dict[str, Any]:
    """The drift report of two runs (see the module doc); BadInput when nothing can be paired."""
    a, b = read_run(run_a), read_run(run_b)
    common = [t for t in a.tasks if t in b.tasks and (metric_a or _judged_keys(a.tasks[t].metrics))
              and (metric_b or _judged_keys(b.tasks[t].metrics))]
    if tasks:
        missing = [t for t in tasks if t not in common]
        if missing:
            raise BadInput(f"--tasks: {', '.join(missing)} not judged in both runs (judged in both: "
                           f"{', '.join(common) or 'none'})")
        common = [t for t in common if t in tasks]
    if not common:
        raise BadInput(f"{run_a} and {run_b} have no task with a judged metric (vlm_judge) in common")
    rows = [drift_task(a, b, t, metric_a, metric_b, top, seed) for t in common]
    if not any(r["n"] for r in rows):
        raise BadInput(f"no sample of {run_a} and {run_b} has the same stored prediction with a judge score in "
                       "both: judge drift compares judges on identical predictions (re-judge a copy of one run "
                       "with `wmbench run ... --rescore --judge ...`)")
    return {"run_a": str(run_a), "run_b": str(run_b), "tasks": rows}


# rendering --------------------------------------------------------------------------------------
def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _who(judge: dict[str, Any], api: list[str]) -> str:
    parts = [str(judge.get("model"))]
    if judge.get("api_model"):
        parts.append(f"api model {judge['api_model']}")
    if judge.get("temperature") is not None:
        parts.append(f"temperature {judge['temperature']}")
    if judge.get("prompt_sha256"):
        parts.append(f"prompt {judge['prompt_sha256'][:12]}")
    if api:
        parts.append("replies: " + "; ".join(api))
    return ", ".join(parts)


def render(report: dict[str, Any], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    md = fmt == "md"
    lines = [f"{'# ' if md else ''}judge drift: A = {report['run_a']}, B = {report['run_b']}", ""]
    for r in report["tasks"]:
        lines += [f"{'## ' if md else ''}{r['task']}: {r['metric_a']} (A) vs {r['metric_b']} (B)", "",
                  f"- judge A: {_who(r['judge_a'], r['api_a'])}", f"- judge B: {_who(r['judge_b'], r['api_b'])}",
                  f"- paired samples: {r['n']} (same prediction in both; {r['n_other_prediction']} with other "
                  f"predictions, {r['n_only_a']} scored in A only, {r['n_only_b']} in B only)"]
        if not r["n"]:
            lines += [f"- {r['note']}", ""]
            continue
        lo, hi = r["ci"]
        lines += [f"- mean A {_f(r['mean_a'])}, mean B {_f(r['mean_b'])}, shift B - A {_f(r['shift'])} "
                  f"[95% CI {_f(lo)}, {_f(hi)}], Wilcoxon p {_f(r['wilcoxon_p'], 4)}",
                  f"- rank agreement: Spearman {_f(r['spearman'])} (p {_f(r['spearman_p'], 4)}), Kendall tau-b "
                  f"{_f(r['kendall'])} (p {_f(r['kendall_p'], 4)}); identical scores on {r['agree']:.0%} of samples", ""]
        if r["moved"]:
            lines += ["moved most:", "", "| sample | A | B | B - A | A (success, minimal) | B (success, minimal) | action |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {m['sample_id']} | {_f(m['a'], 2)} | {_f(m['b'], 2)} | {_f(m['diff'], 2)} | "
                      f"{', '.join(_f(x, 1) for x in m['a_parts'])} | {', '.join(_f(x, 1) for x in m['b_parts'])} | "
                      f"{m['action']} |" for m in r["moved"]]
            lines.append("")
    return "\n".join(lines) + "\n"
