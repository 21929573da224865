"""Likelihood-preference probes (task kind `probe`): the stored log-likelihoods and the preference
accuracies equal what a hand computation gives for a stub model, on both sides (IDP:
`action_logprob`, FDP: `transition_logprob`), and the negatives do not depend on the batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ACTIONS, SHIFTS
from PIL import Image

import wmbench

DIRECTION = {ACTIONS[k]: np.array(SHIFTS[k], dtype=float) for k in SHIFTS}


def square_at(image: np.ndarray) -> np.ndarray:
    """Centre (row, col) of the red square."""
    red = (image[..., 0] > 200) & (image[..., 1] < 80)
    rows, cols = np.nonzero(red)
    return np.array([rows.mean(), cols.mean()]) if len(rows) else np.array([0.0, 0.0])


def idp_logprob(source, target, action) -> float:
    """How well the square's motion matches the action's direction (0 = exactly)."""
    return -float(np.abs(square_at(target) - square_at(source) - DIRECTION[action]).sum())


class StubScorer(wmbench.Model):
    def action_logprob(self, batch, actions):
        return [idp_logprob(s, t, a) for s, t, a in zip(batch.sources, batch.targets, actions)]

    def transition_logprob(self, batch, targets):
        return [idp_logprob(s, t, a) + 0.5 for s, t, a in zip(batch.sources, targets, batch.actions)]


NEGATIVES = ["random_action", "counterfactual_action", "other_target", "copy", "swap"]


def probe_task(workspace, side: str) -> str:
    metrics = ", ".join([f"{{name: preference_accuracy, args: {{negative: {n}}}, label: acc_{n}}}" for n in NEGATIVES]
                        + [f"{{name: logprob_margin, args: {{negative: {n}}}, label: margin_{n}}}" for n in NEGATIVES])
    path = workspace / "tasks" / f"pairs_probe_{side}.yaml"
    path.write_text(f"name: pairs_probe_{side}\nkind: probe\ndataset: {{format: jsonl, subfolder: pairs}}\n"
                    f"frames: {{mode: first_last}}\nprobe: {{side: {side}}}\nmetrics: [{metrics}]\n")
    return str(path)


def load(workspace, record, key):
    return np.asarray(Image.open(workspace / "data" / "pairs" / record["sample"][key]).convert("RGB"))


@pytest.mark.parametrize("side", ["idp", "fdp"])
def test_probe_matches_hand_computed_likelihoods(workspace, side):
    result = wmbench.evaluate(probe_task(workspace, side), StubScorer(), output=workspace / f"run_{side}",
                              progress=False, batch_size=5)
    samples = [json.loads(line) for line in (workspace / f"run_{side}" / "samples.jsonl").read_text().splitlines()]
    by_id = {s["sample_id"]: s for s in samples}
    offset = 0.5 if side == "fdp" else 0.0
    expected_acc = {n: [] for n in NEGATIVES}
    for s in samples:
        src, tgt, action = load(workspace, s, "source"), load(workspace, s, "target"), s["sample"]["action_text"]
        chosen = s["sample"]["probe_negatives"]
        other = load(workspace, by_id[chosen["other_target"]], "target")
        hand = {"real": idp_logprob(src, tgt, action),
                "random_action": idp_logprob(src, tgt, chosen["random_action"]),
                "counterfactual_action": idp_logprob(src, tgt, chosen["counterfactual_action"]),
                "other_target": idp_logprob(src, other, action),
                "copy": idp_logprob(src, src, action), "swap": idp_logprob(tgt, src, action)}
        assert s["prediction"]["logprobs"] == pytest.approx({k: v + offset for k, v in hand.items()})
        assert chosen["random_action"] != action and chosen["counterfactual_action"] != action
        assert by_id[chosen["other_target"]]["sample"]["episode_id"] != s["sample"]["episode_id"]
        for n in NEGATIVES:
            expected_acc[n].append(1.0 if hand["real"] > hand[n] else 0.5 if hand["real"] == hand[n] else 0.0)
    metrics = result.metrics[f"pairs_probe_{side}"]
    for n in NEGATIVES:
        assert metrics[f"acc_{n}"].mean == pytest.approx(np.mean(expected_acc[n]))
        assert metrics[f"acc_{n}"].ci95 is not None and metrics[f"acc_{n}"].n == 12
    # the stub knows the square's motion: the real transition wins against every action negative
    assert metrics["acc_random_action"].mean == 1.0 and metrics["margin_random_action"].mean > 0


def test_negatives_do_not_depend_on_the_batch(workspace):
    task = probe_task(workspace, "idp")
    logs = {}
    for batch_size in (1, 12):
        wmbench.evaluate(task, StubScorer(), output=workspace / f"b{batch_size}", batch_size=batch_size, progress=False)
        logs[batch_size] = {r.sample_id: (r.prediction.logprobs, r.sample["probe_negatives"])
                            for r in wmbench.read_run(workspace / f"b{batch_size}").samples}
    assert logs[1] == logs[12]


def test_a_probe_needs_the_likelihood_capability(workspace):
    with pytest.raises(wmbench.BadInput, match="needs capability 'action_logprob'"):
        wmbench.evaluate(probe_task(workspace, "idp"), "copy", output=workspace / "x")
    with pytest.raises(wmbench.BadInput, match="needs capability 'transition_logprob'"):
        wmbench.evaluate(probe_task(workspace, "fdp"), "copy", output=workspace / "y")


def test_probe_spec_is_checked(workspace):
    bad = workspace / "tasks" / "bad_probe.yaml"
    bad.write_text("name: bad_probe\nkind: probe\ndataset: {format: jsonl, subfolder: pairs}\n"
                   "probe: {negatives: [copy, mirror]}\nmetrics: [preference_accuracy]\n")
    with pytest.raises(wmbench.BadInput, match="negatives"):
        wmbench.evaluate(str(bad), StubScorer(), output=workspace / "z")
