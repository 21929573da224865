"""The typed records of a run log: what the store keeps per sample and `samples.jsonl` publishes.

One schema in code for the prediction record (`Prediction`), a sample's row (`SampleRecord`) and a
score (`ScoreRow`); the runner writes them, `read_run` and everything built on it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Counterfactual:
    """The model's prediction for the same source under another action of the task."""

    action: str
    image: str  # sha256 of the stored PNG

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "image": self.image}


@dataclass(frozen=True)
class Prediction:
    """What a model predicted for one sample. FDP: `images` (sha256 digests of stored PNGs, the
    scored one first); best-of-N adds every `candidates` digest, their `verifier_scores` and the
    `selected` index. IDP: `text`. Probe: `logprobs`, the model's log-likelihood of the real
    transition ("real") and of each negative (None where a negative does not exist for the sample).
    `counterfactual` is set where a metric asked for it."""

    images: tuple[str, ...] = ()
    text: str | None = None
    candidates: tuple[str, ...] = ()
    verifier_scores: tuple[float, ...] = ()
    selected: int | None = None
    counterfactual: Counterfactual | None = None
    logprobs: dict[str, float | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (keys absent when empty, as in every run written so far)."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.images:
            out["images"] = list(self.images)
        if self.candidates:
            out.update(candidates=list(self.candidates), verifier_scores=list(self.verifier_scores),
                       selected=self.selected)
        if self.counterfactual is not None:
            out["counterfactual"] = self.counterfactual.to_dict()
        if self.logprobs is not None:
            out["logprobs"] = dict(self.logprobs)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Prediction | None:
        if not data:
            return None
        cf = data.get("counterfactual")
        return cls(images=tuple(data.get("images", ())), text=data.get("text"),
                   candidates=tuple(data.get("candidates", ())),
                   verifier_scores=tuple(float(s) for s in data.get("verifier_scores", ())),
                   selected=data.get("selected"),
                   counterfactual=Counterfactual(cf["action"], cf["image"]) if cf else None,
                   logprobs=data.get("logprobs"))


@dataclass
class SampleRecord:
    """One sample's row. `status` is 'done' (prediction stored; scores in `scores`), 'failed'
    (`stage` says where: data, model, output) or 'skipped' (the task cannot use it)."""

    task: str
    sample_id: str
    position: int
    status: str
    info: dict[str, Any]
    prediction: Prediction | None = None
    stage: str | None = None
    error: str | None = None


class ScoreRow(NamedTuple):
    """One metric's score of one sample: `value` None where it did not apply or failed;
    `details` (JSON text) holds per-sample details, {"failed": true, "error": ...} for a failure."""

    task: str
    sample_id: str
    metric: str
    version: str
    value: float | None
    details: str | None


@dataclass
class SetScore:
    """A set-level metric's value over the scored set (FID, KID), with what it was computed on."""

    fingerprint: str
    value: float | None
    details: dict[str, Any] | None = field(default=None)
