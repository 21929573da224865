"""Leaderboards built from real runs (the runner on the JSONL pairs fixture): layout, best values,
anchors, N/A, coverage, seeds, every format, and that the LaTeX compiles."""

from __future__ import annotations

import io
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SUBSET_TASK, write_pairs, write_task

from wmbench.cli import main
from wmbench.analysis.leaderboard import build, collect, render
from wmbench.core.stats import macro_mean_ci



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Anchors (copy, oracle), two real models (box blur radius 1 and 3 as plugin adapters, so not
    anchors), a faulty model, three seeds of one model, and a task with an unavailable metric."""
    root = tmp_path_factory.mktemp("board")
    write_pairs(root / "data" / "pairs")
    tasks = root / "tasks"
    tasks.mkdir()
    write_task(tasks, "pairs_fdp", "fdp", "l1, psnr, ssim, change_iou")
    for subset, seed in (("a", 1), ("b", 2)):
        write_task(tasks, f"pairs_{subset}_fdp", "fdp", "l1, ssim", SUBSET_TASK, seed=seed)
    write_task(tasks, "pairs_na_fdp", "fdp", "l1, vlm_judge")
    cards = {}
    for name, radius in (("soft", 1), ("smear", 3)):
        cards[name] = root / f"{name}.yaml"
        cards[name].write_text(f"name: {name}\nadapter: wmbench.models.baselines:BlurModel\nargs: {{radius: {radius}}}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMBENCH_DATA_DIR", str(root / "data"))
        mp.setenv("WMBENCH_TASKS_PATH", str(tasks))

        def run(*argv: str) -> int:
            return main(["run", "--no-progress", *argv])

        assert run("--tasks", "pairs_fdp,pairs_a_fdp,pairs_b_fdp", "--model",
                   f"copy,oracle,{cards['soft']},{cards['smear']}", "--output", str(root / "main")) == 0
        assert run("--tasks", "pairs_fdp", "--model", "helper_models:FaultyModel", "--output", str(root / "faulty")) == 1
        for seed in (5, 6, 7):
            assert run("--tasks", "pairs_a_fdp", "--model", str(cards["soft"]), "--seed", str(seed),
                       "--output", str(root / "seeds" / f"s{seed}")) == 0
        assert run("--tasks", "pairs_na_fdp", "--model", f"copy,{cards['soft']}", "--output", str(root / "na")) == 0
    return root


def metric_of(run_dir: Path, task: str, metric: str) -> dict:
    return json.loads((run_dir / "results.json").read_text())["tasks"][task]["metrics"][metric]


def test_best_value_is_bold_among_models_and_anchors_are_set_apart(runs):
    board = build(collect([runs / "main"]), tasks=["pairs_fdp"])
    assert board.models[:2] == ["oracle", "copy"] and set(board.models[2:]) == {"smear", "soft"}
    for col in board.columns:
        means = {m: metric_of(runs / "main" / m, "pairs_fdp", col.metric)["mean"] for m in ("soft", "smear")}
        pick = max if col.higher_is_better else min
        winner = pick(means, key=means.get)
        assert board.cells.loc[winner, col.key].best and not board.cells.loc[({"soft", "smear"} - {winner}).pop(),
                                                                             col.key].best
        assert not any(board.cells.loc[a, col.key].best for a in ("oracle", "copy"))  # oracle is better, not ranked
    md = render(board, "md")
    row = next(line for line in md.splitlines() if line.startswith(("| soft ", "| smear ")))
    assert "**" in md and md.index("| *oracle*") < md.index("| *copy*") < md.index(row)
    tex = render(board, "latex")
    anchors_block = tex.split("\\midrule")[1]
    assert "\\textit{oracle}" in anchors_block and "\\textit{copy}" in anchors_block and "soft" not in anchors_block
    assert tex.count("\\textbf{") == len(board.columns)  # one winner per column, no ties here


def test_subsets_as_columns_with_average(runs):
    rows = collect([runs / "main"])
    board = build(rows, tasks=["pairs_a_fdp", "pairs_b_fdp"], groups=["Pairs=pairs_{subset}_fdp"])
    assert [c.key for c in board.columns] == [("Pairs", "l1", "a"), ("Pairs", "l1", "b"), ("Pairs", "l1", "Avg"),
                                              ("Pairs", "ssim", "a"), ("Pairs", "ssim", "b"), ("Pairs", "ssim", "Avg")]
    by_suite = build(rows, tasks=["pairs_a_fdp", "pairs_b_fdp"], groups=["suite:pairsub"])
    assert [c.label for c in by_suite.columns] == [c.label for c in board.columns]
    avg = board.cells.loc["soft", ("Pairs", "ssim", "Avg")]
    groups = []
    for task in ("pairs_a_fdp", "pairs_b_fdp"):
        samples = [json.loads(line) for line in (runs / "main" / "soft" / "samples.jsonl").read_text().splitlines()]
        mine = [s for s in samples if s["task"] == task]
        groups.append(([s["scores"]["ssim"] for s in mine], [s["sample"]["episode_id"] for s in mine]))
    mean, (lo, hi) = macro_mean_ci(groups)
    expected = np.mean([metric_of(runs / "main" / "soft", t, "ssim")["mean"] for t in ("pairs_a_fdp", "pairs_b_fdp")])
    assert avg.mean == pytest.approx(expected) == pytest.approx(mean)
    assert (avg.lo, avg.hi) == pytest.approx((lo, hi))
    tex = render(board, "latex")
    assert "\\multicolumn{6}{c}{Pairs}" in tex and "\\cmidrule(lr){2-4}" in tex and "Model & a & b & Avg" in tex


def test_latex_compiles(runs, tmp_path):
    board = build(collect([runs / "main", runs / "na", runs / "faulty"]), groups=["pairs_{subset}_fdp"])
    tex = render(board, "latex")
    for part in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}", "\\end{table}", "$\\pm$", "N/A"):
        assert part in tex
    assert tex.count("\\begin{") == tex.count("\\end{")
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended); "
                    "the LaTeX structure was checked, not compiled")
    (tmp_path / "table.tex").write_text(tex)
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                      "\\input{table.tex}\n\\end{document}\n")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_unavailable_metric_is_na_with_its_reason_and_failures_are_counted(runs):
    board = build(collect([runs / "na", runs / "faulty"]))
    na = board.cells.loc["soft", ("pairs_na_fdp", "vlm_judge", "")]
    reason = metric_of(runs / "na" / "soft", "pairs_na_fdp", "vlm_judge")["reason"]
    assert na.state == "na" and reason and board.notes[na.note] == f"vlm_judge unavailable: {reason}"
    md = render(board, "md")
    assert f"N/A<sup>{na.note}</sup>" in md and reason in md
    counts = json.loads((runs / "faulty" / "results.json").read_text())["tasks"]["pairs_fdp"]["counts"]
    assert counts["failed"] > 0
    assert "| FaultyModel |" in md and f"{counts['scored']} / {counts['failed']} / {counts['skipped']}" in md
    faulty = board.cells.loc["FaultyModel", ("pairs_fdp", "l1", "")]
    assert faulty.n == counts["scored"]  # failed samples are not scored as zero
    assert board.cells.loc["soft", ("pairs_fdp", "l1", "")].state == "missing"


def test_runs_that_differ_only_by_seed_become_one_row(runs):
    board = build(collect([runs / "seeds"]))
    assert board.models == ["soft"]
    means = [metric_of(runs / "seeds" / f"s{s}", "pairs_a_fdp", "ssim")["mean"] for s in (5, 6, 7)]
    cell = board.cells.loc["soft", ("pairs_a_fdp", "ssim", "")]
    assert cell.seeds == 3 and cell.mean == pytest.approx(statistics.mean(means))
    assert cell.hi - cell.mean == pytest.approx(statistics.stdev(means)) and statistics.stdev(means) > 0
    assert "†" in render(board, "md") and "$^\\dagger$" in render(board, "latex")


def test_cli_formats_and_output_dir(runs, tmp_path, capsys):
    out = tmp_path / "board"
    assert main(["leaderboard", str(runs / "main"), "--tasks", "pairs_?_fdp", "--metrics", "ssim",
                 "--group", "pairs_{subset}_fdp", "--format", "csv", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md",
                                                     "leaderboard.tex"]
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col="model")
    assert table.loc["smear", "pairs_*_fdp|ssim|a:mean"] == pytest.approx(
        metric_of(runs / "main" / "smear", "pairs_a_fdp", "ssim")["mean"])
    lo, hi = metric_of(runs / "main" / "smear", "pairs_b_fdp", "ssim")["ci95"]
    assert (table.loc["smear", "pairs_*_fdp|ssim|b:low"], table.loc["smear", "pairs_*_fdp|ssim|b:high"]) == \
        pytest.approx((lo, hi))
    assert bool(table.loc["copy", "anchor"]) and not bool(table.loc["soft", "anchor"])
    assert "l1" not in "".join(table.columns)
    page = (out / "leaderboard.html").read_text()
    assert '<tbody class="anchors">' in page and "<b>" in page and "http" not in page
    assert main(["leaderboard", str(runs / "main"), "--format", "latex"]) == 0
    assert capsys.readouterr().out.startswith("% wmbench leaderboard")


def test_bad_selections_exit_2(runs, capsys):
    assert main(["leaderboard", str(runs / "main"), "--tasks", "nope"]) == 2
    assert "no results for task 'nope'" in capsys.readouterr().err
    assert main(["leaderboard", str(runs / "main"), "--group", "pairs_fdp"]) == 2
    assert "{subset}" in capsys.readouterr().err
    assert main(["leaderboard", str(runs / "main"), str(runs / "main" / "soft")]) == 2  # the same run twice
    assert "appears in several runs" in capsys.readouterr().err
    assert main(["leaderboard", str(runs / "missing")]) == 2
