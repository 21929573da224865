"""`read_run`: the one typed reader of run directories.

A run directory holds `results.json` (docs/results-schema.md), `samples.jsonl` (one record per
sample), `objects/<2 hex>/<sha256>.png` (predicted images) and the git-ignored `store.sqlite`.
The reader needs only results.json and samples.jsonl (committed runs under `results/` have nothing
else); images are read on request. results.json is read at once; samples.jsonl on first use of
`samples`, so a leaderboard that needs only the means never parses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import BadInput
from . import objects
from .records import Prediction

if TYPE_CHECKING:
    import numpy as np

RESULTS, SAMPLES = "results.json", "samples.jsonl"


@dataclass(frozen=True)
class SampleLog:
    """One record of samples.jsonl. `status`: done (prediction stored, `scores` hold its scores),
    failed (`stage` and `error` say where and why) or skipped; `scores`: metric key -> value (None:
    not applicable); `sample`: the transition (episode_id, action_text, frame origins, meta)."""

    task: str
    sample_id: str
    position: int
    status: str
    stage: str | None
    error: str | None
    prediction: Prediction | None
    scores: dict[str, float | None]
    details: dict[str, Any] | None
    sample: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def episode_id(self) -> Any:
        return self.sample.get("episode_id")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleLog:
        return cls(task=str(data["task"]), sample_id=str(data["sample_id"]), position=int(data["position"]),
                   status=str(data["status"]), stage=data.get("stage"), error=data.get("error"),
                   prediction=Prediction.from_dict(data.get("prediction")), scores=dict(data.get("scores") or {}),
                   details=data.get("details") or None, sample=dict(data.get("sample") or {}))


class _Samples:
    """samples.jsonl of one run, parsed once on first use and shared by the RunLog and its TaskLogs."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._tasks: dict[str, list[SampleLog]] | None = None
        self._index: dict[str, dict[str, SampleLog]] = {}

    def tasks(self) -> dict[str, list[SampleLog]]:
        if self._tasks is None:
            self._tasks = _parse_samples(self.run_dir)
        return self._tasks

    def index(self, task: str) -> dict[str, SampleLog]:
        if task not in self._index:
            self._index[task] = {s.sample_id: s for s in self.tasks().get(task, [])}
        return self._index[task]


@dataclass(frozen=True)
class TaskLog:
    """One task of a run: its results.json entry (`metrics`: metric key -> the results.json
    metric entry, with mean, ci95, n, higher_is_better, available, reason) and its samples."""

    name: str
    kind: str  # fdp | idp
    spec: dict[str, Any]
    counts: dict[str, int]  # total, scored, failed, skipped, pending
    metrics: dict[str, dict[str, Any]]
    _samples: _Samples = field(repr=False, compare=False)

    @property
    def samples(self) -> list[SampleLog]:
        """This task's samples in the reader's order (parsed from samples.jsonl on first use)."""
        return self._samples.tasks().get(self.name, [])

    @property
    def by_id(self) -> dict[str, SampleLog]:
        """sample_id -> sample, in the reader's order (shared: do not modify)."""
        return self._samples.index(self.name)

    def sample(self, sample_id: str) -> SampleLog | None:
        return self.by_id.get(sample_id)

    def values(self, metric: str) -> tuple[list[float], list[Any]]:
        """(scores, episode ids) of the done samples that have a `metric` score, in the reader's order."""
        hits = [s for s in self.samples if s.done and s.scores.get(metric) is not None]
        return [s.scores[metric] for s in hits], [s.episode_id for s in hits]


@dataclass(frozen=True)
class RunLog:
    """A run directory: `results` is the whole results.json; `tasks` its tasks in file order."""

    path: Path
    results: dict[str, Any]
    model_name: str
    tasks: dict[str, TaskLog]
    _samples: _Samples = field(repr=False, compare=False)

    @property
    def card(self) -> dict[str, Any]:
        """The model card as evaluated (name, adapter, args, ...)."""
        return self.results["model"]["card"]

    @property
    def fingerprint(self) -> str:
        return self.results["model"]["fingerprint"]

    @property
    def samples(self) -> list[SampleLog]:
        """Every sample of the run, task by task (parsed from samples.jsonl on first use)."""
        return [s for samples in self._samples.tasks().values() for s in samples]

    def scores_frame(self):
        """pandas DataFrame: one row per sample (task, sample_id, episode_id, status, stage, error)
        and one column per metric score (NaN where it did not apply, failed or was not scored)."""
        import pandas as pd

        rows = [{"task": r.task, "sample_id": r.sample_id, "episode_id": r.episode_id, "status": r.status,
                 "stage": r.stage, "error": r.error, **r.scores} for r in self.samples]
        return pd.DataFrame(rows, columns=None if rows else ["task", "sample_id", "episode_id", "status",
                                                             "stage", "error"])

    def image_path(self, digest: str) -> Path:
        """Where the stored PNG with this sha256 lives (content addressed, as the store writes it)."""
        return objects.path_of(self.path, digest)

    def image(self, digest: str) -> np.ndarray:
        """The stored prediction as uint8 HWC RGB."""
        return objects.get(self.path, digest)


def read_run(path: str | Path) -> RunLog:
    """The run directory `path` (or its results.json); raises BadInput naming the file at fault."""
    run_dir = Path(path)
    if run_dir.name == RESULTS and run_dir.is_file():
        run_dir = run_dir.parent
    file = run_dir / RESULTS
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a run directory (it does not exist)")
    if not file.is_file():
        raise BadInput(f"{run_dir}: not a run directory ({file} is missing)")
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file}: not valid JSON ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"{file}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        if not isinstance(results, dict):
            raise ValueError(f"a JSON {type(results).__name__}, not an object")
        if results.get("model") is None:
            raise ValueError("no model (the run evaluated no task)")
        name = results["model"]["card"]["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("model.card.name is empty")
        if not isinstance(results["model"]["fingerprint"], str):
            raise ValueError("model.fingerprint is not a string")
        if not isinstance(results["tasks"], dict):
            raise ValueError("'tasks' is not an object")
        samples = _Samples(run_dir)
        tasks = {task: TaskLog(task, str(e["kind"]), dict(e.get("spec") or {}), dict(e["counts"]),
                               dict(e["metrics"]), samples) for task, e in results["tasks"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise BadInput(f"{file}: not a wmbench results file ({what})") from exc
    return RunLog(run_dir, results, name, tasks, samples)


def _parse_samples(run_dir: Path) -> dict[str, list[SampleLog]]:
    file = run_dir / SAMPLES
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BadInput(f"{run_dir}: not a run directory ({file} is missing)") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"{file}: unreadable ({type(exc).__name__}: {exc})") from exc
    tasks: dict[str, list[SampleLog]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            sample = SampleLog.from_dict(json.loads(line))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise BadInput(f"{file}, line {number}: not a sample record ({what})") from exc
        tasks.setdefault(sample.task, []).append(sample)
    return tasks


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """The run directories named by `paths`: a run directory or its results.json, or a folder
    searched recursively for results.json files (in sorted order). The partial results of a
    data-parallel run's shards (`<run>/shards/<i>-of-<n>/`) are part of their run, not runs."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file() and path.name == RESULTS:
            found.append(path.parent)
        elif path.is_dir():
            found += [p.parent for p in sorted(path.rglob(RESULTS)) if p.parent.parent.name != "shards"]
        else:
            raise BadInput(f"{path}: neither a run directory nor a results.json")
    return found
