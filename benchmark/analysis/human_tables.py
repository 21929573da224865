"""The tables of `wmbench human import`: human.md, human.tex, human.html (every table) and one CSV
per table. The best-worst scores are a leaderboard `Board` drawn by `formats` (bold best, ± the
half-width of the 95% interval, anchors set apart); the other tables use the small renderer here."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from .board import Board, Cell, Column
from .formats import render, tex
from .human_stats import ALL_TASKS

SCORE_NOTES = [
    "best-worst score per model: +1 when an annotator picked its frame as the best of the item on the criterion, "
    "-1 as the worst, 0 otherwise, averaged over complete (annotator, item) judgments; range -1 to +1",
    "overall: each judgment's mean over the criteria",
    "scored / failed / skipped here: complete / incomplete / 0 annotated items (annotator x sample); incomplete "
    "items are counted, not scored",
]


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def board(study, stats, coverage: dict[str, dict[str, int]]) -> Board:
    """The best-worst scores as a leaderboard Board: a column group per task (and all tasks), a
    column per criterion and `overall`. `coverage`: task -> complete / incomplete items."""
    import pandas as pd

    from .leaderboard import _mark_best

    models = [m for m in study.models if m in study.anchors] + [m for m in study.models if m not in study.anchors]
    tasks = list(study.data["tasks"])
    columns, table = [], {}
    for group in stats.groups:
        for criterion in stats.criteria:
            col = Column(group, criterion, "", tuple(tasks) if group == ALL_TASKS else (group,), True)
            rows = stats.scores[(stats.scores.group == group) & (stats.scores.criterion == criterion)].set_index("model")
            cells = []
            for model in models:
                r = rows.loc[model]
                cells.append(Cell("ok", r["mean"], r["ci_lo"], r["ci_hi"], int(r["n"])) if r["n"] else Cell("empty"))
            _mark_best(col, cells, [m in study.anchors for m in models])
            columns.append(col)
            table[col.key] = cells
    frame = pd.DataFrame(table, index=pd.Index(models, name="model"))
    frame.columns = pd.MultiIndex.from_tuples([c.key for c in columns], names=["group", "metric", "column"])
    cover = {m: {t: {"total": c["complete"] + c["incomplete"], "scored": c["complete"], "failed": c["incomplete"],
                     "skipped": 0} for t, c in coverage.items()} for m in models}
    return Board(frame, columns, [m for m in models if m in study.anchors], cover)


# a small renderer for the other tables ---------------------------------------------------------
def _md(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def _latex(header: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    lines = ["\\begin{table}[t]", "\\centering", "\\footnotesize", f"\\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}",
             "\\toprule", " & ".join(map(tex, header)) + " \\\\", "\\midrule"]
    lines += [" & ".join(map(tex, r)) + " \\\\" for r in rows]
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}", f"\\caption{{{tex(caption)}}}",
                              f"\\label{{{label}}}", "\\end{table}"])


def _html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def sections(study, result, stats) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, latex label, header, rows) of every table but the scores."""
    out = []
    for criterion in [*study.criteria, "all criteria"]:
        part = stats.win_rates[stats.win_rates.criterion == criterion]
        rows = []
        for model in study.models:
            cells = [model]
            for other in study.models:
                r = part[(part.model == model) & (part.opponent == other)]
                if other == model or r.empty:
                    cells.append("–")
                    continue
                r = r.iloc[0]
                cells.append(f"{_number(r['rate'], 2)} ({r['wins']}/{r['wins'] + r['losses']})")
            rows.append(cells)
        out.append((f"Pairwise win rate, {criterion}: row beats column (wins / decided)",
                    f"tab:human-wins-{criterion.replace(' ', '-')}", ["model", *study.models], rows))
    a = stats.agreement
    out.append(("Inter-annotator agreement on the samples two or more annotators judged", "tab:human-agreement",
                ["criterion", "samples", "units", "annotators", "Krippendorff alpha (nominal)", "pairwise agreement",
                 "chance", "note"],
                [[r.criterion, str(r.samples), str(r.units), str(r.annotators), _number(r.alpha),
                  _number(r.pairwise_agreement), _number(r.chance), r.note] for r in a.itertuples()]))
    if stats.judge is not None:
        out.append(("Judge-human agreement (rank correlations with the mean human best-worst score)", "tab:human-judge",
                    ["judge", "level", "criterion", "n", "Spearman rho", "p", "Kendall tau", "p", "note"],
                    [[r.judge, r.level, r.criterion, str(r.n), _number(r.spearman), _p(r.spearman_p),
                      _number(r.kendall), _p(r.kendall_p), r.note] for r in stats.judge.itertuples()]))
    out.append(("Annotators: items assigned and annotated", "tab:human-annotators",
                ["annotator", "file", "items", "complete", "started, incomplete", "not started"],
                [[r.annotator, r.file or "(none)", str(r.items), str(r.complete), str(r.started), str(r.not_started)]
                 for r in result.coverage.itertuples()]))
    return out


def _intro(study, result) -> list[str]:
    e = study.data
    models = ", ".join(m["label"] + (" (anchor)" if m.get("anchor") else "") for m in e["models"])
    return [f"export {result.export_id}: {len(study.samples)} samples of {', '.join(e['tasks'])}; models {models}; "
            f"criteria {', '.join(study.criteria)}; {len(study.pages)} annotators, "
            f"{sum(s['shared'] for s in study.samples.values())} samples on every page"]


def write_all(result, study, stats, judgments: list[dict], comments: list[dict]) -> list[Path]:
    import pandas as pd

    out = result.output
    out.mkdir(parents=True, exist_ok=True)
    coverage: dict[str, dict[str, int]] = {t: {"complete": 0, "incomplete": 0} for t in study.data["tasks"]}
    for annotator, items in study.pages.items():
        done = {j["item"] for j in judgments if j["annotator"] == annotator}
        for item, entry in items.items():
            coverage[study.samples[entry["sample"]]["task"]]["complete" if item in done else "incomplete"] += 1
    b = board(study, stats, coverage)
    intro, parts, notes = _intro(study, result), sections(study, result, stats), [*SCORE_NOTES, *result.notes]

    md = [f"# Human evaluation {result.export_id}", "", *intro, "", "## Best-worst scores", "",
          render(b, "md").rstrip("\n")]
    md += [f"- {n}" for n in notes]
    for title, _, header, rows in parts:
        md += ["", f"## {title}", "", _md(header, rows)]
    latex = render(b, "latex").replace("World-model benchmark results (wmbench).",
                                       f"Human evaluation {result.export_id}: best-worst scores.")
    latex = latex.replace("\\label{tab:wmbench}", "\\label{tab:human-scores}")
    latex += "\n" + "\n\n".join(_latex(h, r, t, label) for t, label, h, r in parts) + "\n"
    page = render(b, "html").replace("<title>wmbench leaderboard</title>", "<title>wmbench human evaluation</title>")
    page = page.replace("<h1>wmbench leaderboard</h1>",
                        f"<h1>Human evaluation {html.escape(result.export_id)}</h1>"
                        + "".join(f"<p>{html.escape(i)}</p>" for i in intro) + "<h2>Best-worst scores</h2>")
    extra = "<ul class=\"notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
    extra += "".join(f"<h2>{html.escape(t)}</h2>{_html(h, r)}" for t, _, h, r in parts)
    page = page.replace("</body></html>", extra + "</body></html>")
    files = {"human.md": "\n".join(md) + "\n", "human.tex": latex, "human.html": page}
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    frames = {"scores.csv": stats.scores, "win_rates.csv": stats.win_rates, "agreement.csv": stats.agreement,
              "annotators.csv": result.coverage, "judgments.csv": pd.DataFrame(judgments),
              "comments.csv": pd.DataFrame(comments, columns=["annotator", "uid", "comment"])}
    if stats.judge is not None:
        frames["judge_human.csv"] = stats.judge
    for name, frame in frames.items():
        frame.to_csv(out / name, index=False)
    return [out / n for n in [*files, *frames]]
