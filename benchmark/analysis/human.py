"""Human evaluation (`wmbench human export` / `wmbench human import`), as in the paper's study on
Aurora-Bench: annotators see several models' predictions for one source frame and instruction, names
hidden, and pick the best and the worst on each criterion (best-worst scaling).

- `export_pages` writes one self-contained HTML page per annotator and `key.json` beside them (which
  model is which option on which page; the pages carry only an export id).
- `import_annotations` reads the JSON files the pages download, checks them against the key and
  writes best-worst scores with bootstrap intervals, pairwise win rates, inter-annotator agreement
  (Krippendorff's alpha) and judge-human rank correlations as Markdown, LaTeX, CSV and HTML.
- `register_cli(subparsers)` adds the `human` command to an argparse parser.

docs/human-evaluation.md describes a study end to end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import EXIT_OK, BadInput
from .human_import import ImportResult, run_import
from .human_page import KEY_FILE, KEY_FORMAT, KEY_VERSION

if TYPE_CHECKING:
    import numpy as np

DEFAULT_OVERLAP = 0.2
DEFAULT_IMAGE_SIZE = 384  # longest side of the embedded frames, in pixels
DISPLAY_PX = 256  # width of a frame on the page (z doubles it)
LOSSLESS_UP_TO = 256  # frames this small are embedded as PNG; larger ones as JPEG (quality 92)
MAX_OPTIONS = 9  # keys 1..9

CRITERIA = {
    "realism": ("Realism", "Which frame looks most like a real, physically plausible view of this scene "
                           "(no artefacts, smears or impossible objects)?"),
    "instruction": ("Instruction following (action consistency)",
                    "Which frame best shows the scene after the instruction was carried out?"),
    "minimal_change": ("Minimal change", "Which frame best keeps everything the instruction does not ask to "
                                         "change (layout, objects, background, camera)?"),
}
DEFAULT_CRITERIA = tuple(CRITERIA)
_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def parse_criteria(criteria: Iterable[str] | str | None) -> list[dict[str, str]]:
    """Criterion ids (realism, instruction, minimal_change) or custom `id=question` entries."""
    if criteria is None:
        criteria = DEFAULT_CRITERIA
    if isinstance(criteria, str):
        criteria = [c.strip() for c in criteria.split(",") if c.strip()]
    out = []
    for entry in criteria:
        cid, sep, question = str(entry).partition("=")
        cid = cid.strip()
        if not _ID.fullmatch(cid):
            raise BadInput(f"--criteria: '{entry}' is not a criterion id (letters, digits, _ and -) or id=question")
        if sep:
            if not question.strip():
                raise BadInput(f"--criteria: '{entry}' has an empty question")
            out.append({"id": cid, "label": cid.replace("_", " ").capitalize(), "question": question.strip()})
        elif cid in CRITERIA:
            out.append({"id": cid, "label": CRITERIA[cid][0], "question": CRITERIA[cid][1]})
        else:
            raise BadInput(f"--criteria: unknown criterion '{cid}' (built in: {', '.join(CRITERIA)}; or write "
                           "id=question)")
    ids = [c["id"] for c in out]
    if not out or len(set(ids)) < len(ids):
        raise BadInput(f"--criteria: give one or more distinct criteria (got {', '.join(ids) or 'none'})")
    return out


def annotator_ids(annotators: int | str | Sequence[str]) -> list[str]:
    """`3` -> a1, a2, a3; or the given names (letters, digits, _ and -; distinct)."""
    if isinstance(annotators, str):
        annotators = int(annotators) if annotators.strip().isdigit() else \
            [a.strip() for a in annotators.split(",") if a.strip()]
    if isinstance(annotators, int):
        if annotators < 1:
            raise BadInput(f"--annotators must be at least 1 (got {annotators})")
        return [f"a{i}" for i in range(1, annotators + 1)]
    names = [str(a) for a in annotators]
    bad = [a for a in names if not _ID.fullmatch(a)]
    if not names or bad or len(set(names)) < len(names):
        raise BadInput(f"--annotators: give a count or distinct names of letters, digits, _ and - (got {names})")
    return names


@dataclass
class ExportResult:
    """What `export_pages` wrote: `pages` (annotator -> HTML file), `key` (key.json), the study's
    `samples` (distinct), `shared` (seen by every annotator), `per_annotator` (items per page) and,
    per task, how many samples were eligible and why the others were not (`eligibility`)."""

    output: Path
    export_id: str
    key: Path
    pages: dict[str, Path]
    models: list[str]
    tasks: list[str]
    samples: int
    shared: int
    per_annotator: dict[str, int]
    eligibility: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"export {self.export_id}: {self.samples} samples of {', '.join(self.tasks)}, models "
                 f"{', '.join(self.models)} (names hidden on the pages)"]
        for task, e in self.eligibility.items():
            why = "; ".join(f"{r}: {n}" for r, n in e["reasons"].items())
            lines.append(f"  {task}: {e['eligible']} of {e['total']} samples eligible"
                         + (f" ({e['excluded']} excluded: {why})" if e["excluded"] else ""))
        for name, path in self.pages.items():
            lines.append(f"  {path} ({self.per_annotator[name]} items)")
        lines.append(f"  {self.key} (the blinding key: keep it, do not send it to annotators)")
        if self.shared:
            lines.append(f"  {self.shared} samples are on every page (inter-annotator agreement)")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _uri(image: np.ndarray, size: int) -> str:
    from PIL import Image

    from .report import shrink

    small = shrink(image, size)
    buffer = io.BytesIO()
    if max(small.shape[:2]) <= LOSSLESS_UP_TO:
        Image.fromarray(small).save(buffer, format="PNG", optimize=True)
        kind = "png"
    else:
        Image.fromarray(small).save(buffer, format="JPEG", quality=92)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _missing_images(run, records) -> str | None:
    for rec in records:
        path = run.log.image_path(rec.prediction.images[0])
        if not path.is_file():
            return (f"{run.path}: predicted image {path} is missing; a committed run (results/) keeps only results.json "
                    "and samples.jsonl, and elsewhere the run directory is damaged: evaluate the model again into a "
                    "run directory (wmbench run ... --output DIR) and export that")
    return None


def export_pages(run_dirs: Sequence[str | Path], *, tasks: str | Sequence[str], samples: int,
                 output: str | Path, criteria: Iterable[str] | str | None = None,
                 annotators: int | str | Sequence[str] = 1, overlap: float = DEFAULT_OVERLAP, seed: int = 0,
                 data_dir: str | Path | None = None, image_size: int = DEFAULT_IMAGE_SIZE,
                 title: str = "Which prediction is best?") -> ExportResult:
    """Write one annotation page per annotator and key.json into `output` (see the module doc)."""
    from . import human_page
    from .human_select import assign, check_tasks, choose_with_frames, eligible, judge_scores, option_order
    from .leaderboard import ANCHORS
    from .report import load_runs

    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    crit = parse_criteria(criteria)
    names = annotator_ids(annotators)
    task_list = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    if not task_list:
        raise BadInput("--tasks: name one or more FDP tasks of the runs")
    if not isinstance(samples, int) or samples < 1:
        raise BadInput(f"--samples must be a positive number of samples (got {samples})")
    if not 0.0 <= float(overlap) <= 1.0:
        raise BadInput(f"--overlap is the share of samples every annotator sees: between 0 and 1 (got {overlap})")
    if image_size < 16:
        raise BadInput(f"--image-size must be at least 16 pixels (got {image_size})")
    if not 2 <= len(run_dirs) <= MAX_OPTIONS:
        raise BadInput(f"give 2 to {MAX_OPTIONS} run directories to compare (got {len(run_dirs)})")
    runs = load_runs([Path(p) for p in run_dirs])
    check_tasks(runs, task_list)
    labels = [r.label for r in runs]
    pools, info = {}, {}
    for task in task_list:
        pools[task], info[task] = eligible(runs, task)
    if not any(pools.values()):
        raise BadInput(f"no sample of {', '.join(task_list)} has a done prediction in every run: "
                       + "; ".join(f"{t}: " + ", ".join(f"{r} ({n})" for r, n in info[t].reasons.items())
                                   for t in task_list))
    for run in runs:
        problem = _missing_images(run, [c.records[run.label] for t in task_list for c in pools[t]][:1])
        if problem:
            raise BadInput(problem)
    chosen = choose_with_frames(pools, samples, seed, runs, None if data_dir is None else str(data_dir), info)
    if not chosen:
        raise BadInput("no eligible sample has a readable source frame (pass --data-dir)")
    notes = []
    if len(chosen) < samples:
        notes.append(f"--samples {samples}: only {len(chosen)} eligible samples with a readable source frame")
    for run in runs:
        problem = _missing_images(run, [c.records[run.label] for c in chosen])
        if problem:
            raise BadInput(problem)
    uids = [f"s{i:04d}" for i in range(1, len(chosen) + 1)]
    by_uid = dict(zip(uids, chosen))
    shared, pages = assign(uids, names, float(overlap), seed)
    idle = [n for n in names if not pages[n]]
    if idle:
        raise BadInput(f"--samples {len(uids)} with --overlap {overlap} leaves annotator(s) {', '.join(idle)} without "
                       f"an item: raise --samples or --overlap, or lower --annotators")
    run_of = {r.label: r for r in runs}
    key: dict[str, Any] = {
        "format": KEY_FORMAT, "version": KEY_VERSION, "seed": seed, "criteria": crit, "overlap": float(overlap),
        "models": [{"label": r.label, "name": r.log.model_name, "adapter": r.log.card.get("adapter"),
                    "anchor": r.log.model_name in ANCHORS or r.log.card.get("adapter") in ANCHORS,
                    "run_dir": str(r.path), "fingerprint": r.log.fingerprint} for r in runs],
        "tasks": task_list,
        "eligibility": {t: e.as_dict() for t, e in info.items()},
        "samples": [{"uid": uid, "task": c.task, "sample_id": c.sample_id, "episode_id": c.sample.get("episode_id"),
                     "action_text": c.sample.get("action_text"), "source": c.sample.get("source"),
                     "shared": uid in shared,
                     "judge": {label: judge_scores(run_of[label], c.task, c.records[label]) for label in labels}}
                    for uid, c in by_uid.items()],
        "annotators": [{"id": name, "page": f"annotate-{name}.html",
                        "items": [{"item": f"q{j:04d}", "sample": uid, "options": option_order(labels, seed, name, uid)}
                                  for j, uid in enumerate(pages[name], 1)]} for name in names],
    }
    export_id = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    key = {"format": KEY_FORMAT, "version": KEY_VERSION, "export_id": export_id,
           "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **key}
    out = Path(output)
    key_path = out / KEY_FILE
    if key_path.is_file():
        try:
            old = json.loads(key_path.read_text(encoding="utf-8")).get("export_id")
        except (OSError, ValueError, AttributeError):
            old = "unreadable"
        if old != export_id:
            raise BadInput(f"--output {out}: it holds another export ({old}); replacing its key would make its "
                           "annotations unreadable: choose another folder or remove that one")
    out.mkdir(parents=True, exist_ok=True)
    images: dict[tuple[str, str], str] = {}

    def uri(uid: str, label: str | None) -> str:
        if (uid, label) not in images:
            cand = by_uid[uid]
            pixels = cand.source if label is None else \
                run_of[label].log.image(cand.records[label].prediction.images[0])
            images[(uid, label)] = _uri(pixels, image_size)
        return images[(uid, label)]

    written = {}
    for entry in key["annotators"]:
        items = [human_page.item_html(it["item"], [uri(it["sample"], m) for m in it["options"]],
                                      uri(it["sample"], None), str(by_uid[it["sample"]].sample.get("action_text", "")),
                                      crit) for it in entry["items"]]
        text = human_page.page(export_id=export_id, annotator=entry["id"], criteria=crit, items=items,
                               title=title, image_px=DISPLAY_PX)
        path = out / entry["page"]
        path.write_text(text, encoding="utf-8")
        written[entry["id"]] = path
    key_path.write_text(json.dumps(key, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return ExportResult(out, export_id, key_path, written, labels, task_list, len(chosen), len(shared),
                        {n: len(pages[n]) for n in names}, key["eligibility"], notes)


def import_annotations(paths: Sequence[str | Path], *, key: str | Path, output: str | Path,
                       strict: bool = False) -> ImportResult:
    """Score annotation files (or folders of them) against the export's key (its folder or key.json)
    and write the tables into `output`; `strict` refuses incomplete items instead of counting them."""
    return run_import([Path(p) for p in paths], Path(key), Path(output), strict=strict)


# command line ----------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> int:
    result = export_pages(args.runs, tasks=args.tasks, samples=args.samples, output=args.output,
                          criteria=args.criteria, annotators=args.annotators, overlap=args.overlap, seed=args.seed,
                          data_dir=args.data_dir, image_size=args.image_size)
    print(f"wmbench: {result.summary()}", file=sys.stderr)
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    result = import_annotations(args.annotations, key=args.key, output=args.output, strict=args.strict)
    print(f"wmbench: {result.summary()}", file=sys.stderr)
    return EXIT_OK


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add `human export` and `human import` to `subparsers` (from ArgumentParser.add_subparsers).
    Each sets `func`: a handler that returns 0 and raises BadInput on bad input (exit 2)."""
    human = subparsers.add_parser("human", help="human evaluation: blinded annotation pages and their scores")
    sub = human.add_subparsers(dest="human_command", metavar="ACTION", required=True)
    exp = sub.add_parser("export", help="write one self-contained HTML annotation page per annotator + key.json")
    exp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="2 to 9 run directories (the models compared)")
    exp.add_argument("--tasks", required=True, help="comma-separated FDP tasks every run has")
    exp.add_argument("--samples", type=int, required=True, help="distinct samples in the study (spread over tasks)")
    exp.add_argument("--output", required=True, help="folder for the pages and key.json")
    exp.add_argument("--criteria", help=f"comma-separated criteria (default: {','.join(DEFAULT_CRITERIA)}); "
                                        "custom ones as id=question")
    exp.add_argument("--annotators", default="1", help="how many annotators (a1, a2, ...) or their comma-separated ids")
    exp.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                     help=f"share of the samples every annotator sees, for agreement (default {DEFAULT_OVERLAP})")
    exp.add_argument("--seed", type=int, default=0, help="sample choice, page order and option order (default 0)")
    exp.add_argument("--data-dir", help="datasets folder for the source frames (default: the runs' data dir, else "
                                        "$WMBENCH_DATA_DIR)")
    exp.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                     help=f"longest side of the embedded frames in pixels (default {DEFAULT_IMAGE_SIZE})")
    exp.set_defaults(func=_cmd_export)
    imp = sub.add_parser("import", help="score downloaded annotation files: tables in md, LaTeX, csv, html")
    imp.add_argument("annotations", nargs="+", metavar="ANNOTATIONS.json",
                     help="files the pages downloaded (or folders holding them)")
    imp.add_argument("--key", required=True, help="the export folder (or its key.json)")
    imp.add_argument("--output", required=True, help="folder for the tables")
    imp.add_argument("--strict", action="store_true", help="refuse files with incomplete items instead of counting them")
    imp.set_defaults(func=_cmd_import)
    return human
