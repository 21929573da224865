"""Models behind an OpenAI-compatible HTTP API (OpenAI, vLLM, SGLang, LiteLLM, ...), stdlib only.

- `OpenAIChatModel` (`openai-compatible`): IDP and VLM-judge answers through `/chat/completions`
  with the images inlined as base64 PNG data URLs; FDP through `/images/edits` (multipart, `n`
  images per request, `b64_json` responses; `response_format` is not sent to gpt-image-* models,
  which refuse it). The answer budget goes as `max_tokens`, or `max_completion_tokens` to OpenAI
  (`max_tokens_field`); a 400 that asks for the other field or no `response_format` is resent once.
- `OpenAIScoringModel` (`openai-compatible-scoring`): adds `action_logprob` for servers that
  return prompt log-probabilities (vLLM's `prompt_logprobs` extension): the action is sent as the
  start of the assistant turn (`continue_final_message`) and the log-probabilities of its tokens
  are summed (or averaged). Plain OpenAI endpoints cannot score a given text, so the base class
  does not declare the capability.

The API key is read from the environment variable named by `api_key_env` (never a model arg) and
is never written anywhere: not in the fingerprint, not in errors (scrubbed from server replies).
Requests run on a thread pool (`concurrency`) with timeouts and retries with exponential backoff
on connection errors, 429 and 5xx; a 429/503 `Retry-After` header is honoured.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from ..core.errors import BadInput, SampleError
from ..core.secrets import REDACTED, scrub
from ..core.types import Batch
from . import _hf
from .base import Model

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIChatModel(Model):
    """An OpenAI-compatible endpoint: chat for IDP / judging, image edits for FDP."""

    description = "IDP/judge via /chat/completions, FDP via /images/edits on an OpenAI-compatible API"

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 64, temperature: float = 0.0, top_p: float | None = None, seed: int | None = None,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 concurrency: int = 4, image_detail: str | None = None, system_prompt: str | None = None,
                 edit_model: str | None = None, edit_size: str | None = None, instruction: str = "action",
                 logprob_reduction: str = "sum", max_tokens_field: str = "auto",
                 edit_response_format: str | None = "auto"):
        super().__init__()
        self.model, self.base_url = str(model), str(base_url).rstrip("/")
        if not str(api_key_env).isidentifier() or scrub(str(api_key_env)) != str(api_key_env):
            # guards against a key pasted where the variable's name belongs (gsk_... is an identifier too)
            raise BadInput("api_key_env must name an environment variable (e.g. OPENAI_API_KEY), not hold a key")
        self.api_key_env = str(api_key_env)
        self.max_tokens, self.temperature, self.top_p, self.seed = int(max_tokens), float(temperature), top_p, seed
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.concurrency = max(1, int(concurrency))
        self.image_detail, self.system_prompt = image_detail, system_prompt
        self.edit_model, self.edit_size = edit_model or self.model, edit_size
        self.instruction = _hf.check_choice("instruction", instruction, ("action", "prompt"))
        self.logprob_reduction = _hf.check_choice("logprob_reduction", logprob_reduction, ("sum", "mean"))
        # which body field carries max_tokens, and which response_format /images/edits gets ("auto":
        # `_token_field`, `_edit_format`); a 400 that names the other choice switches once (`_post_json`)
        self.max_tokens_field = _hf.check_choice("max_tokens_field", max_tokens_field,
                                                 ("auto", "max_tokens", "max_completion_tokens"))
        self.edit_response_format = edit_response_format

    # -- transport -----------------------------------------------------------------------------

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def _scrub(self, text: str) -> str:
        """`text` without this adapter's key, nor anything shaped like an API key (core.secrets)."""
        key = self._key()
        return scrub(text.replace(key, REDACTED) if key else text)

    def _request(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        """POST with retries; returns the decoded JSON reply or raises SampleError (key scrubbed)."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.base_url}/{path.lstrip('/')}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff, self.backoff * 2 ** attempt)
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"),
                                            timeout=self.timeout) as reply:
                    return json.loads(reply.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                # scrubbed before it is cut: a key across the cut would leak in part
                detail = self._scrub(exc.read().decode("utf-8", "replace"))[:500]
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in RETRY_STATUS:
                    break
                wait = _retry_after(exc.headers.get("Retry-After"), wait, self.max_backoff)
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.max_retries:
                time.sleep(wait)
        raise SampleError(self._scrub(f"{url} failed after {attempt + 1} attempt(s): {last}"))

    def _post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._request(path, json.dumps(payload).encode("utf-8"), "application/json")
        except SampleError as exc:
            # OpenAI's newer chat models refuse max_tokens with a 400 that names max_completion_tokens
            if not ("max_tokens" in payload and "HTTP 400" in str(exc) and "max_completion_tokens" in str(exc)):
                raise
        self._learned_token_field = "max_completion_tokens"
        payload = {("max_completion_tokens" if k == "max_tokens" else k): v for k, v in payload.items()}
        return self._request(path, json.dumps(payload).encode("utf-8"), "application/json")

    def _token_field(self) -> str:
        """`max_tokens` (vLLM, SGLang, LiteLLM, older servers) or `max_completion_tokens` (OpenAI,
        which deprecated `max_tokens`; its reasoning models reject it): "auto" picks the latter for
        api.openai.com, the former elsewhere, until a server's 400 asks for the other."""
        from urllib.parse import urlparse

        if self.max_tokens_field != "auto":
            return self.max_tokens_field
        learned = getattr(self, "_learned_token_field", None)
        official = (urlparse(self.base_url).hostname or "") == "api.openai.com"
        return learned or ("max_completion_tokens" if official else "max_tokens")

    def _parallel(self, fn: Callable[[int], Any], count: int) -> list[Any]:
        if count <= 1 or self.concurrency == 1:
            return [fn(i) for i in range(count)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, count)) as pool:
            return list(pool.map(fn, range(count)))

    # -- chat ----------------------------------------------------------------------------------

    def _messages(self, images: list[np.ndarray], prompt: str) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for image in images:
            url = {"url": "data:image/png;base64," + _png_b64(image)}
            if self.image_detail:
                url["detail"] = self.image_detail
            content.append({"type": "image_url", "image_url": url})
        content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _chat_payload(self, images: list[np.ndarray], prompt: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": self._messages(images, prompt),
                                   self._token_field(): self.max_tokens, "temperature": self.temperature}
        if self.top_p is not None:
            payload["top_p"] = float(self.top_p)
        if self.seed is not None:
            payload["seed"] = int(self.seed)
        return payload

    def answer(self, images: list[list[np.ndarray]], prompts: list[str]) -> list[str]:
        return [text for text, _ in self.answer_with_meta(images, prompts)]

    def answer_with_meta(self, images: list[list[np.ndarray]], prompts: list[str]) -> list[tuple[str, dict]]:
        """As `answer`, each with what the reply says about the model that wrote it: the API's
        `model` (the snapshot actually served) and `system_fingerprint` (None where absent). VLM
        judges record them (judge provenance: a result is comparable only under the same judge)."""
        def one(i: int) -> tuple[str, dict]:
            reply = self._post_json("chat/completions", self._chat_payload(images[i], prompts[i]))
            meta = {k: (reply.get(k) if isinstance(reply, dict) else None) for k in ("model", "system_fingerprint")}
            return self._answer_text(reply), meta
        return self._parallel(one, len(prompts))

    def preflight(self, network: bool = True, timeout: float = 5.0) -> None:
        """Before a long run that needs this endpoint: BadInput naming what is missing (the key's
        environment variable; with `network`, a server that does not answer within `timeout`
        seconds or refuses the key). The key is required unless the server is on this machine
        (localhost: e.g. vLLM without --api-key). `GET <base_url>/models`: any HTTP reply but 401 /
        403 counts as reachable (some servers have no /models). Never waits longer than `timeout`."""
        import ipaddress
        from urllib.parse import urlparse

        host = urlparse(self.base_url).hostname or ""
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        key = self._key()
        if key is None and not local:
            raise BadInput(f"the environment variable {self.api_key_env} is not set (the API key for {self.base_url}; "
                           f"export {self.api_key_env}=...)")
        if not network:
            return
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        request = urllib.request.Request(f"{self.base_url}/models", headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise BadInput(f"{self.base_url} refused the key in ${self.api_key_env} (HTTP {exc.code})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            why = self._scrub(str(getattr(exc, "reason", exc)))
            raise BadInput(f"the server at {self.base_url} is not reachable ({why}; waited at most {timeout:g} s)") from None

    def _answer_text(self, reply: Any) -> str:
        """The answer of a chat completion. A reply without text (`content: null`: a refusal, a
        content filter, a tool call, or max_tokens spent before any answer, e.g. on reasoning) is
        a SampleError saying why, not an empty answer scored as if the model had said nothing.
        `content` as a list of parts (some servers) is joined; an empty string is a real answer."""
        try:
            choice = reply["choices"][0]
            message = choice["message"]
            content = message["content"] if "content" in message else None
        except (KeyError, IndexError, TypeError) as exc:
            raise SampleError(f"chat/completions: unexpected reply shape ({exc!r})") from exc
        if isinstance(content, list):
            texts = [p.get("text") for p in content
                     if isinstance(p, dict) and p.get("type") in ("text", "output_text")]
            content = "".join(t for t in texts if isinstance(t, str)) if texts else None
        if isinstance(content, str):
            return content.strip()
        if content is not None:
            raise SampleError(f"chat/completions: message content is a {type(content).__name__}, not text")
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        why = []
        if message.get("refusal"):
            why.append(f"the model refused: {str(message['refusal'])[:200]!r}")
        if finish == "length":
            spent = " (spent on reasoning)" if message.get("reasoning_content") or message.get("reasoning") else ""
            why.append(f"max_tokens={self.max_tokens} ran out before any answer text{spent}; raise max_tokens")
        elif finish == "content_filter":
            why.append("the provider's content filter withheld the answer")
        if message.get("tool_calls") or message.get("function_call") or finish in ("tool_calls", "function_call"):
            why.append("the model called a tool instead of answering")
        detail = "; ".join(why) or "no reason given"
        raise SampleError(self._scrub(f"chat/completions: the reply has no answer text (content: null, "
                                      f"finish_reason: {finish!r}): {detail}"))

    def infer_action(self, batch: Batch) -> list[str]:
        if batch.targets is None:
            raise BadInput("IDP needs both frames: the batch carries no target frames")
        return self.answer([[s, t] for s, t in zip(batch.sources, batch.targets)], list(batch.prompts))

    # -- image edits ---------------------------------------------------------------------------

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        texts = batch.actions if self.instruction == "action" and batch.actions is not None else batch.prompts

        def one(i: int) -> list[np.ndarray]:
            fields = {"model": self.edit_model, "prompt": texts[i], "n": str(n)}
            if self._edit_format():
                fields["response_format"] = self._edit_format()
            if self.edit_size:
                fields["size"] = self.edit_size
            files = {"image": ("source.png", _png_bytes(batch.sources[i]), "image/png")}
            try:
                reply = self._request("images/edits", *_multipart(fields, files))
            except SampleError as exc:  # e.g. gpt-image-*: "Unknown parameter: 'response_format'"
                if "response_format" not in fields or "HTTP 400" not in str(exc) or "response_format" not in str(exc):
                    raise
                fields.pop("response_format")
                self._learned_edit_format = None  # this server wants none: later calls send none
                reply = self._request("images/edits", *_multipart(fields, files))
            data = reply.get("data") or []
            if len(data) != n:
                raise SampleError(f"images/edits returned {len(data)} image(s), expected {n}")
            if any("b64_json" not in item for item in data):
                raise SampleError("images/edits answered with image URLs, not b64_json (set edit_response_format=b64_json)")
            h, w = batch.sources[i].shape[:2]
            return [_decode_png(item["b64_json"], (w, h)) for item in data]
        return self._parallel(one, len(batch))

    def _edit_format(self) -> str | None:
        """The `response_format` sent to /images/edits: "auto" sends none to gpt-image-* models (they
        always answer b64_json and refuse the field with a 400) and b64_json to others (dall-e-2's
        default is a URL); None / "none" sends none; anything else is sent as given."""
        value = getattr(self, "_learned_edit_format", self.edit_response_format)
        if value == "auto":
            return None if str(self.edit_model).startswith("gpt-image") else "b64_json"
        return None if value in (None, "", "none") else str(value)

    def fingerprint(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "edit_model": self.edit_model,
                "temperature": self.temperature, "max_tokens": self.max_tokens}


class OpenAIScoringModel(OpenAIChatModel):
    """As `openai-compatible`, plus `action_logprob` through vLLM's `prompt_logprobs` extension."""

    description = "as openai-compatible, plus action_logprob via prompt_logprobs (vLLM-compatible servers)"

    def action_logprob(self, batch: Batch, actions: list[str]) -> list[float]:
        if batch.targets is None:
            raise BadInput("action_logprob needs both frames: the batch carries no target frames")

        def one(i: int) -> float:
            payload = self._chat_payload([batch.sources[i], batch.targets[i]], batch.prompts[i])
            payload["messages"].append({"role": "assistant", "content": actions[i]})
            payload.update(max_tokens=1, temperature=0.0, prompt_logprobs=0, echo=False,
                           add_generation_prompt=False, continue_final_message=True)
            reply = self._post_json("chat/completions", payload)
            return _suffix_logprob(reply.get("prompt_logprobs"), actions[i], self.logprob_reduction)
        return self._parallel(one, len(actions))


def _suffix_logprob(prompt_logprobs: Any, action: str, reduction: str) -> float:
    """Sum (or mean) of the log-probabilities of the trailing prompt tokens that spell `action`.

    vLLM returns, per prompt token, {token_id: {"logprob", "rank", "decoded_token"}} (None for the
    first token); the prompt ends with the action because the assistant turn is continued."""
    if not isinstance(prompt_logprobs, list) or not prompt_logprobs:
        raise SampleError("the server returned no prompt_logprobs: it cannot score actions (use a vLLM-compatible server)")
    target, text, values = action.strip(), "", []
    for entry in reversed(prompt_logprobs):
        if not entry:
            break
        # with prompt_logprobs=0 each entry holds just the prompt token itself
        info = next(iter(entry.values()))
        text = str(info.get("decoded_token", "")) + text
        values.append(float(info["logprob"]))
        if text.strip() == target:
            total = math.fsum(values)
            return total / len(values) if reduction == "mean" else total
        if len(text.strip()) > len(target):
            break
    raise SampleError("prompt_logprobs: could not align the action's tokens at the end of the prompt")


def _retry_after(header: str | None, default: float, cap: float) -> float:
    try:
        return min(cap, max(0.0, float(header))) if header else default
    except ValueError:  # an HTTP date: fall back to our own backoff
        return default


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _hf.to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_b64(image: np.ndarray) -> str:
    return base64.b64encode(_png_bytes(image)).decode("ascii")


def _decode_png(b64: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    except Exception as exc:
        raise SampleError(f"images/edits: undecodable image in reply ({type(exc).__name__})") from exc
    if image.size != size:
        image = image.resize(size, Image.BICUBIC)
    return np.asarray(image)


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode()
        parts.append(head + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
