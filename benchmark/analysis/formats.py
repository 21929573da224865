"""Renderers of a leaderboard `Board`: Markdown, LaTeX (booktabs), CSV (pandas) and HTML."""

from __future__ import annotations

import html
import io
from collections.abc import Callable

from pathlib import Path

from ..core.errors import BadInput
from .board import Board, Cell, Column, coverage_text

ARROW = {True: "↑", False: "↓"}
STYLES = {
    "md": {"bold": "**{}**", "pm": " ± {}", "sup": "<sup>{}</sup>", "dash": "–", "dagger": "†", "na": "N/A"},
    "latex": {"bold": "\\textbf{{{}}}", "pm": "\\,{{\\scriptsize$\\pm${}}}", "sup": "\\textsuperscript{{{}}}",
              "dash": "--", "dagger": "$^\\dagger$", "na": "N/A"},
    "html": {"bold": "<b>{}</b>", "pm": " <small>± {}</small>", "sup": "<sup>{}</sup>", "dash": "–",
             "dagger": "†", "na": "N/A"},
}


def cell_text(col: Column, cell: Cell, style: dict[str, str], ci: bool) -> str:
    if cell.state == "missing":
        return style["dash"]
    if cell.state != "ok":
        return (style["na"] if cell.state == "na" else style["dash"]) + style["sup"].format(cell.note)
    text = f"{cell.mean:.{col.decimals}f}"
    if cell.best:
        text = style["bold"].format(text)
    if ci and cell.lo is not None and (cell.n > 1 or cell.seeds > 1):
        text += style["pm"].format(f"{(cell.hi - cell.lo) / 2:.{col.decimals}f}")
    return text + (style["dagger"] if cell.seeds > 1 else "")


def general_notes(board: Board, ci: bool) -> list[str]:
    cells = [c for col in board.cells.columns for c in board.cells[col]]
    notes = [("↑ higher is better, ↓ lower is better; bold: the best model that is not an anchor "
              "(at the shown precision, only where two or more models are scored)")]
    if board.anchors:
        notes.append(f"anchors (reference rows, never ranked): {', '.join(board.anchors)}")
    if ci:
        notes.append("±: half the width of the 95% percentile-bootstrap interval of the mean, resampling whole "
                     "episodes where samples share one (the CSV has both ends)")
    if any(c.seeds > 1 for c in cells):
        notes.append("†: mean over seeds ± the standard deviation across seeds")
    if any(col.label == "Avg" for col in board.columns):
        notes.append("Avg: unweighted mean of the subset means, shown only when every subset is scored; "
                     "its interval is a bootstrap that resamples each subset on its own")
    if any(c.state == "missing" for c in cells):
        notes.append("–: not evaluated")
    notes.append("scored / failed / skipped (s / f / k): samples over the shown tasks; failed samples are never "
                 "scored as zero")
    totals: dict[str, set[int]] = {}
    for per_task in board.coverage.values():
        for task, counts in per_task.items():
            totals.setdefault(task, set()).add(counts.get("total", 0))
    uneven = sorted(t for t, sizes in totals.items() if len(sizes) > 1)
    if uneven:  # means over different sample sets are not comparable row to row
        notes.append(f"warning: the models were evaluated on sample sets of different sizes in {', '.join(uneven)} "
                     "(e.g. another --limit): compare rows with care, or pair samples with `wmbench compare`")
    return notes


def _headers(cols: list[Column]) -> list[str]:
    return [f"{c.metric} {ARROW[c.higher_is_better]}" + (f" · {c.label}" if c.label else "") for c in cols]


# markdown ------------------------------------------------------------------------------------------
def markdown(board: Board, ci: bool = True) -> str:
    style, out = STYLES["md"], []
    for group in dict.fromkeys(c.group for c in board.columns):
        cols = [c for c in board.columns if c.group == group]
        tasks = sorted({t for c in cols for t in c.tasks})
        title = f"### {group}" + (f" (tasks: {', '.join(tasks)})" if tasks != [group] else "")
        header = ["model", *_headers(cols), "scored / failed / skipped"]
        lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model in board.models:
            if not any(t in board.coverage.get(model, {}) for t in tasks):
                continue  # the model was not run on this group's tasks
            name = f"*{model}*" if model in board.anchors else model
            cells = [cell_text(c, board.cells.loc[model, c.key], style, ci) for c in cols]
            lines.append("| " + " | ".join([name, *cells, coverage_text(board, model, tasks)]) + " |")
        out.append("\n".join(lines))
    notes = [f"- {n}" for n in general_notes(board, ci)] + [f"- <sup>{k}</sup> {v}" for k, v in board.notes.items()]
    return "\n\n".join(out) + "\n\n" + "\n".join(notes) + "\n"


# latex ---------------------------------------------------------------------------------------------
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "±": r"$\pm$", "†": r"$^\dagger$", "–": "--",
                  "·": r"$\cdot$", "<": r"$<$", ">": r"$>$"}


def tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def _spans(cols: list[Column], key: Callable[[Column], tuple]) -> list[tuple[tuple, int, int]]:
    """Runs of equal key: (key, first column index (1-based after the model column), width)."""
    spans: list[tuple[tuple, int, int]] = []
    for i, col in enumerate(cols):
        if spans and spans[-1][0] == key(col):
            spans[-1] = (spans[-1][0], spans[-1][1], spans[-1][2] + 1)
        else:
            spans.append((key(col), i + 2, 1))
    return spans


def _latex_header_row(spans, label: Callable[[tuple], str], last: str = "") -> list[str]:
    cells = " & ".join(f"\\multicolumn{{{w}}}{{c}}{{{label(k)}}}" for k, _, w in spans)
    rules = " ".join(f"\\cmidrule(lr){{{s}-{s + w - 1}}}" for _, s, w in spans)
    return [f" & {cells} & {last} \\\\", rules]


def latex(board: Board, ci: bool = True) -> str:
    style, cols = STYLES["latex"], board.columns
    lines = ["% wmbench leaderboard; needs \\usepackage{booktabs} in the preamble",
             "\\begin{table}[t]", "\\centering", "\\footnotesize", "\\setlength{\\tabcolsep}{3pt}",
             f"\\begin{{tabular}}{{l{'c' * len(cols)}c}}", "\\toprule"]
    groups = _spans(cols, lambda c: (c.group,))
    metrics = _spans(cols, lambda c: (c.group, c.metric))
    if len(groups) < len(cols) or len(groups) > 1:
        lines += _latex_header_row(groups, lambda k: tex(k[0]))
    if any(c.label for c in cols):
        lines += _latex_header_row(metrics, lambda k: tex(f"{k[1]} {ARROW[_higher(cols, k)]}"))
        labels = " & ".join(tex(c.label) for c in cols)
        lines.append(f"Model & {labels} & s / f / k \\\\")
    else:
        labels = " & ".join(tex(f"{c.metric} {ARROW[c.higher_is_better]}") for c in cols)
        lines.append(f"Model & {labels} & s / f / k \\\\")
    lines.append("\\midrule")
    blocks = [[m for m in board.models if m in board.anchors], [m for m in board.models if m not in board.anchors]]
    for i, block in enumerate(b for b in blocks if b):
        if i:
            lines.append("\\midrule")
        for model in block:
            name = f"\\textit{{{tex(model)}}}" if model in board.anchors else tex(model)
            cells = [cell_text(c, board.cells.loc[model, c.key], style, ci) for c in cols]
            lines.append(" & ".join([name, *cells, coverage_text(board, model)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "", "\\smallskip", "\\parbox{\\linewidth}{\\scriptsize"]
    notes = [tex(n) for n in general_notes(board, ci)]
    notes += [f"\\textsuperscript{{{k}}}\\,{tex(v)}" for k, v in board.notes.items()]
    lines += [n + ".\\\\" for n in notes]
    lines += ["}", "\\caption{World-model benchmark results (wmbench).}", "\\label{tab:wmbench}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _higher(cols: list[Column], key: tuple) -> bool:
    return next(c.higher_is_better for c in cols if (c.group, c.metric) == key)


# csv -----------------------------------------------------------------------------------------------
def csv(board: Board, ci: bool = True) -> str:
    """Wide and numeric: per column `<group>|<metric>|<column>:mean/low/high/interval/state`."""
    import pandas as pd

    data: dict[str, list] = {"anchor": [m in board.anchors for m in board.models]}
    for k in ("scored", "failed", "skipped"):
        data[k] = [sum(c[k] for c in board.coverage.get(m, {}).values()) for m in board.models]
    for col in board.columns:
        name = "|".join(col.key)
        cells = [board.cells.loc[m, col.key] for m in board.models]
        data[f"{name}:mean"] = [c.mean for c in cells]
        data[f"{name}:low"] = [c.lo for c in cells]
        data[f"{name}:high"] = [c.hi for c in cells]
        data[f"{name}:interval"] = ["" if c.lo is None else "sd_seeds" if c.seeds > 1 else "ci95" for c in cells]
        data[f"{name}:state"] = [c.state if c.note is None else f"{c.state}: {board.notes[c.note]}" for c in cells]
    buffer = io.StringIO()
    pd.DataFrame(data, index=pd.Index(board.models, name="model")).to_csv(buffer)
    return buffer.getvalue()


# html ----------------------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 8px;text-align:center;white-space:nowrap}
thead tr:last-child th{border-bottom:2px solid #333}thead tr:first-child th{border-top:2px solid #333}
tbody:last-of-type tr:last-child td{border-bottom:2px solid #333}tbody.anchors td{color:#666;font-style:italic}
tbody.anchors tr:last-child td{border-bottom:1px solid #333}td:first-child,th:first-child{text-align:left}
.notes{font-size:12px;color:#444;max-width:60em}small{color:#666}"""


def _html_row(spans, label: Callable[[tuple], str], first: str = "", last: str = "") -> str:
    cells = "".join(f'<th colspan="{w}">{html.escape(label(k))}</th>' for k, _, w in spans)
    return f"<tr><th>{first}</th>{cells}<th>{last}</th></tr>"


def html_page(board: Board, ci: bool = True) -> str:
    style, cols = STYLES["html"], board.columns
    head = []
    if len({c.group for c in cols}) > 1 or len(cols) > 1:
        head.append(_html_row(_spans(cols, lambda c: (c.group,)), lambda k: k[0]))
    head.append(_html_row(_spans(cols, lambda c: (c.group, c.metric)),
                          lambda k: f"{k[1]} {ARROW[_higher(cols, k)]}"))
    labels = "".join(f"<th>{html.escape(c.label)}</th>" for c in cols)
    head.append(f"<tr><th>model</th>{labels}<th>scored / failed / skipped</th></tr>")
    bodies = []
    for cls, block in (("anchors", [m for m in board.models if m in board.anchors]),
                       ("models", [m for m in board.models if m not in board.anchors])):
        if block:
            rows = "".join(f"<tr><td>{html.escape(m)}</td>"
                           + "".join(f"<td>{cell_text(c, board.cells.loc[m, c.key], style, ci)}</td>" for c in cols)
                           + f"<td>{coverage_text(board, m)}</td></tr>" for m in block)
            bodies.append(f'<tbody class="{cls}">{rows}</tbody>')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in general_notes(board, ci))
    notes += "".join(f"<li><sup>{k}</sup> {html.escape(v)}</li>" for k, v in board.notes.items())
    tasks = sorted({t for per in board.coverage.values() for t in per})
    cover = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(
        f"<td>{coverage_text(board, m, [t]) if t in board.coverage.get(m, {}) else '–'}</td>" for t in tasks)
        + "</tr>" for m in board.models)
    cover_head = "".join(f"<th>{html.escape(t)}</th>" for t in tasks)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>wmbench leaderboard</title>'
            f"<style>{CSS}</style></head><body><h1>wmbench leaderboard</h1>"
            f'<table class="board"><thead>{"".join(head)}</thead>{"".join(bodies)}</table>'
            f'<ul class="notes">{notes}</ul><h2>Coverage per task (scored / failed / skipped)</h2>'
            f'<table class="coverage"><thead><tr><th>model</th>{cover_head}</tr></thead>'
            f"<tbody>{cover}</tbody></table></body></html>\n")


RENDERERS: dict[str, Callable[[Board, bool], str]] = {"md": markdown, "latex": latex, "csv": csv, "html": html_page}

FILES = {"md": "leaderboard.md", "latex": "leaderboard.tex", "csv": "leaderboard.csv", "html": "leaderboard.html"}


def render(board: Board, fmt: str, ci: bool = True) -> str:
    if fmt not in RENDERERS:
        raise BadInput(f"unknown format '{fmt}' (choose from {', '.join(RENDERERS)})")
    return RENDERERS[fmt](board, ci)


def write_all(board: Board, output: Path, ci: bool = True) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, name in FILES.items():
        (output / name).write_text(render(board, fmt, ci), encoding="utf-8")
        written.append(output / name)
    return written
