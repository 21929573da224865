"""The evaluation loop: select samples, run the model in batches, score, store.

One `Evaluation` = one model and one run directory (its store). Work is done at sample
granularity and committed per batch, so a re-run resumes, computes nothing already stored, and
scores stored predictions with metrics added since (`--rescore` recomputes all scores).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .data import FORMATS, GENERATORS
from .errors import SampleError, WmbenchError
from .metrics import METRICS, Metric, MetricInput
from .models import ModelCard, adapter_class, instantiate
from .models.base import TASK_CAPABILITY, Model
from .store import RunStore, SampleRecord
from .tasks import TaskSpec
from .types import Batch, Transition, check_image

STAGES = ("data", "model", "metrics", "harness")


@dataclass
class TaskOutcome:
    task: str
    selected: int
    new: int  # samples evaluated by this invocation
    rescored: int
    failed: int


@dataclass
class RunSummary:
    run_dir: Path
    outcomes: list[TaskOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.outcomes)


def check_capabilities(card: ModelCard, tasks: Sequence[TaskSpec]) -> None:
    """Refuse a task the model cannot do, before any model or data loads."""
    caps = adapter_class(card).capabilities()
    for task in tasks:
        need = TASK_CAPABILITY[task.kind]
        if need not in caps:
            raise WmbenchError(f"model '{card.name}' (adapter '{card.adapter}') cannot run task '{task.name}': "
                               f"{task.kind} needs capability '{need}', the model has {list(caps) or 'none'}")


def supports(card: ModelCard, task: TaskSpec) -> bool:
    return TASK_CAPABILITY[task.kind] in adapter_class(card).capabilities()


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
            raise WmbenchError(f"task '{task.name}': dataset folder {root} does not exist; place the "
                               f"{task.dataset.format} dataset there, or pass --data-dir / set WMBENCH_DATA_DIR")
        print(f"wmbench: generating the {task.dataset.generator} dataset under {root} (first use)", file=sys.stderr)
        GENERATORS.get(task.dataset.generator)(root, dict(task.dataset.generator_options), progress=progress)
    return root


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
            raise WmbenchError(f"task '{task.name}': the {task.dataset.format} reader yielded sample id "
                               f"'{t.sample_id}' twice under {root}")
        seen.add(t.sample_id)
    if task.limit is not None and task.limit < len(transitions):
        keep = set(sorted(seen, key=lambda sid: _rank(task.seed, sid))[: task.limit])
        transitions = [t for t in transitions if t.sample_id in keep]
    return transitions


def _seed_everything(seed: int, sample_ids: Sequence[str]) -> None:
    """Seed per batch from its sample ids, so a resumed run draws what an uninterrupted one would."""
    value = int.from_bytes(hashlib.sha256(f"{seed}:{','.join(sample_ids)}".encode()).digest()[:4], "little")
    random.seed(value)
    np.random.seed(value)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)


def _resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SampleError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Evaluation:
    """Evaluates one model card into one run directory."""

    def __init__(self, card: ModelCard, run_dir: Path, data_dir: Path, batch_size: int = 8,
                 device: str | None = None, progress: bool = True, retry_failed: bool = False):
        if batch_size < 1:
            raise WmbenchError("--batch-size must be >= 1")
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
            self.summary.timings["model"] += time.perf_counter() - started
        return self._model

    def metric(self, name: str) -> Metric:
        if name not in self._metrics:
            self._metrics[name] = METRICS.get(name)()
        return self._metrics[name]

    def available_metrics(self, task: TaskSpec) -> list[Metric]:
        return [m for m in (self.metric(n) for n in task.metrics) if m.available()[0]]

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
        self.store.bind_task(task.name, task.sample_fingerprint, task.to_dict(), model_info)
        status = self.store.statuses(task.name)
        retry = {"failed"} if self.retry_failed else set()
        todo = [(i, t) for i, t in enumerate(transitions) if status.get(t.sample_id) in (None, *retry)]
        metrics = self.available_metrics(task)
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
        finally:
            bar.close()
        failed = sum(1 for s in self.store.statuses(task.name).values() if s == "failed")
        return TaskOutcome(task.name, len(transitions), evaluated, len(stale_items), failed)

    def _stale(self, task: TaskSpec, metrics: list[Metric], rescore: bool, selected: set[str]) -> set[str]:
        """Done samples whose scores must be (re)computed: all with --rescore, else those missing
        a score of a current metric version (metrics added to the task since they were scored)."""
        done = {s.sample_id for s in self.store.samples(task.name) if s.sample_id in selected
                and (s.status == "done" or (self.retry_failed and s.stage == "metrics"))}
        if rescore:
            return done
        versions = self.store.score_versions(task.name)
        return {sid for sid in done if any(versions.get((sid, m.name)) != m.version for m in metrics)}

    # one batch ---------------------------------------------------------------------------
    def _evaluate_batch(self, task: TaskSpec, chunk: list[tuple[int, Transition]], metrics: list[Metric]) -> None:
        clock = time.perf_counter()
        records: dict[str, SampleRecord] = {}
        loaded: list[tuple[int, Transition, np.ndarray, np.ndarray | None]] = []
        for position, t in chunk:
            info = t.describe()
            if task.kind == "fdp" and t.target is None and all("target" in m.needs for m in metrics) and metrics:
                records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "skipped", info,
                                                    error="no target frame, and every metric of the task needs one")
                continue
            try:
                source = t.source.load()
                target = t.target.load() if t.target is not None else None
            except SampleError as exc:
                records[t.sample_id] = SampleRecord(task.name, t.sample_id, position, "failed", info,
                                                    stage="data", error=str(exc))
                continue
            if target is not None and target.shape != source.shape:
                info["target_resized_from"] = list(target.shape[:2])
                target = _resize(target, source.shape)
            loaded.append((position, t, source, target))
        self.summary.timings["data"] += time.perf_counter() - clock

        predictions = self._predict(task, loaded, records)
        ok = [(pos, t, s, tg) for pos, t, s, tg in loaded if t.sample_id in predictions]
        clock = time.perf_counter()
        stored = {}
        for pos, t, source, target in ok:
            pred = predictions[t.sample_id]
            info = t.describe()
            if isinstance(pred, Candidates):
                if any(c.shape != source.shape for c in pred.images):
                    info["prediction_resized_from"] = list(pred.images[0].shape[:2])
                images = [c if c.shape == source.shape else _resize(c, source.shape) for c in pred.images]
                best = pred.best()
                predictions[t.sample_id] = images[best]
                stored[t.sample_id] = {"images": [self.store.put_image(images[best])],
                                       "candidates": [self.store.put_image(c) for c in images],
                                       "verifier_scores": pred.scores, "selected": best}
            elif task.kind == "fdp":
                if pred.shape != source.shape:
                    info["prediction_resized_from"] = list(pred.shape[:2])
                    predictions[t.sample_id] = pred = _resize(pred, source.shape)
                stored[t.sample_id] = {"images": [self.store.put_image(pred)]}
            else:
                stored[t.sample_id] = {"text": pred}
            records[t.sample_id] = SampleRecord(task.name, t.sample_id, pos, "done", info, stored[t.sample_id])
        self.summary.timings["harness"] += time.perf_counter() - clock

        scores = self._score(task, ok, predictions, metrics, records)
        clock = time.perf_counter()
        self.store.commit(list(records.values()), scores)
        self.summary.timings["harness"] += time.perf_counter() - clock

    def _model_batch(self, task: TaskSpec, items: list[tuple[int, Transition, np.ndarray, np.ndarray | None]]) -> Batch:
        reference = self.model.sees_reference
        fdp = task.kind == "fdp"
        return Batch(
            sample_ids=[t.sample_id for _, t, _, _ in items],
            sources=[s for _, _, s, _ in items],
            prompts=[task.render_prompt(t.action_text) for _, t, _, _ in items],
            targets=[tg for _, _, _, tg in items] if (not fdp or reference) else None,
            actions=[t.action_text for _, t, _, _ in items] if (fdp or reference) else None,
            action_vectors=[t.action_vector for _, t, _, _ in items] if (fdp or reference) else None,
            meta=[t.meta for _, t, _, _ in items],
            task=task.name,
        )

    def _call_model(self, task: TaskSpec, items) -> list[Any]:
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

    def _predict(self, task: TaskSpec, items, records: dict[str, SampleRecord]) -> dict[str, Any]:
        """Call the model on the batch; if it raises, call it per sample so that one bad sample
        fails alone. Returns sample_id -> validated prediction; failures go into `records`."""
        if not items:
            return {}
        clock = time.perf_counter()
        try:
            outputs = [(items, self._call_model(task, items))]
        except Exception:  # isolate the failing sample(s)
            outputs = []
            for item in items:
                try:
                    outputs.append(([item], self._call_model(task, [item])))
                except Exception as exc:
                    pos, t, _, _ = item
                    records[t.sample_id] = SampleRecord(task.name, t.sample_id, pos, "failed", t.describe(),
                                                        stage="model", error=_reason(exc))
        self.summary.timings["model"] += time.perf_counter() - clock
        predictions = {}
        for group, out in outputs:
            for (pos, t, _, _), value in zip(group, out):
                try:
                    predictions[t.sample_id] = _validate_output(task.kind, value)
                except SampleError as exc:
                    records[t.sample_id] = SampleRecord(task.name, t.sample_id, pos, "failed", t.describe(),
                                                        stage="output", error=str(exc))
        return predictions

    def _score(self, task: TaskSpec, items, predictions: dict[str, Any], metrics: list[Metric],
               records: dict[str, SampleRecord]) -> list[tuple]:
        clock = time.perf_counter()
        rows: list[tuple] = []
        if items:
            inp = MetricInput(
                kind=task.kind,
                predictions=[predictions[t.sample_id] for _, t, _, _ in items],
                sources=[s for _, _, s, _ in items],
                targets=[tg for _, _, _, tg in items],
                actions=[t.action_text for _, t, _, _ in items],
                references=[t.action_text for _, t, _, _ in items],
                meta=[t.meta for _, t, _, _ in items],
            )
            for metric in metrics:
                try:
                    values = np.asarray(metric.score(inp), dtype=np.float64).reshape(-1)
                    if len(values) != len(items):
                        raise ValueError(f"returned {len(values)} scores for {len(items)} samples")
                except Exception as exc:
                    for _, t, _, _ in items:
                        record = records[t.sample_id]
                        record.status, record.stage = "failed", "metrics"
                        record.error = f"metric '{metric.name}': {_reason(exc)}"
                    continue
                for (_, t, _, _), v in zip(items, values):
                    rows.append((task.name, t.sample_id, metric.name, metric.version,
                                 None if math.isnan(v) else float(v)))
        self.summary.timings["metrics"] += time.perf_counter() - clock
        return rows

    def _rescore_batch(self, task: TaskSpec, chunk: list[tuple[int, Transition]], metrics: list[Metric]) -> None:
        """Score stored predictions again (no model call); the data is reloaded for sources/targets."""
        clock = time.perf_counter()
        stored = {r.sample_id: r for r in self.store.samples(task.name, [t.sample_id for _, t in chunk])}
        items, predictions, records = [], {}, {}
        for position, t in chunk:
            record = stored[t.sample_id]
            try:
                source = t.source.load()
                target = t.target.load() if t.target is not None else None
            except SampleError as exc:
                record.status, record.stage, record.error = "failed", "data", str(exc)
                records[t.sample_id] = record
                continue
            if target is not None and target.shape != source.shape:
                target = _resize(target, source.shape)
            if task.kind == "fdp":
                predictions[t.sample_id] = self.store.get_image(record.prediction["images"][0])
            else:
                predictions[t.sample_id] = record.prediction["text"]
            record.status, record.stage, record.error = "done", None, None
            records[t.sample_id] = record
            items.append((position, t, source, target))
        self.summary.timings["data"] += time.perf_counter() - clock
        scores = self._score(task, items, predictions, metrics, records)
        with self.store.transaction() as db:
            db.execute(f"DELETE FROM scores WHERE task = ? AND sample_id IN ({','.join('?' * len(records))})",
                       (task.name, *records))
        self.store.commit(list(records.values()), scores)


@dataclass
class Candidates:
    """A best-of-N prediction: every candidate frame and its verifier score."""

    images: list[np.ndarray]
    scores: list[float]

    def best(self) -> int:
        """Highest score; ties keep the earlier candidate (as VerifiedModel.select)."""
        return min(range(len(self.scores)), key=lambda j: (-self.scores[j], j))


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
