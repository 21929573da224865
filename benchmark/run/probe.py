"""Likelihood-preference probes (task kind `probe`): does the model find the real transition more
likely than corrupted ones? (Qiu et al., arXiv 2506.06006, the likelihood analysis.)

For each sample the model scores the real (source, action, target) and each negative of the task's
`ProbeSpec` in one batched call: `action_logprob` for `side: idp` (log p(action | source, target)),
`transition_logprob` for `side: fdp` (log p(target | source, action)). Negatives are chosen per
sample from a hash of the task seed and the sample id, so they do not depend on the batch:

- `random_action`: another action text of the task, uniformly;
- `counterfactual_action`: the other action text most similar to the real one (word overlap), a
  minimal change such as "left" for "right";
- `other_target`: the target of another sample (of another episode where there is one);
- `copy`: the source as its own target;
- `swap`: source and target swapped.

The stored prediction is the log-likelihoods (`Prediction.logprobs`); metrics `preference_accuracy`
and `logprob_margin` (metrics/probes.py) compare them per negative.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Sequence

import numpy as np

from ..core.errors import SampleError
from ..core.tasks import TaskSpec
from ..core.types import Batch, Transition
from ..log.records import Prediction
from ..models.base import Model
from .kinds import Loaded, TaskKind, fit


def _pick(seed: int, sample_id: str, salt: str, n: int) -> int:
    return int(hashlib.sha256(f"{seed}:{sample_id}:{salt}".encode()).hexdigest(), 16) % n


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class Probe(TaskKind):
    name, capability, actions_are_inputs = "probe", "action_logprob", True

    def __init__(self, task: TaskSpec, transitions: Sequence[Transition] = ()):
        super().__init__(task, transitions)
        self.spec = task.probe
        self.vocabulary = sorted({t.action_text for t in transitions})
        self.by_id = {t.sample_id: t for t in transitions}
        self.with_target = [t.sample_id for t in transitions if t.target is not None]

    @classmethod
    def needs(cls, task: TaskSpec) -> str:
        return "action_logprob" if task.probe is None or task.probe.side == "idp" else "transition_logprob"

    # which negatives ------------------------------------------------------------------------
    def negatives(self, transition: Transition) -> dict[str, str | None]:
        """The chosen negative of each kind for one sample: an action text, another sample's id,
        or None where the task has no such negative (a single action; a single sample)."""
        sid, own, seed = transition.sample_id, transition.action_text, self.task.seed
        others = [a for a in self.vocabulary if a != own]
        chosen: dict[str, str | None] = {}
        for name in self.spec.negatives:
            if name == "random_action":
                chosen[name] = others[_pick(seed, sid, name, len(others))] if others else None
            elif name == "counterfactual_action":
                mine = _words(own)
                best = max((len(mine & _words(a)) / max(1, len(mine | _words(a))) for a in others), default=None)
                ties = [a for a in others if best is not None
                        and len(mine & _words(a)) / max(1, len(mine | _words(a))) == best]
                chosen[name] = ties[_pick(seed, sid, name, len(ties))] if ties else None
            elif name == "other_target":
                pool = [o for o in self.with_target if o != sid
                        and self.by_id[o].episode_id != transition.episode_id] or \
                       [o for o in self.with_target if o != sid]
                chosen[name] = pool[_pick(seed, sid, name, len(pool))] if pool else None
            else:  # copy, swap: made from the sample itself
                chosen[name] = name
        return chosen

    # the kind's interface -------------------------------------------------------------------
    def skip_reason(self, transition, all_need_target):
        return None if transition.target is not None else "no target frame: a probe scores the real transition"

    def batch(self, task, items, sees_reference, actions=None):
        actions = actions or [i.transition.action_text for i in items]
        return Batch(sample_ids=[i.sample_id for i in items], sources=[i.source for i in items],
                     prompts=[task.render_prompt(a) for a in actions], targets=[i.target for i in items],
                     actions=actions, meta=[i.transition.meta for i in items], task=task.name, seed=task.seed)

    def predict(self, model: Model, batch: Batch) -> list[dict[str, float | None]]:
        """Every (sample, real or negative) triple scored in one model call."""
        rows: list[tuple[int, str, np.ndarray, np.ndarray, str]] = []  # (sample, name, source, target, action)
        for i, sid in enumerate(batch.sample_ids):
            source, target, action = batch.sources[i], batch.targets[i], batch.actions[i]
            rows.append((i, "real", source, target, action))
            for name, value in self.negatives(self.by_id[sid]).items():
                if value is None:
                    continue
                if name in ("random_action", "counterfactual_action"):
                    rows.append((i, name, source, target, value))
                elif name == "other_target":
                    other = fit(self.by_id[value].target.load(), source.shape, {}, "")
                    rows.append((i, name, source, other, action))
                elif name == "copy":
                    rows.append((i, name, source, source, action))
                else:  # swap
                    rows.append((i, name, target, source, action))
        flat = Batch(sample_ids=[f"{batch.sample_ids[i]}#{name}" for i, name, *_ in rows],
                     sources=[r[2] for r in rows], prompts=[self.task.render_prompt(r[4]) for r in rows],
                     meta=[batch.meta[r[0]] if r[0] < len(batch.meta) else {} for r in rows],
                     task=batch.task, seed=batch.seed)
        if self.spec.side == "idp":
            flat.targets = [r[3] for r in rows]
            values = model.action_logprob(flat, [r[4] for r in rows])
        else:
            flat.actions = [r[4] for r in rows]
            values = model.transition_logprob(flat, [r[3] for r in rows])
        if len(values) != len(rows):
            raise SampleError(f"probe: the model returned {len(values)} log-likelihoods for {len(rows)} queries")
        out: list[dict[str, float | None]] = [dict.fromkeys(["real", *self.spec.negatives]) for _ in batch.sample_ids]
        for (i, name, *_), value in zip(rows, values):
            out[i][name] = float(value)
        return out

    def check(self, value: Any) -> dict[str, float | None]:
        if not isinstance(value, dict) or value.get("real") is None:
            raise SampleError(f"probe: expected the log-likelihood of the real transition, got {value!r}")
        bad = {k: v for k, v in value.items() if v is not None and not math.isfinite(v)}
        if bad:
            raise SampleError(f"probe: non-finite log-likelihood(s) {bad}")
        return value

    def store(self, store, item: Loaded, value, info):
        info["probe_negatives"] = self.negatives(item.transition)
        return Prediction(logprobs=dict(value)), value

    def stored(self, store, prediction, item):
        return dict(prediction.logprobs or {})
