"""The run store: one SQLite database (WAL) per run directory, plus content-addressed images.

Every finished batch is committed in one transaction, so killing the process loses at most the
batch in flight, and a re-run skips what is stored. Predicted images are PNG files under
`objects/<first two hex digits>/<sha256 of the PNG bytes>.png`, written atomically before the
row that names them is committed (a crash can leave an orphan file, never a dangling row).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..core.errors import BadInput
from . import objects
from .claims import CLAIM_TTL_S, owner_alive, owner_id
from .records import Prediction, SampleRecord, ScoreRow, SetScore

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, spec TEXT NOT NULL, model TEXT NOT NULL,
    selected TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    task TEXT NOT NULL, sample_id TEXT NOT NULL, position INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'skipped')),
    stage TEXT, error TEXT, prediction TEXT, info TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (task, sample_id));
CREATE TABLE IF NOT EXISTS claims (
    task TEXT NOT NULL, sample_id TEXT NOT NULL, owner TEXT NOT NULL, claimed_at REAL NOT NULL,
    PRIMARY KEY (task, sample_id));
CREATE TABLE IF NOT EXISTS scores (
    task TEXT NOT NULL, sample_id TEXT NOT NULL, metric TEXT NOT NULL, version TEXT NOT NULL,
    value REAL, details TEXT, PRIMARY KEY (task, sample_id, metric));
CREATE TABLE IF NOT EXISTS set_scores (
    task TEXT NOT NULL, metric TEXT NOT NULL, fingerprint TEXT NOT NULL, value REAL, details TEXT,
    PRIMARY KEY (task, metric));
"""


@dataclass
class Plan:
    """Sample ids to evaluate (`todo`) and stored ones to score again (`stale`)."""

    todo: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


class RunStore:
    """Several processes may work on one run directory at once: each claims a batch before it
    evaluates it, so no sample is evaluated twice, and a crashed process's claims lapse."""

    def __init__(self, run_dir: Path, *, any_thread: bool = False):
        """`any_thread`: the connection may be closed from another thread than the one that opened
        it (a pipeline worker's connection, closed by the evaluation when it ends)."""
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise BadInput(f"{self.run_dir} is a file, not a run directory; choose another --output")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.run_dir / "store.sqlite", timeout=60, isolation_level=None,
                                      check_same_thread=not any_thread)
            self._refuse_foreign()
            self._enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BadInput(store_error(self.run_dir, exc)) from exc
        self.owner = owner_id()

    def _refuse_foreign(self) -> None:
        """An SQLite file of another program (tables, none of ours) is not taken over."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = {"run_meta", "tasks", "samples", "claims", "scores", "set_scores"}  # (another process may be
        if tables and not tables & ours:                                            # creating them right now)
            self.db.close()
            raise BadInput(f"{self.run_dir / 'store.sqlite'} is not a wmbench store: an SQLite database of another "
                           f"program (tables {', '.join(sorted(tables)[:5])}); choose another --output")

    def _enable_wal(self, patience_s: float = 60.0) -> None:
        """Switching to WAL needs a moment alone with the file; processes that open a new run
        directory together can get SQLITE_BUSY at once (the busy timeout does not cover it)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.db.close()

    # run-level metadata -------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM run_meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta_once(self, key: str, value: Any) -> Any:
        """Store `value` unless the key exists; return the stored value (e.g. the creation time)."""
        self.db.execute("INSERT OR IGNORE INTO run_meta VALUES (?, ?)", (key, json.dumps(value, default=str)))
        return self.meta(key)

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO run_meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    # the run's identity: one model, and per task one configuration ------------------------
    def check_model(self, model: dict) -> None:
        """Refuse another model card (adapter and args) once anything is stored (read only)."""
        stored = self.meta("model")
        if stored is not None and stored != json.loads(json.dumps(model, default=str)) and self._has_samples():
            raise BadInput(f"{self.run_dir} holds a run of model '{stored['card']['name']}' (adapter "
                           f"{stored['card']['adapter']}, args {stored['card']['args']}); a run directory holds one "
                           f"model: use another --output for '{model['card']['name']}'")

    def bind_model(self, model: dict) -> None:
        """A run directory holds one model card: see `check_model`; a binding under which nothing
        was stored yet (a rejected command) is replaced."""
        self.check_model(model)
        if self.meta("model") != json.loads(json.dumps(model, default=str)):  # a refused command alters nothing
            self.set_meta("model", model)

    def check_task(self, task: str, fingerprint: str, model: dict) -> None:
        """Refuse another configuration of `task` once samples of it are stored (read only)."""
        row = self.db.execute("SELECT fingerprint, model FROM tasks WHERE task = ?", (task,)).fetchone()
        if row is not None and (row[0] != fingerprint or json.loads(row[1]) != model) and self._has_samples(task):
            what = "task spec (dataset, frames, prompt or seed)" if row[0] != fingerprint else "model (adapter or args)"
            raise BadInput(
                f"{self.run_dir} already holds a run of task '{task}' with a different {what}; "
                f"resuming would mix results. Use another --output directory, or delete {self.run_dir}.")

    def bind_task(self, task: str, fingerprint: str, spec: dict, model: dict, selected: list[str]) -> list[str]:
        """Record what this run directory evaluates for `task` and which samples the current
        invocation selected (results.json reports those); refuse a different configuration (see
        `check_task`). A spec with the same fingerprint replaces the stored one (e.g. metrics were
        added, another limit). Returns the selection the previous invocation made."""
        self.check_task(task, fingerprint, model)
        row = self.db.execute("SELECT selected FROM tasks WHERE task = ?", (task,)).fetchone()
        binding = (task, fingerprint, json.dumps(spec, sort_keys=True), json.dumps(model, sort_keys=True),
                   json.dumps(selected))
        if self.db.execute("SELECT 1 FROM tasks WHERE task = ? AND fingerprint = ? AND spec = ? AND model = ? AND "
                           "selected = ?", binding).fetchone() is None:  # an unchanged binding is not rewritten
            self.db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)", binding)
        return json.loads(row[0]) if row is not None else []

    def is_empty(self) -> bool:
        """No sample of any task was ever committed (claims and bindings aside)."""
        return not self._has_samples()

    def _has_samples(self, task: str | None = None) -> bool:
        query, args = ("SELECT 1 FROM samples WHERE task = ? LIMIT 1", (task,)) if task else ("SELECT 1 FROM samples LIMIT 1", ())
        return self.db.execute(query, args).fetchone() is not None

    def record_metrics(self, task: str, described: dict[str, Any]) -> None:
        """What the task's metrics are in this invocation (`describe()` plus availability and the
        reason): results.json reports them from here, without live metric objects."""
        self.set_meta(f"metrics:{task}", described)

    def metric_records(self, task: str) -> dict[str, Any]:
        return self.meta(f"metrics:{task}", {})

    def stored_tasks(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT task FROM tasks ORDER BY task")]

    def task_binding(self, task: str) -> tuple[dict, dict]:
        row = self.db.execute("SELECT spec, model FROM tasks WHERE task = ?", (task,)).fetchone()
        return json.loads(row[0]), json.loads(row[1])

    def selected(self, task: str) -> list[str]:
        """The sample ids the last invocation selected for `task`, in the reader's order."""
        row = self.db.execute("SELECT selected FROM tasks WHERE task = ?", (task,)).fetchone()
        return json.loads(row[0]) if row else []

    def bind_model_fingerprint(self, fingerprint: dict) -> None:
        """What the adapter reports about its weights (e.g. a checkpoint hash); a run directory
        refuses to mix predictions of a checkpoint that changed under the same card."""
        stored = self.set_meta_once("model_fingerprint", fingerprint)
        if stored != json.loads(json.dumps(fingerprint, default=str)):
            raise BadInput(f"{self.run_dir} holds predictions of this model with fingerprint {stored}, "
                               f"but the model now reports {fingerprint} (its weights changed?); "
                               "use another --output directory")

    # samples -------------------------------------------------------------------------------
    def statuses(self, task: str) -> dict[str, str]:
        return dict(self.db.execute("SELECT sample_id, status FROM samples WHERE task = ?", (task,)))

    def samples(self, task: str, ids: Iterable[str] | None = None) -> list[SampleRecord]:
        query = "SELECT sample_id, position, status, stage, error, prediction, info FROM samples WHERE task = ?"
        if ids is None:
            rows = self.db.execute(query + " ORDER BY position, sample_id", (task,)).fetchall()
        else:  # only the rows asked for: callers page through big runs batch by batch
            ids = list(ids)
            rows = []
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                rows += self.db.execute(query + f" AND sample_id IN ({','.join('?' * len(part))})",
                                        (task, *part)).fetchall()
            rows.sort(key=lambda r: (r[1], r[0]))
        return [SampleRecord(task, sid, pos, status, json.loads(info),
                             None if pred is None else Prediction.from_dict(json.loads(pred)), stage, error)
                for sid, pos, status, stage, error, pred, info in rows]

    def scores(self, task: str) -> dict[str, dict[str, float | None]]:
        """sample_id -> {metric: value}; None where the metric did not apply (NaN)."""
        out: dict[str, dict[str, float | None]] = {}
        for sid, metric, value in self.db.execute(
                "SELECT sample_id, metric, value FROM scores WHERE task = ?", (task,)):
            out.setdefault(sid, {})[metric] = value
        return out

    def details(self, task: str) -> dict[str, dict[str, Any]]:
        """sample_id -> {metric: details} for metrics that keep per-sample details (judge replies)."""
        out: dict[str, dict[str, Any]] = {}
        for sid, metric, details in self.db.execute(
                "SELECT sample_id, metric, details FROM scores WHERE task = ? AND details IS NOT NULL", (task,)):
            out.setdefault(sid, {})[metric] = json.loads(details)
        return out

    def set_scores(self, task: str) -> dict[str, SetScore]:
        """metric -> its stored set-level score (FID, KID)."""
        return {m: SetScore(fp, v, None if d is None else json.loads(d)) for m, fp, v, d in self.db.execute(
            "SELECT metric, fingerprint, value, details FROM set_scores WHERE task = ?", (task,))}

    def put_set_score(self, task: str, metric: str, score: SetScore) -> None:
        self.db.execute("INSERT OR REPLACE INTO set_scores VALUES (?, ?, ?, ?, ?)",
                        (task, metric, score.fingerprint, score.value,
                         None if score.details is None else json.dumps(score.details, sort_keys=True, default=str)))

    def failed_scores(self, task: str) -> set[str]:
        """Samples with at least one failed metric score (see scoring.py)."""
        return {sid for sid, details in self.db.execute(
            "SELECT sample_id, details FROM scores WHERE task = ? AND value IS NULL AND details IS NOT NULL", (task,))
            if json.loads(details).get("failed")}

    def score_versions(self, task: str) -> dict[tuple[str, str], str]:
        return {(sid, m): v for sid, m, v in self.db.execute(
            "SELECT sample_id, metric, version FROM scores WHERE task = ?", (task,))}

    def plan(self, task: str, selected: list[str], versions: dict[str, str], *, retry_failed: bool = False,
             rescore: bool = False) -> Plan:
        """What an invocation has to do for `task` over its `selected` samples: evaluate those not
        stored yet (and failed ones with `retry_failed`); score again the done ones that miss a
        score of a current metric version (`versions`: metric key -> version), all done ones with
        `rescore`, and those with a failed score with `retry_failed`."""
        status = self.statuses(task)
        todo = [sid for sid in selected if status.get(sid) is None or (retry_failed and status[sid] == "failed")]
        done = [sid for sid in selected if status.get(sid) == "done"]
        if rescore:
            return Plan(todo, done)
        stored = self.score_versions(task)
        failed_scores = self.failed_scores(task) if retry_failed else set()
        stale = [sid for sid in done if sid in failed_scores
                 or any(stored.get((sid, key)) != version for key, version in versions.items())]
        return Plan(todo, stale)

    def claim(self, task: str, sample_ids: list[str], retry_failed: bool = False) -> list[str]:
        """Claim the samples that no one has evaluated or is evaluating; returns those claimed."""
        now = time.time()
        with self.transaction() as db:
            stored = dict(db.execute(f"SELECT sample_id, status FROM samples WHERE task = ? AND sample_id IN "
                                     f"({','.join('?' * len(sample_ids))})", (task, *sample_ids)))
            claims = {sid: (owner, at) for sid, owner, at in db.execute(
                f"SELECT sample_id, owner, claimed_at FROM claims WHERE task = ? AND sample_id IN "
                f"({','.join('?' * len(sample_ids))})", (task, *sample_ids))}
            taken = []
            for sid in sample_ids:
                if sid in stored and not (retry_failed and stored[sid] == "failed"):
                    continue
                owner, at = claims.get(sid, (None, 0.0))
                if owner not in (None, self.owner) and now - at < CLAIM_TTL_S and owner_alive(owner):
                    continue
                taken.append(sid)
            db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                           [(task, sid, self.owner, now) for sid in taken])
        return taken

    def commit(self, records: list[SampleRecord], scores: list[ScoreRow], replace_scores: bool = False) -> None:
        """Write a batch of samples and their scores atomically. `replace_scores`: the samples'
        stored scores are dropped first (rescoring), so a metric that no longer applies leaves none."""
        now = time.time()
        with self.transaction():
            if replace_scores:
                self.db.executemany("DELETE FROM scores WHERE task = ? AND sample_id = ?",
                                    [(r.task, r.sample_id) for r in records])
            self.db.executemany(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.task, r.sample_id, r.position, r.status, r.stage, r.error,
                  None if r.prediction is None else json.dumps(r.prediction.to_dict()),
                  json.dumps(r.info, sort_keys=True, default=str), now) for r in records])
            self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)", scores)
            self.db.executemany("DELETE FROM claims WHERE task = ? AND sample_id = ?",
                                [(r.task, r.sample_id) for r in records])

    def transaction(self):
        return _Transaction(self.db)

    # merging shard stores -----------------------------------------------------------------
    def absorb(self, other: RunStore) -> int:
        """Copy another store's samples, scores, task bindings, metric records and predicted
        images into this one (the merge of per-rank shard stores); returns the samples copied.
        A sample both hold keeps the row that is done (else the newer one)."""
        mine = {(t, sid): (status, at) for t, sid, status, at in
                self.db.execute("SELECT task, sample_id, status, updated_at FROM samples")}
        rows = other.db.execute("SELECT * FROM samples").fetchall()
        take = [r for r in rows if (r[0], r[1]) not in mine or _better(r[3], r[8], *mine[(r[0], r[1])])]
        keys = {(r[0], r[1]) for r in take}
        scores = [r for r in other.db.execute("SELECT * FROM scores") if (r[0], r[1]) in keys]
        for digest in {d for r in take if r[6] for d in _digests(json.loads(r[6]))}:
            objects.copy(other.run_dir, self.run_dir, digest)
        with self.transaction() as db:
            db.executemany("DELETE FROM scores WHERE task = ? AND sample_id = ?", sorted(keys))
            db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", take)
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)", scores)
            db.executemany("INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, ?, ?)", other.db.execute("SELECT * FROM tasks"))
            db.executemany("INSERT OR IGNORE INTO run_meta VALUES (?, ?)", other.db.execute("SELECT * FROM run_meta"))
        return len(take)

    # images ------------------------------------------------------------------------------
    def put_image(self, image: np.ndarray) -> str:
        return objects.put(self.run_dir, image)

    def image_path(self, digest: str) -> Path:
        return objects.path_of(self.run_dir, digest)

    def get_image(self, digest: str) -> np.ndarray:
        return objects.get(self.run_dir, digest)


def _better(status: str, at: float, old_status: str, old_at: float) -> bool:
    """Whether a sample row (status, updated_at) should replace the one already merged."""
    if (status == "done") != (old_status == "done"):
        return status == "done"
    return at > old_at


def _digests(prediction: dict) -> list[str]:
    cf = prediction.get("counterfactual") or {}
    return [*prediction.get("images", ()), *prediction.get("candidates", ()), *([cf["image"]] if cf else [])]


def read_statuses(path: Path, task: str) -> dict[str, str]:
    """sample_id -> status in another run store, opened read-only (a finished shard's store)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            return dict(db.execute("SELECT sample_id, status FROM samples WHERE task = ?", (task,)))
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BadInput(store_error(path.parent, exc)) from exc


def store_error(run_dir: Path, exc: BaseException) -> str:
    """One line for a run directory that cannot be opened or written (bad environment: exit 2)."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return (f"{run_dir / 'store.sqlite'} is damaged or not a wmbench store ({text}); move it away to start "
                f"a new run, or restore it")
    if "readonly" in text or isinstance(exc, PermissionError):
        return f"cannot write to the run directory {run_dir} ({text}); choose a writable --output"
    if isinstance(exc, OSError) and exc.errno == 28:
        return f"no space left on the device holding {run_dir}; free some space and run the same command again"
    return f"cannot use the run directory {run_dir}: {type(exc).__name__}: {text}"


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def remove_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but an empty store's files (a command that created
    it and was refused before storing anything); anything else in it keeps it."""
    names = {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "store.sqlite-journal"}
    entries = list(run_dir.iterdir()) if run_dir.is_dir() else []
    if any(e.name not in names or not e.is_file() for e in entries):
        return
    for entry in entries:
        entry.unlink(missing_ok=True)
    run_dir.rmdir()
