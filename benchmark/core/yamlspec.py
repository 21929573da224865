"""Typed dataclasses from YAML, with errors that name the file and the field.

Supports the field types our specs use: str, int, float, bool, Optional[...], Literal[...],
list[...], dict[str, Any] and nested dataclasses. Unknown keys are errors, with a suggestion.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from .errors import SpecError
from .registry import did_you_mean

T = TypeVar("T")
MISSING = dataclasses.MISSING


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(path, None, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(path, None, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                                    "save the file as UTF-8") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(path, None, f"malformed YAML{where}: {problem}") from exc


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: Path, field: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path, field)
            except SpecError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else SpecError(path, field, f"expected one of {[_type_name(a) for a in args]}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise SpecError(path, field, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(path, field, f"expected a list, got {type(value).__name__}")
        return [_convert(v, args[0] if args else Any, path, f"{field}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SpecError(path, field, f"expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, prefix=field)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, field, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, field, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, field, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, field, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"yamlspec: unsupported field type {tp!r}")


def build(cls: type[T], data: Any, path: Path | str, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; every problem raises SpecError(path, field, ...)."""
    where = prefix or None
    if not isinstance(data, dict):
        raise SpecError(path, where, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    # fields marked metadata={"yaml": False} (e.g. where a spec was read from) are not YAML keys
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)}
    for key in data:
        if key not in fields:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise SpecError(path, full, f"unknown field{did_you_mean(str(key), list(fields))}; "
                                        f"allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        full = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], Path(path), full)
        elif f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
            raise SpecError(path, full, "required field is missing")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ checks raise ValueError("field: message")
        field, _, message = str(exc).partition(": ")
        raise SpecError(path, f"{prefix}.{field}" if prefix else field, message) from exc


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def content_hash(data: Any) -> str:
    """sha256 of canonical JSON: the same content always gives the same hash."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()
