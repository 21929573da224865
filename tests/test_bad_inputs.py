"""The bad-input and fault corpus: every case in tests/bad_inputs/*.yaml is data, run here.

A case (one item of a YAML list) has:

- `id`, `why` (one line);
- `setup`: steps, each `{builder: arguments}`, run in order on the `workspace` fixture (tests/conftest.py:
  the pairs dataset, tasks pairs_fdp / pairs_idp); the builders are the BUILDERS below;
- `command`: the `wmbench` argv; `subprocess: true` runs it as `python -m wmbench.cli` (cases that need a
  real process: sys.exit, signals), else in-process through `wmbench.cli.main` (fast);
  `signal: {name: SIGINT, after_calls: N}` sends a signal once the model was called N times;
- `exit`: the expected exit code; `message`: fragment(s) expected in stderr; `stdout`: fragment(s) in stdout;
- `preserve`: true to first write a finished run at `{done}` (copy on pairs_fdp, limit 4) and require every
  file it held after the setup to be there afterwards with the same bytes (sha256), or a list of paths to
  hold the same way;
- `secrets`: strings that must appear in no output and in no byte of any file the command wrote;
- `absent`: paths that must not exist afterwards; `files`: `{path, contains}` text a written file holds;
  `samples`: expectations on samples.jsonl records; `metrics`: `{run, task, metric, ...}` keys a metric's
  results.json entry has (`reason`: a fragment of it);
  `counts`: expected results.json counts; `then`: follow-up commands with their own exit / message;
- `xfail: "<reason>"`: today's code fails the case (strict: the case fails once the code is fixed, so
  the marker is removed then); `skip_if: root | cuda`.

Every case also asserts that no "Traceback" is printed. Placeholders in commands and in builder
arguments: {tmp} (the workspace), {data}, {tasks}, {pairs} (the dataset folder), {done}, {tests}.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal as signals
import sqlite3
import struct
import subprocess
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wmbench.cli import main

TESTS_DIR = Path(__file__).resolve().parent
CORPUS = TESTS_DIR / "bad_inputs"
CASE_KEYS = {"id", "why", "setup", "command", "subprocess", "signal", "timeout", "exit", "message", "stdout",
             "preserve", "secrets", "absent", "samples", "counts", "metrics", "files", "then", "xfail", "skip_if"}
#: The finished run a `preserve: true` case must leave untouched.
DONE_COMMAND = ["run", "--tasks", "pairs_fdp", "--model", "copy", "--limit", "4", "--output", "{done}"]


# the corpus ----------------------------------------------------------------------------------
def load_corpus() -> list[dict]:
    cases = []
    for file in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text(encoding="utf-8")) or []:
            case["file"] = file.name
            cases.append(case)
    return cases


CASES = load_corpus()


def _param(case: dict):
    marks = []
    if case.get("xfail"):
        marks.append(pytest.mark.xfail(reason=case["xfail"], strict=True))
    skip = case.get("skip_if")
    if skip == "root" and hasattr(os, "geteuid") and os.geteuid() == 0:
        marks.append(pytest.mark.skip(reason="root ignores file permissions"))
    if skip == "cuda":
        import torch

        if torch.cuda.is_available():
            marks.append(pytest.mark.skip(reason="this machine has CUDA"))
    return pytest.param(case, id=case["id"], marks=marks)


def test_the_corpus_is_well_formed():
    ids = [c.get("id") for c in CASES]
    assert len(ids) >= 60, f"the corpus has {len(ids)} cases"
    assert len(set(ids)) == len(ids), "duplicate case ids"
    for case in CASES:
        where = f"{case['file']}: {case.get('id')}"
        assert set(case) - {"file"} <= CASE_KEYS, f"{where}: unknown keys {set(case) - CASE_KEYS - {'file'}}"
        assert case.get("why") and "\n" not in case["why"].strip(), f"{where}: `why` must be one line"
        assert isinstance(case.get("command"), list) and isinstance(case.get("exit"), int), where
        for step in case.get("setup") or []:
            assert isinstance(step, dict) and len(step) == 1 and next(iter(step)) in BUILDERS, f"{where}: {step}"


def test_docs_failure_modes_rows_are_corpus_cases():
    """docs/failure-modes.md is based on observed behaviour: its rows name the corpus cases they rest
    on (last column), every case is named by a row, and no row names a case that does not exist."""
    doc = (TESTS_DIR.parent / "docs" / "failure-modes.md").read_text(encoding="utf-8")
    named: set[str] = set()
    for line in doc.splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            named |= set(re.findall(r"`([a-z0-9][a-z0-9-]+)`", line.rstrip().rstrip("|").split("|")[-1]))
    ids = {c["id"] for c in CASES}
    assert not ids - named, f"cases without a row in docs/failure-modes.md: {sorted(ids - named)}"
    assert not named - ids - {"cases"}, f"rows naming unknown cases: {sorted(named - ids)}"


# running one case ----------------------------------------------------------------------------
class Context:
    """A case's workspace: placeholder values, the builders' state, the command runner."""

    def __init__(self, root: Path, monkeypatch, capsys):
        self.root = root
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.values = {"tmp": str(root), "data": str(root / "data"), "tasks": str(root / "tasks"),
                       "pairs": str(root / "data" / "pairs"), "done": str(root / "done"), "tests": str(TESTS_DIR)}
        self.calls = root / "calls.txt"
        monkeypatch.setenv("WMBENCH_TEST_CALLS", str(self.calls))
        monkeypatch.chdir(root)

    def fill(self, value):
        """Placeholders replaced in strings, lists and mappings (only the known names: YAML braces stay)."""
        if isinstance(value, str):
            return re.sub(r"\{(%s)\}" % "|".join(self.values), lambda m: self.values[m.group(1)], value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def path(self, value: str) -> Path:
        path = Path(self.fill(value))
        return path if path.is_absolute() else self.root / path

    def run(self, argv: list[str], use_subprocess: bool = False, signal: dict | None = None,
            timeout: float = 120) -> tuple[int, str, str]:
        argv = [str(a) for a in self.fill(argv)]
        if use_subprocess or signal:
            return self._subprocess(argv, signal, timeout)
        self.capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors, as the console script would exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the console script would print: shown, and failed on below
            traceback.print_exc()
            code = 1
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def _subprocess(self, argv: list[str], signal: dict | None, timeout: float) -> tuple[int, str, str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-m", "wmbench.cli", *argv], cwd=self.root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if signal:
            deadline = time.time() + timeout
            while time.time() < deadline and proc.poll() is None and _lines(self.calls) < signal["after_calls"]:
                time.sleep(0.05)
            proc.send_signal(getattr(signals, signal["name"]))
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def checksums(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `path` (or of the file `path`); {} if absent."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _fragments(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _files(root: Path) -> dict[Path, tuple[float, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def check_result(ctx: Context, expected: dict, code: int, out: str, err: str, label: str) -> None:
    shown = f"{label}: exit {code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    assert "Traceback" not in err and "Traceback" not in out, shown
    assert code == expected["exit"], shown
    for fragment in _fragments(ctx.fill(expected.get("message"))):
        assert fragment in err, f"expected {fragment!r} in stderr\n{shown}"
    for fragment in _fragments(ctx.fill(expected.get("stdout"))):
        assert fragment in out, f"expected {fragment!r} in stdout\n{shown}"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case, workspace, monkeypatch, capsys):
    ctx = Context(workspace, monkeypatch, capsys)
    if case.get("preserve") is True:
        finished_run(ctx)
    for step in case.get("setup") or []:
        (name, args), = step.items()
        BUILDERS[name](ctx, **(ctx.fill(args) if isinstance(args, dict) else {"value": ctx.fill(args)}))
    held = ["{done}"] if case.get("preserve") is True else list(case.get("preserve") or [])
    for p in held:
        age(ctx.path(p) / "results.json")
    before = {p: checksums(ctx.path(p)) for p in held}
    files_before = _files(workspace)

    code, out, err = ctx.run(case["command"], case.get("subprocess", False), case.get("signal"),
                             case.get("timeout", 120))
    check_result(ctx, case, code, out, err, "command")

    for p in held:  # every file stored before is still there, byte for byte (new files are not checked)
        after = checksums(ctx.path(p))
        lost = sorted(set(before[p]) - set(after))
        altered = sorted(k for k in before[p] if k in after and after[k] != before[p][k])
        assert not lost and not altered, f"{p} changed: lost {lost}, altered {altered}"
    for secret in case.get("secrets") or []:
        assert secret not in out and secret not in err, f"secret {secret!r} printed"
        written = [p for p, stamp in _files(workspace).items() if files_before.get(p) != stamp]
        leaks = [str(p.relative_to(workspace)) for p in written if secret.encode() in p.read_bytes()]
        assert not leaks, f"secret {secret!r} stored in {leaks}"
    for p in case.get("absent") or []:
        assert not ctx.path(p).exists(), f"{p} exists"
    for i, follow in enumerate(case.get("then") or []):
        code, out, err = ctx.run(follow["command"], follow.get("subprocess", False))
        check_result(ctx, follow, code, out, err, f"then[{i}]")
    for want in case.get("files") or []:
        assert ctx.fill(want["contains"]) in ctx.path(want["path"]).read_text(encoding="utf-8"), want
    for want in case.get("samples") or []:  # after the follow-up commands
        check_samples(ctx, want)
    for want in case.get("counts") or []:
        results = json.loads((ctx.path(want["run"]) / "results.json").read_text())
        assert results["tasks"][want["task"]]["counts"] == want["counts"]
    for want in case.get("metrics") or []:
        results = json.loads((ctx.path(want["run"]) / "results.json").read_text())
        entry = results["tasks"][want["task"]]["metrics"][want["metric"]]
        for key, value in want.items():
            if key == "reason":
                assert value in (entry["reason"] or ""), entry
            elif key not in ("run", "task", "metric"):
                assert entry[key] == value, (key, entry)


def finished_run(ctx: Context) -> None:
    """The finished run at {done}."""
    code, out, err = ctx.run(DONE_COMMAND)
    assert code == 0, err


def age(results: Path) -> None:
    """A held run "finished long ago": its results.json's written_at is set to 2000, so that a command
    that rewrites the file changes its bytes even within the second the run was written."""
    if results.is_file():
        try:
            data = json.loads(results.read_text())
        except ValueError:  # a case's garbage results.json stays as the case wrote it
            return
        if isinstance(data, dict) and "written_at" in data:
            data["written_at"] = "2000-01-01T00:00:00Z"
            results.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_samples(ctx: Context, want: dict) -> None:
    """`{run, id?, status, stage?, error?, count?}`: the records of samples.jsonl that match `id` (all when
    absent) have this status / stage and an error containing `error`; `count`: how many match."""
    records = [json.loads(line) for line in (ctx.path(want["run"]) / "samples.jsonl").read_text().splitlines()]
    if "id" in want:
        records = [r for r in records if r["sample_id"] == want["id"]]
    if "status" in want:
        records = [r for r in records if r["status"] == want["status"]]
    if "count" in want:
        assert len(records) == want["count"], [(r["sample_id"], r["status"], r["error"]) for r in records]
    assert records, f"no sample record matches {want}"
    for r in records:
        if "stage" in want:
            assert r["stage"] == want["stage"], r
        if "error" in want:
            assert want["error"] in (r["error"] or ""), r
        if "info" in want:
            assert want["info"] in r["sample"], r


# builders ------------------------------------------------------------------------------------
def b_write(ctx: Context, path: str, text: str, encoding: str = "utf-8") -> None:
    """A text file (YAML task, model card, results.json, dataset file...), placeholders filled."""
    target = ctx.path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode(encoding))


def b_delete(ctx: Context, value: str) -> None:
    target = ctx.path(value)
    shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()


def b_mkdir(ctx: Context, value: str) -> None:
    ctx.path(value).mkdir(parents=True, exist_ok=True)


def b_symlink(ctx: Context, path: str, to: str) -> None:
    link = ctx.path(path)
    if link.exists() or link.is_symlink():
        b_delete(ctx, str(link))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(ctx.path(to))


def b_chmod(ctx: Context, path: str, mode: int) -> None:
    ctx.path(path).chmod(mode)


def b_env(ctx: Context, **values: str) -> None:
    for key, value in values.items():
        ctx.monkeypatch.setenv(key, str(value))


def b_cli(ctx: Context, argv: list[str], exit: int = 0) -> None:
    """A command run before the case's command (e.g. a finished run to damage)."""
    code, out, err = ctx.run(argv)
    assert code == exit, f"setup command {argv}: exit {code}\n{err}"


def b_pairs(ctx: Context, line: int | None = None, set: dict | None = None, drop: list | None = None,
            raw: str | None = None, append: str | None = None) -> None:
    """Edit the pairs dataset's pairs.jsonl: record `line` (1-based) updated with `set` / `drop`, or
    replaced by the `raw` text; `append` adds a raw line."""
    path = ctx.path("{pairs}/pairs.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    if line is not None:
        if raw is not None:
            lines[line - 1] = raw
        else:
            record = json.loads(lines[line - 1])
            record.update(set or {})
            for key in drop or []:
                record.pop(key, None)
            lines[line - 1] = json.dumps(record)
    if append is not None:
        lines.append(append)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def b_json(ctx: Context, path: str, drop: list[str] | None = None, set: dict | None = None) -> None:
    """Edit a JSON file (results.json): `drop` dotted keys, `set` dotted keys to values."""
    target = ctx.path(path)
    data = json.loads(target.read_text())

    def parent(dotted: str):
        *head, last = dotted.split(".")
        node = data
        for key in head:
            node = node[key]
        return node, last

    for dotted in drop or []:
        node, last = parent(dotted)
        del node[last]
    for dotted, value in (set or {}).items():
        node, last = parent(dotted)
        node[last] = value
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _png(array: np.ndarray, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def b_image(ctx: Context, path: str, kind: str) -> None:
    """Replace an image file: `garbage`, `empty`, `truncated` (the first half of the PNG),
    `16bit` (a 16-bit gray PNG), `rgba`, `huge_header` (declares 8000x6000), `bigger` (64x64 RGB),
    `directory` (a folder where the file should be)."""
    target = ctx.path(path)
    original = target.read_bytes() if target.is_file() else _png(np.zeros((32, 32, 3), np.uint8))
    if kind == "directory":
        target.unlink(missing_ok=True)
        target.mkdir(parents=True)
        return
    data = {
        "garbage": lambda: b"this is not a PNG file at all" * 10,
        "empty": lambda: b"",
        "truncated": lambda: original[: len(original) // 2],
        "16bit": lambda: _png(np.linspace(0, 65535, 32 * 32).astype(np.uint16).reshape(32, 32)),
        "rgba": lambda: _png(np.dstack([np.asarray(Image.open(io.BytesIO(original)).convert("RGB")),
                                        np.full((32, 32), 128, np.uint8)])),
        "huge_header": lambda: _png_header_only(8000, 6000),
        "bigger": lambda: _png(np.full((64, 64, 3), 90, np.uint8)),
    }[kind]()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def b_store(ctx: Context, run: str, how: str) -> None:
    """Damage a run's store.sqlite: `truncate` (its first 1000 bytes), `garbage`, `foreign` (a valid SQLite
    database of another program), `directory` (a folder in its place)."""
    path = ctx.path(run) / "store.sqlite"
    data = path.read_bytes() if path.is_file() else b""
    if how == "truncate":
        path.write_bytes(data[:1000])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif how == "foreign":
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
        db.execute("INSERT INTO photos VALUES (1, 'holiday')")
        db.commit()
        db.close()
    elif how == "directory":
        path.unlink(missing_ok=True)
        path.mkdir()
    else:
        raise ValueError(how)


def b_objects(ctx: Context, run: str, how: str, count: int = 1) -> None:
    """Damage `count` stored prediction PNGs of a run (sorted by name): `delete` or `garbage`."""
    for path in sorted((ctx.path(run) / "objects").rglob("*.png"))[:count]:
        if how == "delete":
            path.unlink()
        else:
            path.write_bytes(b"garbage, not a PNG")


def b_plugin(ctx: Context, name: str, text: str) -> None:
    """A Python module `name` under {tmp}/plugins, importable in-process and by subprocesses."""
    folder = ctx.root / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(text)
    ctx.monkeypatch.syspath_prepend(str(folder))
    ctx.monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    ctx.monkeypatch.delitem(sys.modules, name, raising=False)


def b_aurora(ctx: Context, text: str | None = None, encoding: str = "utf-8") -> None:
    """A two-entry Aurora-Bench folder ({data}/aurora-bench: test.json + images) and its task aurora_mini;
    `text`: test.json's content instead of the valid one."""
    root = ctx.path("{data}/aurora-bench")
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "images" / f"{name}.png").write_bytes(_png(np.full((16, 16, 3), 100, np.uint8)))
    entries = [{"input": "images/a.png", "output": "images/b.png", "instruction": "move it", "task": "kubric"}] * 2
    (root / "test.json").write_bytes((text if text is not None else json.dumps(entries)).encode(encoding))
    b_write(ctx, "{tasks}/aurora_mini.yaml", "name: aurora_mini\nkind: fdp\ndataset: {format: aurora, "
            "subfolder: aurora-bench}\nmetrics: [l1]\n")


def b_lerobot(ctx: Context, lengths: list[int], gap: int) -> None:
    """A LeRobot v3 dataset ({data}/robot, PNG frames, episodes of `lengths` frames) and its task robot_gap
    with frames {mode: gap, gap: `gap`}."""
    from wmbench.data.lerobot_write import V3Writer, image_feature, png_bytes

    feats = {"observation.image": image_feature(16, 16), "action": {"dtype": "float32", "shape": [2], "names": None}}
    writer = V3Writer(ctx.path("{data}/robot"), 10, feats)
    for n in lengths:
        frames = [png_bytes(np.full((16, 16, 3), 10 * i, np.uint8)) for i in range(n)]
        writer.add_episode("push the block", {"action": np.zeros((n, 2), np.float32)},
                           images={"observation.image": frames})
    writer.close()
    b_write(ctx, "{tasks}/robot_gap.yaml", f"name: robot_gap\nkind: fdp\ndataset: {{format: lerobot, "
            f"subfolder: robot}}\nframes: {{mode: gap, gap: {gap}}}\nmetrics: [l1]\n")


BUILDERS = {"write": b_write, "delete": b_delete, "mkdir": b_mkdir, "symlink": b_symlink, "chmod": b_chmod,
            "env": b_env, "cli": b_cli, "pairs": b_pairs, "image": b_image, "store": b_store,
            "objects": b_objects, "plugin": b_plugin, "aurora": b_aurora, "lerobot": b_lerobot, "json": b_json}
