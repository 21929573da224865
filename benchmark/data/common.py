"""Helpers every format reader shares: safe paths, image decoding, format errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..core.errors import SampleError, BadInput


class FormatError(BadInput):
    """A folder is not the format it claims to be (exit 2): says what was expected and found."""

    def __init__(self, fmt: str, root: Path, expected: str, found: str):
        super().__init__(f"{root} is not a {fmt} dataset: expected {expected}; found {found}")


def describe_folder(root: Path, limit: int = 8) -> str:
    if not root.exists():
        return "no such folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not names:
        return "an empty folder"
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def safe_join(root: Path, relative: str, what: str = "path") -> Path:
    """`root / relative`, refusing absolute paths and paths that escape `root` (e.g. '../../etc')."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise SampleError(f"{what} '{relative}' is absolute; dataset paths must be relative to {root}")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise SampleError(f"{what} '{relative}' escapes the dataset root {root}")
    return resolved


def option_file(fmt: str, root: Path, name: str, what: str) -> Path:
    """The file an option names inside a dataset root (e.g. `file: test.json`): it must exist and
    stay inside the root; otherwise exit 2 saying what was expected and what was found."""
    if not root.is_dir():
        raise FormatError(fmt, root, f"a folder with {name}", describe_folder(root))
    try:
        path = safe_join(root, name, what="option 'file'")
    except SampleError as exc:
        raise BadInput(str(exc)) from None
    if not path.is_file():
        raise FormatError(fmt, root, f"{what} {name}", describe_folder(root))
    return path


def decode_image(data: bytes | Path, origin: str) -> np.ndarray:
    """PNG/JPEG/WebP bytes or file -> (H, W, 3) uint8 RGB; errors name `origin`."""
    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        with Image.open(source) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise SampleError(f"missing image file {origin}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SampleError(f"corrupt or unreadable image {origin}: {exc}") from exc


def check_options(fmt: str, options: dict, allowed: dict) -> dict:
    """`options` merged over the defaults in `allowed` ({name: default}); an unknown option is a
    BadInput naming it and the options the format knows."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BadInput(f"format '{fmt}': unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(sorted(allowed)) or 'none'}")
    return {**allowed, **options}
