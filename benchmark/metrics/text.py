"""IDP text metrics: the predicted action text against the reference action text."""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np

from .base import Metric, MetricInput

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (SQuAD-style normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def exact_match(predictions: list[str], references: list[str]) -> np.ndarray:
    return np.array([float(normalize(p) == normalize(r)) for p, r in zip(predictions, references)])


def token_f1(predictions: list[str], references: list[str]) -> np.ndarray:
    """Token-overlap F1 of the normalised texts (SQuAD's definition); two empty texts score 1."""
    out = []
    for p, r in zip(predictions, references):
        pt, rt = normalize(p).split(), normalize(r).split()
        if not pt or not rt:
            out.append(float(pt == rt))
            continue
        common = sum((Counter(pt) & Counter(rt)).values())
        if common == 0:
            out.append(0.0)
            continue
        precision, recall = common / len(pt), common / len(rt)
        out.append(2 * precision * recall / (precision + recall))
    return np.array(out)


def bleu(predictions: list[str], references: list[str]) -> np.ndarray:
    """sacrebleu sentence BLEU per sample (exponential smoothing), scaled to [0, 1]."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU(effective_order=True)
    return np.array([scorer.sentence_score(p, [r]).score / 100.0 for p, r in zip(predictions, references)])


class _TextMetric(Metric):
    kind = "idp"
    higher_is_better = True
    needs = frozenset({"action"})

    def score(self, batch: MetricInput) -> np.ndarray:
        assert batch.references is not None
        return type(self).function(batch.predictions, batch.references)


class ExactMatch(_TextMetric):
    name = "exact_match"
    description = "1 if the normalised predicted action equals the reference, else 0"
    function = staticmethod(exact_match)


class TokenF1(_TextMetric):
    name = "token_f1"
    description = "token-overlap F1 between normalised predicted and reference actions"
    function = staticmethod(token_f1)


class BLEU(_TextMetric):
    name = "bleu"
    description = "sentence BLEU (sacrebleu, effective order), in [0, 1]"
    function = staticmethod(bleu)
