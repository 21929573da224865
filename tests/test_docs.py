"""The extension guides in docs/ stay true to the code.

- Each guide's example (the first ```python block after its "## Example" heading) runs as
  written, on the tiny data it writes itself, and its assertions hold.
- docs/adding-a-task.md has a table row for every YAML field of TaskSpec, DatasetSpec,
  FrameSelection, MetricRef and ProbeSpec (none for a field that no longer exists), with the code's default,
  and the placeholders and default prompt of each task kind.
- The other guides name every Metric class attribute, Transition field, `evaluate` parameter,
  RunResult / MetricResult field and public `wmbench` name.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import tempfile
from pathlib import Path

import pytest

import wmbench
from wmbench.core import registry
from wmbench.core.tasks import DEFAULT_PROMPTS, PROMPT_FIELDS, DatasetSpec, MetricRef, ProbeSpec, TaskSpec
from wmbench.core.frames import FrameSelection

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE_DOCS = ["adding-a-task.md", "adding-a-metric.md", "adding-a-dataset-format.md", "python-api.md"]
TASK_DOC = DOCS / "adding-a-task.md"
SPEC_CLASSES = [TaskSpec, DatasetSpec, FrameSelection, MetricRef, ProbeSpec]


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def example(text: str) -> str:
    """The first ```python block after the heading "Example"."""
    heading = re.search(r"^#{1,6} Example\s*$", text, flags=re.M)
    assert heading, "no '## Example' heading"
    block = re.search(r"^```python\n(.*?)^```", text[heading.end():], flags=re.S | re.M)
    assert block, "no ```python block after the Example heading"
    return block.group(1)


def section(text: str, needle: str) -> str:
    """The text under the first heading that contains `needle`, up to the next heading of the same
    or a higher level."""
    match = re.search(rf"^(#+) [^\n]*{re.escape(needle)}[^\n]*$", text, flags=re.M)
    assert match, f"no heading mentioning {needle}"
    level = len(match.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[match.end():], flags=re.M)
    return text[match.end(): match.end() + end.start() if end else len(text)]


def table(text: str) -> dict[str, list[str]]:
    """Rows of the Markdown tables in `text`: the backticked names of the first cell -> all cells."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells
    return rows


def yaml_fields(cls) -> list[dataclasses.Field]:
    """The fields a YAML file may set (what yamlspec.build accepts)."""
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)]


def yaml_default(f: dataclasses.Field) -> str | None:
    """How the doc writes the field's default; None where no single spelling applies."""
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if dataclasses.is_dataclass(value):
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) and not value else "{}" if not value else None
    return str(value)


@pytest.fixture
def clean_registries():
    """Names registered by an example are dropped afterwards (a second run registers them again)."""
    saved = [(r, dict(r._targets), dict(r._loaded)) for r in
             (registry.FORMATS, registry.GENERATORS, registry.MODELS, registry.METRICS)]
    yield
    for reg, targets, loaded in saved:
        reg._targets.clear()
        reg._targets.update(targets)
        reg._loaded.clear()
        reg._loaded.update(loaded)


@pytest.mark.parametrize("doc", EXAMPLE_DOCS)
def test_example_runs(doc, tmp_path, monkeypatch, clean_registries):
    code = example(read(doc))
    assert "metaworld" not in code.lower(), "examples must not generate Meta-World data (slow)"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() lands in tmp_path
    for name in ("WMBENCH_DATA_DIR", "WMBENCH_TASKS_PATH", "WMBENCH_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    module = "docs_example_" + Path(doc).stem.replace("-", "_")
    exec(compile(code, f"docs/{doc} (Example)", "exec"), {"__name__": module})


def task_doc_rows(cls) -> dict[str, list[str]]:
    """The rows of the table under the adding-a-task.md heading that names `cls` (e.g. `DatasetSpec`)."""
    return table(section(TASK_DOC.read_text(encoding="utf-8"), f"`{cls.__name__}`"))


def undocumented(cls, rows: dict[str, list[str]]) -> list[str]:
    return [f.name for f in yaml_fields(cls) if f.name not in rows]


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_task_doc_has_a_row_for_every_yaml_field(cls):
    rows = task_doc_rows(cls)
    missing = undocumented(cls, rows)
    assert not missing, f"docs/adding-a-task.md: the {cls.__name__} table lacks {missing}"
    names = [f.name for f in yaml_fields(cls)]
    stale = sorted(set(rows) - set(names))
    assert not stale, f"docs/adding-a-task.md: the {cls.__name__} table documents unknown fields {stale}"


def test_field_check_catches_a_new_field():
    """A field added to a spec class without a row in the doc fails the check; `yaml: False` ones do not."""
    for cls in SPEC_CLASSES:
        grown = dataclasses.make_dataclass(
            cls.__name__, [("brand_new", int, dataclasses.field(default=0)),
                           ("internal", str, dataclasses.field(default="", metadata={"yaml": False}))],
            bases=(cls,), frozen=True)
        assert undocumented(grown, task_doc_rows(cls)) == ["brand_new"]


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_task_doc_defaults_match_the_code(cls):
    rows = task_doc_rows(cls)
    for f in yaml_fields(cls):
        expected = yaml_default(f)
        if expected is None or f.name not in rows:
            continue
        default_cell = rows[f.name][2].replace("`", "").replace('"', "").strip()
        assert default_cell == expected, (f"docs/adding-a-task.md: {cls.__name__}.{f.name} defaults to "
                                          f"{expected}, the doc says {rows[f.name][2]!r}")


def test_path_is_not_a_yaml_field():
    """`path` (where a spec was read from) is set by the loader, not by the YAML file."""
    assert "path" not in [f.name for f in yaml_fields(TaskSpec)]


def test_task_doc_prompts_match_the_code():
    rows = table(section(TASK_DOC.read_text(encoding="utf-8"), "Prompts"))
    assert set(PROMPT_FIELDS) <= set(rows)
    for kind, allowed in PROMPT_FIELDS.items():
        placeholders = set(re.findall(r"`\{(\w+)\}`", rows[kind][1]))
        assert placeholders == allowed, f"kind {kind}: doc lists {placeholders}, code allows {allowed}"
        assert DEFAULT_PROMPTS[kind] in rows[kind][2], f"kind {kind}: the default prompt changed"


def test_metric_doc_names_every_class_attribute():
    text = read("adding-a-metric.md")
    rows = table(section(text, "The shape of a metric"))
    attributes = [n for n, hint in inspect.get_annotations(wmbench.Metric).items()
                  if "ClassVar" in str(hint)]
    assert attributes, "no ClassVar annotations found on Metric"
    missing = [a for a in attributes if a not in rows]
    assert not missing, f"docs/adding-a-metric.md: no row for Metric.{missing}"
    methods = [n for n, v in vars(wmbench.Metric).items() if callable(v) or isinstance(v, classmethod)]
    methods = [n for n in methods if not n.startswith("_") and n not in ("describe", "info")]
    missing = [m for m in methods if f"`{m}(" not in text]
    assert not missing, f"docs/adding-a-metric.md: methods not described: {missing}"


def test_metric_doc_names_every_metric_input_field():
    rows = table(section(read("adding-a-metric.md"), "What `score` receives"))
    text = section(read("adding-a-metric.md"), "What `score` receives")
    for f in dataclasses.fields(wmbench.MetricInput):
        assert f.name in rows or f"`{f.name}`" in text, f"docs/adding-a-metric.md: MetricInput.{f.name}"


def test_format_doc_has_a_row_for_every_transition_field():
    rows = table(section(read("adding-a-dataset-format.md"), "Transition"))
    missing = [f.name for f in dataclasses.fields(wmbench.Transition) if f.name not in rows]
    assert not missing, f"docs/adding-a-dataset-format.md: the Transition table lacks {missing}"


def test_api_doc_covers_the_public_api():
    text = read("python-api.md")
    exported = [n for n in wmbench.__all__]
    missing = [n for n in exported if f"`{n}`" not in text]
    assert not missing, f"docs/python-api.md does not mention {missing}"
    rows = table(section(text, "evaluate"))
    params = list(inspect.signature(wmbench.evaluate).parameters)
    missing = [p for p in params if p not in rows]
    assert not missing, f"docs/python-api.md: evaluate parameters without a row: {missing}"
    signature = section(text, "evaluate")
    missing = [p for p in params if not re.search(rf"\b{p}\b", signature.split("```")[1])]
    assert not missing, f"docs/python-api.md: the evaluate signature lacks {missing}"
    rows = table(section(text, "RunResult"))
    fields = [f.name for f in dataclasses.fields(wmbench.RunResult)]
    properties = [n for n, v in vars(wmbench.RunResult).items() if isinstance(v, property)]
    missing = [n for n in fields + properties if n not in rows]
    assert not missing, f"docs/python-api.md: RunResult without a row: {missing}"
    run_result = section(text, "RunResult")
    missing = [f.name for f in dataclasses.fields(wmbench.MetricResult) if f"`{f.name}`" not in run_result]
    assert not missing, f"docs/python-api.md: MetricResult fields not described: {missing}"


def test_registration_groups_are_documented():
    groups = {r.entry_point_group for r in (registry.FORMATS, registry.GENERATORS, registry.MODELS,
                                           registry.METRICS)}
    text = read("python-api.md")
    assert all(f"`{g}`" in text for g in groups), groups
    fmt = read("adding-a-dataset-format.md")
    assert '"wmbench.formats"' in fmt and '"wmbench.generators"' in fmt
    assert '"wmbench.metrics"' in read("adding-a-metric.md")
