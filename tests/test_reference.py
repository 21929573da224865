"""The reference models (wmbench.models.reference, wmbench.run.reference): the motion language,
the IDP's likelihood, the FDP's seeded samples and mixture density (against torch.distributions),
deterministic training that lowers the loss, the whole training pipeline on tiny data, and the
committed checkpoints reproducing their committed results."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import wmbench
from wmbench.core.errors import BadInput, SampleError
from wmbench.core.types import Batch
from wmbench.data.metaworld_motion import VOCABULARY, Motion, motion_text, parse_motion
from wmbench.models.reference import training
from wmbench.models.reference.adapters import ReferenceFDP, ReferenceIDP
from wmbench.models.reference.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = {"tasks": ["reach-v3"], "episodes": 1, "size": 64, "frame_skip": 4, "max_frames": 24}
os.environ.setdefault("MUJOCO_GL", "egl")


def frames(n: int, h: int = 48, w: int = 80, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def checkpoint(tmp_path: Path, kind: str, size: int = 16) -> Path:
    torch.manual_seed(1)
    config = TrainConfig(kind, size=size, width=8, components=3)
    path = tmp_path / f"{kind}.safetensors"
    training.save(path, config.build(), config, {"note": "random weights, for tests"})
    return path


def test_motion_language_round_trips():
    assert len(VOCABULARY) == len(set(VOCABULARY)) == 81
    for values in itertools.product(range(3), repeat=4):
        assert parse_motion(motion_text(Motion(*values))) == Motion(*values)
    assert parse_motion(" Move the arm LEFT and down, close the gripper. ") == Motion(1, 2, 0, 1)
    assert parse_motion("open the drawer: keep the arm still") == Motion()
    assert parse_motion("move the arm sideways") is None


def test_idp_likelihood_is_a_distribution_over_the_language(tmp_path):
    model = ReferenceIDP(str(checkpoint(tmp_path, "idp")))
    batch = Batch(sample_ids=["a", "b"], sources=frames(2), targets=frames(2, seed=1), prompts=["", ""])
    for i in range(2):
        one = Batch(sample_ids=[batch.sample_ids[i]] * len(VOCABULARY), sources=[batch.sources[i]] * len(VOCABULARY),
                    targets=[batch.targets[i]] * len(VOCABULARY), prompts=[""] * len(VOCABULARY))
        scores = np.array(model.action_logprob(one, list(VOCABULARY)))
        assert np.exp(scores).sum() == pytest.approx(1.0, abs=1e-6)  # float32 log-softmax
        assert model.infer_action(batch)[i] == VOCABULARY[int(scores.argmax())]
        floor = model.action_logprob(one, ["wave the flag"])[0]
        assert floor == pytest.approx(scores.min() - np.log(1000.0))


def test_fdp_samples_are_seeded_per_sample_and_its_density_is_the_mixture(tmp_path):
    model = ReferenceFDP(str(checkpoint(tmp_path, "fdp")), seed=3)
    sources = frames(3)
    actions = ["move the arm left", "keep the arm still, open the gripper", "move the arm up and away from the camera"]
    batch = Batch(sample_ids=["a", "b", "c"], sources=sources, prompts=actions, actions=actions, seed=0)
    drawn = model.predict_next(batch, n=4)
    assert [len(d) for d in drawn] == [4, 4, 4] and drawn[0][0].shape == sources[0].shape
    alone = model.predict_next(Batch(sample_ids=["b"], sources=sources[1:2], prompts=actions[1:2],
                                     actions=actions[1:2], seed=0), n=4)
    assert all(np.array_equal(x, y) for x, y in zip(alone[0], drawn[1]))  # independent of the batch
    assert {d.details["component"] for row in drawn for d in row} <= set(range(3))

    targets = frames(3, seed=5)
    got = model.transition_logprob(batch, targets)
    from torch import distributions as D

    from wmbench.models.reference.nets import one_hot, resize

    with torch.no_grad():
        log_pi, means, log_sigma = model.net(resize(sources, 16), one_hot([parse_motion(a) for a in actions]))
        mixture = D.MixtureSameFamily(D.Categorical(logits=log_pi),
                                      D.Independent(D.Normal(means, log_sigma.exp()), 3))
        want = mixture.log_prob(resize(targets, 16))
    assert np.allclose(got, want.double().numpy(), rtol=1e-5)
    with pytest.raises(SampleError, match="motion language"):
        model.predict_next(Batch(sample_ids=["x"], sources=sources[:1], prompts=["fly"], actions=["fly"]))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from wmbench.run.selection import run_generator

    data = tmp_path_factory.mktemp("reference-data")
    for split in ("train", "unlabelled", "test"):
        folder = "metaworld" if split == "test" else f"metaworld-{split}"
        run_generator("metaworld", data / folder, {**TINY, "split": split}, progress=False)
    return data


@pytest.mark.slow
def test_a_few_training_steps_are_deterministic_and_lower_the_loss(tiny_data):
    from wmbench.run.reference import _spec, load_pairs

    pairs = load_pairs(_spec("train", TINY), tiny_data / "metaworld-train", 16, progress=False)
    assert len(pairs) >= 8
    for kind in ("idp", "fdp"):
        config = TrainConfig(kind, size=16, width=8, components=3, steps=16, batch_size=8, lr=5e-3)
        net1, losses1 = training.train(config, pairs, progress=False)
        net2, losses2 = training.train(config, pairs, progress=False)
        assert losses1 == losses2
        assert all(torch.equal(a, b) for a, b in zip(net1.state_dict().values(), net2.state_dict().values()))
        assert np.mean(losses1[-4:]) < np.mean(losses1[:4]), (kind, losses1)


@pytest.mark.slow
def test_the_pipeline_trains_annotates_and_records(tiny_data, tmp_path):
    from wmbench.cli import main
    from wmbench.run.reference import evaluate_references, train_references

    steps = {"ref-idp": 4, "ref-fdp": 4, "ref-fdp-boot": 4}
    first = train_references(tmp_path / "a", data_dir=tiny_data, steps=steps, data_options=TINY, batch_size=8,
                             progress=False)
    again = train_references(tmp_path / "b", data_dir=tiny_data, steps=steps, data_options=TINY, batch_size=8,
                             progress=False)
    assert first.sha256 == again.sha256  # deterministic per seed: the same bytes
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    unlabelled = record["data"]["unlabelled"]
    assert unlabelled["kept"] == unlabelled["labelled"] > 0 and 0 <= unlabelled["label_exact_match"] <= 1
    boot = record["models"]["ref-fdp-boot"]
    assert boot["pairs"] == record["models"]["ref-fdp"]["pairs"] + unlabelled["pairs"]
    entries = json.loads((tmp_path / "a" / "annotations" / "train.json").read_text())
    assert all(parse_motion(e["instruction"]) is not None for e in entries)  # ref-idp's labels, in the language
    assert set(json.loads((tmp_path / "a" / "curves.json").read_text())) == set(steps)
    assert (tmp_path / "a" / "loss_curves.png").stat().st_size > 1000
    # the committed protocol on these checkpoints: every card, pinned, named after the seed
    runs = evaluate_references(7, checkpoints=tmp_path / "a", output=tmp_path / "results", data_dir=tiny_data,
                               progress=False)
    assert sorted(str(r.run_dir.relative_to(tmp_path / "results")) for r in runs) == sorted(
        [f"seeds/seed-7/default/{n}@seed7" for n in ("ref-idp", "ref-fdp", "ref-fdp-boot", "ref-fdp-bon2",
                                                     "ref-fdp-bon4", "ref-fdp-bon8")]
        + [f"seeds/seed-7/probe/{n}@seed7" for n in ("ref-idp", "ref-fdp", "ref-fdp-boot")])
    assert all(r.failed == 0 for r in runs)
    bon = wmbench.read_run(tmp_path / "results/seeds/seed-7/default/ref-fdp-bon2@seed7").card["args"]
    assert bon["sampler_args"]["sha256"] == first.sha256["ref-fdp"]
    assert bon["verifier_args"]["sha256"] == first.sha256["ref-idp"]
    # the trained checkpoint is a card away, and a changed byte is refused
    path = first.checkpoints["ref-idp"]
    card = f"--model-args=checkpoint={path},sha256={'0' * 64}"
    assert main(["run", "--tasks", "metaworld_idp", "--model", "ref-idp", card, "--output", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def _committed(model: str, task: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in (REPO / "results" / "default" / model / "samples.jsonl").open()]
    return {r["sample_id"]: r for r in rows if r["task"] == task}


@pytest.mark.slow
def test_committed_checkpoints_reproduce_committed_results(tmp_path, monkeypatch):
    """ref-idp on metaworld_idp and ref-fdp-bon2 (ref-fdp sampled, ref-idp verifying) on
    metaworld_fdp, every sample (a --limit would change the counterfactual actions, which are drawn
    from the selected samples' actions)."""
    monkeypatch.setenv("WMBENCH_DATA_DIR", str(tmp_path / "data"))  # the test split, generated as committed
    for model, task in (("ref-idp", "metaworld_idp"), ("ref-fdp-bon2", "metaworld_fdp")):
        result = wmbench.evaluate(task, model, output=tmp_path / model, progress=False)
        committed = _committed(model, task)
        assert result.counts[task]["scored"] == len(committed) == 201
        for sample in wmbench.read_run(result.run_dir).tasks[task].samples:
            want = committed[sample.sample_id]
            assert sample.done and want["status"] == "done"
            assert set(sample.scores) == set(want["scores"])
            for metric, value in want["scores"].items():
                if value is None:  # not applicable then: not applicable now
                    assert sample.scores[metric] is None, (model, metric)
                else:
                    assert sample.scores[metric] == pytest.approx(value, rel=1e-4, abs=1e-6), (model, metric)
            if task == "metaworld_idp":
                assert sample.prediction.text == want["prediction"]["text"]


def test_a_bad_checkpoint_is_refused_with_how_to_retrain(tmp_path):
    with pytest.raises(BadInput, match="does not exist; retrain it with `wmbench reference train`"):
        ReferenceIDP(str(tmp_path / "missing.safetensors"))
    with pytest.raises(BadInput, match="baselines/weights/nope.safetensors does not exist"):  # a bare name
        ReferenceIDP("nope.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(BadInput, match="not a readable wmbench reference checkpoint"):
        ReferenceIDP(str(garbage))
    path = checkpoint(tmp_path, "fdp")
    with pytest.raises(BadInput, match="has sha256 .* the model card says"):
        ReferenceFDP(str(path), sha256="0" * 64)
    with pytest.raises(BadInput, match="holds an FDP network, not an IDP one"):
        ReferenceIDP(str(path))
    shutil.copy(path, tmp_path / "copy.safetensors")
    ReferenceFDP(str(tmp_path / "copy.safetensors"), sha256=training.sha256_of(path))


def test_the_doc_is_regenerated_from_the_committed_results(tmp_path):
    """docs/paper-in-miniature.md's generated part is what `wmbench reference report` makes of results/."""
    from wmbench.analysis.miniature import write_report

    committed = (REPO / "docs" / "paper-in-miniature.md").read_text(encoding="utf-8")
    doc = tmp_path / "paper-in-miniature.md"
    doc.write_text(committed, encoding="utf-8")
    write_report(REPO / "results", doc)
    assert doc.read_text(encoding="utf-8") == committed
    assert (tmp_path / "figures" / "miniature-verification.png").stat().st_size > 5000
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no run of ref-idp on metaworld_idp .*wmbench reference evaluate"):
        write_report(tmp_path / "empty", doc)
