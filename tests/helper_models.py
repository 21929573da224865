"""Adapters that misbehave on purpose, for the runner's failure handling (used as "helper_models:Class")."""

from __future__ import annotations

import os
import time

import numpy as np

from wmbench.models.base import Model


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


SHIFTS = {"right": (0, 6), "down": (6, 0), "left": (0, -6), "up": (-6, 0)}


class ShiftModel(Model):
    """A world model for the tests' square data: shifts the whole frame as the action says."""

    def predict_next(self, batch, n=1):
        out = []
        for source, action in zip(batch.sources, batch.actions):
            dr, dc = next((v for k, v in SHIFTS.items() if k in action), (0, 0))
            out.append([np.roll(source, (dr, dc), axis=(0, 1)) for _ in range(n)])
        return out


class JudgeModel(Model):
    """Answers the VLM-judge protocol: 8 / 6 for most instructions, unparseable text for 'left'."""

    def answer(self, images, prompts):
        return ["I cannot tell." if "left" in p else '{"editing_success": 8, "minimal_editing": 6}' for p in prompts]


class UnloadableModel(Model):
    """Copies the source until the sample pair006: then its 'checkpoint' cannot be read."""

    def predict_next(self, batch, n=1):
        from wmbench.core.errors import BadInput

        if "pair006" in batch.sample_ids:
            raise BadInput("cannot load checkpoint /nonexistent/ckpt: no such folder")
        return [[s] for s in batch.sources]
