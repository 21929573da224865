"""What `wmbench annotate` writes: the stratified top-K of the labelled pairs, in the AURORA
training format, and a manifest of every candidate.

Output folder:
- `train.json`: a JSON list of `{"input": "images/<pair>_input.png", "output":
  "images/<pair>_output.png", "instruction": <label>}`, paths relative to the folder (AURORA's
  training JSON; `wmbench data inspect aurora --root OUT --option file=train.json` reads it back).
- `images/`: the PNG frames of the kept pairs only (the target resized to the source's size where
  the two differ, as the model saw them).
- `manifest.json`: provenance (model card with secrets redacted and its fingerprint, data source,
  frame selection, prompt, seed, score reduction, wmbench version and git state), the counts, each
  class's share and shortfall, and every candidate with its label and score, kept or not.
- `store.sqlite`: the run store the labels and scores are committed to (the ledger resumes from it).

Stratified top-K: pairs are grouped by class (the label's first word, lower-cased, or the reader's
`meta[class_key]`), each class sorted best score first (ties: the pair id), classes ordered by their
best score. Round r takes the r-th best pair of every class that has one (best first within the
round) until K pairs are kept, so frequent actions cannot crowd out rare ones; a class with fewer
pairs than its share leaves its slots to the others. Shares: K // C pairs per class, one more for
the first K % C classes in that order; with `per_class`, K for every class.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SampleError
from ..core.types import Transition
from ..log.records import Prediction, SampleRecord
from ..log.store import RunStore
from .kinds import fit

TRAIN_FILE, MANIFEST_FILE, IMAGES = "train.json", "manifest.json", "images"
MANIFEST_VERSION = "1"
REDUCTIONS = {
    "mean": "per-token mean log-probabilities of the label given the two frames and the prompt",
    "sum": "summed log-probabilities of the label's tokens (the adapter was asked for the sum; not normalised: "
           "short labels rank higher)",
    "text": "log-likelihoods of the whole label over the adapter's closed set of texts (no tokens, e.g. "
            "reference-idp: every label is one of the same texts, so no length bias)",
    "unknown": "as the adapter's action_logprob returns them (it does not declare logprob_reduction, so wmbench "
               "cannot tell whether they are per-token means, nor normalise them)",
}
TASK = "annotate"  # the task name annotation rows have in the run store
SCORE_METRIC = "action_logprob"  # the score row that holds a label's confidence


@dataclass
class Candidate:
    """One selected pair as the store holds it, with its class."""

    sample_id: str
    position: int
    status: str  # done, failed, skipped, pending
    stage: str | None
    error: str | None
    label: str | None
    score: float | None
    cls: str | None
    class_source: str | None
    info: dict[str, Any]


def class_of(label: str, meta: dict[str, Any], class_key: str | None) -> tuple[str, str]:
    """(class, where it came from): the reader's `meta[class_key]` when it has one, else the label's
    first word, lower-cased, without surrounding punctuation."""
    if class_key and meta.get(class_key) not in (None, ""):
        return str(meta[class_key]), f"meta.{class_key}"
    words = label.split()
    verb = words[0].strip(string.punctuation).lower() if words else ""
    return verb or "(none)", "verb"


def candidates(store: RunStore, selected: list[str], class_key: str | None) -> list[Candidate]:
    records = {r.sample_id: r for r in store.samples(TASK, selected)}
    scores = store.scores(TASK)
    out = []
    for position, sid in enumerate(selected):
        record = records.get(sid)
        if record is None:
            out.append(Candidate(sid, position, "pending", None, None, None, None, None, None, {}))
            continue
        label = record.prediction.text if record.prediction is not None else None
        score = scores.get(sid, {}).get(SCORE_METRIC)
        if record.status == "done" and score is None:  # not written by annotate: never kept unscored
            record.status, record.stage, record.error = "failed", "store", "the store holds no score for this label"
        cls, source = class_of(label, record.info.get("meta") or {}, class_key) if label else (None, None)
        out.append(Candidate(sid, record.position, record.status, record.stage, record.error, label,
                             score if record.status == "done" else None, cls, source, record.info))
    return out


def stratify(done: list[Candidate], top_k: int | None, per_class: bool
             ) -> tuple[list[Candidate], dict[str, dict[str, int]]]:
    """The kept pairs in round-robin order, and per class: available, share, kept, shortfall."""
    by_class: dict[str, list[Candidate]] = {}
    for c in done:
        by_class.setdefault(c.cls or "(none)", []).append(c)
    for members in by_class.values():
        members.sort(key=lambda c: (-c.score, c.sample_id))
    order = sorted(by_class, key=lambda k: (-by_class[k][0].score, k))
    total = len(done) if top_k is None else top_k * len(order) if per_class else top_k
    depth = top_k if per_class else None
    kept: list[Candidate] = []
    rank = 0
    while len(kept) < total and any(rank < len(m) for m in by_class.values()) and (depth is None or rank < depth):
        round_ = sorted((by_class[k][rank] for k in order if rank < len(by_class[k])),
                        key=lambda c: (-c.score, c.sample_id))
        kept += round_[: total - len(kept)]
        rank += 1
    counts = Counter(c.cls or "(none)" for c in kept)
    classes = {}
    for i, k in enumerate(order):
        if top_k is None:
            share = len(by_class[k])
        elif per_class:
            share = top_k
        else:
            share = top_k // len(order) + (1 if i < top_k % len(order) else 0)
        available = len(by_class[k])
        classes[k] = {"available": available, "share": share, "kept": counts[k],
                      "shortfall": max(0, share - available)}
    return kept, classes


def image_names(sample_id: str) -> tuple[str, str]:
    """Stable file names of a pair's frames (readable slug + a hash of the id: unique, no odd characters)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", sample_id).strip("-.")[:60] or "pair"
    stem = f"{slug}-{hashlib.sha256(sample_id.encode()).hexdigest()[:12]}"
    return f"{IMAGES}/{stem}_input.png", f"{IMAGES}/{stem}_output.png"


def finish(store: RunStore, transitions: list[Transition], settings: dict[str, Any], identity: dict[str, Any],
           options: dict[str, Any], progress: bool) -> tuple[int, dict[str, dict[str, int]], dict[str, Any]]:
    """Select the kept pairs from the store, write their images, train.json and the manifest.
    A kept pair whose frames no longer decode is recorded failed (stage data) and the selection is
    made again, so nothing undecodable is ever written. Returns (kept, classes, counts)."""
    out = store.run_dir
    selected = [t.sample_id for t in transitions]
    by_id = {t.sample_id: t for t in transitions}
    with _lock(out):
        while True:
            cands = candidates(store, selected, options["class_key"])
            kept, classes = stratify([c for c in cands if c.status == "done"], options["top_k"], options["per_class"])
            failed = _write_images(out, kept, by_id, progress)
            if not failed:
                break
            store.commit([SampleRecord(TASK, c.sample_id, c.position, "failed", c.info,
                                       Prediction(text=c.label), "data", f"at writing: {failed[c.sample_id]}")
                          for c in kept if c.sample_id in failed], [])
        wanted = {name for c in kept for name in image_names(c.sample_id)}
        _remove_stale(out, wanted)
        entries = [dict(zip(("input", "output"), image_names(c.sample_id)), instruction=c.label) for c in kept]
        _atomic_write(out / TRAIN_FILE, json.dumps(entries, indent=1, ensure_ascii=False) + "\n")
        counts = _counts(cands, kept, classes, options)
        _atomic_write(out / MANIFEST_FILE, json.dumps(
            _manifest(store, cands, kept, classes, counts, settings, identity, options),
            indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n")
    short = {k: v for k, v in classes.items() if v["shortfall"]}
    for k, v in short.items():
        print(f"wmbench: class '{k}' has {v['available']} labelled pair(s), short of its share of {v['share']} "
              f"by {v['shortfall']}", file=sys.stderr)
    return len(kept), classes, counts


def _write_images(out: Path, kept: list[Candidate], by_id: dict[str, Transition], progress: bool) -> dict[str, str]:
    """Write the frames of the kept pairs that are not on disk yet; sample id -> error for pairs
    whose frames fail to decode now (or that this invocation's reader no longer yields)."""
    from PIL import Image
    from tqdm.auto import tqdm

    todo = [c for c in kept if not all((out / n).is_file() for n in image_names(c.sample_id))]
    failed: dict[str, str] = {}
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    for c in tqdm(todo, disable=not progress or not todo, desc="annotate | writing", unit="pair", file=sys.stderr,
                  dynamic_ncols=True):
        t = by_id.get(c.sample_id)
        try:
            if t is None or t.target is None:
                raise SampleError("the reader no longer yields this pair with a target frame")
            source = t.source.load()
            frames = (source, fit(t.target.load(), source.shape, {}, ""))
        except SampleError as exc:
            failed[c.sample_id] = str(exc)
            continue
        for name, array in zip(image_names(c.sample_id), frames):
            path = out / name
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
            os.replace(tmp, path)
    return failed


def _remove_stale(out: Path, wanted: set[str]) -> None:
    """Frames of pairs no longer kept (another --top-k), and temporary files of a killed writer."""
    for path in (out / IMAGES).iterdir():
        if f"{IMAGES}/{path.name}" not in wanted and (path.suffix == ".png" or path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)


def _counts(cands: list[Candidate], kept: list[Candidate], classes: dict[str, dict[str, int]],
            options: dict[str, Any]) -> dict[str, Any]:
    status = Counter(c.status for c in cands)
    top_k, per_class = options["top_k"], options["per_class"]
    wanted = None if top_k is None else top_k * len(classes) if per_class else top_k
    return {"candidates": len(cands), "labelled": status["done"], "failed": status["failed"],
            "failed_by_stage": dict(sorted(Counter(c.stage or "unknown" for c in cands
                                                   if c.status == "failed").items())),
            "skipped": status["skipped"], "pending": status["pending"], "kept": len(kept), "classes": len(classes),
            "shortfall": sum(v["shortfall"] for v in classes.values()),
            "missing": 0 if wanted is None else max(0, wanted - len(kept))}


def _manifest(store: RunStore, cands: list[Candidate], kept: list[Candidate], classes: dict[str, dict[str, int]],
              counts: dict[str, Any], settings: dict[str, Any], identity: dict[str, Any],
              options: dict[str, Any]) -> dict[str, Any]:
    from ..log.results import provenance

    entry = {c.sample_id: i for i, c in enumerate(kept)}
    reduction = options["score_reduction"]
    rows = []
    for c in cands:
        names = image_names(c.sample_id) if c.sample_id in entry else (None, None)
        info = c.info
        rows.append({"id": c.sample_id, "status": c.status, "stage": c.stage, "error": c.error, "label": c.label,
                     "score": c.score, "class": c.cls, "class_source": c.class_source,
                     "kept": c.sample_id in entry, "entry": entry.get(c.sample_id), "input": names[0],
                     "output": names[1], "episode_id": info.get("episode_id"), "source": info.get("source"),
                     "target": info.get("target"), "source_index": info.get("source_index"),
                     "target_index": info.get("target_index"),
                     "reference": info.get("action_text") or None})
    prov = store.meta("provenance") or provenance()
    return {
        "kind": "wmbench-annotation", "schema_version": MANIFEST_VERSION,
        "created_at": store.meta("created_at"), "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wmbench_version": (prov.get("packages") or {}).get("wmbench"),
        "files": {"train": TRAIN_FILE, "images": f"{IMAGES}/", "store": "store.sqlite",
                  "read_back": f"wmbench data inspect aurora --root {store.run_dir} --option file={TRAIN_FILE}"},
        "model": {**identity, "adapter_fingerprint": store.meta("model_fingerprint")},
        "data": settings["data"], "frames": settings["frames"], "prompt": settings["prompt"], "seed": settings["seed"],
        "selection": {"top_k": options["top_k"], "per_class": options["per_class"], "class_key": options["class_key"],
                      "limit": options["limit"], "method": "round-robin over classes, best score first"},
        "score": {"capability": "action_logprob", "reduction": reduction, "meaning": REDUCTIONS[reduction],
                  "how": options["score_how"]},
        "config": {"batch_size": options["batch_size"]},
        "provenance": prov,
        "counts": counts,
        "classes": classes,
        "shortfall": {k: v["shortfall"] for k, v in classes.items() if v["shortfall"]},
        "candidates": rows,
    }


class _lock:
    """Processes sharing an output folder write its files in turn (POSIX file lock)."""

    def __init__(self, out: Path):
        self.path = out / ".write.lock"

    def __enter__(self):
        self.handle = open(self.path, "w")
        try:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock
            pass
        return self

    def __exit__(self, *exc):
        self.handle.close()  # closing releases the lock
        return False


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
