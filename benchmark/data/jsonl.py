"""A user's own transitions: one JSON object per line (format `jsonl`).

Each line: `{"source": "imgs/a.png", "target": "imgs/b.png", "action": "open the drawer",
"id": "...", "episode_id": "...", "action_vector": [...], "meta": {...}}`; `source` and `action`
are required, the rest optional (`target` absent or null: no target frame). Image paths are relative
to the dataset root and may not leave it. Blank lines and lines starting with `//` are skipped.

Options: `file` (default "pairs.jsonl"), `max_pixels`. sample_id: `id`, else "line<N>" (N = 1-based line number).
A malformed line, a missing required field or a repeated id is a BadInput naming the file and the
line (exit 2) before any work starts; a missing or corrupt image fails only its sample.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import BadInput
from ..core.types import Transition
from .aurora import image
from .common import IMAGE_OPTIONS, check_options, option_file, read_text
from ..core.frames import FrameSelection

FORMAT = "jsonl"
OPTIONS = {"file": "pairs.jsonl", **IMAGE_OPTIONS}
FIELDS = {"source", "target", "action", "id", "episode_id", "action_vector", "meta"}


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    path = _file(root, str(options["file"]))
    seen: dict[str, int] = {}
    for lineno, record in _records(path):
        sample_id = str(record.get("id", f"line{lineno}"))
        if sample_id in seen:
            raise BadInput(f"{path}: line {lineno}: id '{sample_id}' already used on line {seen[sample_id]}")
        seen[sample_id] = lineno
        where = f"line {lineno} of {path.name}"
        meta = dict(record.get("meta") or {})
        meta.update({"line": lineno, "frames": {"mode": "dataset_pairs"}})
        target = record.get("target")
        yield Transition(
            sample_id=sample_id,
            dataset=root.name,
            split=spec.split,
            episode_id=str(record.get("episode_id", sample_id)),
            source=image(root, record["source"], where, "source", options["max_pixels"]),
            target=image(root, target, where, "target", options["max_pixels"]) if target is not None else None,
            action_text=record["action"],
            action_vector=_vector(path, lineno, record.get("action_vector")),
            meta=meta,
        )


def _file(root: Path, name: str) -> Path:
    return option_file(FORMAT, root, name, "the pairs file (one JSON object per line)")


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """All records are parsed and checked before the first is yielded: a bad line stops the run
    before any model is loaded, not halfway through."""
    records = []
    for lineno, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: line {lineno} is not valid JSON: {exc.msg} (column {exc.colno})") from None
        _check(path, lineno, record)
        records.append((lineno, record))
    return iter(records)


def _check(path: Path, lineno: int, record: Any) -> None:
    where = f"{path}: line {lineno}"
    if not isinstance(record, dict):
        raise BadInput(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - FIELDS)
    if unknown:
        raise BadInput(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(sorted(FIELDS))}")
    for name in ("source", "action"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise BadInput(f"{where}: field '{name}' is required and must be a non-empty string")
    if "target" in record and record["target"] is not None and not isinstance(record["target"], str):
        raise BadInput(f"{where}: field 'target' must be a path or null")
    if "meta" in record and not isinstance(record["meta"], (dict, type(None))):
        raise BadInput(f"{where}: field 'meta' must be an object")
    for name in ("id", "episode_id"):
        if name in record and not isinstance(record[name], (str, int)):
            raise BadInput(f"{where}: field '{name}' must be a string or an integer")


def _vector(path: Path, lineno: int, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        vector = None
    if vector is None or vector.ndim != 1:
        raise BadInput(f"{path}: line {lineno}: 'action_vector' must be a list of numbers")
    return vector
