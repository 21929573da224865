"""A task's metrics as one object: which apply here, what they need loaded, and scoring a batch.

Per-sample metrics score every batch; set-level metrics (FID, KID) score the whole set of
stored predictions once per task (see `Evaluation._score_sets`). A metric that raises on a
batch is asked again sample by sample, so only the samples it cannot score fail; a failed score
(that raise, or a sample marked `"failed"` in the details: a judge whose replies never parsed) is
NaN with the reason in the details, counted as `n_failed` in results.json, never as zero; the
sample's other scores stand. `--retry-failed` and `--rescore`
score such samples again from the stored prediction, without calling the model. A metric that
raises a BadInput (its model or weights cannot load) is disabled for the rest of the run and
shown as unavailable with that reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import BadInput
from ..core.secrets import scrub
from ..core.tasks import MetricRef, TaskSpec
from ..core.yamlspec import content_hash
from ..core.errors import SampleError
from ..log.records import ScoreRow, SetScore
from ..log.store import RunStore
from ..metrics import Metric, MetricInput, Scores
from .counterfactual import COUNTERFACTUAL
from .kinds import fit


def reason(exc: BaseException) -> str:
    """The one-line reason a failure records: a SampleError's text, else the error and where."""
    if isinstance(exc, SystemExit):
        return f"the model called sys.exit({exc.code!r})"
    return scrub(str(exc)) if isinstance(exc, SampleError) else describe_error(exc)


def describe_error(exc: BaseException) -> str:
    """One line naming the error and where it was raised."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return scrub(f"{type(exc).__name__}: {exc}{where}")


class TaskMetrics:
    """The metrics of one task; `disabled` holds those that cannot run here, with the reason."""

    def __init__(self, task: TaskSpec, factory: Callable[[MetricRef], Metric]):
        self.task = task
        self.all: dict[str, Metric] = {ref.key: factory(ref) for ref in task.metric_refs}
        self.disabled: dict[str, str] = {}
        for key, metric in self.all.items():
            ok, reason = metric.available()
            if not ok:
                self.disabled[key] = reason
        self.per_sample = {k: m for k, m in self.available.items() if not m.set_level}
        self.set_level = {k: m for k, m in self.available.items() if m.set_level}

    @property
    def available(self) -> dict[str, Metric]:
        return {k: m for k, m in self.all.items() if k not in self.disabled}

    @property
    def versions(self) -> dict[str, str]:
        """Per-sample metric key -> version: a stored score of another version is stale."""
        return {key: score_version(m) for key, m in self.per_sample.items()}

    @property
    def aux_keys(self) -> set[str]:
        """Transition.aux images to load for the metrics (the counterfactual is made, not loaded)."""
        return {key for m in self.available.values() for key in m.aux_keys} - {COUNTERFACTUAL}

    @property
    def counterfactual_keys(self) -> set[str]:
        return {k for k, m in self.available.items() if COUNTERFACTUAL in m.aux_keys}

    @property
    def all_need_target(self) -> bool:
        return bool(self.available) and all("target" in m.needs for m in self.available.values())

    def prepare(self, transitions: Sequence[Any]) -> None:
        for metric in self.available.values():
            metric.prepare(self.task.kind, list(transitions))

    def describe(self) -> dict[str, Any]:
        """key -> the metric's description, availability and reason, as results.json reports it."""
        return {key: {**metric.describe(), "available": key not in self.disabled,
                      "reason": self.disabled.get(key)} for key, metric in self.all.items()}

    def score(self, batch: MetricInput, sample_ids: list[str]) -> list[ScoreRow]:
        """Score one batch into score rows; a failed score is a row with value None and details
        {"failed": True, "error": ...}."""
        rows: list[ScoreRow] = []
        if not sample_ids:
            return rows
        for key, metric in list(self.per_sample.items()):
            try:
                values, details = _score_isolated(metric, batch)
            except BadInput as exc:  # cannot run here at all: unavailable, not a per-sample failure
                self.disable(key, str(exc))
                continue
            for sid, value, detail in zip(sample_ids, values, details):
                if detail and detail.get("failed"):
                    value = np.nan
                rows.append(ScoreRow(self.task.name, sid, key, score_version(metric),
                                     None if math.isnan(value) else float(value),
                                     None if detail is None else json.dumps(detail, sort_keys=True, default=str)))
        return rows

    def disable(self, key: str, reason: str) -> None:
        """Take a metric out of this run; results.json shows it unavailable with `reason`."""
        self.disabled[key] = reason
        self.per_sample.pop(key, None)
        self.set_level.pop(key, None)


def score_version(metric: Metric) -> str:
    """What a stored score was computed with: the metric's version, and a hash of its options when
    it has any, so that a task changing a metric's `args` has its scores recomputed."""
    options = metric.options()
    return f"{metric.version}+{content_hash(options)[:12]}" if options else metric.version


def _score_isolated(metric: Metric, batch: MetricInput) -> tuple[np.ndarray, list]:
    """The batch's scores; if the metric raises on the batch, each sample is scored alone, so a
    sample it cannot score (a 1x1 image for SSIM) fails alone and the batch size changes nothing."""
    n = len(batch.predictions)
    try:
        scores = Scores.of(metric.score(batch), n)
        return scores.values, scores.details
    except BadInput:
        raise
    except Exception as exc:
        if n == 1:
            return np.full(1, np.nan), [{"failed": True, "error": describe_error(exc)}]
    values, details = np.full(n, np.nan), [None] * n
    for i in range(n):
        one = dataclasses.replace(batch, cache={}, **{f: [getattr(batch, f)[i]] for f in _PER_SAMPLE
                                                      if getattr(batch, f) is not None and len(getattr(batch, f)) > i})
        values[i:i + 1], details[i:i + 1] = _score_isolated(metric, one)
    return values, details


_PER_SAMPLE = ("predictions", "sources", "targets", "actions", "references", "meta", "aux")


def score_sets(store: RunStore, task: str, metrics: TaskMetrics, transitions: list, force: bool = False) -> None:
    """Set-level metrics (FID, KID) over every scored sample with a target, stored with a
    fingerprint of the scored set: recomputed only when the set changed (or with `force`). A
    failure makes the value unavailable for this run, with the reason."""
    if not metrics.set_level:
        return
    by_id = {t.sample_id: t for t in transitions}
    pairs = [(r, by_id[r.sample_id]) for r in store.samples(task)
             if r.status == "done" and r.sample_id in by_id and by_id[r.sample_id].target]
    stored = store.set_scores(task)
    for key, metric in metrics.set_level.items():
        fingerprint = content_hash([metric.version, metric.options(),
                                    [(r.sample_id, r.prediction.images[0]) for r, _ in pairs]])
        if not force and key in stored and stored[key].fingerprint == fingerprint:
            continue
        value, details = None, {}
        try:
            predictions = [store.get_image(r.prediction.images[0]) for r, _ in pairs]
            targets = [fit(t.target.load(), p.shape, {}, "") for p, (_, t) in zip(predictions, pairs)]
            if pairs:
                result = metric.score_set(predictions, targets)
                value, details = result if isinstance(result, tuple) else (result, {})
                value = float(value)
        except Exception as exc:  # noqa: BLE001 - unavailable for this run, with the reason
            value, details = None, {"failed": True, "error": reason(exc)}
        store.put_set_score(task, key, SetScore(fingerprint, None if value is None or math.isnan(value) else value,
                                                {"n": len(pairs), **details}))
