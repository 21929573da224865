"""Which samples a human study shows and to whom (`wmbench human export`).

A sample is eligible when every chosen run holds a done prediction with an image for it; the
others are counted per task with their reasons. The study takes a seeded, spread-out subset of
the eligible samples (per task a share of the total, ranked by a hash of seed, task and sample
id), reads their source frames with the report's reader, and splits them over annotators: a
shared part every annotator sees (to measure agreement) and the rest dealt out in turn.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import BadInput
from ..log.runlog import SampleLog
from .report import Row, Run, attach_frames


@dataclass
class Candidate:
    """One eligible sample: the transition as logged and each run's record (run label -> record)."""

    task: str
    sample_id: str
    sample: dict[str, Any]
    records: dict[str, SampleLog]
    source: np.ndarray | None = None


@dataclass
class Eligibility:
    """Per task: samples in any run, eligible ones, and why the others are not (reason -> count)."""

    total: int = 0
    eligible: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def excluded(self) -> int:
        return self.total - self.eligible

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "eligible": self.eligible, "excluded": self.excluded,
                "reasons": dict(sorted(self.reasons.items()))}


def check_tasks(runs: list[Run], tasks: list[str]) -> None:
    """Every run has every task, as an FDP task over the same dataset and frame selection."""
    for task in tasks:
        for run in runs:
            if task not in run.tasks:
                have = ", ".join(run.tasks) or "none"
                raise BadInput(f"--tasks: run {run.path} has no task '{task}' (it has: {have})")
            if run.tasks[task].kind != "fdp":
                raise BadInput(f"--tasks: '{task}' is an {run.tasks[task].kind} task in {run.path}; a human study "
                               "compares predicted frames, so it needs FDP tasks")
        first = runs[0].tasks[task].spec
        for run in runs[1:]:
            spec = run.tasks[task].spec
            for part in ("dataset", "frames"):
                if spec.get(part) != first.get(part):
                    raise BadInput(f"task '{task}': runs {runs[0].path} and {run.path} read different samples "
                                   f"(their task specs differ in '{part}'); export runs of one task configuration")


def eligible(runs: list[Run], task: str) -> tuple[list[Candidate], Eligibility]:
    """The samples of `task` that every run predicted (reader order of the first run), and the count."""
    ids: dict[str, int] = {}
    for run in runs:
        for sid, rec in run.samples(task).items():
            ids.setdefault(sid, rec.position)
    found, info = [], Eligibility(total=len(ids))
    for sid in sorted(ids, key=lambda s: (ids[s], s)):
        records, reasons = {}, []
        for run in runs:
            rec = run.samples(task).get(sid)
            if rec is None:
                reasons.append(f"not in run {run.label}")
            elif rec.status != "done":
                reasons.append(f"{rec.status} in run {run.label}")
            elif rec.prediction is None or not rec.prediction.images:
                reasons.append(f"no predicted image in run {run.label}")
            else:
                records[run.label] = rec
        if reasons:
            info.reasons.update(reasons)
            continue
        _same_sample(task, sid, runs, records)
        found.append(Candidate(task, sid, records[runs[0].label].sample, records))
    info.eligible = len(found)
    return found, info


def _same_sample(task: str, sid: str, runs: list[Run], records: dict[str, SampleLog]) -> None:
    first = records[runs[0].label].sample
    for run in runs[1:]:
        other = records[run.label].sample
        for key in ("source", "action_text"):
            if other.get(key) != first.get(key):
                raise BadInput(f"task '{task}', sample '{sid}': runs {runs[0].path} and {run.path} logged different "
                               f"{key}s ({first.get(key)!r} and {other.get(key)!r}); they did not evaluate the "
                               "same data")


def _rank(seed: int, task: str, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{task}\0{sample_id}".encode()).digest()


def quotas(pools: dict[str, list[Candidate]], n: int) -> dict[str, int]:
    """A share of `n` per task; a task with fewer samples than its share gives the rest back."""
    out, left = {}, n
    order = sorted(pools, key=lambda t: len(pools[t]))
    for i, task in enumerate(order):
        out[task] = min(len(pools[task]), left // (len(order) - i))
        left -= out[task]
    return out


def choose_with_frames(pools: dict[str, list[Candidate]], n: int, seed: int, runs: list[Run],
                       data_dir: str | None, info: dict[str, Eligibility]) -> list[Candidate]:
    """Up to `n` candidates with a readable source frame, in task then reader order. A sample whose
    source cannot be read is counted as excluded and replaced by the next one in rank order."""
    ranked = {t: sorted(c, key=lambda c: _rank(seed, t, c.sample_id)) for t, c in pools.items()}
    want = quotas(pools, n)
    chosen: dict[str, list[Candidate]] = {t: [] for t in pools}
    while True:
        batch = []
        for task, queue in ranked.items():
            take = want[task] - len(chosen[task])
            batch += queue[:take]
            ranked[task] = queue[take:]
        if not batch:
            break
        rows = [Row(c.task, "fdp", c.sample_id, c.sample) for c in batch]
        notes = attach_frames(rows, runs, data_dir)
        if notes:  # a task whose dataset cannot be read at all: annotators need the source frame
            raise BadInput("; ".join(notes) + " (the source frame is part of every item: pass --data-dir)")
        for cand, row in zip(batch, rows):
            if row.source is None:
                info[cand.task].eligible -= 1
                info[cand.task].reasons[f"source frame unreadable ({row.note or 'not found in the dataset'})"] += 1
            else:
                cand.source = row.source
                chosen[cand.task].append(cand)
    position = {(c.task, c.sample_id): i for t in pools for i, c in enumerate(pools[t])}
    return [c for t in pools for c in sorted(chosen[t], key=lambda c: position[(c.task, c.sample_id)])]


def shared_count(n: int, annotators: int, overlap: float) -> int:
    """Samples every annotator sees: round(overlap * n), at least one when overlap > 0 (none with one
    annotator, where agreement cannot be measured)."""
    if annotators < 2 or overlap <= 0:
        return 0
    return min(n, max(1, round(overlap * n)))


def assign(uids: list[str], annotators: list[str], overlap: float, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """(shared uids, annotator -> uids in the order their page shows them)."""
    order = list(uids)
    random.Random(f"wmbench-human:{seed}:assign").shuffle(order)
    k = shared_count(len(order), len(annotators), overlap)
    shared, rest = order[:k], order[k:]
    pages = {}
    for i, name in enumerate(annotators):
        mine = shared + rest[i::len(annotators)]
        random.Random(f"wmbench-human:{seed}:page:{name}").shuffle(mine)
        pages[name] = mine
    return shared, pages


def option_order(labels: list[str], seed: int, annotator: str, uid: str) -> list[str]:
    """The models in the order one annotator sees them for one sample (seeded per sample and annotator)."""
    return random.Random(f"wmbench-human:{seed}:options:{annotator}:{uid}").sample(labels, len(labels))


def judge_scores(run: Run, task: str, record: SampleLog) -> dict[str, float]:
    """The sample's scores of every `vlm_judge` metric of the task (metric key -> value), where scored."""
    keys = [k for k, m in run.tasks[task].metrics.items() if m.get("name") == "vlm_judge"]
    return {k: float(record.scores[k]) for k in keys if record.scores.get(k) is not None}
