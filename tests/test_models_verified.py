"""Best-of-N `verified` model: a real tiny Janus sampler + a real tiny Qwen2-VL verifier."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from wmbench.core.errors import BadInput  # noqa: E402
from wmbench.models import instantiate, resolve_card  # noqa: E402
from wmbench.models.verified import VerifiedModel  # noqa: E402
from wmbench.core.types import Batch  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {"janus": tiny_models.build_janus(tmp_path_factory.mktemp("janus")),
            "qwen": tiny_models.build_qwen2_vl(tmp_path_factory.mktemp("qwen"))}


def make_batch(b: int = 3) -> Batch:
    rng = np.random.default_rng(4)
    sources = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(b)]
    actions = ["move the cup", "open the door", "push the red block"][:b]
    return Batch(sample_ids=[f"s{i}" for i in range(b)], sources=sources, prompts=actions, actions=actions)


def spy(obj, name, calls):
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)
    setattr(obj, name, wrapper)


def build(folders, n=4, **extra):
    card = resolve_card("verified", {"sampler": "janus", "verifier": "hf-vlm", "n": n,
                                     "sampler.path": str(folders["janus"]), "sampler.seed": 5,
                                     "verifier.path": str(folders["qwen"]), **extra})
    return instantiate(card)


def test_best_of_n_batches_and_picks_the_argmax(folders):
    model = build(folders)
    assert isinstance(model, VerifiedModel) and model.capabilities() == ("predict_next", "predict_candidates")
    sampler_calls, verifier_calls = [], []
    spy(model.sampler, "predict_next", sampler_calls)
    spy(model.verifier, "action_logprob", verifier_calls)
    batch = make_batch()
    candidates = model.predict_candidates(batch)
    scores = model.verify(batch, candidates)
    assert len(sampler_calls) == 1 and sampler_calls[0][1]["n"] == 4  # one batched sampler call
    assert len(verifier_calls) == 1 and len(verifier_calls[0][0][1]) == 12  # all B*N pairs at once
    assert [len(s) for s in scores] == [4, 4, 4]
    # each score is the verifier's log p(action | source, candidate), as if asked alone
    alone = model.verifier.action_logprob(
        Batch(sample_ids=["x"], sources=[batch.sources[1]], targets=[candidates[1][2]],
              prompts=[model.verifier_prompt]), [batch.actions[1]])[0]
    assert scores[1][2] == pytest.approx(alone, abs=1e-3)
    best = model.predict_next(batch)
    for cands, sc, chosen in zip(candidates, scores, best):
        assert np.array_equal(chosen[0], cands[int(np.argmax(sc))])


def test_select_reuses_stored_draws_for_smaller_n():
    cands = [[np.full((2, 2, 3), v, np.uint8) for v in range(4)]]
    scores = [[-3.0, -1.0, -2.0, -0.5]]
    assert VerifiedModel.select(cands, scores)[0][0][0, 0, 0] == 3
    assert VerifiedModel.select(cands, scores, limit=3)[0][0][0, 0, 0] == 1  # best of the first 3 draws
    top2 = VerifiedModel.select(cands, scores, n=2)
    assert [im[0, 0, 0] for im in top2[0]] == [3, 1]
    tie = VerifiedModel.select(cands, [[-1.0, -1.0, -2.0, -3.0]])
    assert tie[0][0][0, 0, 0] == 0  # ties keep the earlier draw


def test_bad_configurations(folders):
    with pytest.raises(BadInput, match="cannot action_logprob"):
        VerifiedModel(sampler="copy", verifier="majority")
    with pytest.raises(BadInput, match="cannot predict_next"):
        VerifiedModel(sampler="majority", verifier="hf-vlm", **{"verifier.path": str(folders["qwen"])})
    with pytest.raises(BadInput, match="n must be"):
        VerifiedModel(sampler="copy", verifier="hf-vlm", n=0, **{"verifier.path": "x"})
    with pytest.raises(BadInput, match="bad model args"):
        instantiate(resolve_card("verified", {"sampler": "copy", "verifier": "hf-vlm", "bogus": 1}))


def test_fingerprint_covers_both_models(folders):
    fp = build(folders, n=2).fingerprint()
    assert fp["n"] == 2 and fp["sampler"]["checkpoint"].endswith(folders["janus"].name)
    assert fp["verifier"]["checkpoint"].endswith(folders["qwen"].name)


def test_wmbench_run_stores_candidates_and_reverifies_without_generating(folders, workspace):
    import json

    from wmbench.cli import main

    def samples(run):
        return {s["sample_id"]: s for s in map(json.loads, (run / "samples.jsonl").read_text().splitlines())}

    task = workspace / "tasks" / "pairs_fdp.yaml"
    task.write_text(task.read_text().replace("change_iou]", "change_iou, counterfactual_sensitivity]"))
    first = workspace / "bon3"
    args = f"sampler=janus,verifier=hf-vlm,n=3,sampler.path={folders['janus']},sampler.seed=5," \
           f"verifier.path={folders['qwen']}"
    assert main(["run", "--no-progress", "--tasks", "pairs_fdp", "--model", "verified", "--model-args", args,
                 "--limit", "4", "--batch-size", "2", "--output", str(first)]) == 0
    stored = samples(first)
    assert len(stored) == 4
    for s in stored.values():
        pred = s["prediction"]
        assert len(pred["candidates"]) == 3 and len(pred["verifier_scores"]) == 3
        assert pred["images"] == [pred["candidates"][pred["selected"]]]
        assert pred["selected"] == int(np.argmax(pred["verifier_scores"]))

    # best-of-2 from the stored draws, same verifier: no sampler is built, scores are reproduced
    second = workspace / "bon2"
    args2 = f"candidates_from={first},verifier=hf-vlm,n=2,verifier.path={folders['qwen']}"
    assert main(["run", "--no-progress", "--tasks", "pairs_fdp", "--model", "verified", "--model-args", args2,
                 "--limit", "4", "--output", str(second)]) == 0
    for sid, s in samples(second).items():
        old = stored[sid]["prediction"]
        new = s["prediction"]
        assert new["candidates"] == old["candidates"][:2]
        np.testing.assert_allclose(new["verifier_scores"], old["verifier_scores"][:2], atol=1e-3)
        assert new["selected"] == int(np.argmax(old["verifier_scores"][:2]))
    metrics = json.loads((second / "results.json").read_text())["tasks"]["pairs_fdp"]["metrics"]
    assert metrics["counterfactual_sensitivity"]["n"] == 4  # the stored counterfactuals serve, nothing generated
    card = json.loads((second / "results.json").read_text())["model"]["card"]
    assert card["args"]["candidates_from"] == str(first)

    with pytest.raises(BadInput, match="either 'sampler'"):
        VerifiedModel(verifier="hf-vlm", **{"verifier.path": str(folders["qwen"])})
