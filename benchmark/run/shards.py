"""Data-parallel runs: one run split over ranks (torchrun, `accelerate launch`, Slurm arrays, or
`--shard i/n`), each rank writing its own shard store, merged into the run afterwards.

- **Partition**: a task's selected samples, ordered by `sha256(sample id)`, are dealt out in turn:
  shard i takes every n-th from the i-th. Deterministic, independent of the batch size, and balanced
  to one sample (a plain hash modulo n is off by about sqrt(N/n)).
- **Stores**: rank i of n evaluates into `<run dir>/shards/<i>-of-<n>/` (its own SQLite store and
  images): no database is shared between machines. It skips samples that the run's merged store,
  or shards of an earlier launch with another n, already hold (read-only), so relaunching with
  another number of ranks loses and repeats nothing.
- **Merge**: when a rank finishes it leaves a `DONE` file; the rank that finds every shard of its
  launch done merges them into `<run dir>/store.sqlite` (under a file lock), computes set-level
  metrics (FID, KID) once over the merged set and writes results.json. `wmbench merge RUN_DIR`
  does the same by hand, e.g. after a Slurm array whose tasks never saw each other finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..core.errors import BadInput
from ..log.store import RunStore, read_statuses

SHARDS = "shards"
DONE = "DONE"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BadInput(f"--shard {self.index}/{self.count}: the index must be in 0..{self.count - 1} "
                           f"(shards are numbered from 0, e.g. --shard 0/{max(self.count, 2)})")

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def folder(self, run_dir: Path) -> Path:
        return Path(run_dir) / SHARDS / self.name

    def part(self, sample_ids: list[str]) -> set[str]:
        """This shard's share of a task's selected samples."""
        ordered = sorted(sample_ids, key=lambda sid: hashlib.sha256(sid.encode()).digest())
        return set(ordered[self.index::self.count])

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise BadInput(f"--shard {text!r}: expected INDEX/COUNT, e.g. 0/4")
        return cls(int(match.group(1)), int(match.group(2)))


def from_environment(shard: str | Shard | None = None, env: Mapping[str, str] | None = None) -> Shard | None:
    """`--shard i/n`, else the launcher's variables: RANK / WORLD_SIZE (torchrun, accelerate), else
    a Slurm array (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT); None for a
    single process (or a world of one)."""
    env = os.environ if env is None else env
    if isinstance(shard, Shard):
        found = shard
    elif shard:
        found = Shard.parse(shard)
    elif env.get("WORLD_SIZE") and env.get("RANK"):
        found = Shard(_int(env, "RANK"), _int(env, "WORLD_SIZE"))
    elif env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
        base = _int(env, "SLURM_ARRAY_TASK_MIN") if env.get("SLURM_ARRAY_TASK_MIN") else 0
        found = Shard(_int(env, "SLURM_ARRAY_TASK_ID") - base, _int(env, "SLURM_ARRAY_TASK_COUNT"))
    else:
        return None
    return None if found.count == 1 else found


def rank_device(device: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """`--device cuda` on a rank: the rank's own GPU, cuda:<LOCAL_RANK>."""
    env = os.environ if env is None else env
    if device == "cuda" and env.get("LOCAL_RANK"):
        return f"cuda:{_int(env, 'LOCAL_RANK')}"
    return device


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError as exc:
        raise BadInput(f"${key}={env[key]!r} is not an integer") from exc


def done_elsewhere(run_dir: Path, shard: Shard, task: str) -> set[str]:
    """Samples of `task` that the merged store or a shard of another launch (another count) holds."""
    run_dir = Path(run_dir)
    stores = [run_dir / "store.sqlite"] + [
        folder / "store.sqlite" for folder in sorted((run_dir / SHARDS).glob("*-of-*"))
        if not folder.name.endswith(f"-of-{shard.count}")]
    return {sid for path in stores if path.is_file() for sid in read_statuses(path, task)}


def share(shard: Shard | None, run_dir: Path, task: str, transitions: list) -> list:
    """The transitions of `task` a rank evaluates: its part, less what the merged store or an
    earlier launch already holds (all of them for a single process)."""
    if shard is None:
        return transitions
    held = done_elsewhere(run_dir, shard, task)
    part = shard.part([t.sample_id for t in transitions])
    return [t for t in transitions if t.sample_id in part and t.sample_id not in held]


def mark_done(run_dir: Path, shard: Shard, tasks: list[str]) -> bool:
    """Leave this shard's DONE file; True when every shard of its launch is done."""
    folder = shard.folder(run_dir)
    (folder / DONE).write_text(json.dumps({"tasks": sorted(tasks)}) + "\n", encoding="utf-8")
    return all((Shard(i, shard.count).folder(run_dir) / DONE).is_file() for i in range(shard.count))


def shard_folders(run_dir: Path) -> list[Path]:
    return sorted(p for p in (Path(run_dir) / SHARDS).glob("*-of-*") if (p / "store.sqlite").is_file())


def merge_stores(run_dir: Path) -> RunStore:
    """Absorb every shard store of `run_dir` into its merged store and return it (open). Shards of
    another model or task configuration are refused, naming them."""
    run_dir = Path(run_dir)
    folders = shard_folders(run_dir)
    if not folders:
        raise BadInput(f"{run_dir} has no shard stores to merge ({run_dir / SHARDS}/<i>-of-<n>/store.sqlite)")
    merged = RunStore(run_dir)
    try:
        for folder in folders:
            shard = RunStore(folder)
            try:
                _check_same_run(merged, shard, folder)
                merged.absorb(shard)
            finally:
                shard.close()
    except BaseException:
        merged.close()
        raise
    return merged


def _check_same_run(merged: RunStore, shard: RunStore, folder: Path) -> None:
    model, theirs = merged.meta("model"), shard.meta("model")
    if model is not None and theirs is not None and model != theirs:
        raise BadInput(f"cannot merge {folder}: it holds model '{theirs['card']['name']}', the run "
                       f"'{model['card']['name']}' (adapter and args must be equal)")
    for task in shard.stored_tasks():
        if task in merged.stored_tasks() and merged.task_binding(task) != shard.task_binding(task):
            raise BadInput(f"cannot merge {folder}: task '{task}' has another configuration there than in "
                           f"the run (dataset, frames, prompt, seed or model args differ)")


@contextlib.contextmanager
def merge_lock(run_dir: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: one merging process at a time is up to the user
        yield
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / ".merge.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
