"""Writing and decoding test videos with PyAV, independently of the readers under test."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np


def encode_video(path: Path, frames: Iterable[np.ndarray], codec: str, fps: int, container_format: str | None = None,
                 options: dict[str, str] | None = None, gop: int | None = None) -> None:
    """Encode RGB uint8 frames into `path` (frame i at pts i, time base 1/fps)."""
    frames = list(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        if gop is not None:
            stream.codec_context.gop_size = gop
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of the first video stream, as RGB uint8 (the reference the readers are checked against)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
