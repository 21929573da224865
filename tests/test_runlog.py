"""`read_run`, the one typed reader of run directories, on runs written by the real CLI; and the
`leaderboard()` DataFrame built on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SUBSET_TASK, write_pairs, write_task
from PIL import Image

from wmbench.analysis.leaderboard import leaderboard
from wmbench.cli import main
from wmbench.core.errors import BadInput
from wmbench.log.records import Counterfactual, Prediction
from wmbench.log.runlog import RunLog, SampleLog, find_runs, read_run
from wmbench.models.base import Model
from wmbench.models.verified import StoredCandidates



class Brighten(Model):
    """A cheap best-of-N sampler: draw j is the source brightened by 10 * j."""

    def predict_next(self, batch, n=1):
        return [[np.clip(s.astype(int) + 10 * j, 0, 255).astype(np.uint8) for j in range(n)] for s in batch.sources]


class Brightness(Model):
    """A cheap verifier: the brighter the candidate, the likelier (so the last draw wins)."""

    def action_logprob(self, batch, actions):
        return [float(t.mean()) / 255 for t in batch.targets]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runlog")
    write_pairs(root / "data" / "pairs")
    tasks = root / "tasks"
    tasks.mkdir()
    write_task(tasks, "pairs_fdp", "fdp", "l1, psnr, ssim, change_iou")
    write_task(tasks, "pairs_idp", "idp", "exact_match, token_f1")
    write_task(tasks, "pairs_cf_fdp", "fdp", "l1, counterfactual_sensitivity")
    for subset, seed in (("a", 1), ("b", 2)):
        write_task(tasks, f"pairs_{subset}_fdp", "fdp", "l1, ssim", SUBSET_TASK, seed=seed)
    soft = root / "soft.yaml"
    soft.write_text("name: soft\nadapter: wmbench.models.baselines:BlurModel\nargs: {radius: 1}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WMBENCH_DATA_DIR", str(root / "data"))
        mp.setenv("WMBENCH_TASKS_PATH", str(tasks))

        def run(*argv: str) -> int:
            return main(["run", "--no-progress", *argv])

        assert run("--tasks", "pairs_fdp,pairs_a_fdp,pairs_b_fdp", "--model", f"copy,oracle,{soft}",
                   "--output", str(root / "main")) == 0
        assert run("--tasks", "pairs_idp", "--model", "oracle,majority", "--output", str(root / "main")) == 0
        args = "sampler=test_runlog:Brighten,verifier=test_runlog:Brightness,n=3"
        assert run("--tasks", "pairs_cf_fdp", "--model", "verified", "--model-args", args, "--limit", "4",
                   "--batch-size", "2", "--output", str(root / "bon")) == 0
    return root


def jsonl(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_reads_a_cli_run(runs):
    run_dir = runs / "main" / "oracle"
    log = read_run(run_dir)
    assert isinstance(log, RunLog) and log.path == run_dir and log.model_name == "oracle"
    assert log.results == results(run_dir) and log.card["adapter"] == "oracle"
    assert list(log.tasks) == list(results(run_dir)["tasks"])
    fdp, idp = log.tasks["pairs_fdp"], log.tasks["pairs_idp"]
    assert (fdp.kind, idp.kind) == ("fdp", "idp")
    assert fdp.counts == results(run_dir)["tasks"]["pairs_fdp"]["counts"] and fdp.counts["scored"] == 12
    assert fdp.metrics["l1"] == results(run_dir)["tasks"]["pairs_fdp"]["metrics"]["l1"]
    assert fdp.spec["dataset"]["subfolder"] == "pairs"

    records = jsonl(run_dir)
    assert [(s.task, s.sample_id) for s in log.samples] == [(r["task"], r["sample_id"]) for r in records]
    assert len(fdp.samples) == 12 and all(isinstance(s, SampleLog) and s.done for s in fdp.samples)
    first = fdp.samples[0]
    line = next(r for r in records if r["task"] == "pairs_fdp" and r["sample_id"] == first.sample_id)
    assert first.scores == line["scores"] and first.sample == line["sample"] and first.position == line["position"]
    assert first.episode_id == line["sample"]["episode_id"] and fdp.sample(first.sample_id) is first
    assert first.prediction == Prediction(images=tuple(line["prediction"]["images"]))

    # the oracle's stored prediction is the target frame, read back as uint8 HWC RGB
    image = log.image(first.prediction.images[0])
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    assert log.image_path(first.prediction.images[0]) == run_dir / line["prediction"]["paths"][0]
    index = int(first.sample_id[4:])
    target = np.asarray(Image.open(runs / "data" / "pairs" / "images" / f"{index}_b.png").convert("RGB"))
    np.testing.assert_array_equal(image, target)

    answers = [s.prediction.text for s in idp.samples]
    assert answers == [s.sample["action_text"] for s in idp.samples]  # the oracle answers the reference
    values, episodes = fdp.values("ssim")
    assert values == [r["scores"]["ssim"] for r in records if r["task"] == "pairs_fdp"]
    assert episodes == [r["sample"]["episode_id"] for r in records if r["task"] == "pairs_fdp"]
    assert read_run(run_dir / "results.json").tasks.keys() == log.tasks.keys()  # the file names its run too


def test_best_of_n_predictions_are_typed(runs):
    log = read_run(runs / "bon")
    assert log.card["adapter"] == "verified"
    samples = log.tasks["pairs_cf_fdp"].samples
    assert len(samples) == 4
    for s in samples:
        p = s.prediction
        assert len(p.candidates) == 3 and len(p.verifier_scores) == 3 and p.selected == 2  # the brightest
        assert p.images == (p.candidates[2],)
        assert all(isinstance(v, float) for v in p.verifier_scores)
        assert isinstance(p.counterfactual, Counterfactual) and p.counterfactual.action != s.sample["action_text"]
        np.testing.assert_array_equal(log.image(p.candidates[1]).astype(int),
                                      np.clip(log.image(p.candidates[0]).astype(int) + 10, 0, 255))
        assert log.image(p.counterfactual.image).shape == (32, 32, 3)


def test_reverification_reads_stored_candidates_without_the_store(runs, tmp_path, monkeypatch, capsys):
    """`verified` with candidates_from= reads the stored draws through read_run: results.json,
    samples.jsonl and objects/ serve, store.sqlite is not needed."""
    stored = tmp_path / "bon"
    shutil.copytree(runs / "bon", stored, ignore=shutil.ignore_patterns("store.sqlite*", ".write.lock"))
    monkeypatch.setenv("WMBENCH_DATA_DIR", str(runs / "data"))
    monkeypatch.setenv("WMBENCH_TASKS_PATH", str(runs / "tasks"))
    again = tmp_path / "bon2"
    assert main(["run", "--no-progress", "--tasks", "pairs_cf_fdp", "--model", "verified", "--model-args",
                 f"candidates_from={stored},verifier=test_runlog:Brightness,n=2", "--limit", "4",
                 "--output", str(again)]) == 0
    old = read_run(stored).tasks["pairs_cf_fdp"]
    new = read_run(again).tasks["pairs_cf_fdp"]
    for s in new.samples:
        before = old.sample(s.sample_id).prediction
        assert s.prediction.candidates == before.candidates[:2] and s.prediction.selected == 1
        assert s.prediction.counterfactual == before.counterfactual  # the stored one served, nothing generated
    assert new.metrics["counterfactual_sensitivity"]["n"] == 4
    assert read_run(again).card["args"]["candidates_from"] == str(stored)

    capsys.readouterr()
    assert main(["run", "--no-progress", "--tasks", "pairs_cf_fdp", "--model", "verified", "--model-args",
                 f"candidates_from={tmp_path / 'nope'},verifier=test_runlog:Brightness", "--output",
                 str(tmp_path / "x")]) == 2
    assert f"candidates_from: {tmp_path / 'nope'}: not a run directory" in capsys.readouterr().err
    with pytest.raises(BadInput, match="is a run of 'copy' \\(adapter copy\\), not of a verified best-of-N model"):
        StoredCandidates(str(runs / "main" / "copy"))


def test_results_and_samples_alone_are_enough(runs, tmp_path):
    """A committed run (results/) has no store.sqlite and no objects/: every number still reads."""
    source = runs / "main" / "copy"
    assert (source / "store.sqlite").is_file() and (source / "objects").is_dir()
    bare = tmp_path / "copy"
    bare.mkdir()
    for name in ("results.json", "samples.jsonl"):
        shutil.copy(source / name, bare / name)
    log = read_run(bare)
    fdp = log.tasks["pairs_fdp"]
    assert [s.scores for s in fdp.samples] == [s.scores for s in read_run(source).tasks["pairs_fdp"].samples]
    assert np.mean(fdp.values("l1")[0]) == pytest.approx(fdp.metrics["l1"]["mean"])
    digest = fdp.samples[0].prediction.images[0]
    with pytest.raises(BadInput, match=f"stored prediction {bare / 'objects'}.*{digest}.png is missing"):
        log.image(digest)
    with pytest.raises(BadInput, match="not the sha256"):
        log.image("../../results")


def test_samples_are_read_lazily_and_damage_is_named(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs / "main" / "copy", run_dir)
    (run_dir / "samples.jsonl").unlink()
    log = read_run(run_dir)  # results.json alone: the means are there
    assert log.tasks["pairs_fdp"].metrics["l1"]["mean"] == results(runs / "main" / "copy")["tasks"]["pairs_fdp"][
        "metrics"]["l1"]["mean"]
    with pytest.raises(BadInput, match=f"not a run directory \\({run_dir / 'samples.jsonl'} is missing"):
        log.tasks["pairs_fdp"].samples

    lines = (runs / "main" / "copy" / "samples.jsonl").read_text().splitlines()
    (run_dir / "samples.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(BadInput, match=r"samples\.jsonl, line 2: not a sample record"):
        read_run(run_dir).samples

    digest = read_run(runs / "main" / "copy").tasks["pairs_fdp"].samples[0].prediction.images[0]
    damaged = read_run(run_dir)
    damaged.image_path(digest).write_bytes(b"not a png")
    with pytest.raises(BadInput, match=f"{digest}.png is unreadable"):
        damaged.image(digest)


def test_bad_run_directories_raise_bad_input_naming_the_file(runs, tmp_path):
    with pytest.raises(BadInput, match=f"{tmp_path / 'nope'}: not a run directory \\(it does not exist\\)"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match=f"not a run directory \\({tmp_path / 'empty' / 'results.json'} is missing"):
        read_run(tmp_path / "empty")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "results.json").write_text("{ this is not JSON")
    with pytest.raises(BadInput, match=f"{garbage / 'results.json'}: not valid JSON"):
        read_run(garbage)
    (garbage / "results.json").write_text(json.dumps({"model": {"card": {"name": "x"}, "fingerprint": "f"}}))
    with pytest.raises(BadInput, match=f"{garbage / 'results.json'}: not a wmbench results file "
                                       f"\\(missing key 'tasks'"):
        read_run(garbage)
    (garbage / "results.json").write_text(json.dumps({"model": None, "tasks": {}}))
    with pytest.raises(BadInput, match="no model"):
        read_run(garbage)
    (garbage / "results.json").write_text("[1, 2]")
    with pytest.raises(BadInput, match="not a wmbench results file"):
        read_run(garbage)


def test_find_runs(runs, tmp_path):
    main_runs = find_runs([runs / "main"])
    assert [p.name for p in main_runs] == ["copy", "majority", "oracle", "soft"]
    assert find_runs([runs / "bon" / "results.json", runs / "bon"]) == [runs / "bon", runs / "bon"]
    with pytest.raises(BadInput, match="neither a run directory nor a results.json"):
        find_runs([tmp_path / "missing"])


def test_leaderboard_dataframe_holds_the_results_json_numbers(runs):
    frame = leaderboard([runs / "main"], tasks=["pairs_fdp"])
    assert list(frame.columns)[:11] == ["model", "anchor", "group", "metric", "label", "task", "mean", "ci_lo",
                                        "ci_hi", "n", "seeds"]
    assert len(frame) == 3 * 4  # copy, oracle, soft (majority has no FDP) x four metrics
    for row in frame.itertuples():
        entry = results(runs / "main" / row.model)["tasks"]["pairs_fdp"]["metrics"][row.metric]
        assert row.mean == pytest.approx(entry["mean"]) and row.n == entry["n"] and row.state == "ok"
        assert (row.ci_lo, row.ci_hi) == pytest.approx(tuple(entry["ci95"]))
        assert row.higher_is_better == entry["higher_is_better"] and row.task == "pairs_fdp" and row.label == ""
        assert row.anchor == (row.model in ("copy", "oracle"))
    assert not frame[frame.anchor].best.any()

    grouped = leaderboard([runs / "main"], tasks=["pairs_?_fdp"], metrics=["ssim"], groups=["Pairs=pairs_{subset}_fdp"])
    soft = grouped[grouped.model == "soft"].set_index("label")
    assert list(soft.index) == ["a", "b", "Avg"] and set(soft.group) == {"Pairs"}
    means = [results(runs / "main" / "soft")["tasks"][f"pairs_{s}_fdp"]["metrics"]["ssim"]["mean"] for s in "ab"]
    assert soft.loc["a", "mean"] == pytest.approx(means[0]) and soft.loc["b", "mean"] == pytest.approx(means[1])
    assert soft.loc["Avg", "mean"] == pytest.approx(np.mean(means)) and pd.isna(soft.loc["Avg", "task"])
    assert soft.loc["Avg", "ci_lo"] < soft.loc["Avg", "mean"] < soft.loc["Avg", "ci_hi"]

    idp = leaderboard([runs / "main"], tasks=["pairs_idp"], metrics=["exact_match"])
    assert set(idp.model) == {"majority", "oracle"}
    assert idp.set_index("model").loc["oracle", "mean"] == 1.0
