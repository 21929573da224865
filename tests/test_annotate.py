"""`wmbench annotate`: IDP labels for unlabelled frame pairs, written as AURORA training data.

Stub models (defined here, named "test_annotate:Class") control the labels and scores, so the
stratified top-K can be checked by hand; a tiny random Qwen2-VL (built from a real config, no
download) labels a tiny generated Meta-World dataset end to end, and the output is read back by
the aurora reader."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wmbench
from wmbench.cli import build_parser, main
from wmbench.run.annotate import annotate
from wmbench.run.annotate_files import Candidate, stratify

from conftest import TESTS_DIR, kill_after_calls, write_pairs

os.environ.setdefault("MUJOCO_GL", "egl")

#: pair id -> (label, score) the stub gives: classes push (4 pairs), pick (2), open (1).
LABELS = {"pair000": ("Push the cup left", -0.1), "pair001": ("push the cup right", -0.2),
          "pair002": ("push, then stop", -0.3), "pair003": ("push the block", -0.4),
          "pair004": ("pick up the ball", -0.05), "pair005": ("Pick the cup", -0.5),
          "pair006": ("open the drawer", -0.9)}
PAIR_ACTIONS = ("move the square right", "move the square down", "move the square left", "move the square up")


class StubLabeller(wmbench.Model):
    """Labels and scores from LABELS; checks that it never sees the reader's action or meta."""

    logprob_reduction = "mean"

    def infer_action(self, batch):
        self._blind(batch)
        calls = os.environ.get("WMBENCH_TEST_CALLS")
        if calls:
            with open(calls, "a") as f:
                f.write(",".join(batch.sample_ids) + "\n")
        time.sleep(float(os.environ.get("WMBENCH_TEST_SLEEP", "0")))
        return [LABELS[sid][0] for sid in batch.sample_ids]

    def action_logprob(self, batch, actions):
        self._blind(batch)
        assert actions == [LABELS[sid][0] for sid in batch.sample_ids]
        return [LABELS[sid][1] for sid in batch.sample_ids]

    @staticmethod
    def _blind(batch):
        assert batch.actions is None and batch.action_vectors is None
        assert all(m == {} for m in batch.meta)
        assert not any(a in p for p in batch.prompts for a in PAIR_ACTIONS)
        assert len(batch.targets) == len(batch.sources)


class LabelOnly(wmbench.Model):
    """IDP without scoring; building it fails (annotate must refuse it before)."""

    def __init__(self):
        raise AssertionError("the model must not be built")

    def infer_action(self, batch):  # pragma: no cover
        return ["x"] * len(batch)


class FaultyLabeller(StubLabeller):
    """As StubLabeller, except: raises on pair001, an empty label for pair002, a NaN score for pair003."""

    def infer_action(self, batch):
        if "pair001" in batch.sample_ids:
            raise RuntimeError("simulated crash on pair001")
        return ["  " if sid == "pair002" else LABELS[sid][0] for sid in batch.sample_ids]

    def action_logprob(self, batch, actions):
        return [float("nan") if sid == "pair003" else LABELS[sid][1] for sid in batch.sample_ids]


@pytest.fixture
def pairs(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs", n=7)


def ann(*argv: str) -> int:
    return main(["annotate", "--no-progress", *argv])


def stub_args(root: Path, out: Path, *more: str) -> list[str]:
    return ["--format", "jsonl", "--root", str(root), "--model", "test_annotate:StubLabeller",
            "--output", str(out), *more]


def read_back(out: Path, capsys) -> list[dict]:
    """The output as wmbench's aurora reader yields it (`wmbench data inspect`)."""
    capsys.readouterr()
    assert main(["data", "inspect", "aurora", "--root", str(out), "--option", "file=train.json",
                 "--limit", "1000"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# stratified top-K, by hand --------------------------------------------------------------------
def _cands(*rows: tuple[str, str, float]) -> list[Candidate]:
    return [Candidate(sid, i, "done", None, None, sid, score, cls, "verb", {})
            for i, (sid, cls, score) in enumerate(rows)]


def test_stratify_round_robin_best_first():
    cands = _cands(("a1", "push", -0.1), ("a2", "push", -0.2), ("a3", "push", -0.3), ("a4", "push", -0.4),
                   ("b1", "pick", -0.05), ("b2", "pick", -0.5), ("c1", "open", -0.9))
    kept, classes = stratify(cands, 5, False)
    # classes by best score: pick, push, open; round 0: b1 a1 c1; round 1: a2 b2
    assert [c.sample_id for c in kept] == ["b1", "a1", "c1", "a2", "b2"]
    assert {k: (v["share"], v["kept"], v["shortfall"]) for k, v in classes.items()} == {
        "pick": (2, 2, 0), "push": (2, 2, 0), "open": (1, 1, 0)}
    # 7 = 3 + 2 + 2: pick and open are short by one each; push takes their slots
    kept, classes = stratify(cands, 7, False)
    assert [c.sample_id for c in kept] == ["b1", "a1", "c1", "a2", "b2", "a3", "a4"]
    assert {k: v["shortfall"] for k, v in classes.items()} == {"pick": 1, "push": 0, "open": 1}
    kept, classes = stratify(cands, 3, True)
    assert [c.sample_id for c in kept] == ["b1", "a1", "c1", "a2", "b2", "a3"]
    assert {k: v["shortfall"] for k, v in classes.items()} == {"pick": 1, "push": 0, "open": 2}
    kept, classes = stratify(cands, None, False)
    assert len(kept) == 7 and all(v["shortfall"] == 0 for v in classes.values())
    # a frequent class does not crowd out a rare one even when all its pairs score better
    many = _cands(*[(f"p{i}", "push", -0.01 * i) for i in range(10)], ("r", "rare", -5.0))
    assert "r" in [c.sample_id for c in stratify(many, 2, False)[0]]


def test_top_k_from_a_stub_model_and_read_back(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    assert ann(*stub_args(pairs, out, "--top-k", "5")) == 0
    entries = json.loads((out / "train.json").read_text())
    assert [e["instruction"] for e in entries] == ["pick up the ball", "Push the cup left", "open the drawer",
                                                   "push the cup right", "Pick the cup"]
    assert all(set(e) == {"input", "output", "instruction"} for e in entries)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        Path(e[k]).name for e in entries for k in ("input", "output"))
    # the frames are the dataset's: pair004 is the first kept pair
    first = np.asarray(Image.open(out / entries[0]["input"]))
    assert np.array_equal(first, np.asarray(Image.open(pairs / "images" / "4_a.png")))
    assert np.array_equal(np.asarray(Image.open(out / entries[0]["output"])),
                          np.asarray(Image.open(pairs / "images" / "4_b.png")))
    back = read_back(out, capsys)
    assert [(b["source"], b["target"], b["action_text"]) for b in back] == [
        (e["input"], e["output"], e["instruction"]) for e in entries]
    m = manifest(out)
    assert m["counts"] | {"failed_by_stage": None} == {
        "candidates": 7, "labelled": 7, "failed": 0, "failed_by_stage": None, "skipped": 0, "pending": 0, "kept": 5,
        "classes": 3, "shortfall": 0, "missing": 0}
    rows = {r["id"]: r for r in m["candidates"]}
    assert rows["pair003"]["kept"] is False and rows["pair003"]["entry"] is None
    assert (rows["pair003"]["label"], rows["pair003"]["score"], rows["pair003"]["class"]) == ("push the block", -0.4, "push")
    assert rows["pair004"]["entry"] == 0 and rows["pair004"]["reference"] == PAIR_ACTIONS[0]
    assert m["score"]["reduction"] == "mean" and m["model"]["card"]["adapter"] == "test_annotate:StubLabeller"
    assert m["provenance"]["packages"]["wmbench"] == wmbench.__version__ == m["wmbench_version"]
    assert m["selection"]["top_k"] == 5 and m["frames"]["mode"] == "keyframes" and m["seed"] == 0


def test_per_class_shortfall_is_reported(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    result = annotate(StubLabeller(), format="jsonl", root=pairs, output=out, top_k=3, per_class=True,
                      progress=False)
    assert result.kept == 6 and result.shortfall == {"pick": 1, "open": 2}
    assert result.classes["push"] == {"available": 4, "share": 3, "kept": 3, "shortfall": 0}
    err = capsys.readouterr().err
    assert "class 'pick' has 2 labelled pair(s), short of its share of 3 by 1" in err
    assert "class 'open' has 1 labelled pair(s), short of its share of 3 by 2" in err
    m = manifest(out)
    assert m["shortfall"] == {"pick": 1, "open": 2} and m["counts"]["shortfall"] == 3
    assert m["classes"]["open"] == {"available": 1, "share": 3, "kept": 1, "shortfall": 2}


def test_class_from_reader_meta(tmp_path):
    root = write_pairs(tmp_path / "pairs", n=7)
    lines = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        line["meta"] = {"verb_class": "even" if i % 2 == 0 else "odd"}
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = annotate(StubLabeller(), format="jsonl", root=root, output=tmp_path / "out", top_k=2,
                      class_key="verb_class", progress=False)
    assert set(result.classes) == {"even", "odd"} and result.kept == 2
    rows = manifest(tmp_path / "out")["candidates"]
    assert {r["class_source"] for r in rows} == {"meta.verb_class"}
    # best of each: even -> pair004 (-0.05), odd -> pair001 (-0.2)
    assert [r["id"] for r in sorted((r for r in rows if r["kept"]), key=lambda r: r["entry"])] == ["pair004", "pair001"]


def test_another_top_k_reselects_without_labelling_again(pairs, tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("WMBENCH_TEST_CALLS", str(calls))
    out = tmp_path / "out"
    assert ann(*stub_args(pairs, out, "--top-k", "5")) == 0
    assert ann(*stub_args(pairs, out, "--top-k", "2")) == 0
    assert len(calls.read_text().splitlines()) == 1, "the second command must label nothing"
    entries = json.loads((out / "train.json").read_text())
    assert [e["instruction"] for e in entries] == ["pick up the ball", "Push the cup left"]
    assert len(list((out / "images").iterdir())) == 4, "frames of pairs no longer kept are removed"


# bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model, missing", [("copy", "capabilities 'infer_action' and 'action_logprob'"),
                                            ("majority", "capability 'action_logprob'"),
                                            ("test_annotate:LabelOnly", "capability 'action_logprob'")])
def test_a_model_without_both_capabilities_is_refused_before_loading(pairs, tmp_path, capsys, model, missing):
    out = tmp_path / "out"
    assert ann("--format", "jsonl", "--root", str(pairs), "--model", model, "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert f"lacks {missing}" in err and "Traceback" not in err
    assert not out.exists()


def test_an_output_with_other_settings_is_refused(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    assert ann(*stub_args(pairs, out)) == 0
    capsys.readouterr()
    for more, what in [(("--seed", "1"), "seed (stored 0, now 1)"), (("--frames", "first_last"), "frames"),
                       (("--prompt", "What changed?"), "prompt")]:
        assert ann(*stub_args(pairs, out, *more)) == 2
        err = capsys.readouterr().err
        assert "already holds an annotation made with other settings" in err and what in err, err
    assert ann(*stub_args(pairs, out, "--split", "validation")) == 2 and "split" in capsys.readouterr().err
    copy = write_pairs(tmp_path / "pairs2", n=7)
    assert ann(*stub_args(copy, out)) == 2 and "data (stored" in capsys.readouterr().err
    # a run directory, and a folder of other files, are not annotation folders
    from wmbench.log.store import RunStore

    run = tmp_path / "run"
    store = RunStore(run)
    store.bind_task("pairs_idp", "0" * 64, {}, {}, [])
    store.close()
    assert ann(*stub_args(pairs, run)) == 2 and "holds a wmbench run" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert ann(*stub_args(pairs, other)) == 2 and "holds other files" in capsys.readouterr().err


def test_other_bad_input_exits_2(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    for argv, needle in [
        (stub_args(pairs, out, "--per-class"), "--per-class"),
        (stub_args(pairs, out, "--top-k", "0"), "--top-k"),
        (stub_args(pairs, out, "--keyframes", "1"), "--keyframes"),
        (stub_args(tmp_path / "nowhere", out), "--root"),
        (stub_args(pairs, out, "--tasks", "metaworld_idp"), "--tasks"),
        (["--model", "test_annotate:StubLabeller", "--output", str(out)], "--tasks TASK, or --format"),
        (["--format", "nosuch", "--root", str(pairs), "--model", "test_annotate:StubLabeller", "--output", str(out)],
         "nosuch"),
        (stub_args(pairs, out, "--model-args", "temperature=1"), "temperature"),
    ]:
        assert ann(*argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
    assert not out.exists()


def test_frames_that_fail_to_decode_are_counted_never_written(pairs, tmp_path, capsys):
    (pairs / "images" / "4_b.png").write_bytes(b"not a png")  # the best pair's target
    (pairs / "images" / "6_a.png").unlink()  # the only 'open' pair's source
    out = tmp_path / "out"
    assert ann(*stub_args(pairs, out, "--top-k", "5")) == 1  # finished, some pairs failed
    err = capsys.readouterr().err
    assert "2 failed (data: 2)" in err
    entries = json.loads((out / "train.json").read_text())
    assert [e["instruction"] for e in entries] == ["Push the cup left", "Pick the cup", "push the cup right",
                                                   "push, then stop", "push the block"]
    m = manifest(out)
    assert m["counts"]["failed"] == 2 and m["counts"]["failed_by_stage"] == {"data": 2}
    rows = {r["id"]: r for r in m["candidates"]}
    assert rows["pair004"]["status"] == "failed" and "4_b.png" in rows["pair004"]["error"]
    assert not rows["pair004"]["kept"] and rows["pair004"]["label"] is None and rows["pair006"]["stage"] == "data"
    assert not any("pair004" in p.name or "pair006" in p.name for p in (out / "images").iterdir())


def test_model_failures_fail_their_pair_alone(pairs, tmp_path):
    out = tmp_path / "out"
    result = annotate(FaultyLabeller(), format="jsonl", root=pairs, output=out, progress=False)
    assert (result.labelled, result.failed, result.failed_by_stage) == (4, 3, {"model": 1, "output": 2})
    rows = {r["id"]: r for r in manifest(out)["candidates"]}
    assert "simulated crash" in rows["pair001"]["error"] and "empty label" in rows["pair002"]["error"]
    assert rows["pair003"]["label"] == "push the block" and "non-finite" in rows["pair003"]["error"]
    assert {e["instruction"] for e in json.loads((out / "train.json").read_text())} == {
        LABELS[sid][0] for sid in ("pair000", "pair004", "pair005", "pair006")}


def test_a_pair_that_stops_decoding_before_writing_is_replaced(pairs, tmp_path):
    out = tmp_path / "out"
    annotate(StubLabeller(), format="jsonl", root=pairs, output=out, top_k=1, progress=False)
    (pairs / "images" / "0_a.png").write_bytes(b"broken since")  # pair000: the best push, not kept at top-K 1
    result = annotate(StubLabeller(), format="jsonl", root=pairs, output=out, top_k=2, progress=False)
    assert result.new == 0 and result.failed == 1 and result.kept == 2
    entries = json.loads((out / "train.json").read_text())
    assert [e["instruction"] for e in entries] == ["pick up the ball", "push the cup right"]
    row = next(r for r in manifest(out)["candidates"] if r["id"] == "pair000")
    assert row["status"] == "failed" and row["error"].startswith("at writing:")


# resume ------------------------------------------------------------------------------------
def stub_process(tmp_path, sleep: float, *extra: str) -> tuple[Path, Path, dict[str, str], list[str]]:
    """(calls log, output folder, env, argv) of `wmbench annotate` in a subprocess with the stub
    labeller on 7 pairs, one pair per batch, each call taking `sleep` seconds."""
    root = write_pairs(tmp_path / "pairs", n=7)
    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    env = {**os.environ, "WMBENCH_TEST_CALLS": str(calls), "WMBENCH_TEST_SLEEP": str(sleep),
           "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    return calls, out, env, [sys.executable, "-m", "wmbench.cli", "annotate", "--no-progress", "--batch-size", "1",
                             *stub_args(root, out, *extra)]


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path):
    calls, out, env, cmd = stub_process(tmp_path, 0.4)
    started = kill_after_calls(cmd, env, calls, 3)
    assert 3 <= len(started) < 7, "the command should have been killed mid-way"
    env["WMBENCH_TEST_SLEEP"] = "0"
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    later = calls.read_text().splitlines()[len(started):]
    committed = set(started[:-1])
    assert not committed & set(later), "committed batches must not be labelled again"
    assert sorted(set(started) | set(later)) == sorted(LABELS), "no pair may be lost"
    rows = manifest(out)["candidates"]
    assert sorted(r["id"] for r in rows if r["status"] == "done") == sorted(LABELS)
    assert len(json.loads((out / "train.json").read_text())) == 7


def test_two_processes_share_one_output_folder(tmp_path):
    calls, out, env, cmd = stub_process(tmp_path, 0.15, "--top-k", "3")
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    ids = [sid for line in calls.read_text().splitlines() for sid in line.split(",")]
    assert sorted(ids) == sorted(LABELS), "each pair labelled exactly once"
    assert [e["instruction"] for e in json.loads((out / "train.json").read_text())] == [
        "pick up the ball", "Push the cup left", "open the drawer"]


# a real model on real data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def metaworld_and_vlm(tmp_path_factory):
    from tiny_models import build_qwen2_vl
    from wmbench.run.selection import run_generator

    base = tmp_path_factory.mktemp("annotate_mw")
    run_generator("metaworld", base / "data" / "metaworld",
                  {"episodes": 1, "size": 64, "tasks": ["push-v3", "reach-v3", "drawer-open-v3"]}, progress=False)
    return base / "data", build_qwen2_vl(base / "qwen2vl")


@pytest.mark.slow
def test_hf_vlm_on_metaworld_round_trip(metaworld_and_vlm, tmp_path, capsys):
    from transformers import AutoProcessor

    from wmbench.core.frames import FrameSelection
    from wmbench.core.tasks import DatasetSpec
    from wmbench.data import metaworld
    from wmbench.models.hf_vlm import HFVisionLanguageModel

    data_dir, vlm = metaworld_and_vlm
    out = tmp_path / "out"
    argv = ["--tasks", "metaworld_idp", "--data-dir", str(data_dir), "--model", "hf-vlm",
            "--model-args", f"path={vlm},max_new_tokens=5", "--top-k", "4", "--batch-size", "4", "--output", str(out)]
    assert ann(*argv) == 0, capsys.readouterr().err
    m = manifest(out)
    pairs = list(metaworld.read(data_dir / "metaworld", DatasetSpec("metaworld", "metaworld"),
                                FrameSelection(mode="keyframes", top_k=4, min_interval=8)))
    assert m["counts"]["candidates"] == len(pairs) > 4 and m["counts"]["labelled"] == len(pairs)
    assert m["counts"]["kept"] == 4 and m["data"]["task"] == "metaworld_idp"
    # hf-vlm sums by default: annotate asks it for the per-token mean, and says so
    assert m["model"]["card"]["args"]["logprob_reduction"] == "mean" and m["score"]["reduction"] == "mean"
    assert m["model"]["adapter_fingerprint"]["config_sha256"]
    entries = json.loads((out / "train.json").read_text())
    back = read_back(out, capsys)
    assert [b["action_text"] for b in back] == [e["instruction"] for e in entries] and len(back) == 4
    kept = sorted((r for r in m["candidates"] if r["kept"]), key=lambda r: r["entry"])
    by_id = {t.sample_id: t for t in pairs}
    for row, entry in zip(kept, entries):
        assert entry["instruction"] == row["label"]
        t = by_id[row["id"]]
        assert np.array_equal(np.asarray(Image.open(out / entry["input"])), t.source.load())
        assert np.array_equal(np.asarray(Image.open(out / entry["output"])), t.target.load())
    # the stored confidence is the sum of the label's token log-probabilities over their count
    row, entry = kept[0], entries[0]
    summed = HFVisionLanguageModel(str(vlm), max_new_tokens=5)
    batch = wmbench.Batch(sample_ids=["x"], sources=[np.asarray(Image.open(out / entry["input"]))],
                          targets=[np.asarray(Image.open(out / entry["output"]))], prompts=[m["prompt"]])
    total = summed.action_logprob(batch, [row["label"]])[0]
    tokens = len(AutoProcessor.from_pretrained(vlm).tokenizer(row["label"], add_special_tokens=False)["input_ids"])
    assert row["score"] == pytest.approx(total / tokens, rel=1e-4, abs=1e-4)
    # the same command again labels nothing and writes the same training file
    before = (out / "train.json").read_bytes()
    assert ann(*argv) == 0
    assert "(0 now)" in capsys.readouterr().err and (out / "train.json").read_bytes() == before


# docs --------------------------------------------------------------------------------------
def test_the_commands_of_the_bootstrapping_guide_parse():
    text = (TESTS_DIR.parent / "docs" / "bootstrapping.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in re.findall(r"^(wmbench annotate[^\n]*)$", text, flags=re.M)]
    assert len(commands) >= 3
    for command in commands:
        argv = command.split("#")[0].split()[1:]
        args = build_parser().parse_args(argv)
        assert args.func.__name__ == "cmd_annotate"
