"""Dataset formats: one reader module per on-disk format, found through a registry.

A reader is a function `read(root, spec, frames) -> Iterable[Transition]` where `root` is
`<data dir>/<subfolder>` and `spec` is the task's `DatasetSpec`. A generator (built-in data
such as Meta-World) is a function `generate(root, options, progress=True)` that writes a
dataset the reader of its format can read.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..registry import Registry

FORMATS: Registry = Registry("dataset format", "wmbench.formats")
FORMATS.register("lerobot", "benchmark.data.lerobot:read")
FORMATS.register("metaworld", "benchmark.data.metaworld:read")
FORMATS.register("jsonl", "benchmark.data.jsonl:read")
FORMATS.register("aurora", "benchmark.data.aurora:read")
FORMATS.register("ssv2", "benchmark.data.ssv2:read")
FORMATS.register("epic", "benchmark.data.epic:read")
FORMATS.register("ego4d", "benchmark.data.ego4d:read")
FORMATS.register("rlds", "benchmark.data.rlds:read")
FORMATS.register("libero", "benchmark.data.libero:read")
FORMATS.register("calvin", "benchmark.data.calvin:read")
FORMATS.register("bridge", "benchmark.data.bridge:read")

GENERATORS: Registry = Registry("dataset generator", "wmbench.generators")
GENERATORS.register("metaworld", "benchmark.data.metaworld:generate")

DEFAULT_DATA_DIR = Path("~/.cache/wmbench/data")


def resolve_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $WMBENCH_DATA_DIR, else ~/.cache/wmbench/data (DESIGN.md)."""
    value = cli_value or os.environ.get("WMBENCH_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(value).expanduser()
