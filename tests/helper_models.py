"""Adapters that misbehave on purpose, for the runner's failure handling (used as "helper_models:Class")."""

from __future__ import annotations

import os
import time

import numpy as np

from benchmark.models.base import Model


class FaultyModel(Model):
    """Copies the source, except: raises on pair001, wrong shape on pair002, float dtype on pair003."""

    def predict_next(self, batch, n=1):
        out = []
        for sid, source in zip(batch.sample_ids, batch.sources):
            if sid == "pair001":
                raise RuntimeError("simulated model crash on pair001")
            if sid == "pair002":
                out.append([source[:, :, :2]])
            elif sid == "pair003":
                out.append([source.astype(np.float32) / 255])
            else:
                out.append([source])
        return out


class WrongLengthModel(Model):
    """Answers one text too many for every batch."""

    def infer_action(self, batch):
        return ["an answer"] * (len(batch) + 1)


class SlowCopyModel(Model):
    """Copies the source slowly and counts its calls in $WMBENCH_TEST_CALLS (for kill/resume tests)."""

    def predict_next(self, batch, n=1):
        calls = os.environ.get("WMBENCH_TEST_CALLS")
        if calls:
            with open(calls, "a") as f:
                f.write(",".join(batch.sample_ids) + "\n")
        time.sleep(float(os.environ.get("WMBENCH_TEST_SLEEP", "0")))
        return [[s] for s in batch.sources]


class ExplodingModel(Model):
    """Fails the test if the model is ever constructed (for --rescore and resume checks)."""

    def __init__(self):
        raise AssertionError("the model must not be loaded")

    def predict_next(self, batch, n=1):  # pragma: no cover
        raise AssertionError("the model must not be called")
