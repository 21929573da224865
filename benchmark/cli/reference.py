"""`wmbench reference train`, `evaluate` and `report` (docs/paper-in-miniature.md)."""

from __future__ import annotations

import argparse

from ..core.errors import EXIT_OK, EXIT_SAMPLES_FAILED


def register(sub: argparse._SubParsersAction) -> None:
    ref = sub.add_parser("reference", help="train the reference world models; tabulate the paper in miniature",
                         description="The reference models (ref-idp, ref-fdp, ref-fdp-boot) trained on the built-in "
                                     "Meta-World data, and the paper-in-miniature tables. docs/paper-in-miniature.md.")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True, metavar="COMMAND")
    train = ref_sub.add_parser("train", help="generate the train/unlabelled splits when missing and train the "
                                             "reference models (about 5 minutes on 2 CPU cores, 6 when the splits are made)")
    train.add_argument("--output", help="folder for the checkpoints, annotations and loss curves "
                                        "(default: ~/.cache/wmbench/reference/seed-<seed>)")
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0: the committed checkpoints)")
    train.add_argument("--data-dir", help="datasets folder (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_reference_train)
    ev = ref_sub.add_parser("evaluate", help="run the reference models through the committed protocol (default "
                                             "suite, probes)")
    ev.add_argument("--seed", type=int, help="the checkpoints of `wmbench reference train --seed K` (its default "
                                             "folder), as models named <card>@seed<K> under <output>/seeds/seed-<K>/ "
                                             "(default: the committed checkpoints, under <output>/default and "
                                             "<output>/probe)")
    ev.add_argument("--checkpoints", help="a folder of checkpoints written by `wmbench reference train --output`")
    ev.add_argument("--output", default="results", help="results folder (default: results/)")
    ev.add_argument("--data-dir", help="datasets folder (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_reference_evaluate)
    report = ref_sub.add_parser("report", help="tables (a)-(d) and the figure of docs/paper-in-miniature.md from "
                                               "committed run directories")
    report.add_argument("--results", default="results", help="folder of run directories (default: results/)")
    report.add_argument("--output", default="docs/paper-in-miniature.md",
                        help="the markdown file whose generated section is rewritten (default: %(default)s)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.set_defaults(func=cmd_reference_report)


def cmd_reference_train(args: argparse.Namespace) -> int:
    from ..run.reference import train_references

    result = train_references(args.output, seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    times = result.record["times_s"]
    print(f"wmbench: trained into {result.output} ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})")
    for name, path in result.checkpoints.items():
        info = result.record["models"][name]
        print(f"  {name:13s} {path.name}  {info['parameters']:,} parameters, {info['bytes'] / 1e6:.2f} MB, "
              f"loss {info['first_loss']:.3f} -> {info['final_loss']:.3f}, sha256 {result.sha256[name]}")
    labels = result.record["data"]["unlabelled"]
    print(f"  annotations: {labels['kept']} unlabelled pairs labelled by ref-idp "
          f"(exact match with the withheld motion texts: {labels['label_exact_match']:.3f})")
    print(f"evaluate them with `wmbench reference evaluate --seed {args.seed} --checkpoints {result.output}` "
          f"(models named <card>@seed{args.seed}, each checkpoint pinned by its sha256); loss curves: "
          f"{result.output / 'loss_curves.png'}")
    return EXIT_OK


def cmd_reference_evaluate(args: argparse.Namespace) -> int:
    from ..run.reference import evaluate_references

    runs = evaluate_references(args.seed, checkpoints=args.checkpoints, output=args.output, data_dir=args.data_dir,
                               progress=not args.no_progress)
    failed = sum(r.failed for r in runs)
    print(f"wmbench: {len(runs)} runs: {', '.join(str(r.run_dir) for r in runs)}"
          + (f"; {failed} sample(s) failed (see 'error' in their samples.jsonl)" if failed else ""))
    return EXIT_SAMPLES_FAILED if failed else EXIT_OK


def cmd_reference_report(args: argparse.Namespace) -> int:
    from ..analysis.miniature import write_report

    path = write_report(args.results, args.output, seed=args.seed)
    print(f"wmbench: wrote the generated section of {path} and its figures")
    return EXIT_OK
