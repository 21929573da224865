"""What a run will do before it does it (`wmbench run --dry-run`, `evaluate(..., dry_run=True)`,
and the one-line summary every run prints first): per model x task the selected samples, the model
calls (x best-of-N candidates, plus counterfactual predictions), judge, verifier and other
metric-model calls, the frames to decode, and an estimated cost where the cards declare prices
(`pricing`, see `wmbench.models.Pricing`).

The samples are the runner's own: `PlannedEvaluation` selects each task through the runner's
`_select` once and hands the same transitions to the run, so a task whose data is missing fails
the dry run as it fails the run (BadInput, exit 2), and nothing is read twice. What the run
directory already holds counts as a resume counts it: stored samples are not evaluated again,
stored scores of an older metric version are scored again (every per-sample metric of such a
sample is: a judge too). Nothing is written and no model is built.

Counts assume every sample loads and every model call succeeds: failures and judge retries
(shown as an upper bound) can only lower or raise them as stated.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.tasks import TaskSpec
from ..core.types import Transition
from ..log.store import RunStore
from ..metrics.base import ModelBackedMetric
from ..models import ModelCard, Pricing, adapter_class, resolve_card
from .capability import capabilities, kind_of
from .counterfactual import counterfactual_action
from .overrides import is_judged
from .runner import Evaluation
from .scoring import TaskMetrics
from . import shards


class PlannedEvaluation(Evaluation):
    """An `Evaluation` whose selections are made once: for the plan, then reused by the run."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._selected: dict[str, list[Transition]] = {}

    def _select(self, task: TaskSpec) -> list[Transition]:
        if task.name not in self._selected:
            started = time.perf_counter()
            self._selected[task.name] = super()._select(task)
            self._add_time("data", started)
        return self._selected[task.name]


@dataclass
class Cost:
    """An estimated cost of one role's calls, from its card's `pricing`."""

    role: str  # model, judge, verifier, sampler
    card: str
    amount: float
    currency: str
    upper: float  # with every judge retry


@dataclass
class TaskPlan:
    """One model on one task. `model_calls`: predictions asked of the model (an FDP frame, a
    best-of-N candidate, an IDP answer, a likelihood query of a probe), i.e.
    (`evaluate` + `counterfactual`) x `candidates`."""

    model: str
    task: str
    kind: str
    samples: int  # selected (this rank's share for a shard)
    sample_ids: list[str]
    stored: int  # already in the run directory
    evaluate: int  # to be evaluated now: the model is asked about these
    skipped: int  # not stored yet but skipped: the task cannot use them (no target)
    rescore: int  # stored samples scored again
    candidates: int  # predictions per sample: best-of-N's n, else 1
    counterfactual: int  # samples that get a counterfactual prediction (one more, x candidates)
    model_calls: int
    verifier_calls: int
    judge_calls: int
    judge_calls_max: int  # with every retry of every judge
    metric_model_calls: int  # other model-backed metrics (e.g. idp_cycle's IDP model)
    frames: int  # images to decode (sources, targets, aux)
    judges: list[str] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)  # "role card" with calls but no declared prices


@dataclass
class RunPlan:
    """What `evaluate(..., dry_run=True)` returns: the plan of one model's run."""

    model: str
    run_dir: Path
    tasks: list[TaskPlan]
    notes: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(t, name) for t in self.tasks)

    def cost(self) -> dict[str, tuple[float, float]]:
        """currency -> (estimate, upper bound with every judge retry)."""
        out: dict[str, tuple[float, float]] = {}
        for c in (c for t in self.tasks for c in t.costs):
            low, high = out.get(c.currency, (0.0, 0.0))
            out[c.currency] = (low + c.amount, high + c.upper)
        return out

    def summary(self) -> str:
        """The one line a run prints before it starts."""
        judge = f"{self.total('judge_calls')} judge calls"
        if self.total("judge_calls_max") > self.total("judge_calls"):
            judge += f" (up to {self.total('judge_calls_max')} with retries)"
        parts = [f"{len(self.tasks)} task(s)", f"{self.total('samples')} samples ({self.total('stored')} stored)",
                 f"{self.total('model_calls')} model calls{_multipliers(self.tasks)}", judge,
                 f"{self.total('verifier_calls')} verifier calls"]
        if self.total("metric_model_calls"):
            parts.append(f"{self.total('metric_model_calls')} metric-model calls")
        parts.append(f"{self.total('frames')} frames to decode")
        line = f"wmbench: plan: {self.model} -> {self.run_dir}: " + ", ".join(parts)
        costs = self.cost()
        if costs:
            line += "; est. cost " + ", ".join(money(low, cur) + (f" (up to {money(high, cur)})" if high > low else "")
                                              for cur, (low, high) in costs.items())
            line += " for the cards that declare prices"
        return line

    def table(self) -> str:
        """A Markdown table, one row per task, then the notes."""
        head = ["task", "samples", "stored", "evaluate", "skipped", "rescore", "model calls", "candidates",
                "counterfactual", "judge calls", "verifier calls", "frames", "est. cost"]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for t in self.tasks:
            cost = " + ".join(f"{c.role} {money(c.amount, c.currency)}" for c in t.costs) or "–"
            judge = f"{t.judge_calls}" + (f" (≤{t.judge_calls_max})" if t.judge_calls_max > t.judge_calls else "")
            rows.append("| " + " | ".join(map(str, [
                t.task, t.samples, t.stored, t.evaluate, t.skipped, t.rescore, t.model_calls, f"x{t.candidates}",
                f"+{t.counterfactual}", judge, t.verifier_calls, t.frames, cost])) + " |")
        judges = sorted({j for t in self.tasks for j in t.judges})
        lines = [f"{self.model} -> {self.run_dir}", "", *rows]
        if judges:
            lines += ["", f"judges: {', '.join(judges)}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "run_dir": str(self.run_dir), "notes": self.notes,
                "tasks": [asdict(t) for t in self.tasks], "cost": self.cost()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _multipliers(tasks: list[TaskPlan]) -> str:
    notes = []
    candidates = sorted({t.candidates for t in tasks if t.candidates > 1})
    if candidates:
        notes.append(f"x{'/'.join(map(str, candidates))} best-of-N candidates")
    if any(t.counterfactual for t in tasks):
        notes.append(f"{sum(t.counterfactual for t in tasks)} of them counterfactual predictions")
    return f" (incl. {'; '.join(notes)})" if notes else ""


def money(amount: float, currency: str) -> str:
    return f"${amount:,.2f}" if currency == "USD" else f"{amount:,.2f} {currency}"


# planning --------------------------------------------------------------------------------------
def plan_run(evaluation: PlannedEvaluation, specs: list[TaskSpec], *, rescore: bool = False,
             generate: bool = True) -> RunPlan:
    """The plan of `evaluation` (one model, one run directory) on `specs`; BadInput as the run would
    raise it (missing data, a run directory bound to another configuration). `generate=False`:
    the model is not called (`wmbench.rescore`), only stored predictions are scored."""
    tasks, missing = [], []
    for spec in specs:
        try:
            tasks.append(plan_task(evaluation, spec, rescore=rescore, generate=generate))
        except BadInput as exc:  # every task is looked at, so the message can say which ones have data
            missing.append((spec.name, exc))
    if missing:
        first = missing[0][1]
        if not tasks:
            raise first
        have = ",".join(t.task for t in tasks)
        raise BadInput(f"{first}; {len(missing)} of the {len(specs)} selected tasks cannot run here "
                       f"({', '.join(name for name, _ in missing)}), the others can: --tasks {have}") from first
    plan = RunPlan(evaluation.card.name, evaluation.run_dir, tasks)
    unpriced = sorted({u for t in tasks for u in t.unpriced})
    if unpriced and any(t.costs for t in tasks):
        plan.notes.append(f"no prices declared for {', '.join(unpriced)}: their calls are not in the estimate")
    return plan


def plan_task(evaluation: PlannedEvaluation, task: TaskSpec, *, rescore: bool = False,
              generate: bool = True) -> TaskPlan:
    transitions = evaluation._select(task)
    kind = kind_of(task)(task, transitions)
    metrics = TaskMetrics(task, evaluation.metric)
    mine = shards.share(evaluation.shard, evaluation.run_dir, task.name, transitions)
    ids = [t.sample_id for t in mine]
    todo, stale, stored = _stored_state(evaluation, task, ids, metrics, rescore)
    if not generate:
        todo = set()
    skip = {t.sample_id for t in mine if kind.skip_reason(t, metrics.all_need_target)}
    evaluate = [t for t in mine if t.sample_id in todo and t.sample_id not in skip]
    rescored = [t for t in mine if t.sample_id in stale]
    prompts = [task.render_prompt(t.action_text) for t in evaluate]
    counterfactual = 0
    if metrics.counterfactual_keys:
        vocabulary = sorted({t.action_text for t in transitions})
        others = [counterfactual_action(t.sample_id, t.action_text, vocabulary) for t in evaluate]
        prompts += [task.render_prompt(a) for a in others if a is not None]
        counterfactual = sum(a is not None for a in others)
    card, instance = evaluation.card, evaluation._model
    candidates, generates, verifier = _best_of_n(card, instance)
    if task.kind == "probe":
        queries = sum(1 + sum(v is not None for v in kind.negatives(t).values()) for t in evaluate)
        model_calls, candidates = queries, 1
    else:
        model_calls = (len(evaluate) + counterfactual) * candidates if generates else 0
    verifier_calls = (len(evaluate) + counterfactual) * candidates if verifier else 0
    scored = evaluate + rescored
    plan = TaskPlan(card.name, task.name, task.kind, len(mine), ids, stored, len(evaluate), len(todo & skip),
                    len(rescored), candidates, counterfactual, model_calls, verifier_calls, 0, 0, 0,
                    _frames(task, kind, scored, metrics))
    for key, metric in metrics.per_sample.items():
        if not isinstance(metric, ModelBackedMetric):
            continue
        if is_judged(_ref(task, key)):
            plan.judge_calls += len(scored)
            plan.judge_calls_max += len(scored) * (1 + getattr(metric, "retries", 0))
            if metric.model_id() not in plan.judges:
                plan.judges.append(metric.model_id())
            _judge_cost(plan, metric, scored)
        else:
            plan.metric_model_calls += len(scored)
    _model_cost(plan, task, card, instance, prompts, verifier)
    return plan


def _ref(task: TaskSpec, key: str):
    return next(r for r in task.metric_refs if r.key == key)


def _stored_state(evaluation: PlannedEvaluation, task: TaskSpec, ids: list[str], metrics: TaskMetrics,
                  rescore: bool) -> tuple[set[str], set[str], int]:
    """(to evaluate, to score again, stored) as the run directory stands; read only."""
    folder = evaluation.shard.folder(evaluation.run_dir) if evaluation.shard else evaluation.run_dir
    if not (folder / "store.sqlite").is_file():
        return set(ids), set(), 0
    store = RunStore(folder)
    try:  # what the run would refuse, refused before anything is written (the run binds, then refuses)
        store.check_model(evaluation.identity)
        store.check_task(task.name, task.sample_fingerprint, evaluation.identity)
        plan = store.plan(task.name, ids, metrics.versions, retry_failed=evaluation.retry_failed, rescore=rescore)
        statuses = store.statuses(task.name)
    finally:
        store.close()
    return set(plan.todo), set(plan.stale), sum(1 for sid in ids if sid in statuses)


def _frames(task: TaskSpec, kind: Any, items: list[Transition], metrics: TaskMetrics) -> int:
    """Images the run decodes: per sample its source, its target where it has one, the aux images
    its metrics read; a probe also reads the other sample's target of `other_target`."""
    aux = metrics.aux_keys
    count = sum(1 + (t.target is not None) + len(aux & set(t.aux)) for t in items)
    if task.kind == "probe":
        count += sum(kind.negatives(t).get("other_target") is not None for t in items)
    return count


def _arg(card: ModelCard, name: str, default: Any = None) -> Any:
    """A card's arg, else the adapter constructor's default."""
    if name in card.args:
        return card.args[name]
    try:
        param = inspect.signature(adapter_class(card).__init__).parameters.get(name)
    except BadInput:
        return default
    return default if param is None or param.default is param.empty else param.default


def _best_of_n(card: ModelCard, instance: Any) -> tuple[int, bool, ModelCard | None]:
    """(candidates per prediction, whether the model generates them, the verifier's card)."""
    try:
        best_of_n = "predict_candidates" in capabilities(card, instance)
    except BadInput:  # a stored run of a model built in another process (rescore): it is not called
        return 1, True, None
    if not best_of_n:
        return 1, True, None
    if instance is not None:
        return int(getattr(instance, "n", 1)), True, getattr(instance, "verifier_card", None)
    verifier = _arg(card, "verifier")
    try:
        verifier_card = resolve_card(str(verifier), _arg(card, "verifier_args") or {}) if verifier else None
    except BadInput:
        verifier_card = None
    return int(_arg(card, "n", 1)), not _arg(card, "candidates_from"), verifier_card


# costs -----------------------------------------------------------------------------------------
def _output_tokens(card: ModelCard, pricing: Pricing) -> int:
    if pricing.output_tokens is not None:
        return pricing.output_tokens
    value = _arg(card, "max_tokens", _arg(card, "max_new_tokens", 0))
    return int(value or 0)


def _add_cost(plan: TaskPlan, role: str, card: ModelCard | None, calls: list[tuple[int, int]],
              retries: int = 0) -> None:
    """`calls`: (images, prompt characters) of each call of `role`."""
    if not calls or card is None:
        return
    if card.pricing is None:
        plan.unpriced.append(f"{role} {card.name}")
        return
    out = _output_tokens(card, card.pricing)
    amount = sum(card.pricing.call_cost(images, chars, out) for images, chars in calls)
    plan.costs.append(Cost(role, card.name, amount, card.pricing.currency, amount * (1 + retries)))


def _judge_cost(plan: TaskPlan, metric: ModelBackedMetric, items: list[Transition]) -> None:
    try:
        card = metric.model_card() if metric.model_name else None
    except BadInput:
        card = None
    prompt = getattr(metric, "prompt", "")
    calls = [(2, len(prompt.replace("{instruction}", t.action_text))) for t in items]
    _add_cost(plan, "judge", card, calls, getattr(metric, "retries", 0))


def _model_cost(plan: TaskPlan, task: TaskSpec, card: ModelCard, instance: Any, prompts: list[str],
                verifier: ModelCard | None) -> None:
    """The model's own calls (`prompts`: one per prediction, counterfactual ones included);
    best-of-N: the sampler's generations and the verifier's queries, per candidate."""
    if instance is not None:
        return
    if task.kind == "probe":
        _add_cost(plan, "model", card, [(2, len(task.prompt_template))] * plan.model_calls)
        return
    images = 1 if task.kind == "fdp" else 2
    generations = [(images, len(p)) for p in prompts for _ in range(plan.candidates)] if plan.model_calls else []
    if verifier is None:
        _add_cost(plan, "model", card, generations)
        return
    sampler = _arg(card, "sampler")
    try:
        sampler_card = resolve_card(str(sampler), _arg(card, "sampler_args") or {}) if sampler else None
    except BadInput:
        sampler_card = None
    _add_cost(plan, "sampler", sampler_card, generations)
    question = len(str(_arg(card, "verifier_prompt", "")))
    _add_cost(plan, "verifier", verifier, [(2, question)] * plan.verifier_calls)
