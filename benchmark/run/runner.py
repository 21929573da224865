"""The evaluation loop: run the model on a task's samples in batches, score, store.

One `Evaluation` = one model and one run directory (its store). Work is done at sample
granularity and committed per batch, so a re-run resumes, computes nothing already stored, and
scores stored predictions with metrics added since (`--rescore` recomputes all scores).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..core.errors import SampleError, BadInput
from ..metrics import METRICS, Metric
from ..models import ModelCard, adapter_class, instantiate
from ..models.base import TASK_CAPABILITY, Model
from .scoring import COUNTERFACTUAL, TaskMetrics, describe_error
from .selection import select
from .results import provenance
from ..log.store import RunStore, SampleRecord
from ..core.tasks import MetricRef, TaskSpec
from ..core.types import Batch, Transition, check_image
from ..core.yamlspec import content_hash

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


@dataclass
class Loaded:
    """A sample with its pixels loaded for one batch."""

    position: int
    transition: Transition
    source: np.ndarray
    target: np.ndarray | None
    aux: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        return self.transition.sample_id


@dataclass
class Candidates:
    """A best-of-N prediction: every candidate frame and its verifier score."""

    images: list[np.ndarray]
    scores: list[float]

    def best(self) -> int:
        """Highest score; ties keep the earlier candidate (as VerifiedModel.select)."""
        return min(range(len(self.scores)), key=lambda j: (-self.scores[j], j))


def check_capabilities(card: ModelCard, tasks: Sequence[TaskSpec]) -> None:
    """Refuse a task the model cannot do, before any model or data loads."""
    caps = adapter_class(card).capabilities()
    for task in tasks:
        need = TASK_CAPABILITY[task.kind]
        if need not in caps:
            raise BadInput(f"model '{card.name}' (adapter '{card.adapter}') cannot run task '{task.name}': "
                               f"{task.kind} needs capability '{need}', the model has {list(caps) or 'none'}")


def supports(card: ModelCard, task: TaskSpec) -> bool:
    return TASK_CAPABILITY[task.kind] in adapter_class(card).capabilities()


def _seed_everything(seed: int, sample_ids: Sequence[str]) -> None:
    """Seed the global RNGs per batch from its sample ids. Adapters that draw from them (rather than
    per-sample generators, as the built-in editors and unified VLMs do) reproduce a run only with
    the same batch boundaries."""
    value = int.from_bytes(hashlib.sha256(f"{seed}:{','.join(sample_ids)}".encode()).digest()[:4], "little")
    random.seed(value)
    np.random.seed(value)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)


def _resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


def _fit(image: np.ndarray, shape: tuple[int, ...], info: dict, key: str) -> np.ndarray:
    """`image` resized to the source's size for scoring; the original size is recorded in `info`."""
    if image.shape == shape:
        return image
    info[key] = list(image.shape[:2])
    return _resize(image, shape)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SampleError) else describe_error(exc)


def counterfactual_action(sample_id: str, own: str, vocabulary: list[str]) -> str | None:
    """Another action of the task for the same source, picked by a hash of the sample id
    (deterministic, spread over the vocabulary); None when the task has a single action."""
    others = [a for a in vocabulary if a != own]
    if not others:
        return None
    return others[int(hashlib.sha256(sample_id.encode()).hexdigest(), 16) % len(others)]


class Evaluation:
    """Evaluates one model card into one run directory."""

    def __init__(self, card: ModelCard, run_dir: Path, data_dir: Path, batch_size: int = 8,
                 device: str | None = None, progress: bool = True, retry_failed: bool = False):
        if batch_size < 1:
            raise BadInput("--batch-size must be >= 1")
        self.card = card
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.retry_failed = retry_failed
        self.store = RunStore(self.run_dir)
        self._model: Model | None = None
        self._metrics: dict[str, Metric] = {}
        self.summary = RunSummary(self.run_dir)

    # lazily built pieces -----------------------------------------------------------------
    @property
    def model(self) -> Model:
        if self._model is None:
            started = time.perf_counter()
            card = self.card
            if self.device is not None and "device" in inspect.signature(adapter_class(card).__init__).parameters:
                # the device is not part of the card, so it does not change the run's fingerprint
                card = ModelCard(**{**card.to_dict(), "args": {**card.args, "device": self.device}})
            self._model = instantiate(card)
            self.store.bind_model_fingerprint(self._model.fingerprint())
            self.summary.timings["model"] += time.perf_counter() - started
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
    def run(self, tasks: Sequence[TaskSpec], rescore: bool = False) -> RunSummary:
        check_capabilities(self.card, tasks)
        self.store.set_meta_once("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for task in tasks:
            self.summary.outcomes.append(self._run_task(task, rescore))
        return self.summary

    def _run_task(self, task: TaskSpec, rescore: bool) -> TaskOutcome:
        started = time.perf_counter()
        transitions = select(task, self.data_dir, self.progress)
        self.summary.timings["data"] += time.perf_counter() - started
        model_info = {"card": self.card.to_dict(), "fingerprint": self.card.fingerprint}
        self.store.bind_task(task.name, task.sample_fingerprint, task.to_dict(), model_info,
                             [t.sample_id for t in transitions])
        metrics = TaskMetrics(task, self.metric)
        metrics.prepare(transitions)
        self._vocabulary = sorted({t.action_text for t in transitions})
        status = self.store.statuses(task.name)
        retry = {"failed"} if self.retry_failed else set()
        todo = [(i, t) for i, t in enumerate(transitions) if status.get(t.sample_id) in (None, *retry)]
        stale = self._stale(task, metrics, rescore, {t.sample_id for t in transitions})
        stale_items = [(i, t) for i, t in enumerate(transitions) if t.sample_id in stale]

        from tqdm.auto import tqdm

        bar = tqdm(total=len(transitions), initial=len(transitions) - len(todo), disable=not self.progress,
                   desc=f"{self.card.name} | {task.name}", unit="sample", file=sys.stderr, dynamic_ncols=True)
        elsewhere = evaluated = 0
        try:
            if todo:
                self.model.prepare(task.kind, transitions)
            for chunk in _chunks(todo, self.batch_size):
                claimed = set(self.store.claim(task.name, [t.sample_id for _, t in chunk], self.retry_failed))
                elsewhere += len(chunk) - len(claimed)
                mine = [(i, t) for i, t in chunk if t.sample_id in claimed]
                if mine:
                    self._evaluate_batch(task, mine, metrics)
                    evaluated += len(mine)
                bar.update(len(chunk))
            if elsewhere:
                print(f"wmbench: {elsewhere} sample(s) of {task.name} were evaluated or claimed by another "
                      f"process on {self.run_dir}", file=sys.stderr)
            for chunk in _chunks(stale_items, self.batch_size):
                self._rescore_batch(task, chunk, metrics)
            self._score_sets(task, metrics, transitions, force=rescore)
        finally:
            bar.close()
        selected = {t.sample_id for t in transitions}
        failed = sum(1 for sid, s in self.store.statuses(task.name).items() if s == "failed" and sid in selected)
        failed_scores = len(self.store.failed_scores(task.name) & selected)
        if evaluated or stale_items:
            self.store.set_meta("provenance", provenance())  # the code that produced these scores
        return TaskOutcome(task.name, len(transitions), evaluated, len(stale_items), failed, failed_scores)

    def _stale(self, task: TaskSpec, metrics: TaskMetrics, rescore: bool, selected: set[str]) -> set[str]:
        """Done samples whose scores must be (re)computed: all with --rescore, else those missing
        a score of a current metric version (metrics added to the task since they were scored)
        and, with --retry-failed, those with a failed score."""
        done = {sid for sid, status in self.store.statuses(task.name).items() if sid in selected and status == "done"}
        if rescore:
            return done
        versions = self.store.score_versions(task.name)
        failed_scores = self.store.failed_scores(task.name) if self.retry_failed else set()
        return {sid for sid in done if sid in failed_scores
                or any(versions.get((sid, key)) != m.version for key, m in metrics.per_sample.items())}

    # loading -----------------------------------------------------------------------------
    def _load(self, task: TaskSpec, chunk: list[tuple[int, Transition]], metrics: TaskMetrics,
              records: dict[str, SampleRecord]) -> list[Loaded]:
        """Pixels of a batch; a sample whose frames cannot be read fails at stage `data`."""
        clock = time.perf_counter()
        loaded = []
        for position, t in chunk:
            info = t.describe()
            if task.kind == "fdp" and t.target is None and metrics.all_need_target:
                records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "skipped", info,
                                                    error="no target frame, and every metric of the task needs one")
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
                target = _fit(target, source.shape, info, "target_resized_from")
            loaded.append(Loaded(position, t, source, target, aux))
            records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "done", info)
        self.summary.timings["data"] += time.perf_counter() - clock
        return loaded

    # one batch ---------------------------------------------------------------------------
    def _evaluate_batch(self, task: TaskSpec, chunk: list[tuple[int, Transition]], metrics: TaskMetrics) -> None:
        records: dict[str, SampleRecord] = {}
        loaded = self._load(task, chunk, metrics, records)
        predictions = self._predict(task, loaded, records)
        ok = [item for item in loaded if item.sample_id in predictions]
        if metrics.wants_counterfactual and ok:
            self._counterfactuals(task, ok)
        clock = time.perf_counter()
        for item in ok:
            record = records[item.sample_id]
            record.prediction, predictions[item.sample_id] = self._store_prediction(
                task, item, predictions[item.sample_id], record.info)
        self.summary.timings["harness"] += time.perf_counter() - clock
        scores = self._score(metrics, ok, predictions)
        clock = time.perf_counter()
        self.store.commit(list(records.values()), scores)
        self.summary.timings["harness"] += time.perf_counter() - clock

    def _store_prediction(self, task: TaskSpec, item: Loaded, pred: Any, info: dict) -> tuple[dict, Any]:
        """Write the prediction (images content-addressed) -> (stored record, what metrics score)."""
        shape = item.source.shape
        if isinstance(pred, Candidates):
            images = [_fit(c, shape, info, "prediction_resized_from") for c in pred.images]
            best = pred.best()
            stored = {"images": [self.store.put_image(images[best])],
                      "candidates": [self.store.put_image(c) for c in images],
                      "verifier_scores": pred.scores, "selected": best}
            pred = images[best]
        elif task.kind == "fdp":
            pred = _fit(pred, shape, info, "prediction_resized_from")
            stored = {"images": [self.store.put_image(pred)]}
        else:
            stored = {"text": pred}
        if COUNTERFACTUAL in item.aux:
            action, image = item.aux[COUNTERFACTUAL]
            item.aux[COUNTERFACTUAL] = image = _fit(image, shape, info, "counterfactual_resized_from")
            stored["counterfactual"] = {"action": action, "image": self.store.put_image(image)}
        return stored, pred

    def _model_batch(self, task: TaskSpec, items: list[Loaded], actions: list[str] | None = None) -> Batch:
        """The model's view of a batch (see `Batch`); `actions` replaces the samples' actions."""
        reference = self.model.sees_reference
        fdp = task.kind == "fdp"
        actions = actions or [i.transition.action_text for i in items]
        return Batch(
            sample_ids=[i.sample_id for i in items],
            sources=[i.source for i in items],
            prompts=[task.render_prompt(a) for a in actions],
            targets=[i.target for i in items] if (not fdp or reference) else None,
            actions=actions if (fdp or reference) else None,
            action_vectors=[i.transition.action_vector for i in items] if (fdp or reference) else None,
            meta=[i.transition.meta for i in items],
            task=task.name,
            seed=task.seed,
        )

    def _call_model(self, task: TaskSpec, items: list[Loaded]) -> list[Any]:
        batch = self._model_batch(task, items)
        _seed_everything(task.seed, batch.sample_ids)
        if task.kind == "fdp" and hasattr(self.model, "predict_candidates"):
            # best-of-N: keep every candidate and its verifier score, so the run can be re-verified
            candidates = self.model.predict_candidates(batch)
            scores = self.model.verify(batch, candidates)
            out = [Candidates(list(c), [float(x) for x in s]) for c, s in zip(candidates, scores)]
        elif task.kind == "fdp":
            out = self.model.predict_next(batch, n=1)
        else:
            out = self.model.infer_action(batch)
        if not isinstance(out, (list, tuple)) or len(out) != len(items):
            raise SampleError(f"model returned {type(out).__name__} of length "
                              f"{len(out) if hasattr(out, '__len__') else '?'} for a batch of {len(items)}")
        return list(out)

    def _predict(self, task: TaskSpec, items: list[Loaded], records: dict[str, SampleRecord]) -> dict[str, Any]:
        """Call the model on the batch; if it raises, call it per sample so that one bad sample
        fails alone. Returns sample_id -> validated prediction; failures go into `records`."""
        if not items:
            return {}
        clock = time.perf_counter()
        try:
            outputs = [(items, self._call_model(task, items))]
        except BadInput:
            raise  # the model cannot load or is misconfigured: exit 2, every finished batch is kept
        except Exception:  # isolate the failing sample(s)
            outputs = []
            for item in items:
                try:
                    outputs.append(([item], self._call_model(task, [item])))
                except BadInput:
                    raise
                except Exception as exc:
                    _fail(records[item.sample_id], "model", _reason(exc))
        self.summary.timings["model"] += time.perf_counter() - clock
        predictions = {}
        for group, out in outputs:
            for item, value in zip(group, out):
                try:
                    predictions[item.sample_id] = _validate_output(task.kind, value)
                except SampleError as exc:
                    _fail(records[item.sample_id], "output", str(exc))
        return predictions

    def _counterfactuals(self, task: TaskSpec, items: list[Loaded]) -> None:
        """The prediction for the same source under another action of the task, for
        counterfactual sensitivity; put in `aux` as (action, image). A failure leaves it out (the
        metric then scores NaN) and is noted in the sample's info."""
        clock = time.perf_counter()
        chosen = [(item, counterfactual_action(item.sample_id, item.transition.action_text, self._vocabulary))
                  for item in items]
        chosen = [(item, a) for item, a in chosen if a is not None]
        if chosen:
            group = [item for item, _ in chosen]
            batch = self._model_batch(task, group, [a for _, a in chosen])
            _seed_everything(task.seed, [f"counterfactual:{sid}" for sid in batch.sample_ids])
            try:
                out = self.model.predict_next(batch, n=1)
                for (item, action), images in zip(chosen, out):
                    item.aux[COUNTERFACTUAL] = (action, check_image(images[0], "counterfactual prediction"))
            except Exception as exc:
                for item in group:
                    item.aux.pop(COUNTERFACTUAL, None)
                    item.transition.meta.setdefault("counterfactual_error", _reason(exc))
        self.summary.timings["model"] += time.perf_counter() - clock

    def _score(self, metrics: TaskMetrics, items: list[Loaded], predictions: dict[str, Any]) -> list[tuple]:
        clock = time.perf_counter()
        rows = metrics.score(
            sample_ids=[i.sample_id for i in items],
            predictions=[predictions[i.sample_id] for i in items],
            sources=[i.source for i in items],
            targets=[i.target for i in items],
            actions=[i.transition.action_text for i in items],
            meta=[i.transition.meta for i in items],
            aux=[i.aux for i in items])
        self.summary.timings["metrics"] += time.perf_counter() - clock
        return rows

    def _rescore_batch(self, task: TaskSpec, chunk: list[tuple[int, Transition]], metrics: TaskMetrics) -> None:
        """Score stored predictions again (no model call); the data is reloaded for sources/targets."""
        stored = {r.sample_id: r for r in self.store.samples(task.name, [t.sample_id for _, t in chunk])}
        records: dict[str, SampleRecord] = {}
        loaded = self._load(task, chunk, metrics, records)
        for sid, record in records.items():  # keep what was stored, even if the data now fails
            record.prediction = stored[sid].prediction
            record.info = {**stored[sid].info, **record.info}
        predictions = {}
        for item in loaded:
            old = stored[item.sample_id]
            if task.kind == "fdp":
                predictions[item.sample_id] = self.store.get_image(old.prediction["images"][0])
                if "counterfactual" in old.prediction:
                    item.aux[COUNTERFACTUAL] = self.store.get_image(old.prediction["counterfactual"]["image"])
            else:
                predictions[item.sample_id] = old.prediction["text"]
        scores = self._score(metrics, loaded, predictions)
        missing = {i.sample_id for i in loaded if COUNTERFACTUAL not in i.aux}
        scores = [_no_counterfactual(row) if row[1] in missing and row[2] in metrics.counterfactual_keys else row
                  for row in scores]
        with self.store.transaction() as db:
            db.execute(f"DELETE FROM scores WHERE task = ? AND sample_id IN ({','.join('?' * len(records))})",
                       (task.name, *records))
        self.store.commit(list(records.values()), scores)

    def _score_sets(self, task: TaskSpec, metrics: TaskMetrics, transitions: list[Transition],
                    force: bool = False) -> None:
        """Set-level metrics (FID, KID) over every scored sample with a target; recomputed only
        when the set of predictions changed (or with --rescore)."""
        if not metrics.set_level or task.kind != "fdp":
            return
        done = [r for r in self.store.samples(task.name) if r.status == "done"]
        by_id = {t.sample_id: t for t in transitions}
        pairs = [(r, by_id[r.sample_id]) for r in done if r.sample_id in by_id and by_id[r.sample_id].target]
        stored = self.store.set_scores(task.name)
        for key, metric in metrics.set_level.items():
            fingerprint = content_hash([metric.version, metric.options(),
                                        [(r.sample_id, r.prediction["images"][0]) for r, _ in pairs]])
            if not force and stored.get(key, (None,))[0] == fingerprint:
                continue
            clock = time.perf_counter()
            value, details = None, None
            try:
                predictions = [self.store.get_image(r.prediction["images"][0]) for r, _ in pairs]
                targets = [_fit(t.target.load(), p.shape, {}, "") for p, (_, t) in zip(predictions, pairs)]
                value = float(metric.score_set(predictions, targets)) if pairs else None
                details = getattr(metric, "last_set_details", None)
            except Exception as exc:  # counted as unavailable for this run, with the reason
                details = {"failed": True, "error": _reason(exc)}
            self.store.put_set_score(task.name, key, fingerprint,
                                     None if value is None or math.isnan(value) else value,
                                     {"n": len(pairs), **(details or {})})
            self.summary.timings["metrics"] += time.perf_counter() - clock


def _no_counterfactual(row: tuple) -> tuple:
    """A counterfactual metric added after the predictions were made has nothing to score: a
    failed score saying so, not a silent "not applicable"."""
    error = ("no counterfactual prediction is stored for this sample (the metric was added after the "
             "predictions were made); evaluate into a new --output to generate it")
    return (*row[:4], None, json.dumps({"failed": True, "error": error}))


def _fail(record: SampleRecord, stage: str, reason: str) -> None:
    record.status, record.stage, record.error = "failed", stage, reason


def _validate_output(kind: str, value: Any) -> Any:
    if isinstance(value, Candidates):
        if not value.images or len(value.images) != len(value.scores):
            raise SampleError(f"best-of-N: {len(value.images)} candidates but {len(value.scores)} verifier scores")
        if not all(math.isfinite(x) for x in value.scores):
            raise SampleError(f"best-of-N: verifier returned a non-finite score {value.scores}")
        for j, image in enumerate(value.images):
            check_image(image, f"candidate {j}")
        return value
    if kind == "fdp":
        if not isinstance(value, (list, tuple)) or len(value) != 1:
            raise SampleError(f"predict_next must return one list of n=1 images per sample, got "
                              f"{type(value).__name__}{' of length %d' % len(value) if hasattr(value, '__len__') else ''}")
        return check_image(value[0], "model prediction")
    if not isinstance(value, str):
        raise SampleError(f"infer_action must return a str per sample, got {type(value).__name__}")
    return value


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
