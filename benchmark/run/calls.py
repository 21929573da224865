"""Calling the model: the global RNGs seeded per batch, an optional per-call timeout, and the
one-line reason a failed call records (secrets scrubbed)."""

from __future__ import annotations

import hashlib
import random
import sys
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import SampleError


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
