"""Dataset formats: one reader module per on-disk format, found through a registry.

A reader is a function `read(root, spec, frames) -> Iterable[Transition]` where `root` is
`<data dir>/<subfolder>` and `spec` is the task's `DatasetSpec`. A generator (built-in data
such as Meta-World) is a function `generate(root, options, progress=True)` that writes a
dataset the reader of its format can read.

Image files are decoded by one function, `common.decode_image` (every PIL mode to uint8 RGB, with
its full range); readers that decode images or video take the dataset option `max_pixels`
(`common.IMAGE_OPTIONS`, checked from the header before decoding), and name their frames
(LazyImage origins) relative to the dataset root (`common.relative_origin`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.registry import FORMATS, GENERATORS

__all__ = ["FORMATS", "GENERATORS", "DEFAULT_DATA_DIR", "resolve_data_dir"]

DEFAULT_DATA_DIR = Path("~/.cache/wmbench/data")


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $WMBENCH_DATA_DIR, else ~/.cache/wmbench/data (DESIGN.md)."""
    value = cli_value or os.environ.get("WMBENCH_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(value).expanduser()
