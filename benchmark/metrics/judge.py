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
"failed": True with the reason when no reply parsed; `api`: per reply, the API's `model` and
`system_fingerprint`, for judges that report them). `describe()` adds `judge` (who judges: card,
API model, temperature, seed, retries, prompt hash) to the metric's results.json entry. Not marked
edit-aware: it ranks copy low only as far as the judge model follows the protocol.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

from ..core.errors import BadInput
from ..core.secrets import scrub
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
#: The one prose form read from a reply without a JSON answer: "<name>: <score>" (markdown emphasis
#: around the name allowed, ':' or '='; the score a number, optionally "/10") that ends its clause
#: ('.', ',', ';', ')' or the line's end), each name once. "Editing success: 2 of the 3 cups ..."
#: holds no score: such a reply is a failed score (the reply is kept in the details).
_PROSE = r"(?<!\w)(?:{names})[*_\s]*[:=][*\s]*" + _NUMBER + r"[*\s]*(?=[.,;)]|$)"


def _as_score(value: Any) -> float | None:
    """A JSON value as a 0-10 score: a number, or a string that is only a number (optionally "/10")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        found = re.fullmatch(r"\s*" + _NUMBER + r"\s*", str(value))
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
    """(editing_success, minimal_editing) from a judge reply, or None if it has no valid pair.

    JSON first: the first object (fenced, in prose, or between VIEScore's `||V^=^V||` delimiters)
    with both named scores (`ALIASES`), or VIEScore's `{"score": [editing success, overediting]}`
    (TIGER-AI-Lab/VIEScore `tie_rule_SC.txt`: score2 rates overediting, 10 = a minimal edit). A reply
    whose JSON names a score is judged by its JSON alone. Otherwise the one prose form `_PROSE`.
    Anything else is None (a failed score)."""
    judged_by_json = False
    for obj in _json_objects(text):
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        pair = [next((_as_score(lowered[a]) for a in ALIASES[key] if a in lowered), None) for key in ALIASES]
        if None not in pair:
            return pair[0], pair[1]
        score = lowered.get("score")
        if isinstance(score, list) and len(score) == 2 and None not in (pair := [_as_score(v) for v in score]):
            return pair[0], pair[1]
        judged_by_json |= "score" in lowered or any(a in lowered for names in ALIASES.values() for a in names)
    if judged_by_json:
        return None
    pair = []
    for aliases in ALIASES.values():
        names = "|".join(re.escape(a).replace(r"\ ", r"[ _]").replace("_", "[ _]") for a in aliases)
        found = {m.group(1) for m in re.finditer(_PROSE.format(names=names), text, flags=re.IGNORECASE | re.MULTILINE)}
        pair.append(_as_score(found.pop()) if len(found) == 1 else None)  # a name given twice differently: none
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

    def describe(self) -> dict[str, Any]:
        """As every metric's, plus `judge`: who judges (see `provenance`)."""
        return {**super().describe(), "judge": self.provenance()}

    def provenance(self) -> dict[str, Any]:
        """The judge as results.json records it: `model` (the card or adapter named by the option),
        `card`, `adapter`, `card_fingerprint`, `api_model` (the model the card asks the API or
        loads), `base_url`, `temperature`, `seed`, `max_tokens`, `retries` and `prompt_sha256`. What
        each reply says about the model that wrote it (the API's `model` and `system_fingerprint`)
        is in the sample's details (`api`), since it can change between calls."""
        record: dict[str, Any] = {"model": self.model_id(), "retries": self.retries,
                                  "prompt_sha256": hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()}
        if self.model_name is None:
            cls = type(self._adapter)
            return {**record, "adapter": f"{cls.__module__}:{cls.__qualname__}",
                    "temperature": getattr(self._adapter, "temperature", None)}
        try:
            from ..models import adapter_class

            card = self.model_card()
            settings = {**_defaults(adapter_class(card)), **card.args}
        except BadInput as exc:
            return {**record, "error": scrub(str(exc))}
        text = (lambda v: scrub(str(v)) if v is not None else None)
        return {**record, "card": card.name, "adapter": card.adapter, "card_fingerprint": card.fingerprint,
                "api_model": text(settings.get("model", settings.get("path"))), "base_url": text(settings.get("base_url")),
                "temperature": settings.get("temperature"), "seed": settings.get("seed"),
                "max_tokens": settings.get("max_tokens", settings.get("max_new_tokens"))}

    def score(self, batch: MetricInput) -> Scores:
        n = len(batch.predictions)
        actions = batch.actions or [""] * n
        judge = self.adapter()
        ask = getattr(judge, "answer_with_meta", None)  # replies that say which model wrote them (API judges)
        details = [{"judge": self.model_id(), "replies": [], **({"api": []} if ask else {})} for _ in range(n)]
        parsed: list[tuple[float, float] | None] = [None] * n
        pending = list(range(n))
        for _attempt in range(1 + self.retries):
            if not pending:
                break
            try:
                images = [[batch.sources[i], batch.predictions[i]] for i in pending]
                prompts = [self.prompt.format(instruction=actions[i]) for i in pending]
                if ask is not None:
                    replies, metas = map(list, zip(*ask(images, prompts))) if pending else ([], [])
                else:
                    replies, metas = judge.answer(images, prompts), None
            except BadInput:
                raise  # the judge cannot load or is misconfigured: retrying cannot help
            except Exception as exc:  # noqa: BLE001 - an endpoint error is a retry, not a crash of the batch
                for i in pending:
                    details[i]["replies"].append(scrub(f"<error: {type(exc).__name__}: {exc}>"))
                    if ask is not None:
                        details[i]["api"].append(None)  # aligned with `replies`
                continue
            for j, (i, reply) in enumerate(zip(pending, replies)):
                details[i]["replies"].append(reply)
                if metas is not None:
                    details[i]["api"].append(metas[j] if j < len(metas) else None)
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


def _defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of an adapter's constructor (what a card that omits them runs with)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not p.empty
            and isinstance(p.default, (str, int, float, bool, type(None)))}
