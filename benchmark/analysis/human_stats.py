"""The numbers of a human study, from judgments (annotator x item x criterion x model: +1 best,
-1 worst, 0 otherwise; complete items only).

- Best-worst score: the mean judgment per model, criterion and task (and over all tasks; `overall`
  averages the criteria of each judged item first), with the 95% percentile-bootstrap interval of
  `wmbench.core.stats`, resampling whole episodes (a sample's annotators and its episode's other
  samples move together).
- Pairwise win rate of A over B: among the judgments of one item and criterion that rank the two
  apart (one picked best or worst, or both at opposite ends), the share A wins; ties are counted.
- Inter-annotator agreement on the samples several annotators judged: Krippendorff's alpha
  (nominal; the package `krippendorff`) over units (sample, criterion, best|worst) whose value is
  the model picked, and the raw share of agreeing annotator pairs (chance level: 1 / models).
- Judge-human agreement: Spearman and Kendall (tau-b) correlations (scipy) between each vlm_judge
  metric's score and the mean human score, over (sample, model) pairs and over model means.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations, permutations
from typing import Any

import numpy as np

from ..core.stats import summarize

OVERALL = "overall"  # the mean over criteria of each judged item
ALL_TASKS = "all tasks"
ALL_CRITERIA = "all criteria"  # agreement and win rates pooled over criteria
SPEARMAN_P_MIN = 10  # scipy's Spearman p-value is a t approximation: meaningless for 3 model means


@dataclass
class Stats:
    scores: Any  # DataFrame: group, criterion, model, anchor, mean, ci_lo, ci_hi, n, n_samples, n_clusters
    win_rates: Any  # DataFrame: criterion, model, opponent, wins, losses, ties, rate, ci_lo, ci_hi
    agreement: Any  # DataFrame: criterion, samples, units, annotators, alpha, pairwise_agreement, chance, note
    judge: Any | None  # DataFrame: judge, level, criterion, n, spearman, spearman_p, kendall, kendall_p, note
    groups: list[str] = field(default_factory=list)
    criteria: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _with_overall(frame):
    import pandas as pd

    keys = ["annotator", "item", "uid", "task", "cluster", "model"]
    overall = frame.groupby(keys, sort=False, as_index=False)["score"].mean()
    overall["criterion"] = OVERALL
    return pd.concat([frame, overall[frame.columns]], ignore_index=True)


def best_worst(study, frame) -> Any:
    import pandas as pd

    tasks = list(study.data["tasks"])
    groups = [(t, frame[frame.task == t]) for t in tasks] + ([(ALL_TASKS, frame)] if len(tasks) > 1 else [])
    rows = []
    for group, part in groups:
        for criterion in [*study.criteria, OVERALL]:
            for model in study.models:
                sub = part[(part.criterion == criterion) & (part.model == model)]
                s = summarize(sub.score.astype(float).tolist(), sub.cluster.tolist()) if len(sub) else \
                    {"mean": None, "ci95": None, "n": 0, "n_clusters": 0}
                lo, hi = s["ci95"] or (None, None)
                rows.append({"group": group, "criterion": criterion, "model": model,
                             "anchor": model in study.anchors, "mean": s["mean"], "ci_lo": lo, "ci_hi": hi,
                             "n": s["n"], "n_samples": int(sub.uid.nunique()), "n_clusters": s["n_clusters"]})
    return pd.DataFrame(rows)


def win_rates(study, frame) -> Any:
    import pandas as pd

    rows = []
    base = frame[frame.criterion != OVERALL]
    for criterion in [*study.criteria, ALL_CRITERIA]:
        part = base if criterion == ALL_CRITERIA else base[base.criterion == criterion]
        wide = part.pivot_table(index=["annotator", "item", "criterion", "cluster"], columns="model",
                                values="score", aggfunc="first").reset_index()
        for a, b in permutations(study.models, 2):
            diff = (wide[a] - wide[b]).to_numpy()
            decided = diff != 0
            outcomes = (diff[decided] > 0).astype(float).tolist()
            s = summarize(outcomes, wide.cluster[decided].tolist())
            lo, hi = s["ci95"] or (None, None)
            rows.append({"criterion": criterion, "model": a, "opponent": b, "wins": int((diff > 0).sum()),
                         "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum()), "rate": s["mean"],
                         "ci_lo": lo, "ci_hi": hi})
    return pd.DataFrame(rows)


def _pairwise_agreement(matrix: np.ndarray) -> float | None:
    agree = pairs = 0
    for column in matrix.T:
        values = column[~np.isnan(column)]
        for x, y in combinations(values, 2):
            pairs += 1
            agree += x == y
    return agree / pairs if pairs else None


def agreement(study, picks, notes: list[str]) -> Any:
    import pandas as pd

    try:
        import krippendorff
    except ImportError:
        krippendorff = None
        notes.append("Krippendorff's alpha not computed: the package `krippendorff` is not installed "
                     "(pip install krippendorff); the raw pairwise agreement is shown")
    frame = pd.DataFrame(picks)
    counts = frame.groupby("uid").annotator.nunique()
    overlap = frame[frame.uid.isin(counts[counts >= 2].index)]
    annotators = sorted(overlap.annotator.unique())
    code = {m: i for i, m in enumerate(study.models)}
    rows = []
    for criterion in [*study.criteria, ALL_CRITERIA]:
        part = overlap if criterion == ALL_CRITERIA else overlap[overlap.criterion == criterion]
        units = list(dict.fromkeys(zip(part.uid, part.criterion, part.which)))
        row = {"criterion": criterion, "samples": int(part.uid.nunique()), "units": len(units),
               "annotators": len(annotators), "alpha": None, "pairwise_agreement": None,
               "chance": 1 / len(study.models), "note": ""}
        if not units:
            row["note"] = "no sample was judged by two or more annotators (export with --annotators >= 2, --overlap > 0)"
            rows.append(row)
            continue
        index = {u: j for j, u in enumerate(units)}
        matrix = np.full((len(annotators), len(units)), np.nan)
        who = {a: i for i, a in enumerate(annotators)}
        for r in part.itertuples():
            matrix[who[r.annotator], index[(r.uid, r.criterion, r.which)]] = code[r.model]
        row["pairwise_agreement"] = _pairwise_agreement(matrix)
        if krippendorff is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                value = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal",
                                                 value_domain=list(range(len(study.models)))))
            if np.isfinite(value):
                row["alpha"] = value
            else:
                row["note"] = "alpha undefined: every annotator picked the same model throughout (no variation)"
        rows.append(row)
    return pd.DataFrame(rows)


def _correlate(x: list[float], y: list[float]) -> dict[str, Any]:
    from scipy.stats import kendalltau, spearmanr

    out = {"n": len(x), "spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None, "note": ""}
    if len(x) < 3:
        out["note"] = "fewer than 3 points"
        return out
    if len(set(x)) < 2 or len(set(y)) < 2:
        out["note"] = "constant scores: no ranking to compare"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho, tau = spearmanr(x, y), kendalltau(x, y)
    out.update(spearman=float(rho.statistic), kendall=float(tau.statistic), kendall_p=float(tau.pvalue))
    if len(x) >= SPEARMAN_P_MIN:
        out["spearman_p"] = float(rho.pvalue)
    else:
        out["note"] = f"Spearman p omitted below {SPEARMAN_P_MIN} points (its t approximation); Kendall p is exact"
    return out


def judge_human(study, frame, notes: list[str]) -> Any | None:
    import pandas as pd

    judges = sorted({k for s in study.samples.values() for per in s["judge"].values() for k in per})
    if not judges:
        notes.append("judge-human agreement not computed: the runs hold no vlm_judge scores for these samples")
        return None
    human = frame.groupby(["uid", "model", "criterion"], sort=False).score.mean()
    rows = []
    for judge in judges:
        for criterion in [*study.criteria, OVERALL]:
            pairs = [(study.samples[uid]["judge"][model][judge], value)
                     for (uid, model, c), value in human.items()
                     if c == criterion and judge in study.samples[uid]["judge"].get(model, {})]
            rows.append({"judge": judge, "level": "sample x model", "criterion": criterion,
                         **_correlate([p[0] for p in pairs], [p[1] for p in pairs])})
            per_model = {}
            for (uid, model, c), value in human.items():
                if c == criterion and judge in study.samples[uid]["judge"].get(model, {}):
                    per_model.setdefault(model, []).append((study.samples[uid]["judge"][model][judge], value))
            means = [(np.mean([p[0] for p in v]), np.mean([p[1] for p in v])) for v in per_model.values()]
            rows.append({"judge": judge, "level": "model means", "criterion": criterion,
                         **_correlate([float(m[0]) for m in means], [float(m[1]) for m in means])})
    return pd.DataFrame(rows)


def compute(study, judgments: list[dict], picks: list[dict]) -> Stats:
    import pandas as pd

    frame = _with_overall(pd.DataFrame(judgments))
    notes: list[str] = []
    tasks = list(study.data["tasks"])
    return Stats(scores=best_worst(study, frame), win_rates=win_rates(study, frame),
                 agreement=agreement(study, picks, notes), judge=judge_human(study, frame, notes),
                 groups=tasks + ([ALL_TASKS] if len(tasks) > 1 else []), criteria=[*study.criteria, OVERALL],
                 notes=notes)
