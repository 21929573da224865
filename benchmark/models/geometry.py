"""Geometry of image-generating adapters: how a source frame becomes the model's frame, and back.

The contract every image-generating adapter follows (docs/models.md):

1. The model sees the source exactly as its upstream preprocessing frames it: padded to a square
   (Janus), centre-cropped after a shortest-edge resize (Chameleon / Anole), resized with its
   aspect ratio kept (Emu3's `smart_resize`), or fitted to multiples of 64 around a long side
   (InstructPix2Pix / MagicBrush / AURORA's `edit_cli.py`, `ImageOps.fit`).
2. A prediction is mapped back into the source frame by the exact inverse of that framing.
3. What a crop cut away is filled from the source, and the fraction of the frame filled so is
   recorded in the prediction's details (`Frame.details["geometry"]["filled_from_source"]`).

A `Framing` is an affine correspondence between the two frames: the rectangle `box` of the source
frame, in continuous pixel coordinates (pixel (0, 0) covers [0, 1) x [0, 1)), fills the model's
whole frame. A crop gives a box inside the source; padding gives a box larger than the source.
The inverse resamples the model frame's part that covers whole source pixels (PIL `resize` with a
`box`, antialiased) and takes every other pixel from the source.

Only numpy at module level; PIL inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Frame


@dataclass(frozen=True)
class Framing:
    """`box` = (left, top, right, bottom) of the source frame that fills the model frame of `size`
    = (width, height); `kind` names the upstream rule."""

    kind: str
    size: tuple[int, int]
    box: tuple[float, float, float, float]

    def inner(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The source pixels the model frame covers whole: (x0, y0, x1, y1), clipped to the source."""
        left, top, right, bottom = self.box
        eps = 1e-6  # float noise of the box arithmetic must not drop a pixel
        x0, y0 = max(0, math.ceil(left - eps)), max(0, math.ceil(top - eps))
        x1, y1 = min(width, math.floor(right + eps)), min(height, math.floor(bottom + eps))
        return x0, y0, max(x0, x1), max(y0, y1)

    def filled_fraction(self, width: int, height: int) -> float:
        x0, y0, x1, y1 = self.inner(width, height)
        return 1.0 - (x1 - x0) * (y1 - y0) / float(width * height)

    def describe(self, width: int, height: int) -> dict[str, Any]:
        return {"kind": self.kind, "model_frame": list(self.size), "source_box": [round(v, 3) for v in self.box],
                "filled_from_source": round(self.filled_fraction(width, height), 6)}


def identity(width: int, height: int, size: tuple[int, int] | None = None, kind: str = "resize") -> Framing:
    """The whole source fills the model frame (an aspect-preserving or plain resize)."""
    return Framing(kind, tuple(size or (width, height)), (0.0, 0.0, float(width), float(height)))


def pad_to_square(width: int, height: int, side: int, min_size: int = 14) -> Framing:
    """transformers `JanusImageProcessor.resize` + `pad_to_square` (the original Janus
    `VLMImageProcessor.resize` + `expand2square`, which floors where transformers rounds): the longest
    edge becomes `side`, the other `max(round(edge * side / longest), min_size)`, centred on a
    `side` x `side` canvas of the background colour."""
    scale = side / max(width, height)
    new_w, new_h = max(round(width * scale), min_size), max(round(height * scale), min_size)
    off_x = (side - new_w) // 2 if new_w < side else 0
    off_y = (side - new_h) // 2 if new_h < side else 0
    sx, sy = new_w / width, new_h / height  # source pixels -> canvas pixels
    return Framing("pad_to_square", (side, side), (-off_x / sx, -off_y / sy, (side - off_x) / sx, (side - off_y) / sy))


def shortest_edge_center_crop(width: int, height: int, shortest: int, crop: tuple[int, int]) -> Framing:
    """transformers' `ChameleonImageProcessor` (TorchvisionBackend.resize with `shortest_edge`,
    `get_resize_output_image_size(default_to_square=False)`, then `center_crop`), the HF port of the
    original Chameleon `ImageTokenizer._vqgan_input_from` (shortest side 512, centre crop 512)."""
    crop_w, crop_h = crop
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest, int(shortest * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    # a crop larger than the resized image pads it (centre): a negative offset
    top = int((new_h - crop_h) / 2.0) if crop_h <= new_h else -((crop_h - new_h) // 2)
    left = int((new_w - crop_w) / 2.0) if crop_w <= new_w else -((crop_w - new_w) // 2)
    sx, sy = new_w / width, new_h / height
    return Framing("shortest_edge_center_crop", (crop_w, crop_h),
                   (left / sx, top / sy, (left + crop_w) / sx, (top + crop_h) / sy))


def edit_cli_fit(width: int, height: int, resolution: int = 512) -> Framing:
    """The editors' framing: InstructPix2Pix's and AURORA's `edit_cli.py` (AURORA's `app.py` too) size
    the input so that its long side is about `resolution` and both sides are multiples of 64, then
    `ImageOps.fit` it (centre crop to that aspect ratio, then resize). The box is PIL's
    `ImageOps.fit` box (bleed 0, centring 0.5)."""
    factor = resolution / max(width, height)
    factor = math.ceil(min(width, height) * factor / 64) * 64 / min(width, height)
    out_w, out_h = int((width * factor) // 64) * 64, int((height * factor) // 64) * 64
    out_w, out_h = max(64, out_w), max(64, out_h)
    live_ratio, out_ratio = width / height, out_w / out_h
    if live_ratio == out_ratio:
        crop_w, crop_h = float(width), float(height)
    elif live_ratio >= out_ratio:
        crop_w, crop_h = out_ratio * height, float(height)
    else:
        crop_w, crop_h = float(width), width / out_ratio
    left, top = (width - crop_w) * 0.5, (height - crop_h) * 0.5
    return Framing("edit_cli_fit", (out_w, out_h), (left, top, left + crop_w, top + crop_h))


def frame(source: np.ndarray, framing: Framing, resample: str = "LANCZOS") -> np.ndarray:
    """The model's view of `source` for a box inside it (crops, resizes): PIL `resize` with the
    box, which is what `ImageOps.fit` does. Padding framings are left to the family's processor."""
    from PIL import Image

    left, top, right, bottom = framing.box
    if left < -1e-6 or top < -1e-6 or right > source.shape[1] + 1e-6 or bottom > source.shape[0] + 1e-6:
        raise ValueError(f"frame(): the box {framing.box} leaves the source; padding is the processor's job")
    image = Image.fromarray(np.ascontiguousarray(source))
    return np.asarray(image.resize(framing.size, getattr(Image.Resampling, resample), box=framing.box))


def unframe(image: np.ndarray, framing: Framing, source: np.ndarray, resample: str = "BICUBIC") -> Frame:
    """`image` (the model frame, any pixel size) mapped back into `source`'s frame by the inverse of
    `framing`; pixels the model frame does not cover whole come from `source`. Returns a `Frame`
    whose details hold `geometry` (`Framing.describe`)."""
    from PIL import Image

    height, width = source.shape[:2]
    out_h, out_w = image.shape[:2]
    left, top, right, bottom = framing.box
    sx, sy = out_w / (right - left), out_h / (bottom - top)  # source pixels -> model-frame pixels
    x0, y0, x1, y1 = framing.inner(width, height)
    result = np.array(source, dtype=np.uint8, copy=True)
    if x1 > x0 and y1 > y0:
        box = ((x0 - left) * sx, (y0 - top) * sy, (x1 - left) * sx, (y1 - top) * sy)
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(out_w), box[2]), min(float(out_h), box[3]))
        pil = Image.fromarray(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
        result[y0:y1, x0:x1] = np.asarray(pil.resize((x1 - x0, y1 - y0), getattr(Image.Resampling, resample), box=box))
    return Frame(result, {"geometry": framing.describe(width, height)})
