"""Helpers shared by the transformers / diffusers adapters (device, dtype, seeding, fingerprints).

Only numpy and the standard library at module level: torch is imported inside the functions so
that `wmbench list models` stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..core.errors import BadInput


def resolve_device(device: str | None) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def resolve_dtype(dtype: str | None, device: str) -> Any:
    """"auto" -> bfloat16 on GPU, float32 on CPU (bf16 matmuls on CPU are slow and inexact)."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, names.get(str(dtype), str(dtype)), None)
    if not isinstance(value, torch.dtype):
        raise BadInput(f"unknown dtype '{dtype}' (use auto, bfloat16, float16 or float32)")
    return value


def stable_seed(seed: int, keys: Sequence[str]) -> int:
    """A seed that depends on the run seed and the batch's sample ids, so that re-running (or
    resuming) the same batch draws the same samples."""
    digest = hashlib.sha256(("\0".join([str(seed), *keys])).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def torch_generator(seed: int, keys: Sequence[str], device: str) -> Any:
    import torch

    gen = torch.Generator(device=device if device.startswith("cuda") else "cpu")
    gen.manual_seed(stable_seed(seed, keys))
    return gen


def to_pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image))


def tensor_to_uint8(images: Any, value_range: tuple[float, float] = (-1.0, 1.0)) -> list[np.ndarray]:
    """(B, 3, H, W) float tensor in `value_range` -> list of (H, W, 3) uint8 arrays."""
    low, high = value_range
    scaled = (images.detach().float().cpu().clamp(low, high) - low) / (high - low)
    array = (scaled.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
    return [np.ascontiguousarray(a) for a in array]


def chunks(n: int, size: int) -> Iterator[slice]:
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def checkpoint_fingerprint(path: str, revision: str | None = None) -> dict[str, Any]:
    """What identifies a checkpoint without hashing gigabytes: for a local folder, the sha256 of
    its JSON configs and the names and sizes of its weight files; for a hub id, id and revision."""
    folder = Path(os.path.expanduser(path))
    if not folder.is_dir():
        return {"checkpoint": path, "revision": revision}
    digest = hashlib.sha256()
    weights = {}
    for file in sorted(folder.rglob("*")):
        if not file.is_file():
            continue
        rel = file.relative_to(folder).as_posix()
        if file.suffix == ".json" or rel.endswith((".txt", ".model", ".jinja")):
            digest.update(rel.encode() + b"\0" + file.read_bytes())
        elif file.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth"):
            weights[rel] = file.stat().st_size
    return {"checkpoint": str(folder.resolve()), "config_sha256": digest.hexdigest(),
            "weights": json.dumps(weights, sort_keys=True)}


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise BadInput(f"model arg {name}={value!r}: expected one of {', '.join(choices)}")
    return value


def sampling_kwargs(temperature: float, top_p: float, top_k: int) -> dict[str, Any]:
    """transformers generate() kwargs: temperature 0 means greedy decoding."""
    if float(temperature) <= 0:
        return {"do_sample": False}
    kwargs: dict[str, Any] = {"do_sample": True, "temperature": float(temperature)}
    if top_p and float(top_p) < 1.0:
        kwargs["top_p"] = float(top_p)
    kwargs["top_k"] = int(top_k) if top_k else 0
    return kwargs


def filter_logits(logits: Any, temperature: float, top_k: int, top_p: float) -> Any:
    """Temperature, top-k and nucleus filtering of a (B, V) logits tensor (-inf outside)."""
    import torch

    logits = logits / max(float(temperature), 1e-6)
    if top_k and 0 < int(top_k) < logits.shape[-1]:
        kth = torch.topk(logits, int(top_k), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p and float(top_p) < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > float(top_p)  # keep the token that crosses p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits
