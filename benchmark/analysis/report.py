"""`wmbench report RUN_DIR...`: one self-contained HTML page of what the models predicted.

For each shown sample: the source and target frames (read again from the dataset named in the
run's task spec), each model's prediction, change heatmaps, the action text and the scores; IDP
rows show each model's predicted action against the reference. Plus matplotlib figures (metric
bars with 95% CIs per task, a per-sample metric-vs-metric scatter). Every image is inlined as a
base64 data URI (downscaled JPEG thumbnails), so the page has no external asset.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SampleError, BadInput
from ..log.runlog import RunLog, SampleLog, TaskLog, read_run

HEATMAP_FULL_SCALE = 128  # a mean |difference| of 128/255 or more is the brightest colour


@dataclass
class Run:
    label: str
    log: RunLog

    @property
    def path(self) -> Path:
        return self.log.path

    @property
    def tasks(self) -> dict[str, TaskLog]:
        return self.log.tasks

    def samples(self, task: str) -> dict[str, SampleLog]:
        """sample_id -> sample of `task` ({} where the run does not have the task)."""
        return self.log.tasks[task].by_id if task in self.log.tasks else {}


@dataclass
class Row:
    task: str
    kind: str
    sample_id: str
    sample: dict[str, Any]
    source: np.ndarray | None = None
    target: np.ndarray | None = None
    note: str = ""
    per_run: dict[str, SampleLog] = field(default_factory=dict)  # run label -> sample


def load_runs(paths: list[Path]) -> list[Run]:
    logs = [read_run(p) for p in paths]
    for log in logs:
        log.samples  # noqa: B018 - the page shows samples: refuse a run without a readable samples.jsonl up front
    names = [log.model_name for log in logs]
    return [Run(n if names.count(n) == 1 else f"{n} ({log.path.name})", log) for log, n in zip(logs, names)]


def _rank(task: str, sample_id: str) -> bytes:
    return hashlib.sha256(f"{task}:{sample_id}".encode()).digest()


def select_rows(runs: list[Run], tasks: list[str], max_samples: int) -> list[Row]:
    """A stable, spread-out subset: per task a share of `max_samples`, chosen by a hash of the
    sample id (not the first N, which would all come from the first episodes), shown in the
    reader's order."""
    pools = {}
    for task in tasks:
        ids: dict[str, SampleLog] = {}
        for run in runs:
            for sid, rec in run.samples(task).items():
                ids.setdefault(sid, rec)
        pools[task] = ids
    quota, left = {}, max_samples
    for i, task in enumerate(sorted(tasks, key=lambda t: len(pools[t]))):  # small tasks give back their share
        quota[task] = min(len(pools[task]), left // (len(tasks) - i))
        left -= quota[task]
    rows = []
    for task in tasks:
        chosen = set(sorted(pools[task], key=lambda sid: _rank(task, sid))[: quota[task]])
        kind = next(r.tasks[task].kind for r in runs if task in r.tasks)
        for sid, rec in sorted(pools[task].items(), key=lambda kv: (kv[1].position, kv[0])):
            if sid in chosen:
                row = Row(task, kind, sid, rec.sample)
                row.per_run = {r.label: r.samples(task)[sid] for r in runs if sid in r.samples(task)}
                rows.append(row)
    return rows


def attach_frames(rows: list[Row], runs: list[Run], data_dir: str | None) -> list[str]:
    """Read the shown samples' source/target frames with the task's dataset reader; returns
    page-level notes for tasks whose data cannot be read (the rows still show predictions)."""
    from ..data import FORMATS, resolve_data_dir
    from ..core.tasks import TaskSpec
    from ..core.yamlspec import build

    notes = []
    for task in dict.fromkeys(r.task for r in rows):
        run = next(r for r in runs if task in r.tasks)
        wanted = {r.sample_id: r for r in rows if r.task == task}
        try:
            spec = build(TaskSpec, run.tasks[task].spec, run.path / "results.json")
            base = Path(data_dir) if data_dir else Path(run.log.results["config"].get("data_dir") or resolve_data_dir())
            if not (base / spec.dataset.subfolder).is_dir() and not data_dir:
                base = resolve_data_dir()
            root = base / spec.dataset.subfolder
            if not root.is_dir():
                raise BadInput(f"dataset folder {root} does not exist (pass --data-dir)")
            for t in FORMATS.get(spec.dataset.format)(root, spec.dataset, spec.frames):
                row = wanted.get(t.sample_id)
                if row is None:
                    continue
                try:
                    row.source = t.source.load()
                    row.target = t.target.load() if t.target is not None else None
                except SampleError as exc:
                    row.note = str(exc)
        except Exception as exc:  # noqa: BLE001 - the page is useful without the frames: say why they are missing
            notes.append(f"{task}: source/target frames not shown: {type(exc).__name__}: {exc}")
    return notes


# images ----------------------------------------------------------------------------------------
def shrink(image: np.ndarray, size: int) -> np.ndarray:
    """Downscale to fit `size` x `size` (never upscale); heatmaps are computed on these thumbnails."""
    from PIL import Image

    pil = Image.fromarray(image)
    pil.thumbnail((size, size), Image.BILINEAR)
    return np.asarray(pil)


def data_uri(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _same_size(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    if image.shape == like.shape:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((like.shape[1], like.shape[0]), Image.BILINEAR))


def heatmap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| averaged over channels, on one fixed colour scale (magma) for every image."""
    from matplotlib import colormaps

    diff = np.abs(_same_size(a, b).astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    rgba = colormaps["magma"](np.clip(diff / HEATMAP_FULL_SCALE, 0.0, 1.0))
    return (rgba[..., :3] * 255).astype(np.uint8)


def _prediction_image(run: Run, record: SampleLog) -> np.ndarray:
    if record.prediction is None or not record.prediction.images:
        raise BadInput(f"{run.path}: {record.task}:{record.sample_id} is done but stored no predicted image")
    return run.log.image(record.prediction.images[0])


# figures ---------------------------------------------------------------------------------------
def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend(fig, runs: list[Run]) -> None:
    """One legend for the figure, one colour per run in every panel."""
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=f"C{i % 10}", label=r.label) for i, r in enumerate(runs)],
               loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8)


def bar_figure(runs: list[Run], tasks: list[str]) -> str | None:
    """One panel per metric: per task (subset), one bar per model with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # metrics with no value in any run (N/A: weights missing) get no empty panel; the tables say why
    metrics = list(dict.fromkeys(m for r in runs for t in tasks if t in r.tasks
                                 for m, e in r.tasks[t].metrics.items()
                                 if e["available"] and e["mean"] is not None))
    if not metrics:
        return None
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    width = 0.8 / max(1, len(runs))
    for ax, metric in zip(axes.flat, metrics):
        names = [t for t in tasks if any(t in r.tasks and metric in r.tasks[t].metrics for r in runs)]
        higher = True
        for i, run in enumerate(runs):
            xs, ys, err = [], [], [[], []]
            for j, task in enumerate(names):
                m = run.tasks[task].metrics.get(metric) if task in run.tasks else None
                if m and m["available"] and m["mean"] is not None:
                    higher = m["higher_is_better"]
                    lo, hi = m["ci95"] or (m["mean"], m["mean"])
                    xs.append(j + (i - (len(runs) - 1) / 2) * width)
                    ys.append(m["mean"])
                    err[0].append(max(0.0, m["mean"] - lo))
                    err[1].append(max(0.0, hi - m["mean"]))
            ax.bar(xs, ys, width, yerr=err, capsize=2, color=f"C{i % 10}")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{metric} {'↑' if higher else '↓'}", fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("mean per task with 95% bootstrap CI", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # leave the suptitle its own band
    _legend(fig, runs)
    return _figure_uri(fig)


def scatter_pair(runs: list[Run], task: str) -> tuple[str, str] | None:
    """An edit-unaware metric against an edit-aware one where the task has both (the pair that
    shows `copy` winning one and losing the other), else its first two metrics."""
    info = next(r.tasks[task].metrics for r in runs if task in r.tasks)
    names = [m for m in info if info[m]["available"]]
    plain = [m for m in names if not info[m].get("edit_aware")]
    aware = [m for m in names if info[m].get("edit_aware")]
    if plain and aware:
        return plain[0], aware[0]
    return (names[0], names[1]) if len(names) > 1 else None


def scatter_figure(runs: list[Run], tasks: list[str]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(t, p) for t in tasks if (p := scatter_pair(runs, t))]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (task, (mx, my)) in zip(axes.flat, pairs):
        for run in runs:
            recs = [s for s in run.samples(task).values() if s.done
                    and s.scores.get(mx) is not None and s.scores.get(my) is not None]
            if recs:
                ax.scatter([s.scores[mx] for s in recs], [s.scores[my] for s in recs], s=10, alpha=0.6,
                           color=f"C{runs.index(run) % 10}")
        ax.set_xlabel(mx)
        ax.set_ylabel(my)
        ax.set_title(task, fontsize=9)
    fig.suptitle("per-sample scores, metric against metric", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # leave the suptitle its own band
    _legend(fig, runs)
    return _figure_uri(fig)


# page ------------------------------------------------------------------------------------------
def row_cells(row: Row, runs: list[Run], thumb: int) -> tuple[str, dict[str, float]]:
    """The HTML of one sample's model cells and its scores keyed 'model|metric' (for sorting)."""
    from .report_template import figure_html

    cells, scores = [], {}
    for run in runs:
        rec = row.per_run.get(run.label)
        if rec is None:
            cells.append('<td class="na">not in this run</td>')
            continue
        scores.update({f"{run.label}|{m}": v for m, v in rec.scores.items() if v is not None})
        table = "".join(f"<tr><td>{html.escape(m)}</td><td>{'–' if v is None else f'{v:.4g}'}</td></tr>"
                        for m, v in sorted(rec.scores.items()))
        if not rec.done:
            body = f'<div class="err">{html.escape(rec.status)} ({html.escape(str(rec.stage))}): ' \
                   f'{html.escape(str(rec.error))}</div>'
        elif row.kind == "fdp":
            try:
                pred = shrink(_prediction_image(run, rec), thumb)
            except BadInput as exc:  # a damaged run directory: say so in the cell
                cells.append(f'<td><div class="err">prediction image unreadable: {html.escape(str(exc))}</div></td>')
                continue
            body = figure_html(data_uri(pred), f"{run.label}: prediction")  # the name stays in view when scrolled
            if row.source is not None:
                body += figure_html(data_uri(heatmap(pred, row.source)), f"{run.label}: |prediction − source|")
        else:
            text = (rec.prediction.text if rec.prediction else None) or ""
            ok = text.strip().lower() == str(row.sample.get("action_text", "")).strip().lower()
            body = f'<div class="text {"ok" if ok else "bad"}">{html.escape(text)}</div>'
        cells.append(f'<td>{body}<table class="scores">{table}</table></td>')
    return "".join(cells), scores


def write_report(paths: list[Path], output: Path, max_samples: int = 200, tasks: list[str] | None = None,
                 data_dir: str | None = None, thumb: int = 128) -> Path:
    from .report_template import figure_html, page

    if max_samples < 1:
        raise BadInput("--max-samples must be at least 1")
    runs = load_runs(paths)
    known = list(dict.fromkeys(t for r in runs for t in r.tasks))
    for t in tasks or []:
        if t not in known:
            raise BadInput(f"--tasks: no run has task '{t}' (have: {', '.join(known)})")
    chosen = [t for t in known if not tasks or t in tasks]
    rows = select_rows(runs, chosen, max_samples)
    notes = attach_frames(rows, runs, data_dir)
    body = []
    for i, row in enumerate(rows):
        frames = ""
        row.source = None if row.source is None else shrink(row.source, thumb)
        row.target = None if row.target is None else shrink(row.target, thumb)
        if row.source is not None:
            frames += figure_html(data_uri(row.source), "source" if row.kind == "fdp" else "observation 1")
        if row.target is not None:
            frames += figure_html(data_uri(row.target), "target" if row.kind == "fdp" else "observation 2")
            if row.kind == "fdp" and row.source is not None:
                frames += figure_html(data_uri(heatmap(row.target, row.source)), "|target − source|")
        if row.note:
            frames += f'<div class="err">{html.escape(row.note)}</div>'
        cells, scores = row_cells(row, runs, thumb)
        body.append(f'<tr data-task="{html.escape(row.task)}" data-order="{i}" data-id="{html.escape(row.sample_id)}" '
                    f"data-scores='{html.escape(json.dumps(scores))}'><td><b>{html.escape(row.task)}</b><br>"
                    f'{html.escape(row.sample_id)}<div class="action">{html.escape(str(row.sample.get("action_text", "")))}'
                    f"</div></td><td>{frames}</td>{cells}</tr>")
    figures = [f for f in (bar_figure(runs, chosen), scatter_figure(runs, chosen)) if f]
    total = sum(len({sid for r in runs for sid in r.samples(t)}) for t in chosen)
    text = page(runs=[(r.label, str(r.path)) for r in runs], tasks=chosen, rows="".join(body), figures=figures,
                sort_keys=[(r.label, m) for r in runs for m in sorted({k for row in rows if r.label in row.per_run
                           for k, v in row.per_run[r.label].scores.items() if v is not None})],
                notes=[*notes, (f"showing {len(rows)} of {total} samples (--max-samples {max_samples}, a stable "
                                 f"hash-based choice spread over tasks)")],
                heat_scale=HEATMAP_FULL_SCALE, thumb=thumb)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    if notes:
        for note in notes:
            print(f"wmbench: {note}", file=sys.stderr)
    return output
