"""Dataset formats: one reader module per on-disk format, found through a registry.

A reader is a function `read(root, spec, frames) -> Iterable[Transition]` where `root` is
`<data dir>/<subfolder>` and `spec` is the task's `DatasetSpec`. A generator (built-in data
such as Meta-World) is a function `generate(root, options, progress=True)` that writes a
dataset the reader of its format can read.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.registry import FORMATS, GENERATORS

DEFAULT_DATA_DIR = Path("~/.cache/wmbench/data")


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $WMBENCH_DATA_DIR, else ~/.cache/wmbench/data (DESIGN.md)."""
    value = cli_value or os.environ.get("WMBENCH_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(value).expanduser()
