"""Calling the model: the global RNGs seeded per batch, an optional per-call timeout, and a batch
call that falls back to one call per sample so that one bad sample fails alone."""

from __future__ import annotations

import hashlib
import random
import sys
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import BadInput, SampleError
from .scoring import reason


def seed_everything(seed: int, sample_ids: Sequence[str]) -> None:
    """Seed the global RNGs per batch from its sample ids. Adapters that draw from them (rather than
    per-sample generators, as the built-in editors and unified VLMs do) reproduce a run only with
    the same batch boundaries."""
    value = int.from_bytes(hashlib.sha256(f"{seed}:{','.join(sample_ids)}".encode()).digest()[:4], "little")
    random.seed(value)
    np.random.seed(value)
    if "torch" in sys.modules:  # only where something imported it; the import statement waits
        import torch               # for an import under way in another thread (the pipeline's)

        torch.manual_seed(value)


class ModelTimeout(SampleError):
    """A model call outlived `--timeout`."""


def call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """`fn()`, or ModelTimeout after `timeout` seconds. The call runs in a daemon thread that is
    abandoned on timeout (Python cannot stop it); it ends when the model returns, or with the process."""
    if not timeout:
        return fn()
    import threading

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="wmbench-model-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ModelTimeout(f"timeout: the model call did not return within {timeout:g} s (--timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def call_isolated(items: list, call: Callable[[list], Any], check: Callable[[Any], Any],
                  fail: Callable[[Any, str, str], None], key: Callable[[Any], str]) -> dict[str, Any]:
    """`call(items)` -> one output per item; if the call raises (or returns the wrong number of
    outputs), each item is called alone, so one bad item fails alone: `fail(item, "model", why)`.
    Each output goes through `check` (SampleError: `fail(item, "output", why)`). BadInput (the model
    cannot load or is misconfigured) propagates. Returns key(item) -> checked output."""
    outputs: list[tuple[list, list]] = []
    try:
        outputs.append((items, _sized(call(items), len(items))))
    except BadInput:
        raise
    except (Exception, SystemExit):  # a model's sys.exit is its failure, not the run's
        for item in items:
            try:
                outputs.append(([item], _sized(call([item]), 1)))
            except BadInput:
                raise
            except (Exception, SystemExit) as exc:
                fail(item, "model", reason(exc))
    checked = {}
    for group, values in outputs:
        for item, value in zip(group, values):
            try:
                checked[key(item)] = check(value)
            except SampleError as exc:
                fail(item, "output", str(exc))
    return checked


def _sized(values: Any, n: int) -> list:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise SampleError(f"model returned {type(values).__name__} of length "
                          f"{len(values) if hasattr(values, '__len__') else '?'} for a batch of {n}")
    return list(values)
