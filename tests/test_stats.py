"""Statistics against scipy on the same data and the same random draws, and `wmbench compare`."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from wmbench.core import stats
from wmbench.cli import main


def _data(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 1.5, size=n)


# bootstrap -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [7, 60, 400])
def test_percentile_bootstrap_matches_scipy(n):
    x = _data(n)
    ours = stats.bootstrap_ci(x, seed=11)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=stats.N_RESAMPLES,
                        rng=np.random.default_rng(11)).confidence_interval
    assert ours == pytest.approx([ref.low, ref.high], rel=1e-12, abs=1e-12)


def _normalised(m, f, c, axis=-1):
    return (m.mean(axis) - f.mean(axis)) / (c.mean(axis) - f.mean(axis))


def test_normalised_score_matches_scipy_paired_bootstrap():
    """(model - floor) / (ceiling - floor) of the means, samples resampled jointly: scipy's paired
    bootstrap on the same draws; a difference of two such scores likewise."""
    rng = np.random.default_rng(5)
    model, floor, ceiling = rng.random(40) * 0.5 + 0.2, rng.random(40) * 0.2, 0.8 + rng.random(40) * 0.2
    ours = stats.normalized(model, floor, ceiling, seed=7)
    ref = sps.bootstrap((model, floor, ceiling), _normalised, paired=True, vectorized=True, method="percentile",
                        n_resamples=stats.N_RESAMPLES, rng=np.random.default_rng(7))
    assert ours["value"] == pytest.approx(_normalised(model, floor, ceiling), rel=1e-12)
    assert ours["ci"] == pytest.approx(list(ref.confidence_interval), rel=1e-12)
    other = model * 0.5 + 0.1
    diff = stats.normalized_difference((model, floor, ceiling), (other, floor, ceiling), seed=7)
    ref = sps.bootstrap((model, other, floor, ceiling), lambda a, b, f, c, axis=-1:
                        _normalised(a, f, c, axis) - _normalised(b, f, c, axis), paired=True, vectorized=True,
                        method="percentile", n_resamples=stats.N_RESAMPLES, rng=np.random.default_rng(7))
    assert diff["ci"] == pytest.approx(list(ref.confidence_interval), rel=1e-12)
    assert diff["p_value"] < 0.01 and diff["diff"] > 0
    assert stats.normalized(model, floor, floor)["value"] is None  # no span between floor and ceiling


def test_one_cluster_per_sample_is_the_plain_bootstrap():
    x = _data(50)
    assert stats.bootstrap_ci(x, [f"ep{i}" for i in range(50)]) == pytest.approx(stats.bootstrap_ci(x), rel=1e-12)


def test_clustered_bootstrap_equals_scipy_on_cluster_means_when_clusters_are_constant():
    # 12 episodes of 5 identical values each: resampling episodes is resampling the episode means
    means = _data(12)
    values = np.repeat(means, 5)
    episodes = np.repeat([f"ep{i}" for i in range(12)], 5).tolist()
    ours = stats.bootstrap_ci(values, episodes, seed=5)
    ref = sps.bootstrap((means,), np.mean, method="percentile", n_resamples=stats.N_RESAMPLES,
                        rng=np.random.default_rng(5)).confidence_interval
    assert ours == pytest.approx([ref.low, ref.high], rel=1e-12)
    naive = stats.bootstrap_ci(values, seed=5)
    assert naive[1] - naive[0] < 0.6 * (ours[1] - ours[0])  # ignoring episodes overstates the precision


def test_macro_average_interval_matches_scipy_two_sample_bootstrap():
    a, b = _data(30, 1), _data(45, 2) * 3
    mean, ci = stats.macro_mean_ci([(a, None), (b, None)], seed=9)
    ref = sps.bootstrap((a, b), lambda x, y, axis: (x.mean(axis) + y.mean(axis)) / 2, method="percentile",
                        n_resamples=stats.N_RESAMPLES, rng=np.random.default_rng(9)).confidence_interval
    assert mean == pytest.approx((a.mean() + b.mean()) / 2)
    assert ci == pytest.approx([ref.low, ref.high], rel=1e-12)


def test_summarize_is_deterministic_and_fast_enough_for_results_json():
    x = _data(1000).tolist()
    episodes = [i // 10 for i in range(1000)]
    first = stats.summarize(x, episodes)
    assert first == stats.summarize(x, episodes)
    assert first["ci_method"] == "bootstrap_percentile_clustered" and first["n_clusters"] == 100
    assert first["mean"] == pytest.approx(np.mean(x)) and first["std"] == pytest.approx(np.std(x, ddof=1))
    assert stats.summarize(x)["ci_method"] == "bootstrap_percentile"
    for clusters in (None, episodes):
        best = min(_timed(stats.summarize, x, clusters) for _ in range(5))
        assert best < 0.05, f"summarize of 1000 samples took {best * 1000:.1f} ms (budget 50 ms)"
    assert stats.summarize([])["ci95"] is None
    assert stats.summarize([0.5])["ci95"] == [0.5, 0.5]


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# paired tests ----------------------------------------------------------------------------------
def test_paired_difference_and_wilcoxon_match_scipy():
    a = _data(40, 4)
    b = a + np.random.default_rng(8).normal(0.3, 1.0, size=40)
    result = stats.paired(a, b, seed=2)
    ref = sps.bootstrap((a, b), lambda x, y, axis: (y - x).mean(axis), paired=True, method="percentile",
                        n_resamples=stats.N_RESAMPLES, rng=np.random.default_rng(2)).confidence_interval
    assert result["ci"] == pytest.approx([ref.low, ref.high], rel=1e-12)
    assert result["diff"] == pytest.approx((b - a).mean())
    assert result["p_value"] == pytest.approx(sps.wilcoxon(b, a).pvalue, rel=1e-12)
    # rank-biserial from scipy's one-sided statistic T+: r = 2 T+ / S - 1, S = n (n + 1) / 2
    t_plus = sps.wilcoxon(b - a, alternative="greater").statistic
    assert result["rank_biserial"] == pytest.approx(2 * t_plus / (40 * 41 / 2) - 1)


def test_rank_biserial_by_hand_and_degenerate_cases():
    # |d| ranks 1, 2, 3, 4; T+ = 1 + 2 + 4 = 7, T- = 3: r = (7 - 3) / 10
    assert stats.wilcoxon([1.0, 2.0, -3.0, 4.0])["rank_biserial"] == pytest.approx(0.4)
    same = stats.paired([0.2, 0.4, 0.6], [0.2, 0.4, 0.6])
    assert same["p_value"] == 1.0 and same["rank_biserial"] == 0.0 and same["ci"] == [0.0, 0.0]
    assert stats.wilcoxon([0.5] * 6)["rank_biserial"] == 1.0


def test_across_seeds():
    means = [0.31, 0.35, 0.28]
    spread = stats.across_seeds(means)
    assert spread["mean"] == pytest.approx(statistics.mean(means))
    assert spread["std"] == pytest.approx(statistics.stdev(means))
    assert spread["n_seeds"] == 3 and stats.across_seeds([0.3])["std"] == 0.0


# results.json and wmbench compare on real runs ---------------------------------------------------
def _run(workspace, model: str, task: str = "pairs_fdp", *extra: str) -> str:
    out = str(workspace / model.replace(":", "_") / task / "_".join(extra))
    assert main(["run", "--no-progress", "--tasks", task, "--model", model, "--output", out, *extra]) == 0
    return out


def _samples(run: str) -> list[dict]:
    return [json.loads(line) for line in Path(run, "samples.jsonl").read_text().splitlines()]


def test_results_json_uses_the_episode_clustered_bootstrap(workspace):
    run = _run(workspace, "blur")
    entry = json.loads(Path(run, "results.json").read_text())["tasks"]["pairs_fdp"]["metrics"]["ssim"]
    samples = _samples(run)
    values = [s["scores"]["ssim"] for s in samples]
    episodes = [s["sample"]["episode_id"] for s in samples]
    assert entry["ci_method"] == "bootstrap_percentile_clustered" and entry["n_clusters"] == 3
    assert entry["ci95"] == pytest.approx(stats.bootstrap_ci(values, episodes), rel=1e-12)


def test_compare_prints_a_paired_test(workspace, capsys):
    copy, blur = _run(workspace, "copy"), _run(workspace, "blur")
    capsys.readouterr()
    assert main(["compare", copy, blur, "--format", "json", "--metrics", "l1,ssim"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"l1", "ssim"}
    a, b = _samples(copy), _samples(blur)
    x, y = [s["scores"]["ssim"] for s in a], [s["scores"]["ssim"] for s in b]
    ssim = rows["ssim"]
    assert ssim["n"] == 12 and ssim["mean_a"] == pytest.approx(np.mean(x)) and ssim["mean_b"] == pytest.approx(np.mean(y))
    assert ssim["p_value"] == pytest.approx(sps.wilcoxon(y, x).pvalue)
    assert ssim["ci"] == pytest.approx(stats.bootstrap_ci(np.subtract(y, x), [s["sample"]["episode_id"] for s in a]))
    assert ssim["rank_biserial"] == -1.0 and ssim["verdict"] == "A better"  # blur lowers SSIM on every pair
    assert main(["compare", copy, blur]) == 0
    text = capsys.readouterr().out
    assert "A = copy" in text and "B = blur" in text and "Wilcoxon p" in text and "pairs_fdp" in text


def test_compare_refuses_runs_without_common_samples(workspace, capsys):
    from wmbench.run.selection import _rank

    ids = [f"pair{i:03d}" for i in range(12)]
    top = {seed: set(sorted(ids, key=lambda s: _rank(seed, s))[:3]) for seed in range(40)}
    s1, s2 = next((a, b) for a in top for b in top if a < b and not top[a] & top[b])
    a = _run(workspace, "copy", "pairs_fdp", "--limit", "3", "--seed", str(s1))
    b = _run(workspace, "blur", "pairs_fdp", "--limit", "3", "--seed", str(s2))
    assert main(["compare", a, b]) == 2
    assert "share no scored samples" in capsys.readouterr().err
    idp = _run(workspace, "majority", "pairs_idp")
    assert main(["compare", a, idp]) == 2
    assert "share no task" in capsys.readouterr().err
    assert main(["compare", a, str(workspace / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
