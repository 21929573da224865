"""`wmbench reference train` and `evaluate`: wmbench's reference world models, trained on the
built-in Meta-World data, and the committed protocol they are evaluated with (EVALUATIONS).

The pipeline (Qiu et al.'s bootstrapping in miniature), all on CPU:
1. the `train` and `unlabelled` splits of the built-in data are generated when missing (data dir
   subfolders `metaworld-train`, `metaworld-unlabelled`; seeds 1 and 2, the test split is seed 0);
2. `ref-idp` is trained on the labelled `train` pairs;
3. the `unlabelled` pairs are labelled by `ref-idp` through `wmbench annotate` (their own action
   texts are never read for training; they only measure the labels' accuracy afterwards);
4. `ref-fdp` is trained on `train`; `ref-fdp-boot` with the same configuration and number of steps
   on `train` plus the annotated pairs.
Every pair is a gap-8 pair (stride 1), as the metaworld_* tasks' pairs (gap 8, stride 4).
The output folder gets the three checkpoints, `annotations/` (annotate's output), `curves.json`
(the loss every 10 steps), `loss_curves.png` and `training.json` (sha256s, pair counts, times).
Training is deterministic per seed for one torch build and thread count.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.frames import FrameSelection
from ..core.tasks import DatasetSpec
from ..data import FORMATS, resolve_data_dir
from ..models.reference import training
from ..models.reference.training import Pairs, TrainConfig

FRAMES = FrameSelection(mode="gap", gap=8, stride=1)
SPLIT_FOLDERS = {"train": "metaworld-train", "unlabelled": "metaworld-unlabelled"}
#: The configurations, fixed before any test result was seen (steps sized to the CPU budget).
CONFIGS = {
    "ref-idp": TrainConfig("idp", size=32, width=32, steps=1000),
    "ref-fdp": TrainConfig("fdp", size=32, width=24, components=8, steps=2000),
    "ref-fdp-boot": TrainConfig("fdp", size=32, width=24, components=8, steps=2000),
}
DEFAULT_OUTPUT = Path("~/.cache/wmbench/reference")


@dataclass(frozen=True)
class TrainingResult:
    output: Path
    checkpoints: dict[str, Path]
    sha256: dict[str, str]
    record: dict[str, Any]


def train_references(output: str | os.PathLike | None = None, *, seed: int = 0,
                     data_dir: str | os.PathLike | None = None, progress: bool = True,
                     steps: dict[str, int] | None = None, data_options: dict[str, Any] | None = None,
                     batch_size: int | None = None) -> TrainingResult:
    """Generate the splits when missing and train ref-idp, ref-fdp and ref-fdp-boot into `output`
    (default ~/.cache/wmbench/reference/seed-<seed>). `steps` overrides a model's steps, and
    `data_options` the splits' generator options (both for quick runs: tests, smoke checks)."""
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BadInput(f"--seed must be an integer >= 0, got {seed!r}")
    out = Path(output).expanduser() if output else DEFAULT_OUTPUT.expanduser() / f"seed-{seed}"
    if out.exists() and not out.is_dir():
        raise BadInput(f"--output {out} is a file, not a folder")
    if (out / "annotations").exists() and not (out / "annotations" / "store.sqlite").is_file():
        raise BadInput(f"{out / 'annotations'} exists and is not the annotation folder of an earlier training "
                       "(it is replaced on every training); move it away or choose another --output")
    configs = _configs(seed, steps or {}, batch_size)
    data_dir = resolve_data_dir(data_dir)
    times: dict[str, float] = {}
    roots = {split: _split_root(split, data_dir, data_options or {}, progress, times) for split in SPLIT_FOLDERS}
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"seed": seed, "torch": torch.__version__, "threads": torch.get_num_threads(),
                              "frames": FRAMES.describe(), "data": {}, "models": {}}

    start = time.perf_counter()
    train_pairs = load_pairs(_spec("train", data_options), roots["train"], configs["ref-idp"].size, progress)
    record["data"]["train"] = train_pairs.description
    times["load train pairs"] = time.perf_counter() - start

    curves, checkpoints, digests = {}, {}, {}

    def fit(name: str, pairs: Pairs) -> None:
        t0 = time.perf_counter()
        net, losses = training.train(configs[name], pairs, progress, desc=f"train {name}")
        times[f"train {name}"] = time.perf_counter() - t0
        curves[name] = training.curve(losses)
        info = {"pairs": len(pairs), "first_loss": losses[0], "final_loss": sum(losses[-20:]) / len(losses[-20:]),
                "data": pairs.description}
        checkpoints[name] = out / f"{name}.safetensors"
        digests[name] = training.save(checkpoints[name], net, configs[name], info)
        record["models"][name] = {**info, "config": asdict(configs[name]), "sha256": digests[name],
                                  "parameters": sum(p.numel() for p in net.parameters()),
                                  "bytes": checkpoints[name].stat().st_size}

    fit("ref-idp", train_pairs)
    t0 = time.perf_counter()
    annotated, label_quality = annotate_unlabelled(checkpoints["ref-idp"], digests["ref-idp"], roots["unlabelled"],
                                                   out / "annotations", data_options, configs["ref-fdp"].size,
                                                   progress)
    times["annotate unlabelled"] = time.perf_counter() - t0
    record["data"]["unlabelled"] = {**annotated.description, **label_quality}
    fit("ref-fdp", train_pairs)
    fit("ref-fdp-boot", Pairs.concat([train_pairs, annotated]))
    record["times_s"] = {k: round(v, 1) for k, v in times.items()}
    (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
    (out / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    plot_curves(curves, out / "loss_curves.png")
    return TrainingResult(out, checkpoints, digests, record)


def _configs(seed: int, steps: dict[str, int], batch_size: int | None) -> dict[str, TrainConfig]:
    unknown = sorted(set(steps) - set(CONFIGS))
    if unknown:
        raise BadInput(f"steps: unknown model(s) {unknown}; known: {', '.join(CONFIGS)}")
    out = {}
    for name, config in CONFIGS.items():
        count = int(steps.get(name, config.steps))
        if count < 1:
            raise BadInput(f"steps: {name} needs at least 1 step, got {count}")
        out[name] = replace(config, seed=seed, steps=count, batch_size=batch_size or config.batch_size)
    return out


def _generator_options(split: str, data_options: dict[str, Any] | None) -> dict[str, Any]:
    """The split's generator options, all explicit: a folder generated with others (another seed or
    episode count) is refused by the reader, naming the difference, instead of trained on."""
    from ..data.metaworld import SPLIT_DEFAULTS

    return {**SPLIT_DEFAULTS[split], **(data_options or {}), "split": split}


def _spec(split: str, data_options: dict[str, Any] | None) -> DatasetSpec:
    return DatasetSpec(format="metaworld", subfolder=SPLIT_FOLDERS[split], split=split, generator="metaworld",
                       generator_options=_generator_options(split, data_options))


def _split_root(split: str, data_dir: Path, data_options: dict[str, Any], progress: bool,
                times: dict[str, float]) -> Path:
    from .selection import run_generator

    root = data_dir / SPLIT_FOLDERS[split]
    if not root.exists():
        print(f"wmbench: generating the Meta-World {split} split under {root}", file=sys.stderr)
        t0 = time.perf_counter()
        run_generator("metaworld", root, _generator_options(split, data_options), progress)
        times[f"generate {split}"] = time.perf_counter() - t0
    return root


def load_pairs(spec: DatasetSpec, root: Path, size: int, progress: bool = True) -> Pairs:
    """The frame pairs of a dataset at `size`, with the motion factors of their action texts (the
    built-in data: gap-8 pairs; others: the reader's own pairs). Pairs whose text is outside the
    language are left out and counted."""
    import torch
    from tqdm import tqdm

    from ..data.metaworld_motion import parse_motion
    from ..models.reference.nets import resize

    transitions = list(FORMATS.get(spec.format)(root, spec, FRAMES if spec.format == "metaworld" else FrameSelection()))
    sources, targets, motions, skipped = [], [], [], 0
    for t in tqdm(transitions, desc=f"load {root.name}", unit="pair", disable=not progress):
        motion = parse_motion(t.action_text or "")
        if motion is None or t.target is None:
            skipped += 1
            continue
        sources.append(resize([t.source.load()], size))
        targets.append(resize([t.target.load()], size))
        motions.append(list(motion))
    if not sources:
        raise BadInput(f"{root}: no frame pair with a motion text to train on")
    description = {"folder": root.name, "format": spec.format, "pairs": len(sources), "left_out": skipped}
    if spec.format == "metaworld":
        description.update(split=spec.split, episodes=len({t.episode_id for t in transitions}))
    return Pairs(torch.cat(sources), torch.cat(targets), torch.tensor(motions, dtype=torch.long), description)


def annotate_unlabelled(checkpoint: Path, digest: str, root: Path, output: Path, data_options: dict[str, Any] | None,
                        size: int, progress: bool) -> tuple[Pairs, dict[str, Any]]:
    """Label the unlabelled split with ref-idp through `annotate` (every pair kept) and read the
    written AURORA training file back as FDP training pairs. Also returns the labels' accuracy
    against the split's own motion texts (measured only, never trained on)."""
    from ..models import ModelCard
    from .annotate import annotate
    from .annotate_files import image_names

    if output.exists():  # a new ref-idp: its labels, not a previous one's
        import shutil

        shutil.rmtree(output)
    card = ModelCard(name="ref-idp", adapter="reference-idp", args={"checkpoint": str(checkpoint), "sha256": digest})
    spec = _spec("unlabelled", data_options)
    result = annotate(card, output=output, format="metaworld", root=root, split="unlabelled", frames=FRAMES,
                      batch_size=64, progress=progress)
    entries = json.loads(result.train_file.read_text(encoding="utf-8"))
    source = list(FORMATS.get("metaworld")(root, spec, FRAMES))
    truth = {image_names(t.sample_id)[0]: t.action_text for t in source}
    correct = sum(truth.get(e["input"]) == e["instruction"] for e in entries)
    pairs = load_pairs(DatasetSpec(format="aurora", subfolder=output.name, split="train",
                                   options={"file": result.train_file.name}), output, size, progress)
    quality = {"from": {"folder": root.name, "split": "unlabelled", "episodes": len({t.episode_id for t in source})},
               "labelled": result.labelled, "kept": result.kept, "failed": result.failed,
               "label_exact_match": round(correct / max(len(entries), 1), 4)}
    return pairs, quality


def plot_curves(curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, values in curves.items():
        ax = axes[0] if name == "ref-idp" else axes[1]
        ax.plot([10 * i for i in range(len(values))], values, label=name)
    axes[0].set(title="IDP: -log p(text) per pair", xlabel="step", ylabel="loss")
    axes[1].set(title="FDP: mixture NLL per pixel dim (+ relaxed WTA term)", xlabel="step")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The committed protocol: (folder under the results folder, tasks, reference cards).
EVALUATIONS = (("default", "default", ("ref-idp", "ref-fdp", "ref-fdp-boot", "ref-fdp-bon2", "ref-fdp-bon4",
                                       "ref-fdp-bon8")),
               ("probe", "metaworld_probe", ("ref-idp",)),
               ("probe", "metaworld_probe_fdp", ("ref-fdp", "ref-fdp-boot")))


def evaluate_references(seed: int | None = None, *, checkpoints: str | os.PathLike | None = None,
                        output: str | os.PathLike = "results", data_dir: str | os.PathLike | None = None,
                        progress: bool = True) -> list[Any]:
    """Run the reference models through the committed protocol (EVALUATIONS). Without `seed` and
    `checkpoints`: the cards as committed, into `<output>/default/<card>` and `<output>/probe/<card>`.
    With them: the checkpoints of `wmbench reference train --seed K` (its default folder, or
    `checkpoints`), pinned by their sha256, as models named `<card>@seed<K>` under
    `<output>/seeds/seed-<K>/`. Returns the RunResults."""
    from ..models import rename, resolve_card
    from .api import evaluate, model_plan, task_specs

    if seed is None and checkpoints is None:
        folder, suffix, base = None, "", Path(output)
    else:
        seed = 0 if seed is None else seed
        # kept as given ("~/..." stays so), so the results record a path that means the same elsewhere
        folder = Path(checkpoints) if checkpoints else DEFAULT_OUTPUT / f"seed-{seed}"
        suffix, base = f"@seed{seed}", Path(output) / "seeds" / f"seed-{seed}"
    runs = []
    for subfolder, tasks, names in EVALUATIONS:
        cards = [rename(resolve_card(n, _checkpoint_args(resolve_card(n), folder) if folder else None), n + suffix)
                 for n in names]
        for card, specs in model_plan(cards, task_specs(tasks)):  # each card on the tasks it can run
            runs.append(evaluate(specs, card, output=base / subfolder / card.name, data_dir=data_dir,
                                 progress=progress))
    return runs


def _checkpoint_args(card: Any, folder: Path) -> dict[str, Any]:
    """Model args that point a reference card (or a best-of-N card's sampler and verifier) at the
    checkpoints in `folder`, each pinned by its sha256."""
    def pinned(name: str) -> dict[str, Any]:
        path = folder / f"{name}.safetensors"
        if not path.expanduser().is_file():
            raise BadInput(f"{path} does not exist: train it with `wmbench reference train --output {folder}` "
                           "(or --seed K for its default folder)")
        return {"checkpoint": str(path), "sha256": training.sha256_of(path.expanduser())}

    if card.adapter == "verified":
        return {"sampler_args": pinned(card.args["sampler"]), "verifier_args": pinned(card.args["verifier"])}
    return pinned(card.name)
