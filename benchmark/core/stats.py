"""Statistics for per-sample scores: percentile bootstrap confidence intervals (clustered when
samples share an episode or a video), paired comparisons of two runs on the same samples, and
the spread of a score across seeds.

Everything is deterministic: bootstrap draws come from `numpy.random.default_rng(seed)` with a
fixed default seed, so writing results.json twice gives the same intervals. Without clusters the
draws are exactly those of `scipy.stats.bootstrap(..., method="percentile", rng=default_rng(seed))`
(tests/test_stats.py checks the intervals agree); scipy has no clustered bootstrap, hence our own.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

N_RESAMPLES = 2000  # 1000 samples x 2000 resamples: ~10 ms per metric (see tests/test_stats.py)
SEED = 0
CONFIDENCE = 0.95


def _clusters(n: int, clusters: Sequence[Hashable | None] | None) -> tuple[np.ndarray, int] | None:
    """Cluster index per sample (clusters numbered in order of first appearance, so that one
    cluster per sample resamples exactly like the unclustered bootstrap), or None."""
    if clusters is None:
        return None
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} values")
    numbers: dict[Any, int] = {}
    # a sample without a cluster label is its own cluster
    index = np.array([numbers.setdefault(c if c is not None else ("__single__", i), len(numbers))
                      for i, c in enumerate(clusters)], dtype=np.int64)
    return index, len(numbers)


def bootstrap_means(values: Sequence[float], clusters: Sequence[Hashable | None] | None = None, *,
                    n_resamples: int = N_RESAMPLES, rng: np.random.Generator | None = None) -> np.ndarray:
    """Bootstrap distribution of the mean. With clusters, whole clusters are resampled and the
    statistic is the mean over all samples of the drawn clusters (clusters of unequal size keep
    their weight), which keeps the correlation inside an episode out of the interval's width."""
    x = np.asarray(values, dtype=np.float64)
    rng = rng if rng is not None else np.random.default_rng(SEED)
    grouped = _clusters(len(x), clusters)
    if grouped is None:
        return x[rng.integers(0, len(x), (n_resamples, len(x)))].mean(axis=1)
    index, k = grouped
    sums = np.bincount(index, weights=x, minlength=k)
    counts = np.bincount(index, minlength=k).astype(np.float64)
    draw = rng.integers(0, k, (n_resamples, k))
    return sums[draw].sum(axis=1) / counts[draw].sum(axis=1)


def percentile_interval(distribution: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(distribution, [100 * alpha, 100 * (1 - alpha)])  # linear, as scipy
    return [float(lo), float(hi)]


def bootstrap_ci(values: Sequence[float], clusters: Sequence[Hashable | None] | None = None, *,
                 confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> list[float]:
    """Percentile bootstrap interval of the mean."""
    dist = bootstrap_means(values, clusters, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return percentile_interval(dist, confidence)


def ci_method(clustered: bool) -> str:
    """The `ci_method` of results.json (docs/results-schema.md): N_RESAMPLES draws, seed SEED."""
    return "bootstrap_percentile_clustered" if clustered else "bootstrap_percentile"


def summarize(values: Sequence[float], clusters: Sequence[Hashable | None] | None = None) -> dict:
    """Mean, sample std, standard error and a 95% percentile-bootstrap interval of the mean
    (clustered by `clusters`, e.g. the episode of each sample, when given).

    Values are the finite per-sample scores; samples where the metric did not apply are left
    out before this point and counted separately.
    """
    n = len(values)
    n_clusters = len({c if c is not None else ("__single__", i) for i, c in enumerate(clusters)}) \
        if clusters is not None else n
    clustered = clusters is not None and n_clusters < n
    out = {"n": n, "n_clusters": n_clusters, "ci_method": ci_method(clustered)}
    if n == 0:
        return {"mean": None, "std": None, "stderr": None, "ci95": None, **out}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    ci = bootstrap_ci(values, clusters if clustered else None) if n > 1 else [mean, mean]
    return {"mean": mean, "std": std, "stderr": std / math.sqrt(n), "ci95": ci, **out}


def macro_mean_ci(groups: Sequence[tuple[Sequence[float], Sequence[Hashable | None] | None]], *,
                  confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                  seed: int = SEED) -> tuple[float, list[float]]:
    """The unweighted average of several groups' means (e.g. the paper's 'Avg' over subsets)
    with a stratified percentile bootstrap: each group is resampled on its own (clustered)."""
    if not groups or any(len(v) == 0 for v, _ in groups):
        raise ValueError("every group needs at least one value")
    rng = np.random.default_rng(seed)
    dists = [bootstrap_means(v, c, n_resamples=n_resamples, rng=rng) for v, c in groups]
    mean = float(np.mean([np.mean(np.asarray(v, dtype=np.float64)) for v, _ in groups]))
    return mean, percentile_interval(np.mean(dists, axis=0), confidence)


def wilcoxon(differences: Sequence[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of the paired differences (scipy, two-sided, zeros dropped:
    zero_method='wilcox') and the matched-pairs rank-biserial correlation
    r = (T+ - T-) / (T+ + T-) over the non-zero differences (Kerby 2014): +1 when every
    difference is positive, -1 when every one is negative."""
    from scipy.stats import rankdata
    from scipy.stats import wilcoxon as scipy_wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    nonzero = d[d != 0]
    if len(nonzero) == 0:  # identical scores: no evidence of a difference, scipy would warn
        return {"p_value": 1.0, "statistic": 0.0, "rank_biserial": 0.0, "n_nonzero": 0}
    ranks = rankdata(np.abs(nonzero))
    t_plus, t_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
    result = scipy_wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return {"p_value": float(result.pvalue), "statistic": float(result.statistic),
            "rank_biserial": (t_plus - t_minus) / (t_plus + t_minus), "n_nonzero": len(nonzero)}


def paired(a: Sequence[float], b: Sequence[float], clusters: Sequence[Hashable | None] | None = None, *,
           confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Paired comparison of two runs' scores on the same samples (a[i] and b[i]: one sample):
    the mean difference B - A with a (clustered) percentile-bootstrap interval, and the
    Wilcoxon signed-rank test with its effect size."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores must be two equal-length vectors, got {x.shape} and {y.shape}")
    n = len(x)
    if n == 0:
        raise ValueError("no paired samples")
    d = y - x
    ci = bootstrap_ci(d, clusters, confidence=confidence, n_resamples=n_resamples, seed=seed) \
        if n > 1 else [float(d[0])] * 2
    return {"n": n, "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": float(d.mean()),
            "ci": ci, **wilcoxon(d)}


def _joint_means(rows: Sequence[Sequence[float]], clusters: Sequence[Hashable | None] | None, n_resamples: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The means of several score vectors over the same samples, and their bootstrap means from
    one shared draw of samples (or clusters): (means (R,), draws (R, n_resamples))."""
    x = np.stack([np.asarray(v, dtype=np.float64) for v in rows])
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError("equal-length, non-empty score vectors are needed")
    grouped = _clusters(x.shape[1], clusters)
    index, k = grouped if grouped is not None else (np.arange(x.shape[1]), x.shape[1])
    sums = np.stack([np.bincount(index, weights=row, minlength=k) for row in x])
    counts = np.bincount(index, minlength=k).astype(np.float64)
    draw = np.random.default_rng(seed).integers(0, k, (n_resamples, k))
    return x.mean(axis=1), sums[:, draw].sum(axis=2) / counts[draw].sum(axis=1)


def _position(m: np.ndarray, f: np.ndarray, c: np.ndarray) -> np.ndarray:
    span = c - f
    return np.where(span != 0, (m - f) / np.where(span != 0, span, 1.0), np.nan)


def normalized(model: Sequence[float], floor: Sequence[float], ceiling: Sequence[float],
               clusters: Sequence[Hashable | None] | None = None, *, confidence: float = CONFIDENCE,
               n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Where a model's mean lies between a floor's and a ceiling's on the same samples (i-th value
    of each: one sample): (mean(model) - mean(floor)) / (mean(ceiling) - mean(floor)), 0 at the
    floor, 1 at the ceiling (either direction of "better"), with a percentile-bootstrap interval
    that resamples the samples (or clusters) jointly for the three. None where floor = ceiling."""
    means, draws = _joint_means([model, floor, ceiling], clusters, n_resamples, seed)
    point, dist = _position(*means), _position(*draws)
    dist = dist[np.isfinite(dist)]
    finite = bool(np.isfinite(point))
    return {"value": float(point) if finite else None,
            "ci": percentile_interval(dist, confidence) if finite and len(dist) else None,
            "model": float(means[0]), "floor": float(means[1]), "ceiling": float(means[2]), "n": len(model)}


def normalized_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                          clusters: Sequence[Hashable | None] | None = None, *, confidence: float = CONFIDENCE,
                          n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Paired comparison of two normalised scores on the same samples: `a` and `b` are each
    (model, floor, ceiling) score vectors (e.g. an IDP metric and an FDP metric of the same frame
    pairs). The difference a - b with a percentile-bootstrap interval from one joint draw, and the
    two-sided bootstrap p-value (twice the smaller share of draws on either side of 0)."""
    means, draws = _joint_means([*a, *b], clusters, n_resamples, seed)
    point = float(_position(*means[:3]) - _position(*means[3:]))
    dist = _position(*draws[:3]) - _position(*draws[3:])
    dist = dist[np.isfinite(dist)]
    if not np.isfinite(point) or not len(dist):
        return {"diff": None, "ci": None, "p_value": None, "n": len(a[0])}
    p = min(1.0, 2 * min(float(np.mean(dist <= 0)), float(np.mean(dist >= 0))))
    return {"diff": point, "ci": percentile_interval(dist, confidence), "p_value": p, "n": len(a[0])}


def across_seeds(means: Sequence[float]) -> dict[str, Any]:
    """Spread of one score over runs that differ only by seed: mean of the per-seed means,
    sample standard deviation (ddof=1), range."""
    x = np.asarray(means, dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n_seeds": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "min": float(x.min()), "max": float(x.max()), "n_seeds": len(x)}
