"""Judge replies as judge models write them (issue 11, point 8): VIEScore's `{"score": [a, b]}`
parses, prose parses only in its one documented form, and anything else is a failed score with the
reply kept. (The judge protocol itself: tests/test_metrics_judge.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from wmbench.metrics import METRICS, MetricInput
from wmbench.metrics.judge import parse_reply
from wmbench.models.base import Model

VIESCORE = '||V^=^V||\n{\n"score" : [7, 9],\n"reasoning" : "the cup moved; nothing else changed"\n}\n||V^=^V||'


@pytest.mark.parametrize("reply, expected", [
    (VIESCORE, (7, 9)),  # TIGER-AI-Lab/VIEScore context.txt + tie_rule_SC.txt output format
    ('{"score": [3, 10.0], "reasoning": "x"}', (3, 10)),
    ('```json\n{"score": ["6", "8/10"]}\n```', (6, 8)),
    ('{"score": [7]}', None), ('{"score": 7}', None), ('{"score": [7, 11]}', None),
    # prose: "<name>: <score>" ending its clause
    ("Editing success: 6/10. Minimal editing: 4", (6, 4)),
    ("**Editing success**: 7\n**Minimal editing**: 9", (7, 9)),
    ("Editing success = 7.5;\nminimal_editing: 10/10", (7.5, 10)),
    # the first number after the key is not a score
    ("Editing success: 2 of the 3 cups moved, overall 6. Minimal editing: 8", None),
    ("Editing success: 7 out of 10. Minimal editing: 8", None),
    ("Editing success: 3. Then again, editing success: 8. Minimal editing: 5", None),  # two answers
    # a reply whose JSON names a score is judged by its JSON, not by the prose around it
    ('{"editing_success": 11, "minimal_editing": 5} Editing success: 6, minimal editing: 5', None),
])
def test_replies_parse_json_first_then_one_pattern(reply, expected):
    assert parse_reply(reply) == expected


class ScriptedJudge(Model):
    def __init__(self, replies):
        super().__init__()
        self.replies = list(replies)

    def answer(self, images, prompts):
        return [self.replies.pop(0) for _ in prompts]


def test_viescore_replies_score_and_unparseable_ones_fail_with_the_reply_kept():
    src = [np.zeros((8, 8, 3), np.uint8)] * 2
    vague = "Editing success: 2 of the 3 cups; overall 6"
    judge = ScriptedJudge([VIESCORE, vague, vague])
    scores, details = METRICS.get("vlm_judge")(adapter=judge, retries=1).score(
        MetricInput("fdp", src, src, None, ["push", "open"]))
    assert scores[0] == 7 and details[0]["editing_success"] == 7 and details[0]["minimal_editing"] == 9
    assert np.isnan(scores[1]) and details[1]["failed"] and details[1]["replies"] == [vague, vague]
