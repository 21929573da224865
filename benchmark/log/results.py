"""results.json and samples.jsonl: what a run measured, with its provenance.

The schema is documented key by key in docs/results-schema.md and checked by `RESULTS_SCHEMA`
(JSON Schema) in the tests. Everything in results.json is a function of the run directory's
store except `written_at`, so writing it twice from the same store gives the same file apart
from that timestamp.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..core.stats import summarize
from .records import SetScore
from .store import RunStore
from ..core.tasks import metric_refs
from ..core.yamlspec import content_hash

SCHEMA_VERSION = "1.0"
PACKAGES = ("wmbench", "torch", "torchvision", "transformers", "diffusers", "torchmetrics", "lpips",
            "open_clip_torch", "scikit-image", "numpy", "pillow", "av", "pyarrow", "metaworld", "mujoco",
            "sacrebleu")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict[str, Any]:
    """The commit of the wmbench source tree (None outside a git checkout) and whether it is dirty."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "benchmark"],
                                    cwd=root, capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


def metric_entry(record: dict[str, Any], values: list[float | None], total_done: int,
                 clusters: list[Any] | None = None) -> dict[str, Any]:
    """`record`: the metric as the run described it (`TaskMetrics.describe`); `clusters`: the
    episode of each value; samples of one episode are resampled together."""
    if not record["available"]:
        return {**record, **summarize([]), "n_not_applicable": 0, "n_missing": total_done}
    finite = [v for v in values if v is not None]
    episodes = None if clusters is None else [c for v, c in zip(values, clusters) if v is not None]
    return {**record, **summarize(finite, episodes), "n_not_applicable": sum(v is None for v in values),
            "n_missing": total_done - len(values)}


def set_metric_entry(record: dict[str, Any], stored: SetScore | None, total_done: int) -> dict[str, Any]:
    """A set-level metric (FID, KID): one value over the scored set, no per-sample interval."""
    available, reason = record["available"], record["reason"]
    details = (stored.details if stored else None) or {}
    if available and details.get("failed"):
        reason = details.get("error")
    n = details.get("n", 0) if stored else 0
    entry = {**record, "reason": reason or None, **summarize([]),
             "ci_method": "set", "n": n, "n_not_applicable": total_done - n if stored else 0,
             "n_missing": 0 if stored else total_done, "n_failed": 0, "set_details": details or None}
    if available and stored:
        entry["mean"] = stored.value
    return entry


def provenance() -> dict[str, Any]:
    """What produced the numbers: recorded in the store whenever samples are evaluated or rescored."""
    return {"git": git_state(), "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": package_versions()}


def build_results(store: RunStore, config: dict[str, Any]) -> dict[str, Any]:
    """The results document for every task in the store, over the samples the last invocation
    selected (a smaller --limit into the same directory reports the smaller set)."""
    tasks: dict[str, Any] = {}
    model: dict[str, Any] | None = None
    for name in store.stored_tasks():
        spec, model = store.task_binding(name)
        selected = store.selected(name)
        records = store.samples(name, selected)
        scores, details = store.scores(name), store.details(name)
        done = [r for r in records if r.status == "done"]
        counts = {"total": len(selected), "scored": len(done),
                  "failed": sum(r.status == "failed" for r in records),
                  "skipped": sum(r.status == "skipped" for r in records),
                  "pending": len(selected) - len(records)}
        failures: dict[str, int] = {}
        for r in records:
            if r.status == "failed":
                failures[r.stage or "unknown"] = failures.get(r.stage or "unknown", 0) + 1
        metrics = {}
        set_scores = store.set_scores(name)
        records = store.metric_records(name)
        for ref in metric_refs(spec["metrics"]):
            key = ref.key
            record = records.get(key) or _unrecorded(ref.name)
            if record["set_level"]:
                metrics[key] = set_metric_entry(record, set_scores.get(key), len(done))
                continue
            scored = [r for r in done if key in scores.get(r.sample_id, {})]
            failed = [r for r in scored if (details.get(r.sample_id, {}).get(key) or {}).get("failed")]
            ok = [r for r in scored if r not in failed]
            metrics[key] = {**metric_entry(record, [scores[r.sample_id][key] for r in ok], len(done) - len(failed),
                                           [r.info.get("episode_id") for r in ok]),
                            "n_failed": len(failed)}
        tasks[name] = {"kind": spec["kind"], "version": spec["version"], "spec": spec,
                       "spec_hash": content_hash(spec), "counts": counts, "failures_by_stage": failures,
                       "metrics": metrics}
    if model is not None:
        model = {**model, "adapter_fingerprint": store.meta("model_fingerprint")}
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": store.meta("created_at"),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model,
        "config": config,
        "provenance": store.meta("provenance") or provenance(),
        "tasks": tasks,
    }


def _unrecorded(name: str) -> dict[str, Any]:
    """A metric of the spec that no invocation has described (the task never ran to the end)."""
    from ..core.registry import METRICS

    return {**METRICS.get(name).info(), "options": {}, "weights": [], "available": False,
            "reason": "not scored yet: run the task again to score it"}


def write_outputs(store: RunStore, config: dict[str, Any]) -> dict[str, Any]:
    """Write results.json and samples.jsonl into the run directory; return the results.

    Processes sharing a run directory take turns (a file lock around reading the store and
    writing), so the last writer's snapshot holds every batch committed before it."""
    with _run_dir_lock(store.run_dir):
        return _write_outputs(store, config)


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (several processes on one run dir need POSIX)
        yield
        return
    with open(run_dir / ".write.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_outputs(store: RunStore, config: dict[str, Any]) -> dict[str, Any]:
    results = build_results(store, config)
    run_dir = store.run_dir
    _atomic_write(run_dir / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = []
    for name in store.stored_tasks():
        scores = store.scores(name)
        details = store.details(name)
        for r in store.samples(name, store.selected(name)):  # what results.json reports, no more
            prediction = r.prediction.to_dict() if r.prediction else None
            if prediction and "images" in prediction:
                prediction["paths"] = [str(store.image_path(d).relative_to(run_dir)) for d in prediction["images"]]
            lines.append(json.dumps({"task": name, "sample_id": r.sample_id, "position": r.position,
                                     "status": r.status, "stage": r.stage, "error": r.error,
                                     "prediction": prediction, "scores": scores.get(r.sample_id, {}),
                                     "details": details.get(r.sample_id) or None,
                                     "sample": r.info}, sort_keys=True))
    _atomic_write(run_dir / "samples.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    return results


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # processes sharing a run dir never collide
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "created_at", "written_at", "model", "config", "provenance", "tasks"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "created_at": {"type": "string"},
        "written_at": {"type": "string"},
        "model": {"type": ["object", "null"], "required": ["card", "fingerprint"],
                  "properties": {"card": {"type": "object", "required": ["name", "adapter", "args"]},
                                 "fingerprint": {"type": "string"}}},
        "config": {"type": "object", "required": ["batch_size", "data_dir", "limit", "seed"]},
        "provenance": {"type": "object", "required": ["git", "python", "platform", "packages"],
                       "properties": {"git": {"type": "object", "required": ["commit", "dirty"]},
                                      "packages": {"type": "object",
                                                   "additionalProperties": {"type": ["string", "null"]}}}},
        "tasks": {"type": "object", "additionalProperties": {
            "type": "object",
            "required": ["kind", "version", "spec", "spec_hash", "counts", "failures_by_stage", "metrics"],
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": ["fdp", "idp", "probe"]},
                "version": {"type": ["integer", "string"]},
                "spec": {"type": "object"},
                "spec_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "counts": {"type": "object", "required": ["total", "scored", "failed", "skipped", "pending"],
                           "additionalProperties": {"type": "integer", "minimum": 0}},
                "failures_by_stage": {"type": "object", "additionalProperties": {"type": "integer"}},
                "metrics": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "required": ["name", "version", "kind", "higher_is_better", "needs", "edit_aware",
                                 "available", "reason", "weights", "options", "set_level", "mean", "std", "stderr", "ci95", "n",
                                 "ci_method", "n_not_applicable", "n_missing", "n_failed"],
                    "properties": {
                        "mean": {"type": ["number", "null"]},
                        "ci95": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                        "n": {"type": "integer", "minimum": 0},
                        "available": {"type": "boolean"},
                        "reason": {"type": ["string", "null"]},
                    }}},
            }}},
    },
}
