"""The `wmbench` argument parser."""

from __future__ import annotations

import argparse

from .commands import (DEFAULT_OUTPUT, cmd_run, cmd_annotate, cmd_list, cmd_validate, cmd_data_make, cmd_data_inspect, cmd_leaderboard, cmd_merge, cmd_compare, cmd_report, cmd_weights, cmd_judge_drift)


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
    run.add_argument("--shard", metavar="I/N",
                     help="evaluate shard I of N (from 0) into <output>/shards/I-of-N; default: the launcher's "
                          "RANK/WORLD_SIZE (torchrun, accelerate) or Slurm array variables; the last shard to "
                          "finish merges (docs/scaling.md)")
    run.add_argument("--judge", metavar="NAME|CARD",
                     help="the judge of every judged metric (vlm_judge): a card name, card YAML or adapter; the "
                          "column becomes <metric>@<judge> (docs/paper-protocol.md)")
    run.add_argument("--judge-args", metavar="K=V,...", help="model args of the judge (values parsed as YAML scalars)")
    switch = run.add_mutually_exclusive_group()
    switch.add_argument("--with-counterfactual", dest="counterfactual", action="store_true", default=None,
                        help="add counterfactual_sensitivity to FDP tasks: one more model call per sample")
    switch.add_argument("--no-counterfactual", dest="counterfactual", action="store_false",
                        help="leave out metrics that need counterfactual predictions (halves an FDP task's calls)")
    run.add_argument("--dry-run", action="store_true",
                     help="print per model x task the samples, model / judge / verifier calls, frames to decode and "
                          "the estimated cost, then exit 0 without loading any model or writing anything")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="print the traceback behind an error message")
    run.set_defaults(func=cmd_run)

    from ..run.annotate_cli import add_arguments as annotate_arguments  # cheap: imports argparse only

    ann = sub.add_parser("annotate", help="label unlabelled frame pairs with an IDP model: FDP training data")
    annotate_arguments(ann)
    ann.set_defaults(func=cmd_annotate)

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
    make.add_argument("--split", help="metaworld: test (default), train or unlabelled (other seeds; see "
                      "docs/paper-in-miniature.md)")
    make.add_argument("--data-dir", help="datasets folder (default: $WMBENCH_DATA_DIR or ~/.cache/wmbench/data)")
    make.add_argument("--subfolder", help="folder name under the data dir (default: the generator name, "
                      "+ '-<split>' for a split other than test)")
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

    mrg = sub.add_parser("merge", help="merge the shard stores of a data-parallel run into the run",
                         description="Merge <run>/shards/*/ into the run's store, score set-level metrics over the "
                                     "merged set and write results.json (e.g. after a Slurm array). The model is "
                                     "never called.")
    mrg.add_argument("run_dir", metavar="RUN_DIR")
    mrg.add_argument("--data-dir", help="datasets folder (default: the shards' data dir)")
    mrg.add_argument("--batch-size", type=int, default=8, help="samples per scoring batch (default 8)")
    mrg.add_argument("--no-progress", action="store_true", help="no progress bars")
    mrg.set_defaults(func=cmd_merge)

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

    drift = sub.add_parser("judge-drift", help="compare the judge scores of the same predictions under two judges",
                           description="Judge scores of the same stored predictions in two runs (another judge, or the "
                                       "same judge at another date: `wmbench run ... --rescore --judge X` into a copy "
                                       "of a run): Spearman and Kendall rank correlation, the mean shift B - A with a "
                                       "95% bootstrap CI, and the samples that moved most. docs/paper-protocol.md.")
    drift.add_argument("run_a", metavar="RUN_A")
    drift.add_argument("run_b", metavar="RUN_B")
    drift.add_argument("--tasks", help="comma-separated task names (default: the tasks both runs judged)")
    drift.add_argument("--metric-a", help="the judged metric key in RUN_A (default: its only judged metric per task)")
    drift.add_argument("--metric-b", help="the judged metric key in RUN_B (default: its only judged metric per task)")
    drift.add_argument("--top", type=int, default=10, help="samples that moved most, per task (default 10)")
    drift.add_argument("--format", default="text", choices=["text", "md", "json"])
    drift.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    drift.set_defaults(func=cmd_judge_drift)

    weights = sub.add_parser("weights", help="list, fetch or verify metric weights")
    weights.add_argument("action", choices=["list", "fetch", "verify"])
    weights.add_argument("ids", nargs="*", metavar="ID")
    weights.add_argument("--weights-dir", help="folder holding weights (default: $WMBENCH_WEIGHTS_DIR, hub caches)")
    weights.set_defaults(func=cmd_weights)
    from ..analysis.human import register_cli as human_commands  # argparse only: --help stays fast

    human_commands(sub)
    from .reference import register as reference_commands

    reference_commands(sub)
    return parser
