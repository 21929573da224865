"""CLI output for the paper protocol: what `wmbench run --dry-run` prints, and what `wmbench list
tasks` says about a task's call multipliers and judges."""

from __future__ import annotations

from typing import Any

from ..core.errors import EXIT_OK
from ..run.dryrun import money


def dry_run(args: Any, pairs: list[tuple[Any, list, Any]]) -> int:
    """`wmbench run --dry-run`: `evaluate(..., dry_run=True)` for each (card, tasks, run dir)."""
    from ..run.api import evaluate

    return print_dry_run([evaluate(tasks, card, output=run_dir, batch_size=args.batch_size, device=args.device,
                                   data_dir=args.data_dir, rescore=args.rescore, retry_failed=args.retry_failed,
                                   weights_dir=args.weights_dir, shard=args.shard, progress=not args.no_progress,
                                   dry_run=True) for card, tasks, run_dir in pairs])


def print_dry_run(plans: list[Any]) -> int:
    """Per model its table (one row per task) and its one-line summary; then the totals. Exit 0:
    nothing was built, run or written."""
    for plan in plans:
        print(plan.table())
        print(plan.summary().replace("wmbench: plan:", "plan:"))
        print()
    if len(plans) > 1:
        costs: dict[str, list[float]] = {}
        for plan in plans:
            for currency, (low, high) in plan.cost().items():
                costs.setdefault(currency, [0.0, 0.0])
                costs[currency][0] += low
                costs[currency][1] += high
        cost = ", ".join(money(low, cur) + (f" (up to {money(high, cur)})" if high > low else "")
                          for cur, (low, high) in costs.items())
        print(f"total: {len(plans)} models, {sum(p.total('model_calls') for p in plans)} model calls, "
              f"{sum(p.total('judge_calls') for p in plans)} judge calls, "
              f"{sum(p.total('verifier_calls') for p in plans)} verifier calls"
              + (f"; est. cost {cost}" if cost else ""))
    print("dry run: no model was loaded and nothing was written")
    return EXIT_OK


def call_notes(spec: Any) -> str:
    """"  (x2 model calls: counterfactual; judge: NAME)" for `wmbench list tasks`, or ""."""
    from ..run.overrides import is_judged, needs_counterfactual

    notes = []
    try:
        refs = spec.metric_refs
        if any(needs_counterfactual(r) for r in refs):
            notes.append("x2 model calls: counterfactual")
        judges = sorted({str(r.args.get("model")) for r in refs if is_judged(r)})
    except Exception:  # noqa: BLE001 - a metric that does not load: `list` shows the task all the same
        return ""
    if judges:
        notes.append(f"judge: {', '.join(judges)}")
    return f"  ({'; '.join(notes)})" if notes else ""
