"""Adapters that break the model protocol one way each, for the bad-input corpus
(tests/bad_inputs/plugin_models.yaml, used as "fault_models:Class"). Each copies the source frame
(a valid prediction) except where its docstring says otherwise."""

from __future__ import annotations

import sys
import time

import numpy as np

from wmbench.models.base import Model

HANG_S = 20.0  # a hanging call returns after this long, so an abandoned thread never outlives the suite


class TwoChannelModel(Model):
    """Predicts (H, W, 2) arrays: the wrong shape."""

    def predict_next(self, batch, n=1):
        return [[s[:, :, :2]] for s in batch.sources]


class NoneModel(Model):
    """Returns None instead of a list."""

    def predict_next(self, batch, n=1):
        return None


class NaNModel(Model):
    """Returns float images full of NaN."""

    def predict_next(self, batch, n=1):
        return [[np.full(s.shape, np.nan, dtype=np.float32)] for s in batch.sources]


class TwoImagesModel(Model):
    """Returns two images per sample where n=1 was asked for."""

    def predict_next(self, batch, n=1):
        return [[s, s] for s in batch.sources]


class OneShortModel(Model):
    """Returns one prediction fewer than the batch has samples."""

    def predict_next(self, batch, n=1):
        return [[s] for s in batch.sources][:-1]


class GeneratorModel(Model):
    """Returns a generator, not a list."""

    def predict_next(self, batch, n=1):
        return ([s] for s in batch.sources)


class PILModel(Model):
    """Returns PIL images instead of numpy arrays."""

    def predict_next(self, batch, n=1):
        from PIL import Image

        return [[Image.fromarray(s)] for s in batch.sources]


class BiggerModel(Model):
    """Predicts frames twice the source's size (valid: resized for scoring, the size recorded)."""

    def predict_next(self, batch, n=1):
        return [[np.repeat(np.repeat(s, 2, axis=0), 2, axis=1)] for s in batch.sources]


class RaisingModel(Model):
    """Raises on every call."""

    def predict_next(self, batch, n=1):
        raise RuntimeError("simulated CUDA error: device-side assert triggered")


class ExitModel(Model):
    """Calls sys.exit(0) from inside predict_next (a library that exits on an error)."""

    def predict_next(self, batch, n=1):
        sys.exit(0)


class HangModel(Model):
    """Never returns (well: after HANG_S) for the sample pair001; copies the source for the others."""

    def predict_next(self, batch, n=1):
        if "pair001" in batch.sample_ids:
            time.sleep(HANG_S)
        return [[s] for s in batch.sources]


class InterruptModel(Model):
    """Copies the first batch, then raises KeyboardInterrupt (Ctrl-C while the model runs)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict_next(self, batch, n=1):
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return [[s] for s in batch.sources]


class BrokenInitModel(Model):
    """Its constructor raises (e.g. out of memory while loading weights)."""

    def __init__(self):
        raise RuntimeError("simulated out of memory while loading the weights")

    def predict_next(self, batch, n=1):  # pragma: no cover
        return [[s] for s in batch.sources]


class BadPrepareModel(Model):
    """Its `prepare` (called once per task before any batch) raises."""

    def prepare(self, task):
        raise RuntimeError("simulated failure in prepare")

    def predict_next(self, batch, n=1):
        return [[s] for s in batch.sources]


class BadFingerprintModel(Model):
    """Its `fingerprint` (what identifies its weights) raises."""

    def fingerprint(self):
        raise OSError(2, "No such file or directory", "/nonexistent/weights.safetensors")

    def predict_next(self, batch, n=1):
        return [[s] for s in batch.sources]


class NumberIDPModel(Model):
    """IDP: answers numbers instead of action texts."""

    def infer_action(self, batch):
        return [42 for _ in batch.sample_ids]


class KeyedModel(Model):
    """Takes an `api_key` model arg and puts it into the error it raises (as some HTTP clients do)."""

    def __init__(self, api_key: str = ""):
        super().__init__()
        self.api_key = api_key

    def predict_next(self, batch, n=1):
        raise RuntimeError(f"HTTP 401 Unauthorized: invalid API key {self.api_key}")


class PickyModel(Model):
    """Takes any keyword but rejects them all with a TypeError that repeats the values."""

    def __init__(self, **kwargs):
        raise TypeError(f"PickyModel got unexpected options {kwargs}")

    def predict_next(self, batch, n=1):  # pragma: no cover
        return [[s] for s in batch.sources]


class LeakyJudge(Model):
    """A judge whose endpoint fails with an error that repeats the API key."""

    def answer(self, images, prompts):
        raise RuntimeError("HTTP 401: key sk-judgeSECRET0123456789abcdef was rejected")
