"""Aurora-Bench and the AURORA training format (McGill-NLP/AURORA), read as published.

Layout (a checkout of the AURORA repository is a valid root):
- `test.json` (AURORA-Bench): a JSON list of entries `{input, instruction, task, output?, id?,
  caption?, type?}`; `task` is one of magicbrush, ag, something, whatsup, kubric, clevr, emu, epic.
  clevr, emu and epic have no `output`: their transitions have `target=None`. Early versions of the
  file name the instruction `prompt` and carry `pos` / `mask`; both spellings are read.
- `data/<task>/train.json` (AURORA training data): `{instruction, input, output}` without `task`;
  the task is taken from the image path `data/<task>/...`, else from the file's folder.
- any JSON list or JSONL file of that shape (option `file`).
Image paths are relative to the root and may not leave it.

Options: `file` (default "test.json"), `subset` (one task name or a list; default: all), `max_pixels`.
sample_id: "<task>:<id>" when the entry has an `id`, else "<task>:<index of the entry in the file>";
an id seen twice gets "@<index>" appended so that ids stay unique.

Missing images (two `something` targets are absent from the public repository) are not checked at
listing time: loading such an image raises SampleError naming the path and the entry, so that one
sample fails and the run goes on. A path escaping the root fails its sample the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from ..core.errors import SampleError, BadInput
from ..core.types import LazyImage, Transition
from .common import (DEFAULT_MAX_PIXELS, IMAGE_OPTIONS, FormatError, check_options, decode_image, option_file,
                     read_text, safe_join)
from ..core.frames import FrameSelection

FORMAT = "aurora"
DATASET = "aurora-bench"
TASKS = ("magicbrush", "ag", "something", "whatsup", "kubric", "clevr", "emu", "epic")
TASKS_WITH_TARGET = ("magicbrush", "ag", "something", "whatsup", "kubric")
OPTIONS = {"file": "test.json", "subset": None, **IMAGE_OPTIONS}
EXTRA_FIELDS = ("caption", "type", "pos", "mask")  # kept in meta when present


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    options = check_options(FORMAT, dict(spec.options), OPTIONS)
    subsets = _subsets(options["subset"])
    path = _file(root, str(options["file"]))
    entries = load_entries(path)
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        _check_entry(path, index, entry)
        task = str(entry.get("task") or _infer_task(entry["input"], path, root))
        if subsets is not None and task not in subsets:
            continue
        entry_id = entry.get("id")
        sample_id = f"{task}:{entry_id}" if entry_id not in (None, "") else f"{task}:{index}"
        if sample_id in seen:
            sample_id = f"{sample_id}@{index}"
        seen.add(sample_id)
        where = f"entry #{index} of {path.name} (task {task}" + (f", id {entry_id})" if entry_id else ")")
        output = entry.get("output")
        meta = {"task": task, "index": index, "file": path.name, "frames": {"mode": "dataset_pairs"}}
        if entry_id not in (None, ""):
            meta["id"] = str(entry_id)
        meta.update({k: entry[k] for k in EXTRA_FIELDS if k in entry})
        yield Transition(
            sample_id=sample_id,
            dataset=DATASET,
            split=spec.split,
            episode_id=f"{task}:{episode_of(entry['input'])}",
            source=image(root, entry["input"], where, "input", options["max_pixels"]),
            target=image(root, output, where, "output", options["max_pixels"]) if output else None,
            action_text=str(_instruction(entry)).strip(),
            meta=meta,
        )


def load_entries(path: Path) -> list:
    """A JSON list, or JSON Lines (one object per line); malformed input names the file and line."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        return data
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: line {lineno} is not valid JSON: {exc.msg} (column {exc.colno})") from exc
    return entries


def image(root: Path, relative: Any, where: str, field: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LazyImage:
    """A LazyImage of `root/relative`; every problem (escape, missing, corrupt) fails the sample."""
    origin = str(relative)
    if not isinstance(relative, str) or not relative.strip():
        return LazyImage(_raiser(SampleError(f"{where}: field '{field}' is not a path: {relative!r}")), origin)
    try:
        path = safe_join(root, relative, what=f"{where}, field '{field}'")
    except SampleError as exc:
        return LazyImage(_raiser(exc), origin)

    def load():
        if not path.is_file():
            raise SampleError(f"missing image file {path} ({where}, field '{field}')")
        return decode_image(path, f"{path} ({where}, field '{field}')", max_pixels)

    return LazyImage(load, origin)


def episode_of(input_path: Any) -> str:
    """Samples that share a scene share an episode (confidence intervals resample whole episodes):
    the image's folder under data/<task>/images (MagicBrush turns, SSv2 and Kubric pairs), else the
    Action Genome video of `<video>.mp4_<frame>_<side>.png`, else the image itself (WhatsUp sources
    recur across entries)."""
    parts = PurePosixPath(str(input_path)).parts
    if len(parts) >= 3 and parts[0] == "data":
        parts = parts[3:] if parts[2] == "images" else parts[2:]
    if len(parts) > 1:
        return "/".join(parts[:-1])
    name = parts[-1] if parts else str(input_path)
    match = re.match(r"(.+?\.mp4)_\d+_", name)
    return match.group(1) if match else name


def _raiser(exc: Exception):
    def fail():
        raise exc
    return fail


def _file(root: Path, name: str) -> Path:
    return option_file(FORMAT, root, name, "the annotation file")


def _subsets(value: Any) -> set[str] | None:
    if value in (None, "all"):
        return None
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise BadInput(f"format '{FORMAT}': option 'subset' must be a task name or a list of them, got {value!r}")
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise BadInput(f"format '{FORMAT}': unknown subset(s) {unknown}; known: {', '.join(TASKS)}")
    return set(names)


def _instruction(entry: dict) -> Any:
    return entry["instruction"] if "instruction" in entry else entry["prompt"]


def _check_entry(path: Path, index: int, entry: Any) -> None:
    """An entry that lacks the fields of the format means the file is not this format (exit 2)."""
    if not isinstance(entry, dict):
        raise FormatError(FORMAT, path.parent, f"entry #{index} of {path.name} to be a JSON object",
                          type(entry).__name__)
    missing = [f for f in ("input",) if f not in entry]
    if "instruction" not in entry and "prompt" not in entry:
        missing.append("instruction")
    if missing:
        raise FormatError(FORMAT, path.parent, f"entry #{index} of {path.name} to have field(s) {missing}",
                          f"keys {sorted(entry)}")
    if not isinstance(_instruction(entry), str):
        raise FormatError(FORMAT, path.parent, f"entry #{index} of {path.name}: 'instruction' to be text",
                          repr(_instruction(entry)))


def _infer_task(input_path: Any, file: Path, root: Path) -> str:
    """Training files carry no `task`: take it from `data/<task>/...`, else from the file's folder."""
    parts = Path(str(input_path)).parts
    if len(parts) >= 2 and parts[0] == "data":
        return parts[1]
    return file.parent.name if file.parent != root else "aurora"
