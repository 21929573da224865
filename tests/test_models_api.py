"""OpenAI-compatible adapter against a local HTTP server (127.0.0.1, in a thread) that speaks the
chat-completions, image-edits and vLLM prompt_logprobs protocol, including 429 and 500 replies."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from wmbench.core.errors import SampleError, BadInput
from wmbench.models.api import OpenAIChatModel, OpenAIScoringModel
from wmbench.core.types import Batch

KEY = "sk-test-secret-0123456789"


class Server:
    """Scripted replies: `plan` maps a path to a list of (status, headers) failures served first;
    `replies` maps a path to a list of 200 payloads served next (then the normal replies)."""

    def __init__(self):
        self.requests: list[tuple[str, dict, bytes]] = []
        self.plan: dict[str, list[tuple[int, dict]]] = {}
        self.replies: dict[str, list[dict]] = {}
        self.active = self.peak = 0
        self.error_prefix = ""  # text before the key in error bodies
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path.removeprefix("/v1/")
                with server.lock:
                    server.requests.append((path, dict(self.headers), body))
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                    failure = server.plan.get(path, []).pop(0) if server.plan.get(path) else None
                    queued = server.replies.get(path) if not failure else None
                    scripted = queued.pop(0) if queued else None
                time.sleep(0.02)
                try:
                    if failure:
                        status, headers = failure
                        return self._reply(status, {"error": {"message": f"{server.error_prefix}bad key {KEY}"}},
                                           headers)
                    self._reply(200, scripted if scripted is not None else server.respond(path, self.headers, body))
                finally:
                    with server.lock:
                        server.active -= 1

            def _reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, path, headers, body):
        if path == "chat/completions":
            payload = json.loads(body)
            if "prompt_logprobs" in payload:
                action = payload["messages"][-1]["content"]
                words = action.split(" ")
                pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
                entries = [None, {"7": {"logprob": -0.5, "rank": 1, "decoded_token": "ASSISTANT:"}}]
                entries += [{str(i): {"logprob": -1.0 - i, "rank": 1, "decoded_token": p}} for i, p in enumerate(pieces)]
                return {"choices": [{"message": {"content": ""}}], "prompt_logprobs": entries}
            images = [c for c in payload["messages"][-1]["content"] if c["type"] == "image_url"]
            text = [c for c in payload["messages"][-1]["content"] if c["type"] == "text"][0]["text"]
            return {"choices": [{"message": {"content": f" {len(images)} images: {text} "}}]}
        if path == "images/edits":
            ctype = headers["Content-Type"]
            message = BytesParser(policy=email_policy).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
            parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
            image = np.asarray(Image.open(io.BytesIO(parts["image"].get_payload(decode=True))).convert("RGB"))
            n = int(parts["n"].get_content())
            data = []
            for j in range(n):
                buffer = io.BytesIO()
                Image.fromarray((255 - image) // (j + 1)).save(buffer, format="PNG")
                data.append({"b64_json": base64.b64encode(buffer.getvalue()).decode()})
            return {"data": data}
        raise AssertionError(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("WMBENCH_TEST_KEY", KEY)
    srv = Server()
    yield srv
    srv.close()


def make_batch(b: int = 3) -> Batch:
    rng = np.random.default_rng(3)
    sources = [rng.integers(0, 255, (12, 16, 3), dtype=np.uint8) for _ in range(b)]
    targets = [rng.integers(0, 255, (12, 16, 3), dtype=np.uint8) for _ in range(b)]
    return Batch(sample_ids=[f"s{i}" for i in range(b)], sources=sources, targets=targets,
                 prompts=[f"prompt {i}" for i in range(b)], actions=[f"push the cup {i}" for i in range(b)])


def model(server, cls=OpenAIChatModel, **kwargs):
    return cls(model="test-vlm", base_url=server.url, api_key_env="WMBENCH_TEST_KEY", backoff=0.01, **kwargs)


def test_idp_chat_sends_two_images_and_the_key(server):
    out = model(server, concurrency=2).infer_action(make_batch())
    assert out == [f"2 images: prompt {i}" for i in range(3)]  # order kept, whitespace stripped
    path, headers, body = server.requests[0]
    payload = json.loads(body)
    assert headers["Authorization"] == f"Bearer {KEY}"
    urls = [c["image_url"]["url"] for c in payload["messages"][0]["content"] if c["type"] == "image_url"]
    decoded = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    assert len(urls) == 2 and decoded.size == (16, 12)
    assert payload["model"] == "test-vlm" and payload["temperature"] == 0.0


def test_concurrency_limit(server):
    model(server, concurrency=2).answer([[np.zeros((4, 4, 3), np.uint8)]] * 8, ["q"] * 8)
    assert server.peak <= 2 and len(server.requests) == 8


def test_retries_429_with_retry_after_then_500(server):
    server.plan["chat/completions"] = [(429, {"Retry-After": "0.2"}), (500, {})]
    start = time.monotonic()
    out = model(server, concurrency=1).answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"])
    assert out == ["1 images: q"] and len(server.requests) == 3
    assert time.monotonic() - start >= 0.2  # honoured Retry-After


def test_a_key_across_the_cut_of_a_long_error_body_does_not_leak(server):
    """The reply body is cut at 500 characters for the message; the key is scrubbed before the cut,
    so a key that straddles it cannot leak in part."""
    server.error_prefix = "x" * (490 - len('{"error": {"message": "bad key '))
    server.plan["chat/completions"] = [(400, {})]
    with pytest.raises(SampleError) as info:
        model(server, max_retries=0).answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"])
    assert KEY[:10] not in str(info.value)


def test_gives_up_without_leaking_the_key(server):
    server.plan["chat/completions"] = [(500, {})] * 3
    with pytest.raises(SampleError) as info:
        model(server, max_retries=2).answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"])
    assert "HTTP 500" in str(info.value) and "3 attempt" in str(info.value)
    assert KEY not in str(info.value) and "<redacted>" in str(info.value)


def test_client_errors_are_not_retried(server):
    server.plan["chat/completions"] = [(400, {})]
    with pytest.raises(SampleError, match="HTTP 400"):
        model(server).answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"])
    assert len(server.requests) == 1


def test_image_edits_return_n_images_at_source_size(server):
    batch = make_batch(2)
    out = model(server, edit_model="edit-1").predict_next(batch, n=2)
    assert [len(x) for x in out] == [2, 2]
    assert np.array_equal(out[0][0], 255 - batch.sources[0])  # PNG round trip is lossless
    assert np.array_equal(out[1][1], (255 - batch.sources[1]) // 2)
    assert all(r[0] == "images/edits" for r in server.requests)


def test_scoring_sums_the_action_tokens(server):
    batch = make_batch(2)
    scorer = model(server, cls=OpenAIScoringModel)
    sums = scorer.action_logprob(batch, ["push the cup", "open"])
    assert sums == [pytest.approx(-1.0 - 2.0 - 3.0), pytest.approx(-1.0)]
    means = model(server, cls=OpenAIScoringModel, logprob_reduction="mean").action_logprob(batch, ["push the cup", "open"])
    assert means == [pytest.approx(-2.0), pytest.approx(-1.0)]
    payload = json.loads(server.requests[0][2])
    assert payload["continue_final_message"] is True and payload["messages"][-1]["role"] == "assistant"


def test_capabilities_and_key_hygiene(server):
    assert "action_logprob" not in OpenAIChatModel.capabilities()
    assert OpenAIScoringModel.capabilities() == ("predict_next", "infer_action", "action_logprob", "answer")
    assert KEY not in json.dumps(model(server).fingerprint())
    with pytest.raises(BadInput, match="environment variable"):
        OpenAIChatModel(model="m", api_key_env="sk-abc-123")


def null_content(finish_reason="stop", **message):
    return {"choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": None, **message}}]}


@pytest.mark.parametrize("reply, words", [
    (null_content(), r"no answer text \(content: null, finish_reason: 'stop'\): no reason given"),
    (null_content("length", reasoning_content="Let me think..."),
     r"finish_reason: 'length'\): max_tokens=64 ran out before any answer text \(spent on reasoning\); "
     r"raise max_tokens"),
    (null_content(refusal="I can't help with that."), r"the model refused: \"I can't help with that.\""),
    (null_content("content_filter"), "content filter"),
    (null_content("tool_calls", tool_calls=[{"id": "1", "type": "function"}]), "called a tool"),
    ({"choices": [{"finish_reason": "stop", "message": {"role": "assistant"}}]}, "no answer text"),
])
def test_null_content_is_a_sample_failure_not_an_empty_answer(server, reply, words):
    server.replies["chat/completions"] = [reply]
    with pytest.raises(SampleError, match=words):
        model(server).infer_action(make_batch(1))


def test_content_parts_and_empty_strings_are_answers(server):
    text = [{"type": "text", "text": " open "}, {"type": "text", "text": "it"}]
    parts = {"choices": [{"message": {"content": text}}]}
    server.replies["chat/completions"] = [parts, {"choices": [{"message": {"content": ""}}]}]
    m = model(server, concurrency=1)
    assert m.answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"]) == ["open it"]
    assert m.answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"]) == [""]  # the model said nothing: a real answer
    server.replies["chat/completions"] = [{"choices": [{"message": {"content": 42}}]}]
    with pytest.raises(SampleError, match="content is a int, not text"):
        m.answer([[np.zeros((4, 4, 3), np.uint8)]], ["q"])


def test_sixteen_requests_in_flight_with_bounded_retries(server):
    """A served model (vLLM, SGLang, TGI) is driven at concurrency 16: that many requests overlap,
    and a burst of 429s is retried with backoff, a bounded number of times per request."""
    server.plan["chat/completions"] = [(429, {})] * 6 + [(503, {})] * 2
    images = [[np.zeros((4, 4, 3), np.uint8)]] * 48
    out = model(server, concurrency=16, max_retries=3).answer(images, [f"q{i}" for i in range(48)])
    assert out == [f"1 images: q{i}" for i in range(48)]  # every answer, in order
    assert 8 <= server.peak <= 16  # requests overlap, never more than the limit
    assert len(server.requests) == 48 + 8  # each failure retried once more, nothing else repeated
    with pytest.raises(SampleError, match="4 attempt"):  # a request that keeps failing gives up
        server.plan["chat/completions"] = [(503, {})] * 4
        model(server, concurrency=1, max_retries=3).answer(images[:1], ["q"])


# -- issue 11, point 6: gpt-image edits and max_completion_tokens ------------------------------------

def multipart_fields(body: bytes, ctype: str) -> dict[str, str]:
    message = BytesParser(policy=email_policy).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    return {p.get_param("name", header="content-disposition"): p.get_content() for p in message.iter_parts()
            if p.get_param("name", header="content-disposition") != "image"}


def test_gpt_image_edits_send_no_response_format(server):
    """gpt-image-* models answer 400 to `response_format` (they always return b64_json); dall-e-2
    defaults to URLs, so it is asked for b64_json."""
    batch = make_batch(1)
    out = model(server, edit_model="gpt-image-1").predict_next(batch)
    assert np.array_equal(out[0][0], 255 - batch.sources[0])
    model(server, edit_model="dall-e-2").predict_next(batch)
    sent = [multipart_fields(body, headers["Content-Type"]) for _, headers, body in server.requests]
    assert "response_format" not in sent[0] and sent[0]["model"] == "gpt-image-1"
    assert sent[1]["response_format"] == "b64_json"


def test_a_400_naming_response_format_is_resent_without_it(server):
    server.error_prefix = "Unknown parameter: 'response_format'. "
    server.plan["images/edits"] = [(400, {})]
    m = model(server, edit_model="some-edit-model", max_retries=0)
    batch = make_batch(1)
    assert np.array_equal(m.predict_next(batch)[0][0], 255 - batch.sources[0])
    m.predict_next(batch)  # remembered: no second 400
    sent = [multipart_fields(body, headers["Content-Type"]) for _, headers, body in server.requests]
    assert [("response_format" in s) for s in sent] == [True, False, False]


def test_max_completion_tokens_for_openai_and_when_a_server_asks_for_it(server):
    official = OpenAIChatModel(model="o3", base_url="https://api.openai.com/v1", api_key_env="WMBENCH_TEST_KEY")
    payload = official._chat_payload([np.zeros((4, 4, 3), np.uint8)], "q")
    assert payload["max_completion_tokens"] == 64 and "max_tokens" not in payload
    server.error_prefix = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                           "Use 'max_completion_tokens' instead. ")
    server.plan["chat/completions"] = [(400, {})]
    m = model(server, max_retries=0, max_tokens=32, concurrency=1)
    assert m.answer([[np.zeros((4, 4, 3), np.uint8)]] * 2, ["q", "r"]) == ["1 images: q", "1 images: r"]
    bodies = [json.loads(body) for _, _, body in server.requests]
    assert "max_tokens" in bodies[0] and all(b.get("max_completion_tokens") == 32 and "max_tokens" not in b
                                             for b in bodies[1:])
    assert model(server, max_tokens_field="max_tokens")._chat_payload([], "q")["max_tokens"] == 64
