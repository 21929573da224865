"""One registry class for models, metrics, dataset formats and generators.

Entries are lazy "module:attr" strings (or objects), so listing names costs no heavy import;
third-party packages add entries through an entry-point group (e.g. `wmbench.models`).
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import WmbenchError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """Import "package.module:attr" and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise WmbenchError(f"target '{target}' must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WmbenchError(f"cannot import '{module_name}' for '{target}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise WmbenchError(f"module '{module_name}' has no attribute '{attr}' (from '{target}')") from exc


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Names mapped to lazily imported objects, plus an entry-point group scanned on first lookup."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._targets: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points_scanned = False

    def register(self, name: str, target: str | T) -> None:
        if name in self._targets and self._targets[name] != target:
            raise WmbenchError(f"{self.kind} '{name}' is registered twice ({self._targets[name]!r} and {target!r})")
        self._targets[name] = target

    def _scan_entry_points(self) -> None:
        if self._entry_points_scanned or not self.entry_point_group:
            return
        self._entry_points_scanned = True
        for ep in entry_points(group=self.entry_point_group):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._scan_entry_points()
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        self._scan_entry_points()
        return name in self._targets

    def get(self, name: str) -> T:
        self._scan_entry_points()
        if name not in self._targets:
            raise WmbenchError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; "
                               f"known: {', '.join(self.names())}")
        if name not in self._loaded:
            target = self._targets[name]
            self._loaded[name] = import_target(target) if isinstance(target, str) else target
        return self._loaded[name]
