"""The leaderboard's data: a `Board` of `Cell`s under `Column`s (built by `leaderboard.build`,
drawn by `formats`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Column:
    group: str
    metric: str
    label: str  # the subset, "Avg", or "" for a task shown alone
    tasks: tuple[str, ...]
    higher_is_better: bool
    decimals: int = 3

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.metric, self.label)


@dataclass
class Cell:
    state: str  # ok | na (metric unavailable) | missing (not evaluated) | empty (no sample scored)
    mean: float | None = None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    seeds: int = 1  # > 1: lo/hi are mean -/+ the s.d. across seeds
    note: str | None = None
    best: bool = False


@dataclass
class Board:
    cells: Any  # pandas DataFrame: index = model labels, columns = MultiIndex (group, metric, label)
    columns: list[Column]
    anchors: list[str]
    coverage: dict[str, dict[str, dict[str, int]]]  # model -> task -> counts
    notes: dict[str, str] = field(default_factory=dict)  # marker -> text

    @property
    def models(self) -> list[str]:
        return list(self.cells.index)


def coverage_text(board: Board, model: str, tasks: Iterable[str] | None = None) -> str:
    counts = [c for t, c in board.coverage.get(model, {}).items() if tasks is None or t in tasks]
    return " / ".join(str(sum(c[k] for c in counts)) for k in ("scored", "failed", "skipped"))
