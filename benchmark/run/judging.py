"""Judges must be ready before a run generates anything: a judged task whose judge cannot be
reached would otherwise generate for hours and then fail every score.

A judge's adapter may declare `preflight(network=True, timeout=...)` (the OpenAI-compatible
adapter does: the API key's environment variable is set, unless the server is on this machine;
with `network`, `GET <base_url>/models` answers within a few seconds and accepts the key). A run
with judge calls to make checks every judge first and stops with BadInput (exit 2) naming what is
missing; a dry run checks without the network and reports instead of stopping. Judges without a
preflight (a local HF model, a test adapter) are not checked here; a judge that cannot be built is
shown unavailable with its reason, as before.
"""

from __future__ import annotations

from ..core.errors import BadInput
from ..core.tasks import TaskSpec
from ..metrics.base import ModelBackedMetric
from ..models import adapter_class
from .dryrun import PlannedEvaluation, RunPlan
from .overrides import is_judged


def judge_problems(evaluation: PlannedEvaluation, specs: list[TaskSpec], plan: RunPlan,
                   network: bool = True) -> list[str]:
    """One line per judge that is not ready, over the tasks with judge calls to make."""
    busy = {t.task for t in plan.tasks if t.judge_calls}
    problems, seen = [], set()
    for spec in specs:
        if spec.name not in busy:
            continue
        for ref in spec.metric_refs:
            if not is_judged(ref):
                continue
            metric = evaluation.metric(ref)
            who = (ref.args.get("model"), repr(ref.args.get("model_args")))
            if who in seen or not isinstance(metric, ModelBackedMetric) or metric.model_name is None:
                continue
            seen.add(who)
            problem = _problem(metric, network)
            if problem:
                problems.append(f"judge '{metric.model_id()}' ({spec.name}: {ref.key}): {problem}")
    return problems


def _problem(metric: ModelBackedMetric, network: bool) -> str | None:
    ok, _ = metric.available()
    if not ok:  # shown unavailable with its reason (metrics.base), as before
        return None
    try:
        if getattr(adapter_class(metric.model_card()), "preflight", None) is None:
            return None
        metric.adapter().preflight(network=network)
    except BadInput as exc:
        return str(exc)
    return None


def check_judges(evaluation: PlannedEvaluation, specs: list[TaskSpec], plan: RunPlan) -> None:
    """BadInput before any generation when a judge with calls to make is not ready."""
    problems = judge_problems(evaluation, specs, plan)
    if problems:
        raise BadInput("; ".join(problems) + ". Nothing was generated: fix the judge, choose another one with "
                       "--judge (docs/paper-protocol.md), or price the run with --dry-run")


def dry_run_notes(evaluation: PlannedEvaluation, specs: list[TaskSpec], plan: RunPlan) -> list[str]:
    """What a dry run says about its judges (no network): the run would stop on these."""
    return [f"{p} (a real run stops here, before generating)"
            for p in judge_problems(evaluation, specs, plan, network=False)]
