"""The paper's protocol, runnable and priced (issue 16): the judged Aurora suites, `--judge`, the dry
run and its counts, the counterfactual switch, judge provenance, re-judging a finished run and
`wmbench judge-drift`.

Judges here are fake OpenAI-compatible servers on 127.0.0.1 (a thread in the test) that score a
prediction identical to the source 0 and anything else by a rule of the instruction, so copy scores
0, and a second judge that disagrees in a known way (every score 2 lower). The end-to-end test
reads the real Aurora-Bench sample (ag + kubric) in place from ../shared and is skipped without it.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import wmbench
from paper_models import Counts
from wmbench.cli import main
from wmbench.core.errors import BadInput, SpecError
from wmbench.core.tasks import resolve_tasks
from wmbench.models import ModelCard, Pricing, load_card
from wmbench.models.api import OpenAIChatModel
from wmbench.run.overrides import with_counterfactual, with_judge

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "aurora-bench-sample"
needs_sample = pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="../shared/data/aurora-bench-sample is absent")
KEY_ENV = "WMBENCH_FAKE_JUDGE_KEY"


# a fake OpenAI-compatible judge ---------------------------------------------------------------
def rule(instruction: str) -> int:
    """Judge A's editing-success score of a prediction that changed something."""
    return 3 + len(instruction) % 6


class FakeJudge:
    """`GET /v1/models` and `POST /v1/chat/completions` on 127.0.0.1; `shift` is added to every
    score of a changed prediction (clamped to 0-10); replies name `served` and `fingerprint`."""

    def __init__(self, shift: int = 0, served: str = "fake-vlm-2024-01", fingerprint: str = "fp_a", key: str | None = None):
        self.calls = 0
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self):
                return key is None or self.headers.get("Authorization") == f"Bearer {key}"

            def do_GET(self):
                if not self._authorized():
                    return self._send(401, {"error": {"message": "bad key"}})
                self._send(200, {"object": "list", "data": [{"id": served}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self._authorized():
                    return self._send(401, {"error": {"message": "bad key"}})
                with judge.lock:
                    judge.calls += 1
                content = body["messages"][-1]["content"]
                images = [base64.b64decode(c["image_url"]["url"].split(",", 1)[1]) for c in content
                          if c["type"] == "image_url"]
                text = next(c["text"] for c in content if c["type"] == "text")
                instruction = re.search(r'instruction: "(.*)"', text).group(1)
                success = 0 if images[0] == images[1] else min(10, max(0, rule(instruction) + shift))
                reply = json.dumps({"editing_success": success, "minimal_editing": 9, "reason": "fake"})
                self._send(200, {"model": served, "system_fingerprint": fingerprint,
                                 "choices": [{"message": {"role": "assistant", "content": reply},
                                              "finish_reason": "stop"}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def card(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.yaml"
        path.write_text(f"name: {name}\nadapter: openai-compatible\n"
                        f"args: {{model: fake-vlm, base_url: '{self.url}', api_key_env: {KEY_ENV}, max_tokens: 100, "
                        f"max_retries: 0, concurrency: 2}}\n"
                        "pricing: {per_1k_input_tokens: 0.0025, per_1k_output_tokens: 0.01, image_tokens: 255, "
                        "output_tokens: 60, source: test, as_of: today}\n")
        return path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judges(tmp_path, monkeypatch):
    """Two fake judges, A and B (every changed prediction scored 2 lower), and their cards."""
    monkeypatch.setenv(KEY_ENV, "local-test-key")
    a, b = FakeJudge(), FakeJudge(shift=-2, served="fake-vlm-2024-06", fingerprint="fp_b")
    cards = tmp_path / "cards"
    cards.mkdir()
    yield a, b, a.card(cards, "judge-a"), b.card(cards, "judge-b")
    a.close()
    b.close()


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


JUDGED_TASK = """\
name: pairs_judged
kind: fdp
dataset: {format: jsonl, subfolder: pairs}
frames: {mode: first_last}
metrics:
  - l1
  - counterfactual_sensitivity
  - {name: vlm_judge, args: {model: "paper_models:CountingJudge", retries: 1}, label: judge}
"""


# the dry run counts what the run does ---------------------------------------------------------
def _count_loads(monkeypatch) -> dict:
    from wmbench.core.types import LazyImage

    seen = {"frames": 0}
    real = LazyImage.load

    def load(self):
        seen["frames"] += 1
        return real(self)

    monkeypatch.setattr(LazyImage, "load", load)
    return seen


@pytest.mark.parametrize("model", ["paper_models:CountingModel", "verified"])
def test_dry_run_counts_equal_a_real_run(workspace, monkeypatch, model):
    (workspace / "tasks" / "pairs_judged.yaml").write_text(JUDGED_TASK)
    args = {"sampler": "paper_models:CountingModel", "verifier": "paper_models:CountingVerifier", "n": 3} \
        if model == "verified" else None
    out = workspace / "run"
    common = dict(output=out, progress=False, batch_size=5, limit=10)
    Counts.reset()
    plan = wmbench.evaluate("pairs_judged", model, args, dry_run=True, **common)
    assert Counts.predictions == Counts.verifier == Counts.judge == 0 and not out.exists()  # nothing ran or was written
    (task,) = plan.tasks
    candidates = 3 if model == "verified" else 1
    assert (task.samples, task.evaluate, task.counterfactual, task.candidates) == (10, 10, 10, candidates)
    loads = _count_loads(monkeypatch)
    result = wmbench.evaluate("pairs_judged", model, args, **common)
    assert result.counts["pairs_judged"]["scored"] == 10
    assert task.model_calls == Counts.predictions == 10 * 2 * candidates  # counterfactual: x2
    assert task.verifier_calls == Counts.verifier == (10 * 2 * 3 if model == "verified" else 0)
    assert task.judge_calls == Counts.judge == 10 and task.judge_calls_max == 20  # retries: 1
    assert task.frames == loads["frames"] == 20  # source + target per sample

    # resumed: nothing to do, and the plan says so
    Counts.reset()
    again = wmbench.evaluate("pairs_judged", model, args, dry_run=True, **common)
    assert (again.tasks[0].stored, again.tasks[0].model_calls, again.tasks[0].judge_calls) == (10, 0, 0)
    # without counterfactual predictions into a new run: half the model calls
    half = wmbench.evaluate("pairs_judged", model, args, dry_run=True, with_counterfactual=False,
                            **{**common, "output": workspace / "other"})
    assert half.tasks[0].model_calls == 10 * candidates and half.tasks[0].counterfactual == 0


def test_rescore_with_another_judge_calls_no_generator(workspace, judges):
    a, b, card_a, card_b = judges
    (workspace / "tasks" / "pairs_judged.yaml").write_text(JUDGED_TASK)
    out = workspace / "run"
    Counts.reset()
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "paper_models:CountingModel",
                 "--judge", str(card_a), "--limit", "6", "--output", str(out)]) == 0
    first = _results(out)["tasks"]["pairs_judged"]["metrics"]
    assert "judge@judge-a" in first and "judge" not in first and a.calls == 6
    generated = Counts.predictions
    # the same run directory, another judge: stale scores recomputed from the stored predictions
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "paper_models:CountingModel",
                 "--judge", str(card_b), "--limit", "6", "--output", str(out), "--rescore"]) == 0
    assert Counts.predictions == generated and b.calls == 6  # no generator call, every sample judged again
    second = _results(out)["tasks"]["pairs_judged"]["metrics"]
    assert "judge@judge-b" in second and "judge@judge-a" not in second
    assert second["judge@judge-b"]["mean"] == pytest.approx(first["judge@judge-a"]["mean"] - 2)
    assert second["judge@judge-b"]["options"]["model"] == str(card_b)


# provenance and drift ---------------------------------------------------------------------------
def test_provenance_and_judge_drift_report_a_known_disagreement(workspace, judges, capsys):
    a, b, card_a, card_b = judges
    (workspace / "tasks" / "pairs_judged.yaml").write_text(JUDGED_TASK)
    run_a, run_b = workspace / "a", workspace / "b"
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "paper_models:CountingModel",
                 "--judge", str(card_a), "--output", str(run_a)]) == 0
    entry = _results(run_a)["tasks"]["pairs_judged"]["metrics"]["judge@judge-a"]
    provenance = entry["judge"]
    assert provenance["model"] == str(card_a) and provenance["card"] == "judge-a"
    assert provenance["api_model"] == "fake-vlm" and provenance["temperature"] == 0.0
    assert provenance["retries"] == 1 and re.fullmatch(r"[0-9a-f]{64}", provenance["prompt_sha256"])
    details = _samples(run_a)[0]["details"]["judge@judge-a"]
    assert details["api"] == [{"model": "fake-vlm-2024-01", "system_fingerprint": "fp_a"}]

    shutil.copytree(run_a, run_b)  # re-judge a copy: the predictions stay, the judge changes
    Counts.reset()
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "paper_models:CountingModel",
                 "--judge", str(card_b), "--output", str(run_b), "--rescore"]) == 0
    assert Counts.predictions == 0
    capsys.readouterr()
    assert main(["judge-drift", str(run_a), str(run_b), "--format", "json", "--top", "3"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["tasks"]
    assert (row["metric_a"], row["metric_b"], row["n"], row["n_other_prediction"]) == ("judge@judge-a", "judge@judge-b", 12, 0)
    assert row["shift"] == pytest.approx(-2.0) and row["ci"] == pytest.approx([-2.0, -2.0])
    assert row["spearman"] == pytest.approx(1.0) and row["kendall"] == pytest.approx(1.0)
    assert [m["diff"] for m in row["moved"]] == [-2.0] * 3
    assert row["api_a"] == ["fake-vlm-2024-01 / fp_a (12 replies)"]
    assert row["api_b"] == ["fake-vlm-2024-06 / fp_b (12 replies)"]
    assert main(["judge-drift", str(run_a), str(run_b)]) == 0
    text = capsys.readouterr().out
    assert "shift B - A -2.000" in text and "Spearman 1.000" in text and "moved most" in text
    # another model's run has other predictions: nothing to pair
    other = workspace / "copy"
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "copy", "--judge", str(card_a),
                 "--output", str(other)]) == 0
    capsys.readouterr()
    assert main(["judge-drift", str(run_a), str(other)]) == 2
    assert "same stored prediction" in capsys.readouterr().err


# bad input ---------------------------------------------------------------------------------------
def test_a_judge_that_is_not_ready_stops_the_run_before_generation(workspace, tmp_path, monkeypatch, capsys):
    (workspace / "tasks" / "pairs_judged.yaml").write_text(JUDGED_TASK)
    remote = tmp_path / "remote.yaml"
    remote.write_text("name: remote\nadapter: openai-compatible\n"
                      "args: {model: m, base_url: 'https://judge.invalid/v1', api_key_env: WMBENCH_NO_SUCH_KEY}\n")
    closed = FakeJudge()
    closed.close()  # a local server that is gone: the port refuses connections
    gone = closed.card(tmp_path, "gone")
    for card, message in ((remote, "WMBENCH_NO_SUCH_KEY is not set"), (gone, "is not reachable")):
        out = tmp_path / card.stem
        capsys.readouterr()
        code = main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "helper_models:ExplodingModel",
                     "--judge", str(card), "--output", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Nothing was generated" in err, err
        assert not out.exists()  # refused before the run directory was made
    # the dry run says so, and exits 0
    assert main(["run", "--no-progress", "--tasks", "pairs_judged", "--model", "copy", "--judge", str(remote),
                 "--dry-run"]) == 0
    assert "WMBENCH_NO_SUCH_KEY is not set" in capsys.readouterr().out
    # a key the server refuses
    picky = FakeJudge(key="right")
    monkeypatch.setenv(KEY_ENV, "wrong")
    try:
        with pytest.raises(BadInput, match="refused the key"):
            OpenAIChatModel(model="m", base_url=picky.url, api_key_env=KEY_ENV).preflight(timeout=2)
    finally:
        picky.close()


def test_dry_run_of_missing_data_exits_2_as_the_run(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    messages = []
    for extra in ([], ["--dry-run"]):
        assert main(["run", "--no-progress", "--tasks", "aurora_ag_fdp_judged", "--model", "copy", "--data-dir",
                     str(empty), "--output", str(tmp_path / "out"), *extra]) == 2
        messages.append(capsys.readouterr().err)
    assert messages[0] == messages[1] and "aurora-bench does not exist" in messages[0]


def test_judge_override_refuses_what_cannot_judge(workspace):
    specs = resolve_tasks(["pairs_fdp"])
    with pytest.raises(BadInput, match="has a judged metric"):
        with_judge(specs, "paper_models:CountingJudge")
    with pytest.raises(BadInput, match="cannot judge"):
        with_judge(resolve_tasks(["aurora_ag_fdp_judged"]), "copy")
    with pytest.raises(BadInput, match="unknown model"):
        with_judge(resolve_tasks(["aurora_ag_fdp_judged"]), "no-such-judge")


# specs, switch, pricing --------------------------------------------------------------------------
SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")


def test_paper_suites_keep_the_sample_fingerprints():
    table2 = {s.name: s for s in resolve_tasks(["paper-table2"])}
    assert set(table2) == {f"aurora_{s}_fdp_judged" for s in SUBSETS}
    plain = {s.name: s for s in resolve_tasks([f"aurora_{s}_fdp" for s in SUBSETS])}
    for subset in SUBSETS:
        judged, base = table2[f"aurora_{subset}_fdp_judged"], plain[f"aurora_{subset}_fdp"]
        assert judged.dataset == base.dataset and judged.frames == base.frames and judged.prompt == base.prompt
        (ref,) = [r for r in judged.metric_refs if r.name == "vlm_judge"]
        assert ref.args["model"] == "gpt-4o-2024-11-20" and ref.key == "vlm_judge@gpt-4o-2024-11-20"
        assert "counterfactual_sensitivity" not in [r.name for r in base.metric_refs]  # opt in only
    assert {s.name for s in resolve_tasks(["paper-table1"])} == {f"aurora_{s}_idp" for s in SUBSETS}


def test_counterfactual_switch_changes_metrics_not_samples():
    (aurora,) = resolve_tasks(["aurora_ag_fdp"])
    (on,) = with_counterfactual([aurora], True)
    assert on.metric_refs[-1].name == "counterfactual_sensitivity" and on.sample_fingerprint == aurora.sample_fingerprint
    (metaworld,) = resolve_tasks(["metaworld_fdp"])
    (off,) = with_counterfactual([metaworld], False)
    assert "counterfactual_sensitivity" not in [r.name for r in off.metric_refs]
    assert with_counterfactual([metaworld], None) == [metaworld]
    (again,) = with_judge(with_judge([aurora], None), None)
    assert again is aurora


def test_judge_override_is_idempotent_and_labels_the_column():
    (task,) = resolve_tasks(["aurora_ag_fdp_judged"])
    (once,) = with_judge([task], "qwen2.5-vl-7b", {"temperature": 0.5})
    (twice,) = with_judge([once], "qwen2.5-vl-7b", {"temperature": 0.5})
    assert once == twice
    ref = once.metric_refs[0]
    assert ref.key.startswith("vlm_judge@qwen2.5-vl-7b+") and ref.args["model_args"] == {"temperature": 0.5}
    (same,) = with_judge([task], "gpt-4o-2024-11-20")
    assert same.metric_refs[0].key == "vlm_judge@gpt-4o-2024-11-20"


def test_pricing_card_field(tmp_path):
    card = load_card(REPO / "baselines" / "gpt-4o-2024-11-20.yaml")
    assert card.pricing.per_1k_input_tokens == 0.0025 and card.pricing.image_tokens == 255
    assert "pricing" not in card.public_identity()["card"]  # prices are not the model's identity
    copy = ModelCard(**card.to_dict())
    assert copy.pricing == card.pricing and copy.fingerprint == card.fingerprint
    # one judge call: 2 images x 255 tokens + a 400-character prompt (100 tokens), 60 output tokens
    assert card.pricing.call_cost(2, 400, 60) == pytest.approx(610 / 1000 * 0.0025 + 60 / 1000 * 0.01)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nadapter: copy\npricing: {per_call: -1}\n")
    with pytest.raises(SpecError, match="pricing.per_call"):
        load_card(bad)
    assert Pricing().call_cost(3, 1000, 10) == 0.0


# the paper's table on the real Aurora-Bench sample --------------------------------------------
@needs_sample
def test_paper_table2_end_to_end_with_a_fake_judge(tmp_path, judges, capsys):
    a, _, card_a, _ = judges
    data = tmp_path / "data"
    data.mkdir()
    (data / "aurora-bench").symlink_to(SHARED_SAMPLE)  # read in place, never copied
    runs = tmp_path / "runs"
    base = ["run", "--no-progress", "--model", "copy,oracle", "--judge", str(card_a), "--limit", "8",
            "--data-dir", str(data), "--output", str(runs)]
    # the whole suite: three subsets are not in the sample, so it stops before anything runs and says what can
    assert main([*base, "--tasks", "paper-table2"]) == 2
    err = capsys.readouterr().err
    assert "--tasks aurora_ag_fdp_judged,aurora_kubric_fdp_judged" in err and not runs.exists()
    tasks = ["--tasks", "aurora_ag_fdp_judged,aurora_kubric_fdp_judged"]
    assert main([*base, *tasks, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert dry.count("| aurora_ag_fdp_judged | 8 | 0 | 8 | 0 | 0 | 8 | x1 | +0 | 8 (≤24) | 0 | 16 |") == 2
    assert "judges: " + str(card_a) in dry and "est. cost $" in dry and a.calls == 0
    assert main([*base, *tasks]) == 0
    printed = capsys.readouterr()
    assert a.calls == 2 * 2 * 8  # the dry run's judge calls: 2 models x 2 tasks x 8 samples
    assert "plan: copy" in printed.err and "32 judge calls" not in printed.err  # one line per model: 16 each
    assert "vlm_judge@judge-a" in printed.out
    assert main(["leaderboard", str(runs), "--group", "suite:paper-table2"]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["model", "vlm_judge@judge-a ↑ · ag", "vlm_judge@judge-a ↑ · kubric",
                          "vlm_judge@judge-a ↑ · Avg"]
    rows = {r.strip("|").split("|")[0].strip().strip("*"): [c.strip() for c in r.strip("|").split("|")]
            for r in lines[2:]}
    assert list(rows)[:2] == ["oracle", "copy"]  # the anchors, in the paper's layout
    assert all(cell.startswith("0.000") for cell in rows["copy"][1:4])  # copy: the judge's floor
    assert all(float(cell.split()[0]) > 2 for cell in rows["oracle"][1:4])
