"""`wmbench data inspect`: look at what a reader makes of a dataset folder before evaluating on it.

Prints each transition's `describe()` as one JSON line; optionally writes a contact sheet (a PNG
grid of source | target | sample id and action text) so a person can check that pairs and actions
line up. Images are only decoded for the sheet.
"""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..core.errors import EXIT_OK, EXIT_SAMPLES_FAILED, SampleError
from ..core.types import Transition
from ..core.frames import FrameSelection

#: The split a format is inspected on when the options name none (the published splits differ).
DEFAULT_SPLITS = {"ssv2": "validation", "epic": "validation", "ego4d": "all", "rlds": "train", "calvin": "validation"}
THUMB = 160  # thumbnail height in the sheet, pixels
TEXT_WIDTH = 300


def transitions(fmt: str, root: Path, options: dict[str, Any] | None = None,
                frames: FrameSelection | None = None, limit: int | None = None) -> list[Transition]:
    """The first `limit` transitions the `fmt` reader yields for `root` (reader order).

    `options` are the format's dataset options; the key "split" selects the split."""
    from ..core.tasks import DatasetSpec
    from . import FORMATS

    reader = FORMATS.get(fmt)  # unknown format: BadInput listing the known ones
    options = dict(options or {})
    split = str(options.pop("split", DEFAULT_SPLITS.get(fmt, "test")))
    spec = DatasetSpec(format=fmt, subfolder=Path(root).name or "data", split=split, options=options)
    stream = reader(Path(root), spec, frames or FrameSelection())
    return list(itertools.islice(stream, limit) if limit is not None else stream)


def inspect(fmt: str, root: Path, spec_options: dict[str, Any] | None = None,
            frames: FrameSelection | None = None, limit: int | None = 10) -> Iterator[dict]:
    """JSON-ready descriptions of the first `limit` transitions."""
    for t in transitions(fmt, root, spec_options, frames, limit):
        yield t.describe()


def contact_sheet(items: Iterable[Transition], path: str | Path) -> int:
    """Write a PNG grid, one row per transition: source | target | id and action text.
    Returns how many images failed to load (drawn as grey tiles with the error)."""
    from PIL import Image

    rows, failures = [], 0
    for t in items:
        tiles = []
        for image in (t.source, t.target):
            tile, failed = _tile(image)
            failures += failed
            tiles.append(tile)
        text = f"{t.sample_id}\n{t.action_text}"
        tiles.append(_text_tile(text, THUMB, TEXT_WIDTH))
        rows.append(tiles)
    if not rows:
        rows = [[_text_tile("no transitions", THUMB, TEXT_WIDTH)]]
    widths = [max(row[c].width for row in rows if c < len(row)) for c in range(max(len(r) for r in rows))]
    sheet = Image.new("RGB", (sum(widths) + 4 * (len(widths) + 1), len(rows) * (THUMB + 4) + 4), (255, 255, 255))
    for r, row in enumerate(rows):
        x = 4
        for c, tile in enumerate(row):
            sheet.paste(tile, (x, 4 + r * (THUMB + 4)))
            x += widths[c] + 4
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return failures


def _tile(image) -> tuple[Any, int]:
    from PIL import Image

    if image is None:
        return _text_tile("(no target)", THUMB, THUMB, fill=(235, 235, 235)), 0
    try:
        array = image.load()
    except SampleError as exc:
        return _text_tile(f"FAILED: {exc}", THUMB, THUMB * 2, fill=(250, 220, 220)), 1
    pil = Image.fromarray(np.ascontiguousarray(array))
    width = max(1, round(pil.width * THUMB / pil.height))
    return pil.resize((width, THUMB), Image.BILINEAR), 0


def _text_tile(text: str, height: int, width: int, fill=(255, 255, 255)):
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", (width, height), fill)
    draw = ImageDraw.Draw(tile)
    lines = [w for part in text.splitlines() for w in (textwrap.wrap(part, width=max(8, width // 7)) or [""])]
    draw.multiline_text((4, 4), "\n".join(lines[: height // 12]), fill=(0, 0, 0), spacing=2)
    return tile


def main(fmt: str, root: str | Path, options: dict[str, Any] | None, frames: FrameSelection | None,
         limit: int | None, sheet: str | Path | None) -> int:
    """CLI body of `wmbench data inspect`: JSON lines on stdout, optional contact sheet.

    Returns 0, or 1 when some image of the sheet failed to load; bad usage or a folder that is not
    the format raises BadInput (exit 2 in the CLI)."""
    items = transitions(fmt, Path(root), options, frames, limit)
    for t in items:
        print(json.dumps(t.describe(), default=str, ensure_ascii=False))
    print(f"wmbench: {len(items)} transition(s) from {fmt} reader at {root}", file=sys.stderr)
    if sheet is None:
        return EXIT_OK
    failures = contact_sheet(items, sheet)
    print(f"wmbench: wrote contact sheet {sheet}" + (f" ({failures} image(s) failed to load)" if failures else ""),
          file=sys.stderr)
    return EXIT_SAMPLES_FAILED if failures else EXIT_OK
