"""Counterfactual predictions, for `counterfactual_sensitivity`: the model's prediction for the same
source under another action of the task, made in the same batch as the real one and stored with
it (`Prediction.counterfactual`)."""

from __future__ import annotations

import hashlib
from typing import Callable

from ..core.types import Batch, check_image
from ..models.base import Model

#: The `MetricInput.aux` key of the counterfactual prediction.
COUNTERFACTUAL = "counterfactual_prediction"


def counterfactual_action(sample_id: str, own: str, vocabulary: list[str]) -> str | None:
    """Another action of the task for the same source, picked by a hash of the sample id
    (deterministic, spread over the vocabulary); None when the task has a single action."""
    others = [a for a in vocabulary if a != own]
    if not others:
        return None
    return others[int(hashlib.sha256(sample_id.encode()).hexdigest(), 16) % len(others)]


def predict(model: Model, items: list, vocabulary: list[str], make_batch: Callable[[list, list[str]], Batch],
            seed: Callable[[list[str]], None], reason: Callable[[BaseException], str]) -> None:
    """Put (action, image) into each item's `aux` under COUNTERFACTUAL. A failure leaves it out
    (the metric then scores NaN) and is noted in the sample's meta (`counterfactual_error`)."""
    chosen = [(item, counterfactual_action(item.sample_id, item.transition.action_text, vocabulary))
              for item in items]
    chosen = [(item, a) for item, a in chosen if a is not None]
    if not chosen:
        return
    group = [item for item, _ in chosen]
    batch = make_batch(group, [a for _, a in chosen])
    seed([f"counterfactual:{sid}" for sid in batch.sample_ids])
    try:
        out = model.predict_next(batch, n=1)
        for (item, action), images in zip(chosen, out):
            item.aux[COUNTERFACTUAL] = (action, check_image(images[0], "counterfactual prediction"))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the sample's own prediction stands; noted
        for item in group:
            item.aux.pop(COUNTERFACTUAL, None)
            item.transition.meta.setdefault("counterfactual_error", reason(exc))
