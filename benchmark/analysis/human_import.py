"""`wmbench human import`: read the annotation files a study's pages downloaded, check them against
the export's key.json, and turn them into judgments (one per annotator x item x criterion x model:
+1 picked best, -1 picked worst, 0 otherwise).

An item counts once every criterion has a best and a worst; other items (started or not, or absent
from the file) are counted per annotator and left out of the scores, never silently. Files of
another export, unknown or duplicated annotators, unknown items, options out of range and
best == worst are bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from .human_page import ANNOTATIONS_FORMAT, ANNOTATIONS_VERSION, KEY_FILE, KEY_FORMAT, KEY_VERSION


@dataclass
class Study:
    """key.json: criteria ids, model labels, samples (uid -> entry), pages (annotator -> item -> entry)."""

    path: Path
    data: dict[str, Any]
    export_id: str
    criteria: list[str]
    models: list[str]
    samples: dict[str, dict[str, Any]]
    pages: dict[str, dict[str, dict[str, Any]]]

    @property
    def anchors(self) -> list[str]:
        return [m["label"] for m in self.data["models"] if m.get("anchor")]

    def cluster(self, uid: str) -> str:
        """Samples of one episode are resampled together by the bootstrap."""
        s = self.samples[uid]
        return f"{s['task']}/{s['episode_id'] if s.get('episode_id') is not None else uid}"


def read_key(path: Path) -> Study:
    file = path / KEY_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInput(f"--key {path}: no {KEY_FILE} there (pass the folder `wmbench human export` wrote)") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"--key {file}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        if data.get("format") != KEY_FORMAT or data.get("version") != KEY_VERSION:
            raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}, expected "
                             f"{KEY_FORMAT!r} version {KEY_VERSION}")
        return Study(file, data, str(data["export_id"]), [c["id"] for c in data["criteria"]],
                     [m["label"] for m in data["models"]], {s["uid"]: s for s in data["samples"]},
                     {a["id"]: {it["item"]: it for it in a["items"]} for a in data["annotators"]})
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"--key {file}: not a wmbench human-evaluation key ({type(exc).__name__}: {exc})") from exc


def annotation_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for its *.json files (key.json excepted)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.name != KEY_FILE)
            if not found:
                raise BadInput(f"{path}: a folder without annotation files (*.json)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"{path}: no such annotation file")
    return files


@dataclass
class Coverage:
    """One annotator's items: assigned on the page, complete, started but incomplete, not started."""

    annotator: str
    file: str | None
    items: int
    complete: int = 0
    partial: int = 0
    empty: int = 0
    incomplete_ids: list[str] = field(default_factory=list)


def _choice(value: Any, n: int, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
        raise BadInput(f"{where}: {value!r} is not an option number 1..{n}")
    return value


def read_file(path: Path, study: Study) -> tuple[str, dict[str, dict[str, Any]]]:
    """(annotator, item id -> {best, worst, comment}) of one downloaded file, validated."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable JSON file ({type(exc).__name__}: {exc}); a download cut short?") from exc
    if not isinstance(doc, dict) or doc.get("format") != ANNOTATIONS_FORMAT:
        raise BadInput(f"{path}: not a wmbench annotation file (no \"format\": \"{ANNOTATIONS_FORMAT}\")")
    if doc.get("version") != ANNOTATIONS_VERSION:
        raise BadInput(f"{path}: annotation format version {doc.get('version')!r}; this wmbench reads version "
                       f"{ANNOTATIONS_VERSION}")
    if doc.get("export_id") != study.export_id:
        raise BadInput(f"{path}: annotations of export {doc.get('export_id')!r}, but the key {study.path} is export "
                       f"{study.export_id!r}: pass the key of the export this page came from")
    annotator = doc.get("annotator")
    if annotator not in study.pages:
        raise BadInput(f"{path}: annotator {annotator!r} is not in the key (it has {', '.join(study.pages)})")
    if list(doc.get("criteria") or []) != study.criteria:
        raise BadInput(f"{path}: criteria {doc.get('criteria')!r} differ from the key's {study.criteria}")
    if not isinstance(doc.get("items"), list):
        raise BadInput(f"{path}: 'items' is not a list")
    page, items = study.pages[annotator], {}
    for entry in doc["items"]:
        item = entry.get("item") if isinstance(entry, dict) else None
        if item not in page:
            raise BadInput(f"{path}: item {item!r} is not on annotator {annotator}'s page")
        if item in items:
            raise BadInput(f"{path}: item {item} appears twice")
        n, picks = len(page[item]["options"]), {}
        for which in ("best", "worst"):
            given = entry.get(which) or {}
            if not isinstance(given, dict):
                raise BadInput(f"{path}: item {item}: '{which}' is not an object")
            picks[which] = {c: _choice(given.get(c), n, f"{path}: item {item}, {which} {c}") for c in study.criteria}
        for c in study.criteria:
            if picks["best"][c] is not None and picks["best"][c] == picks["worst"][c]:
                raise BadInput(f"{path}: item {item}, {c}: option {picks['best'][c]} is both best and worst")
        items[item] = {**picks, "comment": str(entry.get("comment") or "")}
    return annotator, items


def read_annotations(files: list[Path], study: Study) -> tuple[list[dict], list[dict], list[Coverage], list[dict]]:
    """(judgments, picks, coverage per annotator, comments). Judgments: annotator, item, uid, task,
    cluster, criterion, model, score; picks: annotator, uid, criterion, which, model (complete items)."""
    seen: dict[str, Path] = {}
    judgments, picks, comments = [], [], []
    coverage = {a: Coverage(a, None, len(items)) for a, items in study.pages.items()}
    for path in files:
        annotator, items = read_file(path, study)
        if annotator in seen:
            raise BadInput(f"{seen[annotator]} and {path} both hold annotator {annotator}: pass one file per "
                           "annotator (the latest download holds all of their work)")
        seen[annotator] = path
        cov = coverage[annotator]
        cov.file = str(path)
        for item, entry in study.pages[annotator].items():
            got = items.get(item)
            done = got is not None and all(got["best"][c] and got["worst"][c] for c in study.criteria)
            if got and got["comment"]:
                comments.append({"annotator": annotator, "uid": entry["sample"], "comment": got["comment"]})
            if not done:
                started = got is not None and any(got["best"][c] or got["worst"][c] for c in study.criteria)
                cov.partial += started
                cov.empty += not started
                cov.incomplete_ids.append(item)
                continue
            cov.complete += 1
            uid, options = entry["sample"], entry["options"]
            for c in study.criteria:
                best, worst = options[got["best"][c] - 1], options[got["worst"][c] - 1]
                picks += [{"annotator": annotator, "uid": uid, "criterion": c, "which": "best", "model": best},
                          {"annotator": annotator, "uid": uid, "criterion": c, "which": "worst", "model": worst}]
                for model in options:
                    judgments.append({"annotator": annotator, "item": item, "uid": uid,
                                      "task": study.samples[uid]["task"], "cluster": study.cluster(uid),
                                      "criterion": c, "model": model,
                                      "score": 1 if model == best else -1 if model == worst else 0})
    for cov in coverage.values():
        if cov.file is None:
            cov.empty = cov.items
    return judgments, picks, list(coverage.values()), comments


@dataclass
class ImportResult:
    """What `import_annotations` computed and wrote. DataFrames: `scores` (tidy best-worst scores
    per group, criterion and model with 95% CIs), `win_rates`, `agreement`, `judge` (None when the
    runs hold no vlm_judge score: `notes` says so), `coverage` (items per annotator)."""

    output: Path
    export_id: str
    files: list[Path]
    scores: Any
    win_rates: Any
    agreement: Any
    judge: Any
    coverage: Any
    notes: list[str]

    def summary(self) -> str:
        cov = self.coverage
        done, total = int(cov["complete"].sum()), int(cov["items"].sum())
        lines = [f"export {self.export_id}: {done} of {total} assigned items complete "
                 f"({len(self.files)} annotation files); tables in {self.output}"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def run_import(paths: list[Path], key: Path, output: Path, strict: bool = False) -> ImportResult:
    import pandas as pd

    from . import human_stats, human_tables

    study = read_key(key)
    files = annotation_files(paths)
    judgments, picks, coverage, comments = read_annotations(files, study)
    notes = []
    for cov in coverage:
        if cov.file is None:
            notes.append(f"annotator {cov.annotator}: no file; their {cov.items} items are not scored")
        elif cov.partial or cov.empty:
            notes.append(f"annotator {cov.annotator} ({cov.file}): {cov.partial + cov.empty} of {cov.items} items "
                         f"incomplete ({cov.partial} started, {cov.empty} not started): counted, not scored")
    if strict and any(c.partial or c.empty for c in coverage):
        raise BadInput("--strict: incomplete annotations: " + "; ".join(notes))
    if not judgments:
        raise BadInput("no complete item in " + ", ".join(map(str, files)) + " (an item counts once every criterion "
                       "has a best and a worst)")
    cov_frame = pd.DataFrame([{"annotator": c.annotator, "file": c.file, "items": c.items, "complete": c.complete,
                               "started": c.partial, "not_started": c.empty} for c in coverage])
    stats = human_stats.compute(study, judgments, picks)
    notes += stats.notes
    result = ImportResult(output, study.export_id, files, stats.scores, stats.win_rates, stats.agreement, stats.judge,
                          cov_frame, notes)
    human_tables.write_all(result, study, stats, judgments, comments)
    return result
