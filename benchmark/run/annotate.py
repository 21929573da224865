"""Bootstrapping FDP data with an IDP model: label unlabelled frame pairs with actions.

The paper's first route (Qiu et al., arXiv 2506.06006): frame pairs are taken from videos (motion
keyframes by default), an IDP model names the action of each pair (`infer_action`), the same model
scores its label (`action_logprob`, a per-token mean where the adapter can give one), and a
stratified top-K of the labelled pairs (round-robin over action classes, best first) is written in
the AURORA training format, ready for FDP fine-tuning (see `annotate_files` and docs/bootstrapping.md).

The model sees the two frames and the prompt only: the reader's action text, action vector and
meta never reach it. Work is stored in the output folder through the run store (`RunStore`: claim,
then commit per batch, under the task name "annotate"), so a killed command resumes where it
stopped and several processes may share one output folder. The output files are rewritten from the
store at the end of every invocation.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import BadInput
from ..core.frames import FrameSelection
from ..core.tasks import DEFAULT_PROMPTS, DatasetSpec, TaskSpec
from ..core.types import Transition
from ..data import FORMATS, resolve_data_dir
from ..models import ModelCard, adapter_class
from ..models.base import Model
from . import annotate_files as files
from .annotate_label import Labeller, refuse_other_settings
from .api import ModelSelection, check_device, check_model_args, model_card, task_specs
from .selection import dataset_root

NEEDS = ("infer_action", "action_logprob")
FRAME_MODES = ("keyframes", "gap", "seconds", "first_last")
FRAME_OPTIONS = {"top_k": "--keyframes", "min_interval": "--min-interval", "gap": "--gap", "stride": "--stride",
                 "seconds": "--seconds"}


@dataclass(frozen=True)
class AnnotationResult:
    """What `annotate` did. Counts cover the candidate pairs this call selected (`candidates`):
    `labelled` (done: a label and a score), `new` (labelled by this call), `failed` (frames that
    did not decode, a model error, an empty label or a non-finite score; by stage in
    `failed_by_stage`), `skipped` (no target frame), `pending` (claimed by another process that
    has not finished). `kept` pairs are in `train_file`; `classes` gives per action class the
    pairs `available`, its `share` of the top-K, how many were `kept` and the `shortfall`."""

    output: Path
    train_file: Path
    manifest: Path
    candidates: int
    labelled: int
    new: int
    failed: int
    skipped: int
    pending: int
    kept: int
    failed_by_stage: dict[str, int] = field(default_factory=dict)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    shortfall: dict[str, int] = field(default_factory=dict)
    score_reduction: str = ""


def annotate(model: ModelSelection, model_args: dict[str, Any] | None = None, *,
             output: str | os.PathLike, tasks: str | TaskSpec | None = None, format: str | None = None,
             root: str | os.PathLike | None = None, split: str | None = None,
             dataset_options: dict[str, Any] | None = None, frames: str | FrameSelection = "keyframes",
             keyframes: int = 4, min_interval: int = 8, gap: int = 1, stride: int | None = None,
             seconds: float | None = None, top_k: int | None = None, per_class: bool = False,
             class_key: str | None = None, limit: int | None = None, batch_size: int = 8, seed: int = 0,
             prompt: str | None = None, data_dir: str | os.PathLike | None = None, device: str | None = None,
             include_path: Sequence[str | os.PathLike] | None = None, progress: bool = True) -> AnnotationResult:
    """Label the frame pairs of one dataset with an IDP model and write the stratified top-K in the
    AURORA training format into `output` (`train.json`, `images/`, `manifest.json`, the store).

    The data: a task (`tasks`: its dataset, data dir subfolder, split and options) or a reader
    (`format` + `root`). `frames`: a mode (`keyframes`: the `keyframes` frames of most motion per
    episode, at least `min_interval` apart; `gap`, `seconds`, `first_last`) or a FrameSelection.
    `top_k`: pairs kept in all (None: every labelled pair), or per class with `per_class`. The class
    of a pair is its label's first word, lower-cased, or the reader's `meta[class_key]`.
    Bad input raises BadInput before the model loads; re-running the same call resumes."""
    card, instance = model_card(model, model_args)
    _check_capabilities(card, instance)
    how = "the model instance's own"
    if instance is None:
        card, how = _prefer_mean(card, model_args)
        check_model_args(card)
    check_device(device)
    selection = _frames(frames, keyframes, min_interval, gap, stride, seconds)
    _check_numbers(top_k, per_class, limit, batch_size)
    out = Path(output)
    _check_output(out)
    data_dir = resolve_data_dir(data_dir)
    spec, source_root, task_prompt, task_name = _dataset(tasks, format, root, split, dataset_options,
                                                         data_dir, include_path, progress)
    settings = {"data": {"format": spec.format, "root": str(source_root.resolve()), "split": spec.split,
                         "options": spec.options, "task": task_name},
                "frames": selection.describe(), "prompt": prompt if prompt is not None else task_prompt, "seed": seed}
    identity = card.public_identity()
    refuse_other_settings(out, settings, identity)
    transitions = _read(spec, source_root, selection, limit, seed)
    reduction = _reduction(card, instance)
    if reduction in ("sum", "unknown"):
        print(f"wmbench: warning: the label confidences are {files.REDUCTIONS[reduction]}", file=sys.stderr)
    job = Labeller(card, instance, out, transitions, settings, identity, batch_size, device, progress)
    try:
        new = job.label()
        kept, classes, counts = files.finish(job.store, transitions, settings, identity, {
            "top_k": top_k, "per_class": per_class, "class_key": class_key, "limit": limit,
            "batch_size": batch_size, "score_reduction": reduction, "score_how": how}, progress)
    finally:
        job.store.close()
    return AnnotationResult(
        output=out, train_file=out / files.TRAIN_FILE, manifest=out / files.MANIFEST_FILE,
        candidates=counts["candidates"], labelled=counts["labelled"], new=new, failed=counts["failed"],
        skipped=counts["skipped"], pending=counts["pending"], kept=kept,
        failed_by_stage=counts["failed_by_stage"], classes=classes,
        shortfall={c: v["shortfall"] for c, v in classes.items() if v["shortfall"]}, score_reduction=reduction)


# checks, before anything heavy ---------------------------------------------------------------
def _check_capabilities(card: ModelCard, instance: Model | None) -> None:
    caps = (type(instance) if instance is not None else adapter_class(card)).capabilities()
    missing = [c for c in NEEDS if c not in caps]
    if missing:
        raise BadInput(f"model '{card.name}' (adapter '{card.adapter}') cannot annotate: it lacks capabilit"
                       f"{'ies' if len(missing) > 1 else 'y'} {' and '.join(repr(m) for m in missing)} (labelling needs infer_action, scoring a "
                       f"label's confidence needs action_logprob); it has {list(caps) or 'none'}")


def _prefer_mean(card: ModelCard, model_args: dict[str, Any] | None) -> tuple[ModelCard, str]:
    """Labels of different lengths are compared by their per-token mean log-probability: an adapter
    that takes `logprob_reduction` (hf-vlm, openai-compatible-scoring; both sum by default, and a
    verifier card may ask for the sum) is asked for the mean unless --model-args chose a reduction.
    Returns the card and how its reduction was decided (the manifest records it)."""
    params = inspect.signature(adapter_class(card).__init__).parameters
    if "logprob_reduction" not in params:
        return card, "the adapter takes no logprob_reduction"
    if "logprob_reduction" in (model_args or {}):
        return card, f"logprob_reduction={card.args['logprob_reduction']} given in the model args"
    before = card.args.get("logprob_reduction")
    card = ModelCard(**{**card.to_dict(), "args": {**card.args, "logprob_reduction": "mean"}, "path": card.path})
    return card, ("logprob_reduction=mean set by annotate" +
                  (f" (the card said {before})" if before not in (None, "mean") else ""))


def _reduction(card: ModelCard, instance: Model | None) -> str:
    """How the stored confidences reduce the label's token log-probabilities: 'mean', 'sum', 'text'
    (a closed set of whole texts), or 'unknown' (an adapter that does not say; a plugin may declare
    `logprob_reduction`)."""
    if instance is not None:
        value = getattr(instance, "logprob_reduction", None)
    else:
        value = card.args.get("logprob_reduction", getattr(adapter_class(card), "logprob_reduction", None))
    return value if value in files.REDUCTIONS else "unknown"


def _frames(frames: str | FrameSelection, keyframes: int, min_interval: int, gap: int, stride: int | None,
            seconds: float | None) -> FrameSelection:
    if isinstance(frames, FrameSelection):
        return frames
    if frames not in FRAME_MODES:
        raise BadInput(f"--frames: unknown mode {frames!r}; known: {', '.join(FRAME_MODES)}")
    try:
        return FrameSelection(mode=frames, gap=gap, stride=stride, seconds=seconds, top_k=keyframes,
                              min_interval=min_interval)
    except ValueError as exc:  # "<field>: <why>"; the field named by its command-line option
        name, _, why = str(exc).partition(": ")
        raise BadInput(f"{FRAME_OPTIONS.get(name, name)}: {why or exc}") from None


def _check_numbers(top_k: int | None, per_class: bool, limit: int | None, batch_size: int) -> None:
    if top_k is not None and top_k < 1:
        raise BadInput(f"--top-k must be >= 1, got {top_k}")
    if per_class and top_k is None:
        raise BadInput("--per-class keeps --top-k N pairs per class: give --top-k")
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be >= 1, got {limit}")
    if batch_size < 1:
        raise BadInput(f"--batch-size must be >= 1, got {batch_size}")


def _check_output(out: Path) -> None:
    """An output folder is new, empty, or an annotation folder (it has a store)."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"--output {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "store.sqlite").is_file():
        raise BadInput(f"--output {out} is a folder that holds other files and no annotation store "
                       "(store.sqlite); choose a new or empty folder")


def _dataset(tasks: str | TaskSpec | None, fmt: str | None, root: str | os.PathLike | None, split: str | None,
             options: dict[str, Any] | None, data_dir: Path, include_path: Sequence[str | os.PathLike] | None,
             progress: bool) -> tuple[DatasetSpec, Path, str, str | None]:
    """(dataset spec, its folder, the default prompt, the task's name or None)."""
    if (tasks is None) == (fmt is None):
        raise BadInput("annotate reads one dataset: give --tasks TASK, or --format FORMAT with --root DIR")
    if tasks is not None:
        if fmt is not None or root is not None:
            raise BadInput("--tasks names the dataset: leave out --format and --root")
        specs = task_specs(tasks, dataset_options=options, include_path=include_path)
        if len(specs) != 1:
            raise BadInput(f"annotate reads one dataset: --tasks {tasks!r} names {len(specs)} tasks "
                           f"({', '.join(s.name for s in specs)})")
        task = specs[0]
        if split is not None:
            task = replace(task, dataset=replace(task.dataset, split=split))
        # an IDP task's prompt (a probe task of the IDP side too); FDP prompts hold the action
        idp = getattr(task, "prompt_kind", task.kind) == "idp"
        prompt = task.prompt_template if idp else DEFAULT_PROMPTS["idp"]
        return task.dataset, dataset_root(task, data_dir, progress), prompt, task.name
    if root is None:
        raise BadInput(f"--format {fmt} needs --root DIR (the dataset folder)")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise BadInput(f"--root {folder}: no such folder")
    FORMATS.get(fmt)  # an unknown format: BadInput listing the known ones
    from ..data.inspect import DEFAULT_SPLITS

    spec = DatasetSpec(format=fmt, subfolder=folder.resolve().name or "data",
                       split=split or DEFAULT_SPLITS.get(fmt, "test"), options=dict(options or {}))
    return spec, folder, DEFAULT_PROMPTS["idp"], None


def _read(spec: DatasetSpec, root: Path, frames: FrameSelection, limit: int | None, seed: int) -> list[Transition]:
    """The candidate pairs in the reader's order; with `limit`, a seeded subset (a hash of the seed
    and the pair's id, as `wmbench run --limit`: a larger limit extends a smaller one)."""
    import hashlib

    transitions = list(FORMATS.get(spec.format)(root, spec, frames))
    ids = [t.sample_id for t in transitions]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise BadInput(f"the {spec.format} reader yielded the pair id '{twice}' twice under {root}")
    if not transitions:
        raise BadInput(f"{root}: the {spec.format} reader found no frame pair (split {spec.split!r}, frames "
                       f"{frames.describe()}): check the split and that episodes are longer than the selection needs")
    if limit is not None and limit < len(ids):
        keep = set(sorted(ids, key=lambda sid: hashlib.sha256(f"{seed}:{sid}".encode()).digest())[:limit])
        transitions = [t for t in transitions if t.sample_id in keep]
    return transitions
