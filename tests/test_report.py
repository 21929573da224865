"""`wmbench report` on real runs: a self-contained page, checked in headless Chromium (images
render, sorting reorders, filtering hides, a screenshot is taken)."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from wmbench.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def runs(workspace):
    out = workspace / "runs"
    assert main(["run", "--no-progress", "--tasks", "pairs_fdp", "--model", "copy,blur,oracle", "--output", str(out)]) == 0
    assert main(["run", "--no-progress", "--tasks", "pairs_idp", "--model", "majority,oracle", "--output", str(out)]) == 0
    return out


def report(runs: Path, *extra: str) -> str:
    path = runs.parent / "report.html"
    assert main(["report", str(runs / "copy"), str(runs / "blur"), str(runs / "oracle"), str(runs / "majority"),
                 "--output", str(path), *extra]) == 0
    return path.read_text()


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr data-task="([^"]+)" data-order="\d+" data-id="([^"]+)"', page)


def test_page_is_self_contained_and_shows_every_part(runs):
    page = report(runs)
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(href|src)="(https?:|//|file:)', page) and "<link" not in page
    assert len(rows_of(page)) == 24  # 12 FDP + 12 IDP samples
    for caption in ("source", "target", "copy: prediction", "|target − source|", "blur: |prediction − source|"):
        assert f"<figcaption>{html.escape(caption)}</figcaption>" in page
    assert "move the square right" in page  # the action text
    majority = [json.loads(line) for line in (runs / "majority" / "samples.jsonl").read_text().splitlines()]
    answer = majority[0]["prediction"]["text"]
    right = sum(s["scores"]["exact_match"] == 1.0 for s in majority)
    oracle = [json.loads(line) for line in (runs / "oracle" / "samples.jsonl").read_text().splitlines()]
    oracle_says = sum((s.get("prediction") or {}).get("text") == answer for s in oracle)  # always right
    assert page.count(f'<div class="text bad">{html.escape(answer)}</div>') == 12 - right > 0
    assert page.count(f'<div class="text ok">{html.escape(answer)}</div>') == right + oracle_says
    assert page.count('<img src="data:image/png') == 2  # the bar and scatter figures
    assert "not in this run" in page  # copy has no IDP sample


def test_sample_cap_spreads_over_tasks(runs):
    rows = rows_of(report(runs, "--max-samples", "7"))
    assert len(rows) == 7 and {t for t, _ in rows} == {"pairs_fdp", "pairs_idp"}
    assert rows_of(report(runs, "--max-samples", "7")) == rows  # a stable choice


def test_missing_dataset_still_gives_a_page(runs, tmp_path, capsys):
    page = report(runs, "--data-dir", str(tmp_path / "elsewhere"))
    assert "source/target frames not shown" in page and "prediction" in page
    assert "does not exist" in capsys.readouterr().err


class Chromium:
    """Headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe): the
    browser reads commands on fd 3 and writes replies on fd 4, NUL-terminated JSON."""

    def __init__(self, profile: Path):
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def wire():  # dup first so that moving one end onto fd 3/4 cannot close the other
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, pass_fds=(3, 4))  # noqa: PLW1509 - the fds must be exactly 3 and 4
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method: str, params: dict | None = None, browser: bool = False, timeout: float = 30) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if time.monotonic() > deadline:
                    raise TimeoutError(method)
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode()[-2000:]}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, browser=True)["sessionId"]
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + 30
        while self.eval("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(f"loading {url}")
            time.sleep(0.05)

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass  # it may close the pipe before it answers
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


ORDER = "Array.from(document.querySelectorAll('#samples > tbody > tr')).map(tr => tr.dataset.task + '/' + tr.dataset.id)"
SCORES = ("Array.from(document.querySelectorAll('#samples > tbody > tr'))"
          ".map(tr => JSON.parse(tr.dataset.scores)['blur|ssim'])")
VISIBLE = "Array.from(document.querySelectorAll('#samples > tbody > tr')).filter(tr => !tr.hidden).length"


def choose(select: str, value: str) -> str:
    return (f"(() => {{ const s = document.getElementById('{select}'); s.value = '{value}'; "
            f"s.dispatchEvent(new Event('change')); return s.value; }})()")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium); "
                                             "the page was checked as HTML only")
def test_page_in_headless_chromium(runs, tmp_path):
    report(runs)
    page = runs.parent / "report.html"
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        images = browser.eval("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert len(images) > 100 and all(done and width > 0 for done, width in images)
        before = browser.eval(ORDER)
        assert browser.eval(choose("sort", "blur|ssim")) == "blur|ssim"
        after = browser.eval(ORDER)
        assert sorted(after) == sorted(before) and after != before
        values = browser.eval(SCORES)
        scored = [v for v in values if v is not None]
        assert len(scored) == 12 and scored == sorted(scored, reverse=True) and values[:12] == scored
        browser.eval(choose("dir", "asc"))
        assert browser.eval(SCORES)[:12] == sorted(scored)
        browser.eval(choose("task", "pairs_idp"))
        assert browser.eval(VISIBLE) == 12
        assert browser.eval("document.getElementById('status').textContent") == "12 of 24 samples shown"
        browser.eval(choose("task", ""))
        browser.eval("document.getElementById('samples').scrollIntoView(); 1")
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        browser.close()
    path = tmp_path / "report.png"
    path.write_bytes(shot)
    with Image.open(path) as image:
        assert image.size[0] >= 1000 and len(image.convert("RGB").getcolors(1 << 16) or []) > 20  # not blank
