"""VLM judge in the protocol of Qiu et al. (the paper's GPT-4o evaluation of FDP).

The judge sees the source and the predicted frame with the instruction and returns JSON with
two 0-10 scores: `editing_success` (was the instructed action carried out) and
`minimal_editing` (was everything else left alone); the sample score is the minimum of the two,
so a frame that ignores the instruction (copy) and one that redraws the scene both score low.
The prompt wording is ours (the paper describes the protocol, not a verbatim prompt).

Any adapter with the `answer(images, prompts)` capability can judge: an OpenAI-compatible
endpoint or a local HF VLM. Options: `model` (adapter, card name or card path), `model_args`,
`retries` (re-asks for unparseable replies, default 2), `prompt` (template with {instruction}).
Raw replies are returned as the details of `Scores` (one dict per sample: judge, replies, the two scores, and
"failed": True with the reason when no reply parsed). Not marked edit-aware: it ranks copy low
only as far as the judge model follows the protocol.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from ..core.errors import BadInput
from .base import MetricInput, ModelBackedMetric, Scores

PROMPT = (
    "You are evaluating an image edit that should show the result of an action.\n"
    "Image 1 is the original scene. Image 2 is the predicted scene after this instruction: \"{instruction}\".\n"
    "Rate two things from 0 to 10:\n"
    "- editing_success: how well image 2 shows the instructed action carried out "
    "(0 = not at all, e.g. nothing changed; 10 = perfectly).\n"
    "- minimal_editing: how well image 2 keeps everything the instruction does not ask to change "
    "(0 = a different scene; 10 = only the instructed change).\n"
    "Answer with one JSON object and nothing else: "
    "{{\"editing_success\": <0-10>, \"minimal_editing\": <0-10>, \"reason\": \"<one sentence>\"}}"
)
ALIASES = {
    "editing_success": ("editing_success", "edit_success", "success", "editing success", "score_success"),
    "minimal_editing": ("minimal_editing", "minimal_edit", "overediting", "over_editing", "minimal editing",
                        "score_minimal"),
}
_NUMBER = r"(-?\d+(?:\.\d+)?)(?:\s*/\s*10)?"


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        found = re.search(_NUMBER, str(value))
        number = float(found.group(1)) if found else None
    return number if number is not None and 0.0 <= number <= 10.0 else None


def _json_objects(text: str) -> list[dict]:
    """Every parseable {...} in the text (replies wrap JSON in prose or ``` fences)."""
    found = []
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    value = json.loads(text[start:end + 1])
                except json.JSONDecodeError:
                    break
                if isinstance(value, dict):
                    found.append(value)
                break
    return found


def parse_reply(text: str) -> tuple[float, float] | None:
    """(editing_success, minimal_editing) from a judge reply, or None if it has no valid pair."""
    for obj in _json_objects(text):
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        pair = [next((_as_score(lowered[a]) for a in ALIASES[key] if a in lowered), None) for key in ALIASES]
        if None not in pair:
            return pair[0], pair[1]
    # prose fallback: "Editing success: 7/10 ... Minimal editing: 9"
    pair = []
    for aliases in ALIASES.values():
        names = "|".join(re.escape(a).replace(r"\ ", r"[ _]").replace("_", "[ _]") for a in aliases)
        found = re.search(rf"(?:{names})\W{{0,10}}{_NUMBER}", text, flags=re.IGNORECASE)
        pair.append(_as_score(found.group(1)) if found else None)
    return (pair[0], pair[1]) if None not in pair else None


class VLMJudge(ModelBackedMetric):
    name = "vlm_judge"
    kind = "fdp"
    higher_is_better = True
    needs = frozenset({"source", "action"})
    description = "VLM judge (paper protocol): min(editing success, minimal editing), 0-10, raw replies kept"

    capability = "answer"
    role = "judge"

    def __init__(self, model: str | None = None, model_args: dict[str, Any] | None = None, retries: int = 2,
                 prompt: str = PROMPT, adapter: Any = None):
        if "{instruction}" not in prompt:
            raise TypeError("vlm_judge: prompt must contain {instruction}")
        self._init_model(model, model_args, adapter)
        self.retries, self.prompt = max(0, int(retries)), prompt

    def options(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_args": self.model_args, "retries": self.retries,
                "prompt": self.prompt}

    def score(self, batch: MetricInput) -> Scores:
        n = len(batch.predictions)
        actions = batch.actions or [""] * n
        judge = self.adapter()
        details = [{"judge": self.model_id(), "replies": []} for _ in range(n)]
        parsed: list[tuple[float, float] | None] = [None] * n
        pending = list(range(n))
        for _attempt in range(1 + self.retries):
            if not pending:
                break
            try:
                replies = judge.answer([[batch.sources[i], batch.predictions[i]] for i in pending],
                                       [self.prompt.format(instruction=actions[i]) for i in pending])
            except BadInput:
                raise  # the judge cannot load or is misconfigured: retrying cannot help
            except Exception as exc:  # noqa: BLE001 - an endpoint error is a retry, not a crash of the batch
                for i in pending:
                    details[i]["replies"].append(f"<error: {type(exc).__name__}: {exc}>")
                continue
            for i, reply in zip(pending, replies):
                details[i]["replies"].append(reply)
                parsed[i] = parse_reply(str(reply))
            pending = [i for i in pending if parsed[i] is None]
        out = np.full(n, np.nan)
        for i in range(n):
            if parsed[i] is None:
                details[i].update(failed=True, error=f"no parseable judge reply after {1 + self.retries} attempts")
                continue
            success, minimal = parsed[i]
            details[i].update(editing_success=success, minimal_editing=minimal)
            out[i] = min(success, minimal)
        return Scores(out, details)
