"""Task specs: typed `TaskSpec` built from YAML files in `tasks/`, and the task registry.

A task says *what* is evaluated: a dataset (format + subfolder of the data dir + split +
options), the frame-selection rule, the prompt template, the metrics, a default limit and seed.
"""

from __future__ import annotations

import dataclasses
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import SpecError, BadInput
from .frames import FrameSelection
from .registry import FORMATS, GENERATORS, METRICS, did_you_mean
from .yamlspec import build, content_hash, read_yaml, to_dict

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
PROMPT_FIELDS = {"fdp": {"action"}, "idp": set()}
DEFAULT_PROMPTS = {"fdp": "{action}",
                   "idp": "The first image shows a scene before an action, the second image the same scene after it. "
                          "What action was performed? Answer with a short instruction."}
#: What a likelihood-preference probe compares the real transition with (see `ProbeSpec`).
PROBE_NEGATIVES = ("random_action", "counterfactual_action", "other_target", "copy", "swap")


@dataclass(frozen=True)
class ProbeSpec:
    """A `probe` task: does the model find the real transition more likely than corrupted ones?
    `side: idp` asks `action_logprob` (log p(action | source, target)); `side: fdp` asks
    `transition_logprob` (log p(target | source, action)). Negatives: another action of the task
    at random (`random_action`), the most similar other action (`counterfactual_action`), another
    sample's target (`other_target`), the source as its own target (`copy`), source and target
    swapped (`swap`)."""

    side: Literal["idp", "fdp"] = "idp"
    negatives: list[str] = field(default_factory=lambda: list(PROBE_NEGATIVES))

    def __post_init__(self) -> None:
        unknown = [n for n in self.negatives if n not in PROBE_NEGATIVES]
        if unknown or not self.negatives or len(set(self.negatives)) != len(self.negatives):
            raise ValueError(f"negatives: a non-empty list of distinct names from {list(PROBE_NEGATIVES)}, "
                             f"got {self.negatives}")


@dataclass(frozen=True)
class DatasetSpec:
    format: str
    subfolder: str
    split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)
    generator: str | None = None  # built-in generator that writes the data on first use
    generator_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sub = Path(self.subfolder)
        if sub.is_absolute() or ".." in sub.parts or not self.subfolder.strip():
            raise ValueError("subfolder: must be a relative folder inside the data dir, "
                             f"without '..' (got {self.subfolder!r})")


@dataclass(frozen=True)
class MetricRef:
    """A `metrics` entry: a bare name, or `{name: ..., args: {...}, label: ...}` for a metric with
    options (e.g. the IDP model of `idp_cycle`); `label` names the column when one metric is used
    twice with different options."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


def metric_refs(entries: list[Any]) -> list[MetricRef]:
    """Task `metrics` entries (names, MetricRefs or their dicts) -> MetricRefs."""
    out = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(MetricRef(entry))
        elif isinstance(entry, dict):
            out.append(MetricRef(**entry))
        else:
            out.append(entry)
    return out


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["fdp", "idp", "probe"]
    dataset: DatasetSpec
    metrics: list[str | MetricRef]
    version: int = 1
    description: str = ""
    suites: list[str] = field(default_factory=list)
    frames: FrameSelection = field(default_factory=FrameSelection)
    prompt: str | None = None  # default: DEFAULT_PROMPTS[kind]
    limit: int | None = None
    seed: int = 0
    probe: ProbeSpec | None = None  # kind probe only (default ProbeSpec())
    path: str = field(default="", compare=False, metadata={"yaml": False})  # where the spec was read from

    def __post_init__(self) -> None:
        if self.kind == "probe" and self.probe is None:
            object.__setattr__(self, "probe", ProbeSpec())
        if self.kind != "probe" and self.probe is not None:
            raise ValueError(f"probe: only tasks of kind probe take it (this one is {self.kind})")
        if not self.metrics:
            raise ValueError("metrics: at least one metric is required")
        keys = [ref.key for ref in self.metric_refs]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"metrics: '{key}' appears twice; give each use a distinct `label`")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit: must be >= 1")
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(self.prompt_template) if f is not None}
        except ValueError as exc:
            raise ValueError(f"prompt: not a valid template: {exc}") from None
        extra = names - PROMPT_FIELDS[self.prompt_kind]
        if extra:
            raise ValueError(f"prompt: placeholder(s) {sorted(extra)} not allowed for kind {self.kind} "
                             f"(allowed: {sorted(PROMPT_FIELDS[self.prompt_kind]) or 'none'})")

    def to_dict(self) -> dict[str, Any]:
        data = to_dict(self)
        data.pop("path")
        if data["probe"] is None:  # absent for other kinds, so their hashes stay what they were
            data.pop("probe")
        return data

    @property
    def spec_hash(self) -> str:
        """Hash of the whole spec as evaluated."""
        return content_hash(self.to_dict())

    @property
    def sample_fingerprint(self) -> str:
        """Hash of what decides the samples and the predictions. Left out: the limit (it only takes
        a prefix of a stable order), the metrics (added ones are scored from stored predictions)
        and the prose (description, suites)."""
        data = self.to_dict()
        for key in ("limit", "metrics", "description", "suites"):
            data.pop(key)
        return content_hash(data)

    @property
    def prompt_kind(self) -> str:
        """Whose prompt the model gets: a probe asks the model of its side (fdp or idp)."""
        return self.probe.side if self.probe is not None else self.kind

    @property
    def prompt_template(self) -> str:
        return DEFAULT_PROMPTS[self.prompt_kind] if self.prompt is None else self.prompt

    @property
    def metric_refs(self) -> list[MetricRef]:
        return metric_refs(self.metrics)

    def render_prompt(self, action: str) -> str:
        return self.prompt_template.format(action=action) if self.prompt_kind == "fdp" else self.prompt_template


def load_task(path: str | os.PathLike) -> TaskSpec:
    path = Path(path)
    data = read_yaml(path)
    spec = build(TaskSpec, data, path)
    check_names(spec, path)
    return dataclasses.replace(spec, path=str(path))


def check_names(spec: TaskSpec, path: Path | str) -> None:
    """Fail on unknown metric or format names at load time, before any model loads."""
    if spec.dataset.format not in FORMATS:
        raise SpecError(path, "dataset.format", f"unknown format '{spec.dataset.format}'"
                        f"{did_you_mean(spec.dataset.format, FORMATS.names())}; known: {', '.join(FORMATS.names())}")
    if spec.dataset.generator is not None and spec.dataset.generator not in GENERATORS:
        raise SpecError(path, "dataset.generator", f"unknown generator '{spec.dataset.generator}'; "
                        f"known: {', '.join(GENERATORS.names())}")
    for i, ref in enumerate(spec.metric_refs):
        name = ref.name
        if name not in METRICS:
            raise SpecError(path, f"metrics[{i}]", f"unknown metric '{name}'"
                            f"{did_you_mean(name, METRICS.names())}; known: {', '.join(METRICS.names())}")
        cls = METRICS.get(name)
        if cls.kind != spec.kind:
            raise SpecError(path, f"metrics[{i}]", f"metric '{name}' scores {cls.kind} predictions, "
                            f"but the task kind is {spec.kind}")
        try:  # constructors are cheap (backbones load on first use): this checks the options
            cls(**ref.args)
        except (TypeError, ValueError) as exc:
            raise SpecError(path, f"metrics[{i}].args", f"metric '{name}': {exc}") from None


def task_dirs(include: list[str | os.PathLike] | None = None) -> list[Path]:
    """The built-in tasks/ folder, then $WMBENCH_TASKS_PATH (os.pathsep-separated), then --include-path."""
    dirs = [TASKS_DIR]
    env = os.environ.get("WMBENCH_TASKS_PATH")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in include or []]
    return dirs


def discover_tasks(include: list[str | os.PathLike] | None = None) -> dict[str, Path]:
    """Task name -> YAML path, by reading only each file's `name` key (cheap, no validation).

    Two files that give the same name (in one folder, or a `$WMBENCH_TASKS_PATH` / `--include-path`
    task that reuses the name of a built-in one) are a BadInput naming both files: which one ran
    would otherwise depend on the search order, and results are filed under the name. The same
    file reached through two search folders counts once."""
    import yaml

    found: dict[str, Path] = {}
    for folder in task_dirs(include):
        for path in sorted(Path(folder).glob("**/*.yaml")):
            try:
                name = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("name")
            except (yaml.YAMLError, AttributeError, OSError, UnicodeDecodeError):
                name = None  # load_task reports what is wrong with the file when it is asked for
            name = str(name) if name else path.stem
            if name in found and not _same_file(found[name], path):
                raise duplicate_task(name, found[name], path)
            found.setdefault(name, path)
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def duplicate_task(name: str, first: Path, second: Path) -> BadInput:
    built_in = [p for p in (first, second) if p.resolve().is_relative_to(TASKS_DIR)]
    why = (f"{second if built_in[0] == first else first} shadows the built-in task; " if len(built_in) == 1 else "")
    return BadInput(f"task name '{name}' is defined twice: in {first} and in {second}; {why}"
                    f"give one of them another `name` (task names must be unique across tasks/, "
                    f"$WMBENCH_TASKS_PATH and --include-path)")


def resolve_tasks(selectors: list[str], include: list[str | os.PathLike] | None = None) -> list[TaskSpec]:
    """Task names, suite names or YAML paths -> validated specs (suites expand to their tasks)."""
    known = discover_tasks(include)
    specs: dict[str, TaskSpec] = {}
    for selector in selectors:
        if selector.endswith((".yaml", ".yml")):
            if not Path(selector).exists():
                raise BadInput(f"task file {selector} does not exist (a task name has no .yaml ending; "
                               f"see `wmbench list tasks`)")
            _add(specs, load_task(selector))
            continue
        if selector in known:
            _add(specs, load_task(known[selector]))
            continue
        members = [load_task(p) for p in known.values()]
        members = [s for s in members if selector in s.suites]
        if not members:
            suites = sorted({s for p in known.values() for s in load_task(p).suites})
            raise BadInput(f"unknown task or suite '{selector}'{did_you_mean(selector, list(known) + suites)}; "
                               f"see `wmbench list tasks`")
        for spec in members:
            _add(specs, spec)
    return list(specs.values())


def _add(specs: dict[str, TaskSpec], spec: TaskSpec) -> None:
    """Select `spec` once; another file with the same task name is a BadInput naming both."""
    other = specs.get(spec.name)
    if other is None:
        specs[spec.name] = spec
    elif not _same_file(Path(other.path), Path(spec.path)):
        raise duplicate_task(spec.name, Path(other.path), Path(spec.path))
