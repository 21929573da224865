"""VLM judge protocol (parsing, retries, raw replies, min of the two scores) and IDP cycle
consistency. The judge / IDP models here are small deterministic adapters standing in for a VLM:
what is under test is the protocol around them."""

from __future__ import annotations

import numpy as np
import pytest

from wmbench.metrics import METRICS, MetricInput
from wmbench.metrics.judge import parse_reply
from wmbench.models.base import Model


class ScriptedJudge(Model):
    """Answers from a fixed list of replies, in order (one per question asked)."""

    def __init__(self, replies):
        super().__init__()
        self.replies, self.asked = list(replies), []

    def answer(self, images, prompts):
        self.asked.append((len(images[0]), prompts))
        return [self.replies.pop(0) for _ in prompts]


class PixelIDP(Model):
    """An 'IDP model' whose belief in any action grows with the amount of visible change."""

    def action_logprob(self, batch, actions):
        return [float(np.log(np.abs(t.astype(float) - s).mean() + 1e-3)) for s, t in zip(batch.sources, batch.targets)]

    def infer_action(self, batch):
        return ["push the cup to the left" if (t != s).any() else "nothing happens"
                for s, t in zip(batch.sources, batch.targets)]


@pytest.mark.parametrize("reply, expected", [
    ('{"editing_success": 7, "minimal_editing": 9, "reason": "ok"}', (7, 9)),
    ('Sure!\n```json\n{"Editing_Success": "8/10", "minimal_editing": 3.5}\n```', (8, 3.5)),
    ('{"reason": {"note": "x"}} then {"success": 2, "overediting": 10}', (2, 10)),
    ("Editing success: 6/10. Minimal editing: 4", (6, 4)),
    ('{"editing_success": 11, "minimal_editing": 5}', None),  # out of range
    ("I cannot judge this image.", None),
    ('{"editing_success": 5}', None),
])
def test_parse_reply(reply, expected):
    assert parse_reply(reply) == expected


def test_judge_scores_min_keeps_replies_and_retries():
    rng = np.random.default_rng(0)
    src = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    judge = ScriptedJudge(['{"editing_success": 8, "minimal_editing": 6}', "no idea", "garbage",
                           "Editing success: 3, minimal editing: 9", "still garbage", "nope"])
    metric = METRICS.get("vlm_judge")(adapter=judge, retries=2)
    assert metric.available() == (True, "")
    scores, details = metric.score(MetricInput("fdp", src, src, None, ["push", "open", "lift"]))
    assert scores[0] == 6 and scores[1] == 3 and np.isnan(scores[2])
    assert details[0]["replies"] == ['{"editing_success": 8, "minimal_editing": 6}']
    assert details[1]["replies"] == ["no idea", "Editing success: 3, minimal editing: 9"]
    assert details[2]["failed"] and len(details[2]["replies"]) == 3 and "3 attempts" in details[2]["error"]
    # the judge saw two images (source, prediction) and the instruction; retries ask only the failed
    assert judge.asked[0][0] == 2 and '"push"' in judge.asked[0][1][0]
    assert [len(p) for _, p in judge.asked] == [3, 2, 1]
    assert metric.weights_info()[0]["id"] == "judge:ScriptedJudge"


def test_judge_availability_names_the_problem():
    assert "needs the metric option 'model'" in METRICS.get("vlm_judge")().available()[1]
    ok, reason = METRICS.get("vlm_judge")(model="copy").available()
    assert not ok and "answer" in reason
    ok, reason = METRICS.get("vlm_judge")(model="no-such-model").available()
    assert not ok and "unknown model" in reason
    with pytest.raises(TypeError):
        METRICS.get("vlm_judge")(model="x", prompt="no placeholder")


def test_idp_cycle_logprob_and_caption():
    rng = np.random.default_rng(1)
    src = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2)]
    tgt = [np.roll(s, 2, axis=0) for s in src]
    metric = METRICS.get("idp_cycle")(adapter=PixelIDP(), mode="logprob")
    assert metric.available() == (True, "")
    copy = metric.score(MetricInput("fdp", src, src, tgt, ["push", "push"]))
    oracle = metric.score(MetricInput("fdp", tgt, src, tgt, ["push", "push"]))
    assert np.allclose(oracle.values, 0.0) and (copy.values < oracle.values).all()
    assert oracle.details[0]["logprob_prediction"] == oracle.details[0]["logprob_target"]
    caption = METRICS.get("idp_cycle")(adapter=PixelIDP(), mode="caption")
    c_copy = caption.score(MetricInput("fdp", src, src, tgt, ["push the cup left"] * 2))
    c_oracle = caption.score(MetricInput("fdp", tgt, src, tgt, ["push the cup left"] * 2))
    assert (c_oracle.values > c_copy.values).all() and c_oracle.details[0]["idp_caption"] == "push the cup to the left"
    # an adapter without the needed capability is refused up front, with the reason
    ok, reason = METRICS.get("idp_cycle")(model="copy", mode="logprob").available()
    assert not ok and "action_logprob" in reason
    with pytest.raises(TypeError):
        METRICS.get("idp_cycle")(model="oracle", mode="bogus")
