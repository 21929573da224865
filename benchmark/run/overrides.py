"""Rewrites of task specs before a run: the judge of judged metrics (`--judge`, `--judge-args`) and
the counterfactual switch (`--with-counterfactual`, `--no-counterfactual`).

Both change only a task's `metrics`, never what decides its samples and predictions (the sample
fingerprint leaves metrics out), so a run directory accepts the rewritten task and scores its
stored predictions again where a metric's options changed.

**The judge is part of the metric's identity.** A judged metric (a `ModelBackedMetric` whose
`role` is "judge", e.g. `vlm_judge`) names its judge in its options, and the stored score version
hashes the options: scores of another judge are stale, recomputed from the stored predictions,
never mixed. Tables key columns by the metric's key (its `label`, else its name), not by its
options, so a judge override also renames the column to `<base>@<judge>` (`base`: the key up to
any earlier `@`): two runs judged by different judges land in two columns of one leaderboard.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.errors import BadInput
from ..core.tasks import MetricRef, TaskSpec
from ..core.yamlspec import content_hash
from ..metrics import METRICS
from ..metrics.base import ModelBackedMetric
from .counterfactual import COUNTERFACTUAL

#: The metric `--with-counterfactual` adds to an FDP task that has none needing counterfactuals.
COUNTERFACTUAL_METRIC = "counterfactual_sensitivity"


def is_judged(ref: MetricRef) -> bool:
    """A metric scored by a judge model (its class is model-backed with role "judge")."""
    cls = METRICS.get(ref.name)
    return isinstance(cls, type) and issubclass(cls, ModelBackedMetric) and cls.role == "judge"


def needs_counterfactual(ref: MetricRef) -> bool:
    """A metric that makes the runner ask the model for one more prediction per sample."""
    return COUNTERFACTUAL in METRICS.get(ref.name).aux_keys


def judge_identity(judge: str, judge_args: dict[str, Any] | None) -> str:
    """What a column label says of a judge: the card's name (a path reads the card), plus a short
    hash of the judge args when there are any (another temperature is another judge)."""
    from ..models import resolve_card

    name = resolve_card(judge).name
    return f"{name}+{content_hash(judge_args)[:6]}" if judge_args else name


def with_judge(specs: list[TaskSpec], judge: str | None, judge_args: dict[str, Any] | None = None) -> list[TaskSpec]:
    """`specs` with the judge of every judged metric set to `judge` (a card name, card path or
    adapter name) and its model args to `judge_args`; with `judge_args` alone, those args are
    merged over each metric's own. BadInput: an unknown judge, one without the `answer`
    capability, or no judged metric among the tasks. Idempotent."""
    if judge is None and not judge_args:
        return specs
    if judge is not None:
        _check_judge(judge, judge_args)
    out, touched = [], False
    for spec in specs:
        entries, changed = [], False
        for entry, ref in zip(spec.metrics, spec.metric_refs):  # untouched entries stay as written
            if is_judged(ref):
                touched = True
                new = _rejudged(ref, judge, judge_args)
                if new != ref:
                    entry, changed = new, True
            entries.append(entry)
        out.append(dataclasses.replace(spec, metrics=entries) if changed else spec)
    if not touched:
        raise BadInput(f"--judge / --judge-args: none of the selected tasks ({', '.join(s.name for s in specs)}) has a "
                       f"judged metric (e.g. vlm_judge); the paper's judged tasks are the suite paper-table2")
    return out


def _check_judge(judge: str, judge_args: dict[str, Any] | None) -> None:
    from ..models import adapter_class, resolve_card

    card = resolve_card(judge, judge_args)
    capabilities = adapter_class(card).capabilities()
    if "answer" not in capabilities:
        raise BadInput(f"--judge {judge}: adapter '{card.adapter}' cannot judge (a judge needs the `answer` "
                       f"capability; it has {', '.join(capabilities) or 'none'})")


def _rejudged(ref: MetricRef, judge: str | None, judge_args: dict[str, Any] | None) -> MetricRef:
    args = dict(ref.args)
    if judge is not None and judge != args.get("model"):
        args["model"] = judge
        args.pop("model_args", None)  # those were for the task's own judge
    if judge_args:
        args["model_args"] = {**(args.get("model_args") or {}), **judge_args} if judge is None else dict(judge_args)
    if args == ref.args:
        return ref
    base = (ref.label or ref.name).split("@")[0]
    label = f"{base}@{judge_identity(args['model'], args.get('model_args'))}" if args.get("model") else ref.label
    return MetricRef(ref.name, args, label)


def with_counterfactual(specs: list[TaskSpec], on: bool | None) -> list[TaskSpec]:
    """None: the tasks as written. True: FDP tasks without a counterfactual metric get
    `counterfactual_sensitivity` (one more prediction per sample). False: metrics that need
    counterfactual predictions are left out (a task left with no metric is a BadInput)."""
    if on is None:
        return specs
    out = []
    for spec in specs:
        entries = list(spec.metrics)
        if on and spec.kind == "fdp" and not any(needs_counterfactual(r) for r in spec.metric_refs):
            entries.append(COUNTERFACTUAL_METRIC)
        elif not on:
            entries = [e for e, r in zip(spec.metrics, spec.metric_refs) if not needs_counterfactual(r)]
            if not entries:
                raise BadInput(f"--no-counterfactual: task '{spec.name}' would have no metric left")
        out.append(dataclasses.replace(spec, metrics=entries) if entries != list(spec.metrics) else spec)
    return out
