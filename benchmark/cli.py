"""The `wmbench` command line. Heavy libraries are imported only inside the commands that need
them, so `wmbench --help`, `list` and `validate` start fast."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from .core.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SAMPLES_FAILED, BadInput

DEFAULT_OUTPUT = "runs"  # as wmbench.run.api.DEFAULT_OUTPUT (not imported: --help stays fast)


def _csv(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _options(flags: list[str] | None) -> dict:
    """Repeatable `k=v` flags; one pair per flag so values may hold commas, e.g. subset=[ag,kubric]."""
    import yaml

    options = {}
    for flag in flags or []:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"expected key=value, got '{flag}'")
        options[key.strip()] = yaml.safe_load(value)
    return options


# run -----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Parse the arguments, plan the (model, tasks) pairs, and call `wmbench.evaluate` for each."""
    from .analysis.leaderboard import collect, markdown
    from .models import parse_model_args
    from .run.api import DEFAULT_OUTPUT, default_plan, evaluate, model_card, model_plan, task_specs

    if args.no_progress:  # also the bars of libraries that load weights (transformers, sentence-transformers)
        os.environ["TQDM_DISABLE"] = "1"
    tasks = task_specs(_csv(args.tasks) or ["default"], limit=args.limit, seed=args.seed,
                       dataset_options=_options(args.dataset_option), include_path=args.include_path)
    model_args = parse_model_args(args.model_args)
    if args.model_name and len(_csv(args.model)) != 1:
        raise BadInput("--model-name names one model; pass a single --model")
    cards = [model_card(m, model_args, args.model_name)[0] for m in _csv(args.model)]
    plan = model_plan(cards, tasks) if cards else default_plan(tasks, model_args)
    single = args.output is not None and args.model is not None and len(plan) == 1
    output = Path(args.output) if args.output is not None else DEFAULT_OUTPUT
    failed, run_dirs = 0, []
    for card, card_tasks in plan:
        run_dir = output if single else output / card.name
        result = evaluate(card_tasks, card, output=run_dir, batch_size=args.batch_size, device=args.device,
                          data_dir=args.data_dir, rescore=args.rescore, retry_failed=args.retry_failed,
                          progress=not args.no_progress, weights_dir=args.weights_dir, limit=args.limit,
                          seed=args.seed, timeout=args.timeout)
        failed += result.failed
        run_dirs.append(run_dir)
        for o in result.outcomes:
            note = f", {o.failed} failed" if o.failed else ""
            print(f"wmbench: {card.name} | {o.task}: {o.selected} samples, {o.new} evaluated now, "
                  f"{o.rescored} rescored{note} -> {run_dir}", file=sys.stderr)
    print(markdown(collect(run_dirs)))
    if failed:
        print(f"wmbench: {failed} sample(s) failed; see 'error' in samples.jsonl of the run directory",
              file=sys.stderr)
        return EXIT_SAMPLES_FAILED
    return EXIT_OK


# list / validate -----------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from .core.tasks import discover_tasks, load_task

        for name, path in sorted(discover_tasks(args.include_path).items()):
            try:
                spec = load_task(path)
                suites = f"  [{', '.join(spec.suites)}]" if spec.suites else ""
                print(f"{name:28s} {spec.kind}  {spec.dataset.format}:{spec.dataset.subfolder}{suites}  "
                      f"metrics: {', '.join(r.key for r in spec.metric_refs)}")
            except BadInput as exc:
                print(f"{name:28s} INVALID: {exc}")
    elif args.what == "models":
        from .models import MODELS, adapter_class, discover_cards

        for name in MODELS.names():
            cls = MODELS.get(name)
            print(f"adapter {name:28s} {', '.join(cls.capabilities()):52s} {cls.description}")
        for name, card in discover_cards().items():
            caps = ", ".join(adapter_class(card).capabilities())
            print(f"card    {name:28s} {caps:52s} adapter={card.adapter} {card.description}")
    else:
        from .metrics import METRICS

        print(f"{'metric':22s} {'kind':4s} {'dir':3s} {'edit-aware':10s} {'needs':22s} available")
        for name in METRICS.names():
            metric = METRICS.get(name)()
            ok, reason = metric.available()
            info = metric.info()
            print(f"{name:22s} {info['kind']:4s} {'↑' if info['higher_is_better'] else '↓':3s} "
                  f"{'yes' if info['edit_aware'] else 'no':10s} {','.join(info['needs']) or '-':22s} "
                  f"{'yes' if ok else 'no: ' + reason}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .models import card_or_task, load_card
    from .core.tasks import load_task
    from .core.yamlspec import read_yaml

    bad = 0
    for path in args.paths:
        why = ""
        try:
            data = read_yaml(Path(path))
            is_card, why = card_or_task(path, data)  # by its keys (misspelled ones too), else its folder
            why = f"checked as a {'model card' if is_card else 'task'}: {why}"
            spec = load_card(path) if is_card else load_task(path)
            print(f"ok  {path}  ({'model card' if is_card else 'task'} '{spec.name}')")
        except BadInput as exc:
            bad += 1
            print(f"error: {exc}" + (f" ({why})" if why else ""), file=sys.stderr)
    return EXIT_BAD_INPUT if bad else EXIT_OK


# data ----------------------------------------------------------------------------------------
def cmd_data_make(args: argparse.Namespace) -> int:
    import shutil

    from .data import resolve_data_dir
    from .run.selection import run_generator

    options = {k: v for k, v in {"episodes": args.episodes, "size": args.size, "seed": args.seed,
                                 "frame_skip": args.frame_skip, "max_frames": args.max_frames,
                                 "tasks": _csv(args.tasks) or None, "camera": args.camera,
                                 "frames_as": args.frames_as}.items() if v is not None}
    root = resolve_data_dir(args.data_dir) / (args.subfolder or args.name)
    if root.exists():
        if not args.force:
            raise BadInput(f"{root} exists; pass --force to generate it again")
        shutil.rmtree(root)
    run_generator(args.name, root, options, progress=not args.no_progress)
    print(f"wmbench: wrote {args.name} data to {root}")
    return EXIT_OK


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from .core.frames import FrameSelection
    from .data.inspect import main as inspect_main

    if args.task:  # the task's format, folder, split, options and frame selection
        from .data import resolve_data_dir
        from .core.tasks import resolve_tasks

        task = resolve_tasks([args.task])[0]
        root = Path(args.root) if args.root else resolve_data_dir(args.data_dir) / task.dataset.subfolder
        options = {**task.dataset.options, "split": task.dataset.split, **_options(args.option)}
        return inspect_main(task.dataset.format, root, options, task.frames, args.limit, args.sheet)
    if not args.format or not args.root:
        raise BadInput("data inspect needs FORMAT and --root, or --task NAME")
    frames = FrameSelection(mode=args.frames, gap=args.gap, seconds=args.seconds)
    return inspect_main(args.format, Path(args.root), _options(args.option), frames, args.limit, args.sheet)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .analysis.formats import render, write_all
    from .analysis.leaderboard import ANCHORS, build, collect

    anchors = _csv(args.anchors) if args.anchors is not None else list(ANCHORS)
    board = build(collect(args.paths or ["results"]), tasks=_csv(args.tasks) or None,
                  metrics=_csv(args.metrics) or None, groups=args.group, anchors=anchors, average=not args.no_avg)
    if args.output:
        for path in write_all(board, Path(args.output), ci=not args.no_ci):
            print(f"wmbench: wrote {path}", file=sys.stderr)
    print(render(board, args.format, ci=not args.no_ci), end="")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from .analysis.compare import compare, render

    rows = compare(Path(args.run_a), Path(args.run_b), tasks=_csv(args.tasks) or None,
                   metrics=_csv(args.metrics) or None, seed=args.seed)
    print(render(rows, args.format, args.run_a, args.run_b), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import write_report

    path = write_report([Path(p) for p in args.runs], Path(args.output), max_samples=args.max_samples,
                        tasks=_csv(args.tasks) or None, data_dir=args.data_dir, thumb=args.thumb_size)
    print(f"wmbench: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return EXIT_OK


def cmd_weights(args: argparse.Namespace) -> int:
    from .metrics.weights import main as weights_main

    return weights_main(args.action, args.ids, args.weights_dir)


# parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmbench",
        description="Evaluate world models in VLMs: forward dynamics prediction (FDP: image + action -> next "
                    "image) and inverse dynamics prediction (IDP: image pair -> action).",
        epilog="Exit codes: 0 success; 1 the run finished but some samples failed (or it was interrupted); "
               "2 bad usage or bad input.")
    parser.add_argument("--debug", action="store_true", help="print the traceback behind an error message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate models on tasks (no arguments: the default suite, built-in baselines)",
                         description="Evaluate models on tasks. With no arguments, runs the 'default' suite for "
                                     "the baseline cards of the 'default' suite on CPU. Re-running the same command "
                                     "resumes: stored samples are not evaluated again.")
    run.add_argument("--tasks", help="comma-separated task names, suite names or task YAML paths (default: default)")
    run.add_argument("--model", help="comma-separated model card names, card YAML paths or adapter names "
                                     "(default: every card in the 'default' suite, on the tasks it supports)")
    run.add_argument("--model-name", help="name of the model in results and tables (default: the card's name, "
                                          "or <adapter>@<checkpoint folder> for an adapter given a path)")
    run.add_argument("--model-args", help="k=v,k2=v2 passed to the adapter (values parsed as YAML scalars)")
    run.add_argument("--limit", type=int, help="evaluate at most N samples per task (a seeded, stable subset)")
    run.add_argument("--batch-size", type=int, default=8, help="samples per model call (default 8)")
    run.add_argument("--device", help="device for adapters that take one, e.g. cpu, cuda, cuda:1")
    run.add_argument("--seed", type=int, help="override the tasks' seed (sample subset and model sampling)")
    run.add_argument("--output", help=f"run directory for a single --model; with several models, one "
                                      f"sub-directory per model inside it (default: {DEFAULT_OUTPUT}/<model>)")
    run.add_argument("--data-dir", help="datasets folder (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    run.add_argument("--weights-dir", help="folder of metric weights (default: $WMBENCH_WEIGHTS_DIR, then the "
                                           "hub and torch hub caches); see `wmbench weights list`")
    run.add_argument("--include-path", action="append", help="extra folder of task YAMLs (repeatable)")
    run.add_argument("--dataset-option", action="append", metavar="K=V",
                     help="override a dataset option of every selected task, e.g. trust_pickle=true (repeatable)")
    run.add_argument("--rescore", action="store_true",
                     help="recompute every metric from stored predictions, without calling the model")
    run.add_argument("--retry-failed", action="store_true", help="evaluate failed samples again")
    run.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="seconds one model call may take; a batch that outlives it is retried sample by sample "
                          "and samples that time out fail (stage model, reason timeout)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="print the traceback behind an error message")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="list tasks, models or metrics")
    lst.add_argument("what", choices=["tasks", "models", "metrics"])
    lst.add_argument("--include-path", action="append", help="extra folder of task YAMLs (repeatable)")
    lst.set_defaults(func=cmd_list)

    val = sub.add_parser("validate", help="check task YAMLs and model cards without running anything")
    val.add_argument("paths", nargs="+", metavar="PATH")
    val.set_defaults(func=cmd_validate)

    data = sub.add_parser("data", help="make built-in datasets or inspect a dataset folder")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    make = data_sub.add_parser("make", help="generate a built-in dataset (e.g. metaworld) under the data dir")
    make.add_argument("name", help="generator name, e.g. metaworld")
    make.add_argument("--episodes", type=int, help="episodes per simulator task")
    make.add_argument("--size", type=int, help="frame size in pixels (square)")
    make.add_argument("--seed", type=int, help="generation seed")
    make.add_argument("--frame-skip", type=int, help="simulator steps per recorded frame")
    make.add_argument("--max-frames", type=int, help="recorded frames per episode at most")
    make.add_argument("--tasks", help="comma-separated simulator task names, e.g. push-v3,reach-v3")
    make.add_argument("--camera", help="simulator camera name (metaworld default: corner4)")
    make.add_argument("--frames-as", choices=["images", "video"], help="store frames as PNG in parquet or as video")
    make.add_argument("--data-dir", help="datasets folder (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    make.add_argument("--subfolder", help="folder name under the data dir (default: the generator name)")
    make.add_argument("--force", action="store_true", help="replace an existing dataset")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(func=cmd_data_make)
    insp = data_sub.add_parser("inspect", help="print a dataset's transitions as JSON lines")
    insp.add_argument("format", nargs="?", help="dataset format, e.g. aurora, lerobot, ssv2")
    insp.add_argument("--root", help="the dataset folder (with --task: default <data dir>/<task subfolder>)")
    insp.add_argument("--task", help="inspect what a task reads: its format, folder, split, options and frames")
    insp.add_argument("--data-dir", help="datasets folder, with --task (default: $WMBENCH_DATA_DIR or "
                                         "~/.cache/wmbench/data)")
    insp.add_argument("--limit", type=int, default=10, help="transitions to print (default 10)")
    insp.add_argument("--option", action="append", help="format option k=v (repeatable)")
    insp.add_argument("--frames", default="gap", choices=["first_last", "gap", "seconds", "keyframes"],
                      help="frame selection without --task (default gap)")
    insp.add_argument("--gap", type=int, default=1, help="frames between source and target (default 1)")
    insp.add_argument("--seconds", type=float, help="gap in seconds, with --frames seconds")
    insp.add_argument("--sheet", help="write a contact-sheet PNG of the printed transitions here")
    insp.set_defaults(func=cmd_data_inspect)

    board = sub.add_parser("leaderboard", help="tabulate run directories (results.json files)",
                           description="Tabulate runs: models x (task, metric), mean +/- 95% CI, anchors set "
                                       "apart, best non-anchor value in bold. See docs/leaderboard.md.")
    board.add_argument("paths", nargs="*", metavar="RUN_DIR", help="run directories or folders of them "
                                                                   "(default: results/)")
    board.add_argument("--tasks", help="comma-separated task names or globs, in column order (default: all)")
    board.add_argument("--metrics", help="comma-separated metrics, in column order (default: all)")
    board.add_argument("--group", action="append", metavar="[LABEL=]RULE",
                       help="put tasks in one column group, one column per subset plus Avg: a task-name pattern "
                            "with {subset} (e.g. aurora_{subset}_fdp) or suite:NAME (repeatable)")
    board.add_argument("--format", default="md", choices=["md", "latex", "csv", "html"], help="printed format")
    board.add_argument("--output", metavar="DIR", help="also write leaderboard.{md,tex,csv,html} into DIR")
    board.add_argument("--anchors", help="comma-separated anchor models (default: oracle,copy,blur,majority)")
    board.add_argument("--no-ci", action="store_true", help="leave the +/- intervals out")
    board.add_argument("--no-avg", action="store_true", help="no Avg column for groups")
    board.set_defaults(func=cmd_leaderboard)

    comp = sub.add_parser("compare", help="paired comparison of two runs on their common samples",
                          description="Per task and metric: paired samples, means, the difference B - A with a "
                                      "95% clustered bootstrap CI, the Wilcoxon signed-rank p-value and the "
                                      "matched-pairs rank-biserial effect size.")
    comp.add_argument("run_a", metavar="RUN_A")
    comp.add_argument("run_b", metavar="RUN_B")
    comp.add_argument("--tasks", help="comma-separated task names (default: the tasks both runs have)")
    comp.add_argument("--metrics", help="comma-separated metrics (default: those both runs scored)")
    comp.add_argument("--format", default="text", choices=["text", "md", "csv", "json"])
    comp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    comp.set_defaults(func=cmd_compare)

    rep = sub.add_parser("report", help="one self-contained HTML page of samples, predictions and figures")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--output", default="report.html", help="the HTML file (default: report.html)")
    rep.add_argument("--max-samples", type=int, default=200, help="samples shown at most (default 200)")
    rep.add_argument("--tasks", help="comma-separated task names (default: all tasks of the runs)")
    rep.add_argument("--data-dir", help="datasets folder for source/target frames (default: the runs' data dir, "
                                        "else $WMBENCH_DATA_DIR)")
    rep.add_argument("--thumb-size", type=int, default=128, help="thumbnail size in pixels (default 128)")
    rep.set_defaults(func=cmd_report)

    weights = sub.add_parser("weights", help="list, fetch or verify metric weights")
    weights.add_argument("action", choices=["list", "fetch", "verify"])
    weights.add_argument("ids", nargs="*", metavar="ID")
    weights.add_argument("--weights-dir", help="folder holding weights (default: $WMBENCH_WEIGHTS_DIR, hub caches)")
    weights.set_defaults(func=cmd_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return args.func(args)
    except BadInput as exc:
        return _refuse(str(exc), args)
    except OSError as exc:  # the environment: a full disk, an unreadable or unwritable path
        return _refuse(_os_error(exc), args)
    except sqlite3.Error as exc:  # a run store that cannot be written (read-only, full disk) or is damaged
        return _refuse(f"the run store failed: {exc} (see the run directory named above; a read-only or full "
                       "disk, or a damaged store.sqlite)", args)
    except KeyboardInterrupt:
        print("wmbench: interrupted; every finished batch is stored: re-run the same command to resume",
              file=sys.stderr)
        return EXIT_SAMPLES_FAILED


def _refuse(message: str, args: argparse.Namespace) -> int:
    """Bad input or environment: one line naming what and where, exit 2; the traceback with --debug."""
    from .core.secrets import scrub

    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()
    print(f"wmbench: error: {scrub(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == 28:
        return f"no space left on the device{where}; free some space and run the same command again to resume"
    return f"{exc.strerror or exc}{where}"


if __name__ == "__main__":
    sys.exit(main())
