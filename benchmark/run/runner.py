"""The evaluation loop: run the model on a task's samples in batches, score, store.

One `Evaluation` = one model and one run directory (its store, used through its ledger API:
plan, claim, commit). Work is done at sample granularity and committed per batch, so a re-run
resumes, computes nothing already stored, and scores stored predictions with metrics added since
(`rescore` recomputes all scores). What differs between FDP and IDP lives in `kinds`, best-of-N
in `bestofn`, counterfactual predictions in `counterfactual`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence


from ..core.errors import BadInput, SampleError
from ..core.secrets import redact
from ..core.tasks import MetricRef, TaskSpec
from ..core.types import Transition
from ..core.yamlspec import content_hash
from ..log.records import SampleRecord, ScoreRow
from ..log.results import provenance
from ..log.store import RunStore
from ..metrics import METRICS, Metric, MetricInput
from ..models import ModelCard, adapter_class, instantiate
from ..models.base import Model, TaskInfo
from . import counterfactual
from .calls import call_isolated, call_with_timeout, seed_everything
from .counterfactual import COUNTERFACTUAL
from .capability import check_capabilities, kind_of
from .kinds import Loaded, TaskKind, fit
from .scoring import TaskMetrics, reason, score_sets
from .pipeline import run_pipeline
from .selection import select
from . import shards
from .shards import Shard

STAGES = ("data", "model", "metrics", "harness")


@dataclass
class TaskOutcome:
    task: str
    selected: int
    new: int  # samples evaluated by this invocation
    rescored: int
    failed: int  # samples that failed (data, model, output)
    failed_scores: int = 0  # samples with at least one failed metric score


@dataclass
class RunSummary:
    run_dir: Path
    outcomes: list[TaskOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def failed(self) -> int:
        """Samples that failed or have a failed score: the run exits 1 when this is not 0."""
        return sum(o.failed + o.failed_scores for o in self.outcomes)


class Evaluation:
    """Evaluates one model card into one run directory. `model`: an adapter instance built by the
    caller (e.g. the model being trained); else the card's adapter is built on first use."""

    def __init__(self, card: ModelCard, run_dir: Path, data_dir: Path, batch_size: int = 8,
                 device: str | None = None, progress: bool = True, retry_failed: bool = False,
                 model: Model | None = None, timeout: float | None = None, shard: Shard | None = None):
        if batch_size < 1:
            raise BadInput("--batch-size must be >= 1")
        self.card = card
        #: what the run directory records of the model: the card without secrets
        self.identity = card.public_identity()
        self.run_dir = Path(run_dir)
        #: the run directory is this invocation's (a refusal before anything is stored removes it)
        self.created = not self.run_dir.exists()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.retry_failed = retry_failed
        self.timeout = timeout
        self.shard = shard
        self._store: RunStore | None = None
        self._model = model
        self._fingerprint_bound = False
        self._metrics: dict[str, Metric] = {}
        self.summary = RunSummary(self.run_dir)
        self._clock = threading.Lock()
        self.committed = 0  # samples this invocation wrote
        self._threads = threading.local()
        self._extra_stores: list[RunStore] = []

    def _add_time(self, stage: str, since: float) -> None:
        """Stage timings (the loader and scoring threads add theirs too)."""
        with self._clock:
            self.summary.timings[stage] += time.perf_counter() - since

    @contextlib.contextmanager
    def _timed(self, stage: str):
        since = time.perf_counter()
        try:
            yield
        finally:
            self._add_time(stage, since)

    # lazily built pieces -----------------------------------------------------------------
    @property
    def store(self) -> RunStore:
        """The run directory's store, opened on first use: a command refused before any work
        leaves no run directory behind."""
        if self._store is None:
            self._store = RunStore(self.shard.folder(self.run_dir) if self.shard else self.run_dir)
            self._owner = threading.get_ident()
        return self._store

    def _thread_store(self) -> RunStore:
        """The store, through a connection of the calling thread's own (SQLite connections stay in
        the thread that opened them; WAL lets them write in turn)."""
        if self._store is None or threading.get_ident() == self._owner:
            return self.store
        store = getattr(self._threads, "store", None)
        if store is None:
            store = self._threads.store = RunStore(self.store.run_dir, any_thread=True)
            self._extra_stores.append(store)
        return store

    opened = property(lambda self: self._store is not None)

    def close(self) -> None:
        for store in [self._store, *self._extra_stores]:
            if store is not None:
                store.close()
        self._extra_stores = []

    def _sees_reference(self) -> bool:
        """The model class's flag, without building the model."""
        return (type(self._model) if self._model is not None else adapter_class(self.card)).sees_reference

    @property
    def model(self) -> Model:
        if self._model is None:
            started = time.perf_counter()
            card = self.card
            if self.device is not None and "device" in inspect.signature(adapter_class(card).__init__).parameters:
                # the device is not part of the card, so it does not change the run's fingerprint
                card = ModelCard(**{**card.to_dict(), "args": {**card.args, "device": self.device}})
            self._model = instantiate(card)
            self._add_time("model", started)
        if not self._fingerprint_bound:
            self.store.bind_model_fingerprint(redact(self._model.fingerprint()))
            self._fingerprint_bound = True
        return self._model

    def metric(self, ref: MetricRef | str) -> Metric:
        """One instance per (metric, options), shared by the tasks of this run."""
        ref = MetricRef(ref) if isinstance(ref, str) else ref
        key = content_hash([ref.name, ref.args])
        if key not in self._metrics:
            metric = METRICS.get(ref.name)(**ref.args)
            if self.device is not None:
                metric.device = self.device
            self._metrics[key] = metric
        return self._metrics[key]

    # the loop ----------------------------------------------------------------------------
    def run(self, tasks: Sequence[TaskSpec], rescore: bool = False, generate: bool = True) -> RunSummary:
        """Evaluate `tasks`; `rescore`: score every stored prediction again; `generate=False`:
        never call the model (only (re)score what is stored). Every task's samples are selected
        (its data read, generated on first use) before the first one is evaluated, so a task whose
        data is missing stops the run before any model loads."""
        if generate:
            check_capabilities(self.card, tasks, self._model)
        started = time.perf_counter()
        selections = [(task, self._select(task)) for task in tasks]
        self._add_time("data", started)
        self.store.bind_model(self.identity)
        self.store.set_meta_once("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for task, transitions in selections:
            self.summary.outcomes.append(self._run_task(task, transitions, rescore, generate))
        return self.summary

    def _select(self, task: TaskSpec) -> list[Transition]:
        transitions = select(task, self.data_dir, self.progress)
        if not transitions:
            raise BadInput(f"task '{task.name}' selects no sample from {self.data_dir / task.dataset.subfolder} "
                           f"(format {task.dataset.format}, split {task.dataset.split!r}, frames {task.frames}): "
                           "check the split, and that the frame gap is shorter than the episodes")
        return transitions

    def _run_task(self, task: TaskSpec, transitions: list[Transition], rescore: bool,
                  generate: bool = True) -> TaskOutcome:
        kind = kind_of(task)(task, transitions)
        selected = [t.sample_id for t in transitions]
        before = self.store.bind_task(task.name, task.sample_fingerprint, task.to_dict(), self.identity, selected)
        dropped = len(set(before) - set(selected))
        if dropped:
            print(f"wmbench: warning: {task.name} now selects {len(selected)} samples where the previous command "
                  f"into {self.run_dir} selected {len(before)}: results.json, report and compare cover these "
                  f"{len(selected)} ({dropped} stored samples stay in the store, left out)", file=sys.stderr)
        metrics = TaskMetrics(task, self.metric)
        metrics.prepare(transitions)  # vocabularies and the model's TaskInfo: over the whole task, sharded or not
        vocabulary = sorted({t.action_text for t in transitions})
        info = self._task_info(task, kind, transitions)
        position = {t.sample_id: i for i, t in enumerate(transitions)}
        mine = shards.share(self.shard, self.run_dir, task.name, transitions)  # a rank's part
        plan = self.store.plan(task.name, [t.sample_id for t in mine], metrics.versions,
                               retry_failed=self.retry_failed, rescore=rescore)
        todo, stale = set(plan.todo), set(plan.stale)
        todo_items = [(position[t.sample_id], t) for t in mine if generate and t.sample_id in todo]
        stale_items = [(position[t.sample_id], t) for t in mine if t.sample_id in stale]

        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), initial=len(mine) - len(todo_items), disable=not self.progress,
                   desc=f"{self.card.name} | {task.name}", unit="sample", file=sys.stderr, dynamic_ncols=True)
        try:
            if todo_items:
                try:
                    self.model.prepare(info)
                except BadInput:
                    raise
                except (Exception, SystemExit) as exc:  # before any sample: the model cannot run this task
                    raise BadInput(f"model '{self.card.name}' failed to prepare for task '{task.name}': "
                                   f"{reason(exc)}") from exc
            evaluated, elsewhere = self._evaluate(task, kind, todo_items, metrics, vocabulary, bar)
            if elsewhere:
                print(f"wmbench: {elsewhere} sample(s) of {task.name} were evaluated or claimed by another "
                      f"process on {self.run_dir}", file=sys.stderr)
            for chunk in _chunks(stale_items, self.batch_size):
                self._rescore_batch(task, kind, chunk, metrics)
            if kind.set_level and self.shard is None:  # over the merged set, once (see shards.py)
                with self._timed("metrics"):
                    score_sets(self.store, task.name, metrics, transitions, force=rescore)
        finally:
            bar.close()
        self.store.record_metrics(task.name, metrics.describe())
        chosen = set(selected)
        failed = sum(1 for sid, s in self.store.statuses(task.name).items() if s == "failed" and sid in chosen)
        failed_scores = len(self.store.failed_scores(task.name) & chosen)
        if evaluated or stale_items:
            self.store.set_meta("provenance", provenance())  # the code that produced these scores
        return TaskOutcome(task.name, len(mine), evaluated, len(stale_items), failed, failed_scores)

    def _task_info(self, task: TaskSpec, kind: TaskKind, transitions: list[Transition]) -> TaskInfo:
        """What the model learns before the first batch: FDP instructions are inputs; IDP actions
        are answers, given only to anchors that see the reference."""
        shown = kind.actions_are_inputs or self._sees_reference()
        return TaskInfo(name=task.name, kind=task.kind, seed=task.seed,
                        sample_ids=tuple(t.sample_id for t in transitions),
                        actions=tuple(t.action_text for t in transitions) if shown else None)

    # loading -----------------------------------------------------------------------------
    def _load(self, task: TaskSpec, kind: TaskKind, chunk: list[tuple[int, Transition]], metrics: TaskMetrics,
              records: dict[str, SampleRecord]) -> list[Loaded]:
        """Pixels of a batch; a sample whose frames cannot be read fails at stage `data`."""
        clock = time.perf_counter()
        loaded = []
        for position, t in chunk:
            info = t.describe()
            skip = kind.skip_reason(t, metrics.all_need_target)
            if skip:
                records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "skipped", info, error=skip)
                continue
            try:
                source = t.source.load()
                target = t.target.load() if t.target is not None else None
                aux = {k: t.aux[k].load() for k in metrics.aux_keys if k in t.aux}
            except SampleError as exc:
                records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "failed", info,
                                                    stage="data", error=str(exc))
                continue
            if target is not None:
                target = fit(target, source.shape, info, "target_resized_from")
            loaded.append(Loaded(position, t, source, target, aux))
            records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "done", info)
        self._add_time("data", clock)
        return loaded

    # one batch ---------------------------------------------------------------------------
    def _evaluate(self, task: TaskSpec, kind: TaskKind, todo: list[tuple[int, Transition]], metrics: TaskMetrics,
                  vocabulary: list[str], bar: Any) -> tuple[int, int]:
        """Evaluate the samples to do, batch by batch, pipelined (see `pipeline`): claim, load,
        predict, store the predictions and score, commit. -> (evaluated here, claimed elsewhere)."""
        counts = {"ours": 0, "elsewhere": 0}

        def claim(chunk):
            claimed = set(self.store.claim(task.name, [t.sample_id for _, t in chunk], self.retry_failed))
            ours = [(i, t) for i, t in chunk if t.sample_id in claimed]
            counts["ours"] += len(ours)
            counts["elsewhere"] += len(chunk) - len(ours)
            return ours

        def load(ours):
            records: dict[str, SampleRecord] = {}
            return self._load(task, kind, ours, metrics, records), records

        def infer(batch):
            loaded, records = batch
            predictions = self._predict(task, kind, loaded, records)
            ok = [item for item in loaded if item.sample_id in predictions]
            if metrics.counterfactual_keys and ok:
                with self._timed("model"):
                    counterfactual.predict(
                        self.model, ok, vocabulary,
                        lambda items, actions: kind.batch(task, items, self.model.sees_reference, actions),
                        lambda ids: seed_everything(task.seed, ids), reason)
            return predictions, ok

        def finish(batch, inferred):
            (_, records), (predictions, ok) = batch, inferred
            with self._timed("harness"):
                for item in ok:
                    record = records[item.sample_id]
                    record.prediction, predictions[item.sample_id] = kind.store(
                        self.store, item, predictions[item.sample_id], record.info)
            return records, self._score(task, metrics, ok, predictions)

        def commit(result):  # in the worker thread, through its own connection
            records, scores = result
            with self._timed("harness"):
                self._thread_store().commit(list(records.values()), scores)
                self.committed += len(records)

        run_pipeline(_chunks(todo, self.batch_size), claim=claim, load=load, infer=infer, finish=finish,
                     commit=commit, done=lambda chunk: bar.update(len(chunk)))
        return counts["ours"], counts["elsewhere"]

    def _call_model(self, task: TaskSpec, kind: TaskKind, items: list[Loaded]) -> Any:
        batch = kind.batch(task, items, self.model.sees_reference)
        seed_everything(task.seed, batch.sample_ids)
        return call_with_timeout(lambda: kind.predict(self.model, batch), self.timeout)

    def _predict(self, task: TaskSpec, kind: TaskKind, items: list[Loaded],
                 records: dict[str, SampleRecord]) -> dict[str, Any]:
        """sample_id -> validated prediction (see `calls.call_isolated`); failures go into `records`."""
        if not items:
            return {}
        with self._timed("model"):
            return call_isolated(items, lambda group: self._call_model(task, kind, group), kind.check,
                                 lambda item, stage, why: _fail(records[item.sample_id], stage, why),
                                 key=lambda item: item.sample_id)

    def _score(self, task: TaskSpec, metrics: TaskMetrics, items: list[Loaded],
               predictions: dict[str, Any]) -> list[ScoreRow]:
        clock = time.perf_counter()
        actions = [i.transition.action_text for i in items]
        batch = MetricInput(kind=task.kind, predictions=[predictions[i.sample_id] for i in items],
                            sources=[i.source for i in items], targets=[i.target for i in items],
                            actions=actions, references=actions, meta=[i.transition.meta for i in items],
                            aux=[i.aux for i in items])
        rows = metrics.score(batch, [i.sample_id for i in items])
        self._add_time("metrics", clock)
        return rows

    def _rescore_batch(self, task: TaskSpec, kind: TaskKind, chunk: list[tuple[int, Transition]],
                       metrics: TaskMetrics) -> None:
        """Score stored predictions again (no model call); the data is reloaded for sources/targets."""
        stored = {r.sample_id: r for r in self.store.samples(task.name, [t.sample_id for _, t in chunk])}
        records: dict[str, SampleRecord] = {}
        loaded = self._load(task, kind, chunk, metrics, records)
        for sid, record in records.items():  # keep what was stored, even if the data now fails
            record.prediction = stored[sid].prediction
            record.info = {**stored[sid].info, **record.info}
        predictions = {item.sample_id: kind.stored(self.store, stored[item.sample_id].prediction, item)
                       for item in loaded}
        scores = self._score(task, metrics, loaded, predictions)
        missing = {i.sample_id for i in loaded if COUNTERFACTUAL not in i.aux}
        scores = [_no_counterfactual(row) if row.sample_id in missing and row.metric in metrics.counterfactual_keys
                  else row for row in scores]
        self.store.commit(list(records.values()), scores, replace_scores=True)
        self.committed += len(records)


def _no_counterfactual(row: ScoreRow) -> ScoreRow:
    """A counterfactual metric added after the predictions were made has nothing to score: a
    failed score saying so, not a silent "not applicable"."""
    error = ("no counterfactual prediction is stored for this sample (the metric was added after the "
             "predictions were made); evaluate into a new --output to generate it")
    return row._replace(value=None, details=json.dumps({"failed": True, "error": error}))


def _fail(record: SampleRecord, stage: str, reason: str) -> None:
    record.status, record.stage, record.error = "failed", stage, reason


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
