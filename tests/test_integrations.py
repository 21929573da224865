"""wmbench.integrations.transformers: WmbenchCallback inside a real (tiny, CPU) Trainer run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # Trainer needs it; not among wmbench's declared dependencies

from torch import nn  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

import wmbench  # noqa: E402
from wmbench.integrations.transformers import WmbenchCallback  # noqa: E402

TASK = "tiny_fdp"
TASK_YAML = """\
name: tiny_fdp
kind: fdp
dataset:
  format: jsonl
  subfolder: pairs
frames: {mode: first_last}
prompt: "{action}"
metrics: [l1, change_iou]
"""


@pytest.fixture
def tiny_task(tmp_path) -> tuple[Path, Path]:
    """(task YAML, data dir): 6 pairs of 16x16 frames in which a red square moves 4 px right."""
    root = tmp_path / "data" / "pairs"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        frame = rng.integers(40, 120, size=(16, 16, 3), dtype=np.uint8)
        source, target = frame.copy(), frame.copy()
        source[4:9, 2 + i % 3:7 + i % 3] = (230, 40, 40)
        target[4:9, 6 + i % 3:11 + i % 3] = (230, 40, 40)
        Image.fromarray(source).save(root / "images" / f"{i}_a.png")
        Image.fromarray(target).save(root / "images" / f"{i}_b.png")
        lines.append(json.dumps({"id": f"p{i}", "source": f"images/{i}_a.png", "target": f"images/{i}_b.png",
                                 "action": "move the square right", "episode_id": f"ep{i}"}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    task = tmp_path / "tiny_fdp.yaml"
    task.write_text(TASK_YAML)
    return task, tmp_path / "data"


class Shift(nn.Module):
    """Next frame = the frame (pixels in [0, 1], HWC) plus a learned per-channel shift."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, pixel_values, labels=None):
        pred = self.drop(pixel_values) + self.shift
        if labels is None:
            return pred
        return {"loss": nn.functional.mse_loss(pred, labels), "logits": pred}


class Frames(torch.utils.data.Dataset):
    """Random frames whose 'next frame' is 0.3 brighter: training moves `shift` towards 0.3."""

    def __init__(self, n: int = 16):
        self.x = torch.rand(n, 8, 8, 3, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.x[i] + 0.3}


class ShiftAdapter(wmbench.Model):
    """FDP through the live module; records what it saw at each call."""

    def __init__(self, module: Shift, scale: float = 1.0):
        super().__init__()
        self.module, self.scale = module, scale
        self.seen: list[dict] = []

    def predict_next(self, batch, n=1):
        self.seen.append({"shift": self.module.shift.detach().clone(), "training": self.module.training,
                          "drop_training": self.module.drop.training, "grad": torch.is_grad_enabled()})
        x = torch.from_numpy(np.stack(batch.sources)).float() / 255
        out = (self.module(x * self.scale) / self.scale).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
        return [[frame] * n for frame in out]


class Probe(TrainerCallback):
    """Runs after WmbenchCallback: the module's shift and training flag at each step end."""

    def __init__(self):
        self.shift: dict[int, torch.Tensor] = {}
        self.training: dict[int, bool] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.shift[state.global_step] = model.shift.detach().clone()
        self.training[state.global_step] = model.training and model.drop.training


def train(out: Path, callback: WmbenchCallback | None, *, dropout: float = 0.0, max_steps: int = 6,
          save_steps: int | None = None, probe: Probe | None = None) -> Trainer:
    args = TrainingArguments(output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=4,
                             learning_rate=0.05, lr_scheduler_type="constant", report_to=[], use_cpu=True,
                             logging_steps=1, save_strategy="steps" if save_steps else "no",
                             save_steps=save_steps or 500, disable_tqdm=True, seed=0,
                             dataloader_num_workers=0)
    trainer = Trainer(model=Shift(dropout), args=args, train_dataset=Frames())
    if callback is not None:
        callback.attach(trainer)
    if probe is not None:
        trainer.add_callback(probe)
    trainer.train()
    return trainer


def logged(trainer: Trainer, key: str) -> dict[int, float]:
    entries = [e for e in trainer.state.log_history if key in e]
    steps = [e["step"] for e in entries]
    assert len(steps) == len(set(steps)), f"{key} logged twice at one step: {steps}"
    return {e["step"]: e[key] for e in entries}


def test_logs_metrics_of_the_live_model_every_n_steps(tiny_task, tmp_path):
    task, data_dir = tiny_task
    out = tmp_path / "out"
    callback = WmbenchCallback(str(task), ShiftAdapter, {"scale": 1.0}, eval_steps=2, data_dir=data_dir,
                               batch_size=4)
    probe = Probe()
    trainer = train(out, callback, probe=probe)

    assert sorted(callback.results) == [2, 4, 6]
    for metric in ("l1", "change_iou"):
        values = logged(trainer, f"wmbench/{TASK}/{metric}")
        assert values == {step: r.metrics[TASK][metric].mean for step, r in callback.results.items()}
    assert not [k for e in trainer.state.log_history for k in e if k.endswith("n_failed")]
    l1 = logged(trainer, f"wmbench/{TASK}/l1")
    assert len(set(l1.values())) == 3  # the model changed between evaluations, and so did its score
    for step, result in callback.results.items():
        assert result.run_dir == out / "wmbench" / f"step-{step}"
        assert (result.run_dir / "results.json").is_file()
        assert result.counts[TASK]["scored"] == 6 and result.failed == 0
        assert result.model == f"ShiftAdapter-step-{step}"

    adapter = callback._instance
    assert isinstance(adapter, ShiftAdapter) and adapter.module is trainer.model
    calls = adapter.seen
    assert len(calls) == 6  # 6 samples, batch size 4, 3 evaluations
    for call, step in zip(calls[::2], (2, 4, 6)):
        assert torch.equal(call["shift"], probe.shift[step])  # the parameters of that very step
    assert not any(c["training"] or c["drop_training"] or c["grad"] for c in calls)
    assert all(probe.training.values())  # training mode restored after each evaluation


def test_evaluation_does_not_change_training(tiny_task, tmp_path):
    """Dropout draws from torch's global generator, which wmbench reseeds per batch: the callback
    restores it, so a run with evaluations trains exactly like one without."""
    task, data_dir = tiny_task
    plain = train(tmp_path / "plain", None, dropout=0.5)
    callback = WmbenchCallback(str(task), ShiftAdapter, eval_steps=2, data_dir=data_dir)
    evaluated = train(tmp_path / "evaluated", callback, dropout=0.5)
    assert sorted(callback.results) == [2, 4, 6]
    assert torch.equal(plain.model.shift, evaluated.model.shift)
    assert not torch.equal(plain.model.shift, torch.zeros(3))


def test_on_save_once_per_step_metric_subset_and_stale_dirs(tiny_task, tmp_path):
    task, data_dir = tiny_task
    out = tmp_path / "out"
    # an earlier run left step-2 with another model's predictions: it must not be reused
    stale = wmbench.evaluate(str(task), "copy", output=out / "wmbench" / "step-2", data_dir=data_dir,
                             progress=False)
    callback = WmbenchCallback(str(task), lambda m: ShiftAdapter(m), eval_steps=2, on_save=True,
                               data_dir=data_dir, metrics=["l1"], prefix="eval_wmbench", limit=3)
    trainer = train(out, callback, save_steps=3)

    assert sorted(callback.results) == [2, 3, 4, 6]  # step 6 is both an eval step and a save
    assert (out / "checkpoint-3").is_dir() and (out / "checkpoint-6").is_dir()
    keys = {k for e in trainer.state.log_history for k in e if "wmbench" in k}
    assert keys == {f"eval_wmbench/{TASK}/l1"}
    values = logged(trainer, f"eval_wmbench/{TASK}/l1")
    assert values == {s: r.metrics[TASK]["l1"].mean for s, r in callback.results.items()}
    assert callback.results[2].model == "ShiftAdapter-step-2"
    assert callback.results[2].counts[TASK]["total"] == 3
    assert values[2] != stale.metrics[TASK]["l1"].mean


class Broken(wmbench.Model):
    """Fails on every sample."""

    def __init__(self, module):
        super().__init__()

    def predict_next(self, batch, n=1):
        raise RuntimeError("broken adapter")


def test_failed_samples_are_logged_as_counts_not_means(tiny_task, tmp_path):
    task, data_dir = tiny_task
    callback = WmbenchCallback(str(task), Broken, eval_steps=2, data_dir=data_dir)
    trainer = train(tmp_path / "out", callback, max_steps=2)
    entry = next(e for e in trainer.state.log_history if any(k.startswith("wmbench/") for k in e))
    assert {k: v for k, v in entry.items() if k.startswith("wmbench/")} == {f"wmbench/{TASK}/n_failed": 6}
    assert callback.results[2].metrics[TASK]["l1"].mean is None


def test_bad_configuration_fails_before_training(tiny_task, tmp_path):
    task, data_dir = tiny_task
    with pytest.raises(wmbench.BadInput, match="never evaluates"):
        WmbenchCallback(str(task), ShiftAdapter)
    with pytest.raises(wmbench.BadInput, match="eval_steps"):
        WmbenchCallback(str(task), ShiftAdapter, eval_steps=0)
    with pytest.raises(wmbench.BadInput, match="psnr"):
        WmbenchCallback(str(task), ShiftAdapter, eval_steps=2, metrics=["psnr"])
    with pytest.raises(wmbench.BadInput):
        WmbenchCallback(str(tmp_path / "missing.yaml"), ShiftAdapter, eval_steps=2)

    class IdpOnly(wmbench.Model):
        def __init__(self, module):
            super().__init__()

        def infer_action(self, batch):
            return ["x"] * len(batch)

    for adapter, match in ((IdpOnly, "cannot run task"), (lambda m: object(), "not a wmbench.Model")):
        callback = WmbenchCallback(str(task), adapter, eval_steps=2, data_dir=data_dir)
        with pytest.raises(wmbench.BadInput, match=match):
            train(tmp_path / "out", callback, max_steps=2)
        assert not callback.results

    args = TrainingArguments(output_dir=str(tmp_path / "x"), max_steps=2, report_to=[], use_cpu=True,
                             save_strategy="no", disable_tqdm=True)
    unattached = WmbenchCallback(str(task), ShiftAdapter, eval_steps=2, data_dir=data_dir)
    trainer = Trainer(model=Shift(), args=args, train_dataset=Frames(), callbacks=[unattached])
    with pytest.raises(wmbench.BadInput, match="attach"):
        trainer.train()
    unattached.attach(trainer)  # already in the callbacks: not added twice
    assert sum(cb is unattached for cb in trainer.callback_handler.callbacks) == 1


def test_import_wmbench_integrations_does_not_import_transformers():
    code = ("import sys, wmbench, wmbench.integrations; "
            "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, "
            "[m for m in ('transformers', 'torch') if m in sys.modules]")
    subprocess.run([sys.executable, "-c", code], check=True)
