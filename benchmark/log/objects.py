"""A run directory's images: PNG files named by the sha256 of their bytes,
`objects/<first two hex digits>/<sha256>.png`. Written atomically (a crash can leave an orphan
file, never a truncated one), so the store may commit a row only after its image exists."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import BadInput

if TYPE_CHECKING:  # numpy is imported where images are read, so listing runs stays light
    import numpy as np

OBJECTS = "objects"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def path_of(run_dir: Path, digest: str) -> Path:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BadInput(f"{run_dir}: {digest!r} is not the sha256 of a stored image")
    return Path(run_dir) / OBJECTS / digest[:2] / f"{digest}.png"


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def put(run_dir: Path, image: "np.ndarray") -> str:
    """Store a uint8 HWC image; returns its digest."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    _write(path_of(run_dir, digest), data)
    return digest


def copy(source_run: Path, target_run: Path, digest: str) -> None:
    _write(path_of(target_run, digest), path_of(source_run, digest).read_bytes())


def get(run_dir: Path, digest: str) -> "np.ndarray":
    """The stored image as uint8 HWC RGB; BadInput naming the file when it is missing or damaged."""
    import numpy as np
    from PIL import Image

    path = path_of(run_dir, digest)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise BadInput(f"stored prediction {path} is missing; the run directory is damaged") from exc
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise BadInput(f"stored prediction {path} is unreadable ({type(exc).__name__}: {exc}); the run "
                       "directory is damaged") from exc
