"""`wmbench annotate` on the command line: its options, and the lines it prints around a call of
`wmbench.run.annotate.annotate`. Importing this module is cheap (the parser is built for every
`wmbench` command); the annotation code loads when the command runs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..core.errors import EXIT_OK, EXIT_SAMPLES_FAILED

DESCRIPTION = ("Label frame pairs (motion keyframes of videos by default) with an IDP model's infer_action, score "
               "each label with its action_logprob (a per-token mean where the adapter allows), keep a stratified "
               "top-K (round-robin over action classes, best first) and write it in the AURORA training format: "
               "OUTPUT/train.json, OUTPUT/images/, OUTPUT/manifest.json (every candidate). The model never sees the "
               "dataset's action texts. Re-running the same command resumes. See docs/bootstrapping.md.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add = parser.add_argument
    add("--model", required=True, help="a card name, card YAML, adapter name or package.module:Class with both "
                                       "infer_action and action_logprob")
    add("--model-args", help="k=v,k2=v2 passed to the adapter (values parsed as YAML scalars)")
    add("--output", required=True, help="the annotation folder: new, empty, or one to resume")
    add("--tasks", help="read the dataset of this task (format, data dir subfolder, split, options)")
    add("--format", help="read a dataset folder with this reader instead (needs --root)")
    add("--root", help="the dataset folder, with --format")
    add("--split", help="the split to read (default: the task's; with --format, the reader's usual one)")
    add("--dataset-option", action="append", metavar="K=V", help="a dataset option (repeatable)")
    add("--frames", default="keyframes", choices=["keyframes", "gap", "seconds", "first_last"],
        help="frame pairs of videos (default keyframes: consecutive motion keyframes); image-pair datasets give "
             "their own pairs")
    add("--keyframes", type=int, default=4, help="keyframes per episode, with --frames keyframes (default 4)")
    add("--min-interval", type=int, default=8, help="frames between keyframes at least (default 8)")
    add("--gap", type=int, default=1, help="frames between source and target, with --frames gap (default 1)")
    add("--stride", type=int, help="frames between pairs, with --frames gap or seconds (default: the gap)")
    add("--seconds", type=float, help="the gap in seconds, with --frames seconds")
    add("--top-k", type=int, help="pairs kept in all, round-robin over action classes, best score first "
                                  "(default: every labelled pair)")
    add("--per-class", action="store_true", help="keep --top-k pairs per class instead of in all")
    add("--class-key", help="a pair's class is the reader's meta[KEY] (default: the label's first word, lower-cased)")
    add("--prompt", help="the IDP prompt (default: the task's IDP prompt, else the built-in one)")
    add("--limit", type=int, help="label at most N candidate pairs (a seeded, stable subset)")
    add("--batch-size", type=int, default=8, help="pairs per model call (default 8)")
    add("--seed", type=int, default=0, help="seed of the subset and of the model's sampling (default 0)")
    add("--device", help="device for adapters that take one, e.g. cpu, cuda, cuda:1")
    add("--data-dir", help="datasets folder, with --tasks (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    add("--include-path", action="append", help="extra folder of task YAMLs (repeatable)")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback behind an error message")


def run_command(args: argparse.Namespace, dataset_options: dict[str, Any]) -> int:
    """Call `annotate` with the parsed options; print a summary (stderr) and the training file's
    path (stdout). Exit code: 1 when a pair failed, else 0 (pairs pending in another process that
    shares the folder are counted in the summary; its own end rewrites the files with them)."""
    from ..models import parse_model_args
    from .annotate import annotate

    if args.no_progress:  # also the bars of libraries that load weights
        os.environ["TQDM_DISABLE"] = "1"
    names = ("output", "tasks", "format", "root", "split", "frames", "keyframes", "min_interval", "gap", "stride",
             "seconds", "top_k", "per_class", "class_key", "limit", "batch_size", "seed", "prompt", "data_dir",
             "device", "include_path")
    result = annotate(args.model, parse_model_args(args.model_args), dataset_options=dataset_options,
                      progress=not args.no_progress, **{name: getattr(args, name) for name in names})
    failed = ", ".join(f"{stage}: {n}" for stage, n in result.failed_by_stage.items())
    print(f"wmbench: annotate: {result.candidates} candidate pair(s), {result.labelled} labelled ({result.new} now), "
          f"{result.failed} failed{f' ({failed})' if failed else ''}, {result.skipped} skipped, {result.pending} "
          f"pending; kept {result.kept} of {len(result.classes)} class(es) -> {result.train_file} (every candidate "
          f"with its label and score: {result.manifest})", file=sys.stderr)
    print(result.train_file)
    return EXIT_SAMPLES_FAILED if result.failed else EXIT_OK
