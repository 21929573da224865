"""Which samples a task evaluates: its dataset (generated on first use where a generator is
named), read by the format's reader, then a seeded, stable subset of `limit` samples."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

from ..data import FORMATS, GENERATORS
from ..core.errors import BadInput
from ..core.tasks import TaskSpec
from ..core.types import Transition


def effective_task(task: TaskSpec, limit: int | None = None, seed: int | None = None,
                   dataset_options: dict[str, Any] | None = None) -> TaskSpec:
    """Command-line --limit / --seed / --dataset-option override the spec's."""
    changes: dict[str, Any] = {k: v for k, v in (("limit", limit), ("seed", seed)) if v is not None}
    if dataset_options:
        changes["dataset"] = dataclasses.replace(task.dataset, options={**task.dataset.options, **dataset_options})
    return dataclasses.replace(task, **changes) if changes else task


def dataset_root(task: TaskSpec, data_dir: Path, progress: bool = True) -> Path:
    root = Path(data_dir) / task.dataset.subfolder
    if not root.exists():
        if task.dataset.generator is None:
            raise BadInput(f"task '{task.name}': dataset folder {root} does not exist; place the "
                               f"{task.dataset.format} dataset there, or pass --data-dir / set WMBENCH_DATA_DIR")
        print(f"wmbench: generating the {task.dataset.generator} dataset under {root} (first use)", file=sys.stderr)
        run_generator(task.dataset.generator, root, dict(task.dataset.generator_options), progress)
    return root


def run_generator(name: str, root: Path, options: dict[str, Any], progress: bool = True) -> None:
    """Run a dataset generator in a fresh process. A simulator's GL context (MuJoCo on EGL) left in
    the evaluating process made a later `import torch` crash with a segfault here; a child process
    keeps the two apart. The child's exception (e.g. a BadInput naming a bad option) is re-raised."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    GENERATORS.get(name)  # unknown names fail here, with the registry's message
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_generate, name, str(root), options, progress).result()


def _generate(name: str, root: str, options: dict[str, Any], progress: bool) -> None:
    GENERATORS.get(name)(Path(root), options, progress=progress)


def _rank(seed: int, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()


def select(task: TaskSpec, data_dir: Path, progress: bool = True) -> list[Transition]:
    """The task's samples: a seeded subset of size `limit` (stable: a larger limit extends it),
    kept in the reader's order so that samples of one video are processed together."""
    root = dataset_root(task, data_dir, progress)
    reader = FORMATS.get(task.dataset.format)
    transitions = list(reader(root, task.dataset, task.frames))
    seen: set[str] = set()
    for t in transitions:
        if t.sample_id in seen:
            raise BadInput(f"task '{task.name}': the {task.dataset.format} reader yielded sample id "
                               f"'{t.sample_id}' twice under {root}")
        seen.add(t.sample_id)
    if task.limit is not None and task.limit < len(transitions):
        keep = set(sorted(seen, key=lambda sid: _rank(task.seed, sid))[: task.limit])
        transitions = [t for t in transitions if t.sample_id in keep]
    return transitions
