"""The commands of the `wmbench` CLI: each parses nothing (argparse did) and calls the Python API.
Heavy libraries are imported inside the commands that need them, so `wmbench --help`, `list` and
`validate` start fast."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SAMPLES_FAILED, BadInput

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
    from ..analysis.leaderboard import collect, markdown
    from ..models import parse_model_args
    from ..run.api import DEFAULT_OUTPUT, default_plan, evaluate, model_card, model_plan, task_specs

    if args.no_progress:  # also the bars of libraries that load weights (transformers, sentence-transformers)
        os.environ["TQDM_DISABLE"] = "1"
    tasks = task_specs(_csv(args.tasks) or ["default"], limit=args.limit, seed=args.seed,
                       dataset_options=_options(args.dataset_option), include_path=args.include_path,
                       judge=args.judge, judge_args=parse_model_args(args.judge_args) or None,
                       with_counterfactual=args.counterfactual)  # the judge and the switch: rewritten once, here
    model_args = parse_model_args(args.model_args)
    if args.model_name and len(_csv(args.model)) != 1:
        raise BadInput("--model-name names one model; pass a single --model")
    cards = [model_card(m, model_args, args.model_name)[0] for m in _csv(args.model)]
    plan = model_plan(cards, tasks) if cards else default_plan(tasks, model_args)
    single = args.output is not None and args.model is not None and len(plan) == 1
    if args.output is not None and not args.output.strip():
        raise BadInput("--output is empty: name a run directory (default runs/<model>)")
    output = Path(args.output) if args.output is not None else DEFAULT_OUTPUT
    failed, run_dirs = 0, []
    if args.dry_run:  # the same plan, printed; nothing built, run or written
        from .protocol import dry_run

        return dry_run(args, [(card, t, output if single else output / card.name) for card, t in plan])
    for card, card_tasks in plan:
        run_dir = output if single else output / card.name
        result = evaluate(card_tasks, card, output=run_dir, batch_size=args.batch_size, device=args.device,
                          data_dir=args.data_dir, rescore=args.rescore, retry_failed=args.retry_failed,
                          progress=not args.no_progress, weights_dir=args.weights_dir, limit=args.limit,
                          seed=args.seed, timeout=args.timeout, shard=args.shard)
        failed += result.failed
        if result.run_dir != run_dir:  # a shard of a data-parallel run, not merged yet
            print(f"wmbench: shard {result.run_dir.name} of {run_dir} is done; the last shard to finish merges "
                  f"(or run `wmbench merge {run_dir}`)", file=sys.stderr)
        else:
            run_dirs.append(run_dir)
        for o in result.outcomes:
            note = f", {o.failed} failed" if o.failed else ""
            print(f"wmbench: {card.name} | {o.task}: {o.selected} samples, {o.new} evaluated now, "
                  f"{o.rescored} rescored{note} -> {run_dir}", file=sys.stderr)
    if run_dirs:
        print(markdown(collect(run_dirs)))
    if failed:
        print(f"wmbench: {failed} sample(s) failed; see 'error' in samples.jsonl of the run directory",
              file=sys.stderr)
        return EXIT_SAMPLES_FAILED
    return EXIT_OK


def cmd_annotate(args: argparse.Namespace) -> int:
    from ..run.annotate_cli import run_command  # the options are in run/annotate_cli.py

    return run_command(args, _options(args.dataset_option))


# list / validate -----------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from ..core.tasks import discover_tasks, load_task

        from .protocol import call_notes

        for name, path in sorted(discover_tasks(args.include_path).items()):
            try:
                spec = load_task(path)
                suites = f"  [{', '.join(spec.suites)}]" if spec.suites else ""
                print(f"{name:28s} {spec.kind}  {spec.dataset.format}:{spec.dataset.subfolder}{suites}  "
                      f"metrics: {', '.join(r.key for r in spec.metric_refs)}{call_notes(spec)}")
            except BadInput as exc:
                print(f"{name:28s} INVALID: {exc}")
    elif args.what == "models":
        from ..models import MODELS, adapter_class, discover_cards

        for name in MODELS.names():
            cls = MODELS.get(name)
            print(f"adapter {name:28s} {', '.join(cls.capabilities()):52s} {cls.description}")
        for name, card in discover_cards().items():
            caps = ", ".join(adapter_class(card).capabilities())
            print(f"card    {name:28s} {caps:52s} adapter={card.adapter} {card.description}")
    else:
        from ..metrics import METRICS

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
    from ..models import card_or_task, load_card
    from ..core.tasks import load_task
    from ..core.yamlspec import read_yaml

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

    from ..data import resolve_data_dir
    from ..run.selection import run_generator

    options = {k: v for k, v in {"episodes": args.episodes, "size": args.size, "seed": args.seed,
                                 "frame_skip": args.frame_skip, "max_frames": args.max_frames,
                                 "tasks": _csv(args.tasks) or None, "camera": args.camera,
                                 "frames_as": args.frames_as, "split": args.split}.items() if v is not None}
    default_folder = args.name if args.split in (None, "test") else f"{args.name}-{args.split}"
    root = resolve_data_dir(args.data_dir) / (args.subfolder or default_folder)
    if root.exists():
        if not args.force:
            raise BadInput(f"{root} exists; pass --force to generate it again")
        shutil.rmtree(root)
    run_generator(args.name, root, options, progress=not args.no_progress)
    print(f"wmbench: wrote {args.name} data to {root}")
    return EXIT_OK


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from ..core.frames import FrameSelection
    from ..data.inspect import main as inspect_main

    if args.task:  # the task's format, folder, split, options and frame selection
        from ..data import resolve_data_dir
        from ..core.tasks import resolve_tasks

        task = resolve_tasks([args.task])[0]
        root = Path(args.root) if args.root else resolve_data_dir(args.data_dir) / task.dataset.subfolder
        options = {**task.dataset.options, "split": task.dataset.split, **_options(args.option)}
        return inspect_main(task.dataset.format, root, options, task.frames, args.limit, args.sheet)
    if not args.format or not args.root:
        raise BadInput("data inspect needs FORMAT and --root, or --task NAME")
    frames = FrameSelection(mode=args.frames, gap=args.gap, seconds=args.seconds)
    return inspect_main(args.format, Path(args.root), _options(args.option), frames, args.limit, args.sheet)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..analysis.formats import render, write_all
    from ..analysis.leaderboard import ANCHORS, build, collect

    anchors = _csv(args.anchors) if args.anchors is not None else list(ANCHORS)
    board = build(collect(args.paths or ["results"]), tasks=_csv(args.tasks) or None,
                  metrics=_csv(args.metrics) or None, groups=args.group, anchors=anchors, average=not args.no_avg)
    if args.output:
        for path in write_all(board, Path(args.output), ci=not args.no_ci):
            print(f"wmbench: wrote {path}", file=sys.stderr)
    print(render(board, args.format, ci=not args.no_ci), end="")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from ..analysis.leaderboard import collect, markdown
    from ..run.api import merge

    result = merge(args.run_dir, data_dir=args.data_dir, batch_size=args.batch_size, progress=not args.no_progress)
    print(markdown(collect([result.run_dir])))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from ..analysis.compare import compare, render

    rows = compare(Path(args.run_a), Path(args.run_b), tasks=_csv(args.tasks) or None,
                   metrics=_csv(args.metrics) or None, seed=args.seed)
    print(render(rows, args.format, args.run_a, args.run_b), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..analysis.report import write_report

    path = write_report([Path(p) for p in args.runs], Path(args.output), max_samples=args.max_samples,
                        tasks=_csv(args.tasks) or None, data_dir=args.data_dir, thumb=args.thumb_size)
    print(f"wmbench: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return EXIT_OK


def cmd_weights(args: argparse.Namespace) -> int:
    from ..metrics.weights import main as weights_main

    return weights_main(args.action, args.ids, args.weights_dir)


def cmd_judge_drift(args: argparse.Namespace) -> int:
    from ..analysis.judge_drift import judge_drift, render

    report = judge_drift(Path(args.run_a), Path(args.run_b), tasks=_csv(args.tasks) or None,
                         metric_a=args.metric_a, metric_b=args.metric_b, top=args.top, seed=args.seed)
    print(render(report, args.format), end="")
    return EXIT_OK
