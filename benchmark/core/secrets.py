"""Keep secrets out of everything wmbench prints or stores.

Two rules, applied where values leave the process (run store, results.json, samples.jsonl, error
messages): a value under a key that names a secret (`api_key`, `token`, `password`, ...) is
replaced, unless it is the *name* of an environment variable (`api_key_env: OPENAI_API_KEY`); and
any text is scrubbed of strings shaped like the common API keys (OpenAI `sk-`, Groq `gsk_`,
Hugging Face `hf_`, GitHub `ghp_`, Slack `xox?-`, AWS `AKIA`, Anthropic `sk-ant-`, bearer tokens),
and of every value that `redact` has seen under a secret's key in this process (of 6 characters or
more: `token=correct-horse` has no key shape, but an error that repeats it is scrubbed all the same).
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"(api[_-]?key|apikey|token|secret|passw(or)?d|credential|auth)", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|gsk_[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{16,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{8,})")
#: Secret values `redact` replaced (longest first when scrubbing, so no part of one survives).
_SEEN: set[str] = set()
_MIN_SEEN = 6  # shorter values ("1", "yes") would blank out ordinary text
#: The keys whose values are remembered: not `tokenizer` or `max_new_tokens`, whose values (a path,
#: a number) are redacted from the card by the broader _SECRET_KEY but would blank out messages.
_SEEN_KEY = re.compile(r"(api[_-]?key|apikey|secret|passw(or)?d|credential|token$|^auth(orization)?$|_auth$)",
                       re.IGNORECASE)


def scrub(text: str) -> str:
    """`text` with every key-shaped substring, and every secret value seen by `redact`, replaced."""
    for value in sorted(_SEEN, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a JSON-like `value` (dicts, lists, strings) without secrets (see module doc)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, key) for v in value)
    if isinstance(value, str):
        if _SECRET_KEY.search(key) and value and not (key.lower().endswith("_env") and _ENV_NAME.fullmatch(value)):
            if len(value) >= _MIN_SEEN and _SEEN_KEY.search(key):
                _SEEN.add(value)
            return REDACTED
        return scrub(value)
    return value
