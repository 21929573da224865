"""A task's metrics as one object: which apply here, what they need loaded, and scoring a batch.

Per-sample metrics score every batch; set-level metrics (FID, KID) score the whole set of
stored predictions once per task (see `Evaluation._score_sets`). A metric that raises on a
batch, or marks a sample `"failed"` in its details (a judge whose replies never parsed), records
a failed score for those samples: NaN with the reason in the details, counted as `n_failed` in
results.json, never as zero; the sample's other scores stand. `--retry-failed` and `--rescore`
score such samples again from the stored prediction, without calling the model. A metric that
raises a BadInput (its model or weights cannot load) is disabled for the rest of the run and
shown as unavailable with that reason.
"""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import BadInput
from ..metrics import Metric, MetricInput
from ..core.tasks import MetricRef, TaskSpec

COUNTERFACTUAL = "counterfactual_prediction"
ScoreRow = tuple  # (task, sample_id, metric key, version, value or None, details JSON or None)


def describe_error(exc: BaseException) -> str:
    """One line naming the error and where it was raised."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class TaskMetrics:
    def __init__(self, task: TaskSpec, factory: Callable[[MetricRef], Metric]):
        self.task = task
        self.all: dict[str, Metric] = {ref.key: factory(ref) for ref in task.metric_refs}
        self.available = {k: m for k, m in self.all.items() if availability(m)[0]}
        self.per_sample = {k: m for k, m in self.available.items() if not m.set_level}
        self.set_level = {k: m for k, m in self.available.items() if m.set_level}

    @property
    def aux_keys(self) -> set[str]:
        """Transition.aux images to load for the metrics (the counterfactual is made, not loaded)."""
        return {key for m in self.available.values() for key in m.aux_keys} - {COUNTERFACTUAL}

    @property
    def wants_counterfactual(self) -> bool:
        return bool(self.counterfactual_keys)

    @property
    def counterfactual_keys(self) -> set[str]:
        return {k for k, m in self.available.items() if COUNTERFACTUAL in m.aux_keys}

    @property
    def all_need_target(self) -> bool:
        return bool(self.available) and all("target" in m.needs for m in self.available.values())

    def prepare(self, transitions: Sequence[Any]) -> None:
        for metric in self.available.values():
            metric.prepare(self.task.kind, list(transitions))

    def score(self, sample_ids: list[str], predictions: list[Any], sources: list[np.ndarray],
              targets: list[np.ndarray | None], actions: list[str], meta: list[dict],
              aux: list[dict]) -> list[ScoreRow]:
        """Score one batch into score rows; a failed score is a row with value None and details
        {"failed": True, "error": ...}."""
        rows: list[ScoreRow] = []
        if not sample_ids:
            return rows
        batch = MetricInput(kind=self.task.kind, predictions=predictions, sources=sources, targets=targets,
                            actions=actions, references=actions, meta=meta, aux=aux)
        for key, metric in list(self.per_sample.items()):
            metric.last_details = None
            try:
                values = np.asarray(metric.score(batch), dtype=np.float64).reshape(-1)
                if len(values) != len(sample_ids):
                    raise ValueError(f"returned {len(values)} scores for {len(sample_ids)} samples")
                details = metric.last_details or [None] * len(sample_ids)
                if len(details) != len(sample_ids):
                    raise ValueError(f"returned {len(details)} detail records for {len(sample_ids)} samples")
            except BadInput as exc:  # cannot run here at all: unavailable, not a per-sample failure
                self.disable(key, str(exc))
                continue
            except Exception as exc:
                values = np.full(len(sample_ids), np.nan)
                details = [{"failed": True, "error": describe_error(exc)}] * len(sample_ids)
            for sid, value, detail in zip(sample_ids, values, details):
                if detail and detail.get("failed"):
                    value = np.nan
                rows.append((self.task.name, sid, key, metric.version, None if math.isnan(value) else float(value),
                             None if detail is None else json.dumps(detail, sort_keys=True, default=str)))
        return rows

    def disable(self, key: str, reason: str) -> None:
        """Take a metric out of this run; results.json shows it unavailable with `reason`."""
        metric = self.all[key]
        metric.disabled_reason = reason
        self.available.pop(key, None)
        self.per_sample.pop(key, None)
        self.set_level.pop(key, None)


def availability(metric: Metric) -> tuple[bool, str]:
    """`metric.available()`, unless the run disabled it (see `TaskMetrics.disable`)."""
    reason = getattr(metric, "disabled_reason", None)
    return (False, reason) if reason else metric.available()
