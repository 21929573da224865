"""Bootstrapped FDP: best-of-N sampling from an FDP model, verified by an IDP model.

The paper's inference-time bootstrapping (Qiu et al., arXiv:2506.06006): draw N candidate next
frames per input, score each (source, candidate) pair by the IDP model's log-likelihood of the
instructed action, keep the best. Both steps are single batched calls: the sampler gets the batch
once with `n=N`, the verifier gets all B*N pairs at once (it micro-batches internally).

The runner stores every candidate and its score: it calls `predict_candidates` and `verify`
itself (so a finished run can be re-verified with another verifier, or re-selected with a smaller
N, without generating again) and `select` to pick the winners. `predict_next` composes the three
for callers that only want the best frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import SampleError, BadInput
from ..core.types import Batch
from .base import Model, TaskInfo

DEFAULT_VERIFIER_PROMPT = ("The first image shows a scene before an action and the second image the same scene "
                           "after it. What action was performed? Answer with the action only.")


class VerifiedModel(Model):
    """`sampler` (an FDP card or adapter name) + `verifier` (an IDP card or adapter name with
    `action_logprob`), best of `n` candidates. Sub-model args: `sampler_args` / `verifier_args`
    (dicts, from a card) or prefixed keys from `--model-args`: `sampler.temperature=1.0,verifier.path=...`.

    Re-verification without generating: `candidates_from=<run dir of a verified run>` instead of
    `sampler` takes the first `n` stored candidates of each sample (n <= the stored N)."""

    description = "FDP best-of-N: samples N next frames, keeps the one an IDP verifier finds most likely to follow the action"

    def __init__(self, verifier: str, sampler: str | None = None, n: int = 4,
                 sampler_args: dict[str, Any] | None = None, verifier_args: dict[str, Any] | None = None,
                 verifier_prompt: str = DEFAULT_VERIFIER_PROMPT, candidates_from: str | None = None,
                 **prefixed: Any):
        super().__init__()
        sampler_args, verifier_args = dict(sampler_args or {}), dict(verifier_args or {})
        for key, value in prefixed.items():
            owner, dot, name = key.partition(".")
            if not dot or owner not in ("sampler", "verifier") or not name:
                raise TypeError(f"unexpected model arg '{key}' (sub-model args are 'sampler.<arg>' or 'verifier.<arg>')")
            (sampler_args if owner == "sampler" else verifier_args)[name] = value
        self.n = int(n)
        if self.n < 1:
            raise BadInput(f"verified: n must be >= 1, got {n}")
        self.verifier_prompt = str(verifier_prompt)
        if (sampler is None) == (candidates_from is None):
            raise BadInput("verified: give either 'sampler' (generate candidates) or 'candidates_from' "
                               "(a run directory of a verified model whose stored candidates are re-verified)")
        if candidates_from is not None:
            self.sampler = StoredCandidates(candidates_from)
            self.sampler_card = self.sampler.card
        else:
            self.sampler_card, self.sampler = _build(sampler, sampler_args, "predict_next", "sampler")
        self.verifier_card, self.verifier = _build(verifier, verifier_args, "action_logprob", "verifier")

    def prepare(self, task: TaskInfo) -> None:
        self.sampler.prepare(task)
        self.verifier.prepare(task)

    def predict_candidates(self, batch: Batch, n: int | None = None) -> list[list[np.ndarray]]:
        """N candidate next frames per sample, drawn in one batched call of the sampler."""
        n = self.n if n is None else int(n)
        candidates = self.sampler.predict_next(batch, n=n)
        if len(candidates) != len(batch) or any(len(c) != n for c in candidates):
            raise SampleError(f"verified: sampler returned {[len(c) for c in candidates]} candidates, expected {n} each")
        return candidates

    def verify(self, batch: Batch, candidates: list[list[np.ndarray]]) -> list[list[float]]:
        """log p(action | source, candidate) for every candidate, all B*N pairs in one verifier call."""
        if batch.actions is None:
            raise BadInput("verified: the batch carries no action texts to verify against")
        counts = [len(c) for c in candidates]
        flat = Batch(
            sample_ids=[f"{sid}#{j}" for sid, k in zip(batch.sample_ids, counts) for j in range(k)],
            sources=[src for src, k in zip(batch.sources, counts) for _ in range(k)],
            targets=[cand for cands in candidates for cand in cands],
            prompts=[self.verifier_prompt] * sum(counts),
            meta=[m for m, k in zip(batch.meta or [{}] * len(batch), counts) for _ in range(k)],
        )
        actions = [a for a, k in zip(batch.actions, counts) for _ in range(k)]
        scores = self.verifier.action_logprob(flat, actions)
        out, start = [], 0
        for k in counts:
            out.append([float(s) for s in scores[start:start + k]])
            start += k
        return out

    @staticmethod
    def select(candidates: list[list[np.ndarray]], scores: list[list[float]], n: int = 1,
               limit: int | None = None) -> list[list[np.ndarray]]:
        """The `n` best candidates per sample among the first `limit` (all by default); ties keep
        the earlier candidate, so best-of-N with a smaller N reuses the stored draws exactly."""
        chosen = []
        for cands, sc in zip(candidates, scores):
            k = len(cands) if limit is None else min(int(limit), len(cands))
            order = sorted(range(k), key=lambda j: (-sc[j], j))
            chosen.append([cands[j] for j in order[:n]])
        return chosen

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        if n > self.n:
            raise BadInput(f"verified: asked for {n} predictions from best-of-{self.n}")
        candidates = self.predict_candidates(batch, self.n)
        return self.select(candidates, self.verify(batch, candidates), n=n)

    def fingerprint(self) -> dict[str, Any]:
        return {"n": self.n, "verifier_prompt": self.verifier_prompt,
                "sampler": {"card": self.sampler_card.fingerprint, **self.sampler.fingerprint()},
                "verifier": {"card": self.verifier_card.fingerprint, **self.verifier.fingerprint()}}


def _build(selector: str, args: dict[str, Any], capability: str, role: str) -> tuple[Any, Model]:
    from . import instantiate, resolve_card

    card = resolve_card(str(selector), args)
    model = instantiate(card)
    if capability not in model.capabilities():
        raise BadInput(f"verified: {role} '{selector}' cannot {capability} "
                           f"(it can: {', '.join(model.capabilities()) or 'nothing'})")
    return card, model


class StoredCandidates(Model):
    """A sampler that returns the candidates a finished best-of-N run stored (no generation)."""

    def __init__(self, run_dir: str):
        from ..log.runlog import read_run
        from . import ModelCard

        try:
            self.run = read_run(run_dir)
        except BadInput as exc:
            raise BadInput(f"verified: candidates_from: {exc}") from exc
        if not self.run.tasks:
            raise BadInput(f"verified: {run_dir} holds no run (its results.json has no task)")
        card = self.run.card
        if card["adapter"] != "verified":
            raise BadInput(f"verified: {run_dir} is a run of '{card['name']}' (adapter {card['adapter']}), "
                               "not of a verified best-of-N model: it stored no candidates")
        self.card = ModelCard(name=f"stored:{card['name']}", adapter="verified",
                              args={"candidates_from_card": card})

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        """The stored candidates of each sample. For another action than the stored run's (the
        runner's counterfactual call) only that run's stored counterfactual prediction can serve;
        nothing is generated."""
        task = self.run.tasks.get(batch.task)
        actions = batch.actions or [None] * len(batch)
        out = []
        for sid, action in zip(batch.sample_ids, actions):
            record = task.sample(sid) if task is not None else None
            prediction = record.prediction if record is not None and record.done else None
            if action is not None and record is not None and action != record.sample.get("action_text"):
                stored = prediction.counterfactual if prediction is not None else None
                if stored is None or stored.action != action:
                    raise SampleError(f"verified: {self.run.path} stored no prediction of {batch.task}:{sid} "
                                      f"under the action {action!r}, and re-verification generates nothing")
                out.append([self.run.image(stored.image)] * n)
                continue
            digests = prediction.candidates if prediction is not None else ()
            if len(digests) < n:
                raise SampleError(f"verified: {self.run.path} stored {len(digests)} candidate(s) for "
                                  f"{batch.task}:{sid}, {n} needed")
            out.append([self.run.image(d) for d in digests[:n]])
        return out
