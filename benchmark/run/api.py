"""The Python entry points: `evaluate` (what `wmbench run` does), `rescore`, and the typed result.

    import wmbench
    result = wmbench.evaluate("metaworld_fdp", "copy", limit=16)
    result.metrics["metaworld_fdp"]["change_iou"].mean

`model` is a card or adapter name, a card path, a `ModelCard`, or a `Model` instance built in the
caller's process (e.g. the model being trained). Bad input raises `wmbench.BadInput` (the CLI's
exit 2) before any model loads; failed samples are counted in the result (`failed`), never raised.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import BadInput
from ..core.tasks import TaskSpec, check_names, resolve_tasks
from ..core.yamlspec import build
from ..data import resolve_data_dir
from ..log.results import write_outputs
from ..log.store import RunStore, remove_unused
from ..metrics.weights import ENV_DIR
from ..models import ModelCard, discover_cards, resolve_card
from ..models.base import Model
from .capability import check_capabilities, supports
from .checks import check_device, check_model_args
from .dryrun import PlannedEvaluation, RunPlan, plan_run
from .judging import check_judges, dry_run_notes
from . import overrides
from .runner import Evaluation, TaskOutcome
from . import shards
from .selection import effective_task

DEFAULT_OUTPUT = Path("runs")
#: Task names, suite names, YAML paths or specs; a string may list several, comma-separated.
TaskSelection = str | os.PathLike | TaskSpec | Sequence[str | os.PathLike | TaskSpec]
#: A card or adapter name, a card path, "package.module:Class", a ModelCard, or a Model instance.
ModelSelection = str | os.PathLike | ModelCard | Model

@dataclass(frozen=True)
class MetricResult:
    """One metric of one task: the mean over scored samples with its 95% interval (None where the
    metric was unavailable or nothing was scored), how many samples it covers and how many failed."""

    name: str
    mean: float | None
    ci95: tuple[float, float] | None
    n: int
    n_failed: int
    higher_is_better: bool
    available: bool
    reason: str | None

    @classmethod
    def from_entry(cls, key: str, entry: dict[str, Any]) -> MetricResult:
        ci = entry.get("ci95")
        return cls(key, entry.get("mean"), tuple(ci) if ci else None, entry.get("n", 0), entry.get("n_failed", 0),
                   bool(entry.get("higher_is_better")), bool(entry.get("available")), entry.get("reason"))


@dataclass
class RunResult:
    """What `evaluate` returns: per task, the metric results and the sample counts; `results` is
    the results.json document; `samples` the per-sample scores as a DataFrame."""

    run_dir: Path
    model: str
    metrics: dict[str, dict[str, MetricResult]]
    counts: dict[str, dict[str, int]]
    results: dict[str, Any]
    outcomes: list[TaskOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Samples that failed, or have a failed score, in the tasks of this call."""
        return sum(o.failed + o.failed_scores for o in self.outcomes)

    @property
    def samples(self):
        """pandas DataFrame: one row per (task, sample), with its status and one column per metric."""
        from ..log.runlog import read_run

        return read_run(self.run_dir).scores_frame()

    @classmethod
    def of(cls, run_dir: Path, results: dict[str, Any], outcomes: list[TaskOutcome] | None = None,
           timings: dict[str, float] | None = None) -> RunResult:
        tasks = results["tasks"]
        return cls(Path(run_dir), ((results.get("model") or {}).get("card") or {}).get("name", ""),
                   {t: {k: MetricResult.from_entry(k, e) for k, e in d["metrics"].items()} for t, d in tasks.items()},
                   {t: dict(d["counts"]) for t, d in tasks.items()}, results, list(outcomes or []), dict(timings or {}))


def task_specs(tasks: TaskSelection, *, limit: int | None = None, seed: int | None = None,
               dataset_options: dict[str, Any] | None = None,
               include_path: Sequence[str | os.PathLike] | None = None, judge: str | None = None,
               judge_args: dict[str, Any] | None = None, with_counterfactual: bool | None = None) -> list[TaskSpec]:
    """Task names, suite names, YAML paths or `TaskSpec`s (a comma-separated string is split)
    -> specs with `limit`, `seed` and dataset options applied, the judge of judged metrics
    replaced (`judge`, `judge_args`) and counterfactual predictions switched (run/overrides.py)."""
    if isinstance(tasks, (str, os.PathLike, TaskSpec)):
        tasks = [tasks]
    selectors: list[str | TaskSpec] = []
    for task in tasks:
        if isinstance(task, os.PathLike):
            task = os.fspath(task)
        selectors += [p.strip() for p in task.split(",") if p.strip()] if isinstance(task, str) else [task]
    if not selectors:
        raise BadInput("no task given")
    for spec in selectors:  # a spec built in Python is checked as a YAML file is (formats, metrics, args)
        if isinstance(spec, TaskSpec):
            check_names(spec, spec.path or f"TaskSpec '{spec.name}'")
    specs = [s if isinstance(s, TaskSpec) else resolve_tasks([s], include_path)
             for s in selectors]
    flat = [x for s in specs for x in (s if isinstance(s, list) else [s])]
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be >= 1, got {limit}")
    specs = [effective_task(t, limit, seed, dataset_options) for t in flat]
    return overrides.with_counterfactual(overrides.with_judge(specs, judge, judge_args), with_counterfactual)


def model_card(model: ModelSelection, model_args: dict[str, Any] | None = None,
               model_name: str | None = None) -> tuple[ModelCard, Model | None]:
    """The card a run records for `model`, and the instance when the caller built one."""
    instance = None
    if isinstance(model, Model):
        if model_args:
            raise BadInput("model_args apply to a model the harness builds; pass them to your Model's constructor")
        cls = type(model)
        instance = model
        card = ModelCard(name=cls.__name__, adapter=f"{cls.__module__}:{cls.__qualname__}")
    elif isinstance(model, ModelCard):
        card = ModelCard(**{**model.to_dict(), "args": {**model.args, **(model_args or {})}, "path": model.path})
    elif isinstance(model, (str, os.PathLike)):
        card = resolve_card(str(model), model_args)
    else:
        raise BadInput(f"model must be a name, a card path, a ModelCard or a wmbench.Model instance, "
                       f"got {type(model).__name__}")
    if model_name:
        card = ModelCard(**{**card.to_dict(), "name": model_name, "path": card.path})
    return card, instance


def default_plan(tasks: list[TaskSpec], model_args: dict[str, Any] | None = None
                 ) -> list[tuple[ModelCard, list[TaskSpec]]]:
    """The built-in baselines of the `default` suite, each on the tasks it supports."""
    cards = [c for c in discover_cards().values() if "default" in c.suites]
    if model_args:
        cards = [resolve_card(c.path, model_args) for c in cards]
    plan = [(card, [t for t in tasks if supports(card, t)]) for card in cards]
    plan = [(card, card_tasks) for card, card_tasks in plan if card_tasks]
    if not plan:
        raise BadInput("no (model, task) pair to run: no default model supports the selected tasks")
    return plan


def model_plan(cards: list[ModelCard], tasks: list[TaskSpec]) -> list[tuple[ModelCard, list[TaskSpec]]]:
    """Several models: each on the tasks it supports; the pairs it cannot run are listed on stderr.
    One model must support every task (BadInput otherwise)."""
    if len(cards) == 1:
        check_capabilities(cards[0], tasks)
        return [(cards[0], tasks)]
    plan, skipped = [], []
    for card in cards:
        mine = [t for t in tasks if supports(card, t)]
        skipped += [f"{card.name} x {t.name}" for t in tasks if t not in mine]
        if mine:
            plan.append((card, mine))
    if not plan:
        raise BadInput(f"no (model, task) pair to run: none of {', '.join(c.name for c in cards)} supports "
                       f"{', '.join(t.name for t in tasks)}")
    if skipped:
        print(f"wmbench: skipping {len(skipped)} pair(s) the model cannot run: {', '.join(skipped)}", file=sys.stderr)
    return plan


def evaluate(tasks: TaskSelection, model: ModelSelection, model_args: dict[str, Any] | None = None, *,
             output: str | os.PathLike | None = None, limit: int | None = None, seed: int | None = None,
             batch_size: int = 8, device: str | None = None, data_dir: str | os.PathLike | None = None,
             rescore: bool = False, retry_failed: bool = False, progress: bool = True,
             include_path: Sequence[str | os.PathLike] | None = None,
             dataset_options: dict[str, Any] | None = None, weights_dir: str | os.PathLike | None = None,
             model_name: str | None = None, timeout: float | None = None,
             shard: str | shards.Shard | None = None, judge: str | None = None,
             judge_args: dict[str, Any] | None = None, with_counterfactual: bool | None = None,
             dry_run: bool = False) -> RunResult | RunPlan:
    """Evaluate one model on tasks into one run directory (default `runs/<model name>`) and write
    its results.json and samples.jsonl. Re-running resumes: stored samples are not evaluated
    again; metrics added since are scored from the stored predictions; `rescore` recomputes every
    score; `retry_failed` evaluates failed samples again; `timeout`: seconds a model call may take
    before its samples fail (stage model, reason timeout); `shard` ("i/n", default from RANK /
    WORLD_SIZE or a Slurm array): evaluate this rank's part into its own shard store, merged when
    every shard is done (run/shards.py); `judge` / `judge_args`: the judge of every judged metric
    (run/overrides.py); `with_counterfactual`: True adds counterfactual predictions to FDP tasks,
    False leaves them out, None: as the tasks say. Before it starts it prints the plan's one-line
    summary (calls, frames, estimated cost: run/dryrun.py) on stderr and checks that every judge
    with calls to make is reachable (BadInput otherwise); `dry_run`: return that `RunPlan` and stop,
    without building any model or writing anything. See `wmbench run --help` for the rest."""
    specs = task_specs(tasks, limit=limit, seed=seed, dataset_options=dataset_options, include_path=include_path,
                       judge=judge, judge_args=judge_args, with_counterfactual=with_counterfactual)
    card, instance = model_card(model, model_args, model_name)
    check_capabilities(card, specs, instance)
    if instance is None:
        check_model_args(card)
    shard = shards.from_environment(shard)
    device = shards.rank_device(device)
    check_device(device)
    if batch_size < 1:
        raise BadInput(f"--batch-size must be >= 1, got {batch_size}")
    if timeout is not None and timeout <= 0:
        raise BadInput(f"--timeout must be > 0 seconds, got {timeout}")
    data_dir = resolve_data_dir(data_dir)
    if output is not None and not str(output).strip():
        raise BadInput("--output is empty: name a run directory (default runs/<model>)")
    run_dir = Path(output) if output is not None else DEFAULT_OUTPUT / card.name
    config = {"batch_size": batch_size, "data_dir": str(data_dir), "limit": limit, "seed": seed, "device": device}
    evaluation = PlannedEvaluation(card, run_dir, data_dir, batch_size=batch_size, device=device, progress=progress,
                                   retry_failed=retry_failed, model=instance, timeout=timeout, shard=shard)
    with _weights_dir(weights_dir):
        plan = plan_run(evaluation, specs, rescore=rescore)  # selects every task's samples: missing data stops here
        if dry_run:
            plan.notes += dry_run_notes(evaluation, specs, plan)
            return plan
        print(plan.summary(), file=sys.stderr)
        check_judges(evaluation, specs, plan)
        return _finish(evaluation, specs, config, rescore=rescore)


@contextlib.contextmanager
def _weights_dir(folder: str | os.PathLike | None):
    """Metrics locate their weights through $WMBENCH_WEIGHTS_DIR (metrics/weights.py): set for the
    call, then put back."""
    if not folder:
        yield
        return
    before = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = str(Path(folder).expanduser())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = before


def rescore(run_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, batch_size: int = 8,
            device: str | None = None, progress: bool = True) -> RunResult:
    """Recompute every score of a finished run from its stored predictions, with the metrics of its
    stored task specs; the model is never called (samples never evaluated stay pending)."""
    run_dir = Path(run_dir)
    if not (run_dir / "store.sqlite").is_file():
        raise BadInput(f"{run_dir} is not a run directory with a store (no store.sqlite)")
    return _from_store(run_dir, data_dir, batch_size, device, progress, rescore=True)


def merge(run_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, batch_size: int = 8,
          device: str | None = None, progress: bool = True) -> RunResult:
    """Merge the shard stores of a data-parallel run (`shards/<i>-of-<n>/`) into the run's store,
    score set-level metrics over the merged set and write results.json (see run/shards.py). The
    model is never called; merging again after more shards finished adds them."""
    run_dir = Path(run_dir)
    with shards.merge_lock(run_dir):
        shards.merge_stores(run_dir).close()
        return _from_store(run_dir, data_dir, batch_size, device, progress, rescore=False)


def _from_store(run_dir: Path, data_dir: str | os.PathLike | None, batch_size: int, device: str | None,
                progress: bool, *, rescore: bool) -> RunResult:
    """Score a stored run again (all scores with `rescore`, else only what is missing), without
    the model, with the task specs and card its store holds."""
    store = RunStore(run_dir)
    try:
        bindings = {t: store.task_binding(t) for t in store.stored_tasks()}
    finally:
        store.close()
    if not bindings:
        raise BadInput(f"{run_dir} holds no evaluated task")
    specs = [build(TaskSpec, spec, run_dir / "store.sqlite") for spec, _ in bindings.values()]
    card = ModelCard(**next(iter(bindings.values()))[1]["card"])
    previous = _read_config(run_dir) or next((_read_config(f) for f in shards.shard_folders(run_dir)), {})
    data_dir = resolve_data_dir(data_dir or previous.get("data_dir"))
    config = {**previous, "batch_size": batch_size, "data_dir": str(data_dir), "device": device}
    evaluation = PlannedEvaluation(card, run_dir, data_dir, batch_size=batch_size, device=device, progress=progress)
    if rescore:  # every judge of the run is asked again: say what it costs, and check it first
        plan = plan_run(evaluation, specs, rescore=True, generate=False)
        print(plan.summary(), file=sys.stderr)
        check_judges(evaluation, specs, plan)
    return _finish(evaluation, specs, config, rescore=rescore, generate=False)


def _finish(evaluation: Evaluation, specs: list[TaskSpec], config: dict[str, Any], *, rescore: bool,
            generate: bool = True) -> RunResult:
    """Run, then write results.json for what is stored, also when the run stopped early."""
    try:
        summary = evaluation.run(specs, rescore=rescore, generate=generate)
    except BaseException as exc:
        # results.json for every batch this invocation stored before the stop; a refusal before
        # anything was stored (bad input, e.g. a model that cannot be built) leaves the run
        # directory exactly as it was: not there at all when this invocation created it
        refused = isinstance(exc, BadInput) and not evaluation.committed
        if evaluation.opened and not refused:
            try:
                write_outputs(evaluation.store, config)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        unused = refused and evaluation.created and evaluation.shard is None and evaluation.opened \
            and evaluation.store.is_empty()
        evaluation.close()
        if unused:
            remove_unused(evaluation.run_dir)
        raise
    clock = time.perf_counter()
    try:
        results = write_outputs(evaluation.store, config)
    finally:
        evaluation.close()
    summary.timings["harness"] += time.perf_counter() - clock
    shard = evaluation.shard
    if shard is not None and shards.mark_done(evaluation.run_dir, shard, [t.name for t in specs]):
        # the last rank of its launch to finish merges (any other rank would find a shard not done)
        print(f"wmbench: every shard of {evaluation.run_dir} is done; merging", file=sys.stderr)
        merged = merge(evaluation.run_dir, batch_size=evaluation.batch_size, device=evaluation.device,
                       progress=evaluation.progress)
        merged.outcomes, merged.timings = summary.outcomes, summary.timings
        return merged
    chosen = {o.task for o in summary.outcomes}
    view = {**results, "tasks": {t: d for t, d in results["tasks"].items() if t in chosen}}
    return RunResult.of(evaluation.store.run_dir, view, summary.outcomes, summary.timings)


def _read_config(run_dir: Path) -> dict[str, Any]:
    """The config of the run's last results.json ({} before the first one was written)."""
    from ..log.runlog import read_run

    try:
        return read_run(run_dir).results.get("config") or {}
    except BadInput:
        return {}
