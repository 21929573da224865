"""Hooks that run wmbench from other frameworks' loops.

- `wmbench.integrations.transformers.WmbenchCallback`: evaluate the model being trained by a
  Hugging Face `transformers.Trainer` every N steps and/or at each checkpoint save, and log the
  metric means through the Trainer (W&B, TensorBoard, `state.log_history`).

This package imports no framework: each integration lives in its own module, which imports its
framework when it is imported itself (`from wmbench.integrations import WmbenchCallback` also
works, and imports transformers at that moment).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"WmbenchCallback": "wmbench.integrations.transformers"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wmbench.integrations' has no attribute {name!r}")
