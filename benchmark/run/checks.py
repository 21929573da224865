"""Checks of `evaluate`'s arguments made before anything is written: the model args against the
adapter's constructor, and the device."""

from __future__ import annotations

from typing import Any

from ..core.errors import BadInput
from ..models import ModelCard


def check_model_args(card: ModelCard) -> None:
    """The card's args against the adapter's constructor: unknown names and values of the wrong
    simple type (int, float, bool, str) are refused before anything is written."""
    import inspect
    import typing

    from ..core.registry import did_you_mean
    from ..models import adapter_class

    init = adapter_class(card).__init__
    params = {n: p for n, p in inspect.signature(init).parameters.items() if n != "self"}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - annotations that do not resolve: check names only
        hints = {}
    for key, value in card.args.items():
        if key not in params:
            if takes_any:
                continue
            raise BadInput(f"model '{card.name}': unknown model arg '{key}'{did_you_mean(key, named)}; "
                           f"adapter '{card.adapter}' takes: {', '.join(named) or 'none'}")
        expected = _simple_types(hints.get(key))
        if expected and value is not None and not _fits(value, expected):
            raise BadInput(f"model '{card.name}': model arg {key}={value!r} is a {type(value).__name__}, "
                           f"expected {' or '.join(t.__name__ for t in expected)}")
    missing = [n for n, p in params.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and n not in card.args]
    if missing:
        raise BadInput(f"model '{card.name}': adapter '{card.adapter}' needs model arg(s) {', '.join(missing)} "
                       f"(--model-args {missing[0]}=...)")


def _simple_types(hint: Any) -> tuple[type, ...]:
    import types
    import typing

    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    simple = tuple(t for t in options if t in (int, float, bool, str))
    others = [t for t in options if t not in (int, float, bool, str, type(None))]
    return () if others else simple


def _fits(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in expected
    if isinstance(value, int):
        return int in expected or float in expected
    return isinstance(value, expected)


def check_device(device: str | None) -> None:
    """`--device cuda` on a machine without CUDA (or an index past the last GPU) is bad input."""
    if not device or device == "cpu":
        return
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise BadInput(f"--device {device!r} is not a device ({exc})") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise BadInput(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"--device {device}: MPS is not available on this machine")
