"""Counting adapters for the paper-protocol tests (used as "paper_models:Class"): every call is
counted per class, so a dry run's figures can be checked against what a real run asked."""

from __future__ import annotations

import numpy as np

from wmbench.models.base import Model

SHIFTS = {"right": (0, 6), "down": (6, 0), "left": (0, -6), "up": (-6, 0)}


class Counts:
    predictions = 0  # images asked of CountingModel (batch size x n)
    verifier = 0  # (source, candidate) pairs scored by CountingVerifier
    judge = 0  # prompts answered by CountingJudge

    @classmethod
    def reset(cls) -> None:
        cls.predictions = cls.verifier = cls.judge = 0


class CountingModel(Model):
    """A world model for the square data (shifts the frame as the action says), counting predictions."""

    def predict_next(self, batch, n=1):
        Counts.predictions += len(batch) * n
        out = []
        for source, action in zip(batch.sources, batch.actions):
            dr, dc = next((v for k, v in SHIFTS.items() if k in action), (0, 0))
            out.append([np.roll(source, (dr + j, dc), axis=(0, 1)) for j in range(n)])
        return out


class CountingVerifier(Model):
    """Scores (source, candidate, action) pairs: prefers the first candidate."""

    def action_logprob(self, batch, actions):
        Counts.verifier += len(actions)
        return [-float(sid.rpartition("#")[2]) for sid in batch.sample_ids]


class CountingJudge(Model):
    """Answers the judge protocol: 8 / 6, counting prompts."""

    def answer(self, images, prompts):
        Counts.judge += len(prompts)
        return ['{"editing_success": 8, "minimal_editing": 6}'] * len(prompts)
