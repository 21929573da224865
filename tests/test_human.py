"""Human evaluation (`wmbench human export` / `import`): blinded, self-contained annotation pages
driven in headless Chromium (clicks, keys, autosave, download), the import's validation and tables,
and a simulated three-annotator study with a known ground truth."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import wmbench
from wmbench.analysis import human_page
from wmbench.analysis.human import export_pages, import_annotations, register_cli
from wmbench.models.base import Model

from test_report import CHROMIUM, Chromium  # the project's DevTools-over-a-pipe driver

MODELS = ("copy", "blur", "oracle")
HAS_KRIPPENDORFF = importlib.util.find_spec("krippendorff") is not None
NEEDS_KRIPPENDORFF = pytest.mark.skipif(not HAS_KRIPPENDORFF, reason="the package krippendorff is not installed "
                                        "(pip install krippendorff): Krippendorff's alpha is not computed")
SQUARE_TASK = """\
name: {name}
kind: fdp
dataset: {{format: jsonl, subfolder: {folder}}}
frames: {{mode: first_last}}
metrics: [{metrics}]
"""


class SimJudge(Model):
    """A stand-in VLM judge for the square data: it rewards a frame that moved something sharply
    (editing success) and keeps the texture's sharpness (minimal editing)."""

    def answer(self, images, prompts):
        out = []
        for source, prediction in images:
            src, pred = source.astype(float), prediction.astype(float)
            sharp = float(np.abs(np.diff(pred, axis=1)).mean() / max(1e-6, np.abs(np.diff(src, axis=1)).mean()))
            moved = float((np.abs(pred - src).max(axis=2) > 80).mean())
            success = 10 * min(1.0, moved / 0.05) * min(1.0, sharp)
            minimal = 10 * min(1.0, sharp)
            out.append(json.dumps({"editing_success": round(success, 2), "minimal_editing": round(minimal, 2)}))
        return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Square data (12 pairs, and 40 for the simulated study), task files, and evaluate(): evaluated
    once per module, so that every test exports the same runs."""
    from conftest import write_pairs, write_task

    root = tmp_path_factory.mktemp("human")
    write_pairs(root / "data" / "pairs")
    write_pairs(root / "data" / "sim", n=40)
    tasks = root / "tasks"
    tasks.mkdir()
    write_task(tasks, "pairs_fdp", "fdp", "l1, change_iou")
    write_task(tasks, "pairs_idp", "idp", "exact_match")
    judge = "{name: vlm_judge, args: {model: 'test_human:SimJudge', retries: 0}, label: judge}"
    (tasks / "sim_fdp.yaml").write_text(SQUARE_TASK.format(name="sim_fdp", folder="sim", metrics=f"l1, {judge}"))

    def evaluate(task: str | list[str], models=MODELS) -> list[Path]:
        runs = []
        for model in models:
            out = root / "runs" / "+".join([task] if isinstance(task, str) else task) / model.split(":")[-1]
            wmbench.evaluate(task, model, output=out, progress=False, data_dir=root / "data", include_path=[tasks])
            runs.append(out)
        return runs

    return evaluate


@pytest.fixture(scope="module")
def runs(home):
    return home("pairs_fdp")


def cli(argv: list[str]) -> int:
    """The `human` command on a parser of our own, as the CLI mounts it (BadInput: exit 2)."""
    parser = argparse.ArgumentParser(prog="wmbench")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except wmbench.BadInput as exc:
        print(f"wmbench: {exc}")
        return 2


def key_of(folder: Path) -> dict:
    return json.loads((folder / "key.json").read_text())


def fill(key: dict, annotator: str, choose, complete: int | None = None) -> dict:
    """An annotation file as the page downloads it; `choose(uid, criterion, models) -> (best, worst)`
    by model label; items after the first `complete` are left empty."""
    page = next(a for a in key["annotators"] if a["id"] == annotator)
    criteria = [c["id"] for c in key["criteria"]]
    items = []
    for i, item in enumerate(page["items"]):
        entry = {"item": item["item"], "best": {c: None for c in criteria}, "worst": {c: None for c in criteria},
                 "comment": ""}
        if complete is None or i < complete:
            for c in criteria:
                best, worst = choose(item["sample"], c, item["options"])
                entry["best"][c] = item["options"].index(best) + 1
                entry["worst"][c] = item["options"].index(worst) + 1
        items.append(entry)
    return {"format": "wmbench-human-annotations", "version": 1, "export_id": key["export_id"],
            "annotator": annotator, "criteria": criteria, "items": items}


PLAN = {"realism": ("oracle", "blur"), "instruction": ("oracle", "copy"), "minimal_change": ("copy", "blur")}
EXPECTED = {("realism", "oracle"): 1, ("realism", "copy"): 0, ("realism", "blur"): -1,
            ("instruction", "oracle"): 1, ("instruction", "blur"): 0, ("instruction", "copy"): -1,
            ("minimal_change", "copy"): 1, ("minimal_change", "oracle"): 0, ("minimal_change", "blur"): -1,
            ("overall", "oracle"): 2 / 3, ("overall", "copy"): 0, ("overall", "blur"): -2 / 3}


def check_expected(scores, group="pairs_fdp", n=None) -> None:
    got = {(r.criterion, r.model): r.mean for r in scores[scores.group == group].itertuples()}
    assert got == pytest.approx(EXPECTED)
    if n is not None:
        assert set(scores[scores.group == group].n) == {n}


# export ----------------------------------------------------------------------------------------
def test_export_writes_blinded_self_contained_pages_and_a_key(runs, tmp_path):
    out = tmp_path / "study"
    assert cli(["human", "export", *map(str, runs), "--tasks", "pairs_fdp", "--samples", "8", "--output", str(out),
                "--annotators", "3", "--overlap", "0.25", "--seed", "3"]) == 0
    key = key_of(out)
    pages = sorted(out.glob("*.html"))
    assert [p.name for p in pages] == ["annotate-a1.html", "annotate-a2.html", "annotate-a3.html"]
    shared = {s["uid"] for s in key["samples"] if s["shared"]}
    assert len(key["samples"]) == 8 and len(shared) == 2
    seen = {a["id"]: [it["sample"] for it in a["items"]] for a in key["annotators"]}
    assert all(shared <= set(s) for s in seen.values())
    once = sorted(u for s in seen.values() for u in s if u not in shared)
    assert once == sorted({s["uid"] for s in key["samples"]} - shared)  # the rest: one annotator each
    orders = {tuple(it["options"]) for a in key["annotators"] for it in a["items"]}
    assert len(orders) > 1 and all(sorted(o) == sorted(MODELS) for o in orders)
    for page in pages:
        text = page.read_text().replace(human_page.JS, "")  # the fixed script (it calls element.blur())
        assert key["export_id"] in text
        assert not re.search(r'(href|src)="(https?:|//|file:)', text) and "<link" not in text
        assert all(s.startswith("data:image/") for s in re.findall(r'src="([^"]*)"', text))
        for secret in (*MODELS, "key.json", str(runs[0].parent)):
            assert not re.search(rf"\b{re.escape(secret)}\b", text), f"the page names {secret}"
    again = export_pages(runs, tasks="pairs_fdp", samples=8, output=out, annotators=3, overlap=0.25, seed=3)
    assert again.export_id == key["export_id"]  # the same inputs give the same export
    with pytest.raises(wmbench.BadInput, match="holds another export"):
        export_pages(runs, tasks="pairs_fdp", samples=8, output=out, annotators=3, overlap=0.25, seed=4)


def test_only_samples_every_run_predicted_are_eligible(home, runs, tmp_path):
    faulty = home("pairs_fdp", ["helper_models:FaultyModel"])[0]
    result = export_pages([runs[0], faulty], tasks=["pairs_fdp"], samples=50, output=tmp_path / "s")
    e = result.eligibility["pairs_fdp"]
    assert (e["total"], e["eligible"], e["excluded"]) == (12, 9, 3)
    assert sum(e["reasons"].values()) == 3 and all(r.startswith("failed in run") for r in e["reasons"])
    assert result.samples == 9 and "only 9 eligible" in result.notes[0]
    assert "3 excluded" in result.summary()


@pytest.mark.parametrize("change, message", [
    ({"run_dirs": 1}, "2 to 9 run directories"),
    ({"tasks": "nope"}, "has no task 'nope'"),
    ({"tasks": "pairs_idp"}, "has no task 'pairs_idp'"),
    ({"samples": 0}, "--samples"),
    ({"overlap": 1.5}, "--overlap"),
    ({"criteria": "realism,realism"}, "distinct"),
    ({"criteria": "beauty"}, "unknown criterion 'beauty'"),
    ({"annotators": "x y"}, "--annotators"),
    ({"annotators": 5, "overlap": 0.0}, "leaves annotator(s) a5 without an item"),
    ({"data_dir": "elsewhere"}, "does not exist"),
])
def test_export_refuses_bad_input(runs, tmp_path, change, message):
    args = {"tasks": "pairs_fdp", "samples": 4, "output": tmp_path / "s", **change}
    if "data_dir" in change:
        args["data_dir"] = tmp_path / change["data_dir"]
    with pytest.raises(wmbench.BadInput, match=re.escape(message)):
        export_pages(runs[:args.pop("run_dirs", len(runs))], **args)


def test_export_of_a_run_without_stored_images_says_how_to_get_them(runs, tmp_path):
    committed = tmp_path / "committed"
    shutil.copytree(runs[1], committed, ignore=shutil.ignore_patterns("objects", "store.sqlite*"))
    with pytest.raises(wmbench.BadInput, match="predicted image .* is missing; a committed run"):
        export_pages([runs[0], committed], tasks="pairs_fdp", samples=4, output=tmp_path / "s")


def test_idp_tasks_are_refused(home, tmp_path):
    idp = home("pairs_idp", ["majority", "oracle"])
    assert cli(["human", "export", *map(str, idp), "--tasks", "pairs_idp", "--samples", "3",
                "--output", str(tmp_path / "s")]) == 2


# import ----------------------------------------------------------------------------------------
def test_import_scores_the_expected_table_and_counts_incomplete_items(runs, tmp_path):
    out = tmp_path / "study"
    export_pages(runs, tasks="pairs_fdp", samples=6, output=out, annotators=2, overlap=1.0)
    key = key_of(out)
    plan = lambda uid, c, options: PLAN[c]  # noqa: E731
    (tmp_path / "a1.json").write_text(json.dumps(fill(key, "a1", plan)))
    (tmp_path / "a2.json").write_text(json.dumps(fill(key, "a2", plan, complete=4)))
    assert cli(["human", "import", str(tmp_path / "a1.json"), str(tmp_path / "a2.json"), "--key", str(out),
                "--output", str(tmp_path / "tables")]) == 0
    result = import_annotations([tmp_path / "a1.json", tmp_path / "a2.json"], key=out, output=tmp_path / "tables")
    check_expected(result.scores, n=10)  # 6 + 4 complete items
    cov = result.coverage.set_index("annotator")
    assert (cov.loc["a2", "complete"], cov.loc["a2", "not_started"]) == (4, 2)
    assert any("a2" in n and "2 of 6 items incomplete" in n for n in result.notes)
    wins = result.win_rates.set_index(["criterion", "model", "opponent"])
    assert tuple(wins.loc[("realism", "oracle", "blur"), ["rate", "wins"]]) == (1.0, 10)
    agree = result.agreement.set_index("criterion")
    assert agree.loc["all criteria", "pairwise_agreement"] == 1.0 and agree.loc["all criteria", "samples"] == 4
    if HAS_KRIPPENDORFF:
        assert agree.loc["all criteria", "alpha"] == pytest.approx(1.0)
    else:
        assert agree.alpha.isna().all() and any("krippendorff" in n for n in result.notes)
    assert result.judge is None and any("no vlm_judge scores" in n for n in result.notes)
    tables = tmp_path / "tables"
    for name in ("human.md", "human.tex", "human.html", "scores.csv", "win_rates.csv", "agreement.csv",
                 "annotators.csv", "judgments.csv"):
        assert (tables / name).stat().st_size > 0, name
    md = (tables / "human.md").read_text()
    row = r"\| \*oracle\* \| 1\.000 ± 0\.000 \| 1\.000 ± 0\.000 \| 0\.000 ± 0\.000 \| 0\.667 ± 0\.000 \| 10 / 2 / 0"
    assert re.search(row, md), md
    assert "\\begin{tabular}" in (tables / "human.tex").read_text()
    with pytest.raises(wmbench.BadInput, match="--strict"):
        import_annotations([tmp_path / "a1.json", tmp_path / "a2.json"], key=out, output=tables, strict=True)


def test_import_refuses_files_of_another_export_duplicates_and_broken_files(runs, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    export_pages(runs, tasks="pairs_fdp", samples=4, output=one, annotators=2, seed=0)
    export_pages(runs, tasks="pairs_fdp", samples=4, output=two, annotators=2, seed=1)
    plan = lambda uid, c, options: PLAN[c]  # noqa: E731
    good, twin, broken, same = (tmp_path / f"{n}.json" for n in ("good", "twin", "broken", "same"))
    good.write_text(json.dumps(fill(key_of(one), "a1", plan)))
    shutil.copy(good, twin)
    broken.write_text(good.read_text()[:50])
    doc = fill(key_of(one), "a1", plan)
    doc["items"][0]["worst"]["realism"] = doc["items"][0]["best"]["realism"]
    same.write_text(json.dumps(doc))
    cases = {"annotations of export": ([good], two), "both hold annotator a1": ([good, twin], one),
             "not a readable JSON file": ([broken], one), "is both best and worst": ([same], one)}
    for message, (files, key) in cases.items():
        with pytest.raises(wmbench.BadInput, match=re.escape(message)):
            import_annotations(files, key=key, output=tmp_path / "t")
    assert cli(["human", "import", str(broken), "--key", str(one), "--output", str(tmp_path / "t")]) == 2


def test_two_tasks_are_scored_per_task_and_over_both(home, tmp_path):
    runs = home(["pairs_fdp", "sim_fdp"])
    out = tmp_path / "study"
    result = export_pages(runs, tasks="pairs_fdp,sim_fdp", samples=10, output=out)
    assert result.tasks == ["pairs_fdp", "sim_fdp"] and result.samples == 10
    assert sorted(s["task"] for s in key_of(out)["samples"]) == ["pairs_fdp"] * 5 + ["sim_fdp"] * 5
    (tmp_path / "a1.json").write_text(json.dumps(fill(key_of(out), "a1", lambda uid, c, options: PLAN[c])))
    scores = import_annotations([tmp_path / "a1.json"], key=out, output=tmp_path / "tables").scores
    for group, n in (("pairs_fdp", 5), ("sim_fdp", 5), ("all tasks", 10)):
        check_expected(scores, group, n=n)
    assert "### all tasks (tasks: pairs_fdp, sim_fdp)" in (tmp_path / "tables" / "human.md").read_text()


# the page in a browser -------------------------------------------------------------------------
def _center(browser, selector: str) -> tuple[float, float]:
    return tuple(browser.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                              "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                              "return [r.x + r.width / 2, r.y + r.height / 2]; })()"))


def click(browser, selector: str) -> None:
    x, y = _center(browser, selector)
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})


KEYS = {"ArrowRight": 39, "ArrowLeft": 37, "ArrowDown": 40, "ArrowUp": 38, "Enter": 13, "n": 78, "p": 80}


def press(browser, key: str, shift: bool = False) -> None:
    if key.isdigit():
        event = {"key": "!@#$%^&*("[int(key) - 1] if shift else key, "code": f"Digit{key}",
                 "windowsVirtualKeyCode": 48 + int(key)}
    else:
        event = {"key": key, "code": key if key.startswith("Arrow") or key == "Enter" else f"Key{key.upper()}",
                 "windowsVirtualKeyCode": KEYS[key]}
    for kind in ("keyDown", "keyUp"):
        browser.send("Input.dispatchKeyEvent", {"type": kind, "modifiers": 8 if shift else 0, **event})


def load(browser, url: str, block_storage: bool = False) -> None:
    browser.open("about:blank")
    if block_storage:  # as file:// pages in some browsers and privacy modes: localStorage throws
        browser.send("Page.enable")
        browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": (
            "Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('blocked', "
            "'SecurityError'); }});")})
    browser.send("Page.navigate", {"url": url})
    deadline = time.monotonic() + 30
    while browser.eval("location.href") != url or browser.eval("document.body && document.body.dataset.ready") != "1":
        assert time.monotonic() < deadline, "the page did not start"
        time.sleep(0.05)


def downloaded(folder: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob("*.json")]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder}")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium); "
                                             "the annotation page was not driven in a browser")
def test_annotating_in_headless_chromium_gives_the_expected_table(runs, tmp_path):
    out = tmp_path / "study"
    export_pages(runs, tasks="pairs_fdp", samples=3, output=out)
    key = key_of(out)
    items = key["annotators"][0]["items"]
    number = [{m: str(it["options"].index(m) + 1) for m in MODELS} for it in items]  # model -> option key
    url = (out / "annotate-a1.html").as_uri()
    saves = tmp_path / "downloads"
    browser = Chromium(tmp_path / "profile")
    try:
        browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(saves)}, browser=True)
        load(browser, url)
        progress = "document.getElementById('progress').textContent"
        assert browser.eval(progress) == "0 / 3 complete"
        assert browser.eval("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        # item 1 with the mouse
        for c, (best, worst) in PLAN.items():
            row = f"section.item:not([hidden]) tr[data-criterion={c}]"
            click(browser, f"{row} button.best[data-option='{number[0][best]}']")
            click(browser, f"{row} button.worst[data-option='{number[0][worst]}']")
        assert browser.eval(progress) == "1 / 3 complete"
        click(browser, "#next")
        # item 2 with the keyboard: best and worst of the highlighted criterion, which then moves on
        for c, (best, worst) in PLAN.items():
            press(browser, number[1][best])
            press(browser, number[1][worst], shift=True)
        assert browser.eval(progress) == "2 / 3 complete"
        press(browser, "ArrowRight")
        # item 3: best == worst is refused (the other choice is cleared), then fixed
        realism_best = number[2][PLAN["realism"][0]]
        press(browser, realism_best)
        press(browser, realism_best, shift=True)
        assert "must differ" in browser.eval("document.getElementById('message').textContent")
        pressed = "document.querySelectorAll('section.item:not([hidden]) button[aria-pressed=true]').length"
        assert browser.eval(pressed) == 1
        press(browser, realism_best)
        press(browser, number[2][PLAN["realism"][1]], shift=True)
        for c in ("instruction", "minimal_change"):
            press(browser, number[2][PLAN[c][0]])
            press(browser, number[2][PLAN[c][1]], shift=True)
        assert browser.eval(progress) == "3 / 3 complete"
        press(browser, "p")
        assert browser.eval("document.getElementById('position').textContent") == "item 2 of 3"
        # autosave: a reload keeps every choice
        load(browser, url)
        assert browser.eval(progress) == "3 / 3 complete"
        assert browser.eval("document.getElementById('autosave').textContent") == "autosaved in this browser"
        click(browser, "#download")
        file = downloaded(saves)
        # without localStorage the page says so and the download still works
        saves2 = tmp_path / "downloads2"
        browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(saves2)}, browser=True)
        load(browser, url, block_storage=True)
        assert "autosave unavailable" in browser.eval("document.getElementById('autosave').textContent")
        assert browser.eval(progress) == "0 / 3 complete"
        press(browser, number[0]["oracle"])
        click(browser, "#download")
        partial = json.loads(downloaded(saves2).read_text())
        # resuming from the complete download through the page's file input
        root = browser.send("DOM.getDocument")["root"]["nodeId"]
        node = browser.send("DOM.querySelector", {"nodeId": root, "selector": "#load-file"})["nodeId"]
        browser.send("DOM.setFileInputFiles", {"nodeId": node, "files": [str(file)]})
        deadline = time.monotonic() + 10
        while browser.eval(progress) != "3 / 3 complete":
            assert time.monotonic() < deadline, browser.eval("document.getElementById('message').textContent")
            time.sleep(0.05)
        shot = browser.send("Page.captureScreenshot", {"format": "png"})["data"]
    finally:
        browser.close()
    assert shot and partial["n_complete"] == 0 and partial["items"][0]["best"]["realism"] == int(number[0]["oracle"])
    result = import_annotations([file], key=out, output=tmp_path / "tables")
    check_expected(result.scores, n=3)
    assert result.coverage.complete.tolist() == [3]


# a simulated study -----------------------------------------------------------------------------
TRUTH = {"realism": {"oracle": 1.0, "copy": 0.7, "blur": -1.0},
         "instruction": {"oracle": 1.0, "blur": -0.2, "copy": -0.4},
         "minimal_change": {"copy": 1.0, "oracle": 0.6, "blur": -1.0}}


def simulate(runs: list[Path], tmp_path: Path, noise: float, samples: int = 40, seed: int = 0):
    """Three annotators whose picks follow TRUTH plus Gaussian noise (sd `noise`) per judgment, half
    of the samples on every page."""
    out = tmp_path / "sim"
    export_pages(runs, tasks="sim_fdp", samples=samples, output=out, annotators=3, overlap=0.5, seed=seed)
    key = key_of(out)
    rng = np.random.default_rng(seed)

    def choose(uid, criterion, options):
        utility = {m: TRUTH[criterion][m] + rng.normal(0, noise) for m in options}
        ranked = sorted(options, key=utility.get)
        return ranked[-1], ranked[0]

    files = []
    for annotator in ("a1", "a2", "a3"):
        files.append(tmp_path / f"{annotator}.json")
        files[-1].write_text(json.dumps(fill(key, annotator, choose)))
    return import_annotations(files, key=out, output=tmp_path / "tables")


@NEEDS_KRIPPENDORFF
def test_simulated_study_recovers_the_ground_truth_and_measures_agreement(home, tmp_path):
    result = simulate(home("sim_fdp"), tmp_path, noise=0.5)
    scores = result.scores[result.scores.group == "sim_fdp"]
    for criterion, truth in TRUTH.items():
        mean = scores[scores.criterion == criterion].set_index("model")["mean"]
        assert sorted(truth, key=mean.get) == sorted(truth, key=truth.get), criterion
    agree = result.agreement.set_index("criterion")
    assert agree.loc["all criteria", "samples"] == 20 and agree.loc["all criteria", "units"] == 120
    assert 0.2 < agree.loc["all criteria", "alpha"] < 0.95
    assert agree.loc["all criteria", "pairwise_agreement"] > agree.loc["all criteria", "chance"]
    judge = result.judge.set_index(["level", "criterion"])
    assert judge.loc[("sample x model", "instruction"), "spearman"] > 0.5
    assert judge.loc[("sample x model", "instruction"), "n"] == 40 * 3
    print(result.agreement.to_string(), result.judge.to_string(), sep="\n")


@NEEDS_KRIPPENDORFF
def test_simulated_study_without_noise_agrees_perfectly(home, tmp_path):
    result = simulate(home("sim_fdp"), tmp_path, noise=0.0, samples=12)
    assert result.agreement.alpha.tolist() == pytest.approx([1.0] * 4)
    scores = result.scores[(result.scores.group == "sim_fdp") & (result.scores.criterion == "realism")]
    assert dict(zip(scores.model, scores["mean"])) == {"oracle": 1.0, "copy": 0.0, "blur": -1.0}
