"""Evaluate the model being trained by a Hugging Face `transformers.Trainer` with wmbench.

    from wmbench.integrations.transformers import WmbenchCallback

    trainer = Trainer(model=model, args=args, train_dataset=train)
    WmbenchCallback(["metaworld_fdp"], MyAdapter, eval_steps=500, limit=64).attach(trainer)
    trainer.train()

Every `eval_steps` optimizer steps (and/or at each checkpoint save) the live model is wrapped by
the adapter, evaluated into `<output_dir>/step-<global_step>`, and the metric means are logged as
`wmbench/<task>/<metric>` through `Trainer.log`, so they land in `trainer.state.log_history` and
reach every reporting callback (W&B, TensorBoard, ...).
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from transformers import TrainerCallback

from ..core.errors import BadInput
from ..models.base import Model
from ..run.api import RunResult, evaluate, model_card, task_specs
from ..run.capability import check_capabilities

logger = logging.getLogger(__name__)

__all__ = ["WmbenchCallback"]


class WmbenchCallback(TrainerCallback):
    """Run `wmbench.evaluate` on the live model during `Trainer.train()` and log the metric means.

    Args:
        tasks: task names, suite names, task YAML paths or `TaskSpec`s, as for `wmbench.evaluate`
            (resolved and checked when the callback is built).
        adapter: a `wmbench.Model` subclass constructed as `adapter(model, **adapter_args)` with
            the live `torch.nn.Module` (the `model` the Trainer hands its callbacks: unwrapped
            from DDP, a PEFT model where one is trained), or any callable `adapter(model) ->
            wmbench.Model`. It is built once, at the start of training, and reused as long as the
            Trainer hands over the same module; it must read the module's parameters when it
            predicts, not copy them when it is built.
        adapter_args: keyword arguments for `adapter`.
        eval_steps: evaluate whenever `state.global_step` is a multiple of this.
        on_save: evaluate at each checkpoint save (`on_save` event). A step is evaluated at most
            once, also where both triggers fire.
        limit, batch_size, seed, data_dir, include_path, device: as for `wmbench.evaluate`.
        output_dir: the folder of the evaluation run directories, default
            `<TrainingArguments.output_dir>/wmbench`. Each evaluation is its own run directory,
            `step-<global_step>` (a run directory resumes, so steps must not share one); a
            `step-<N>` run directory left there by an earlier training run is replaced, so its
            stored predictions are never reused for another model.
        metrics: the metric keys to log (default: every metric with a mean). An unknown key
            raises `wmbench.BadInput` when the callback is built.
        prefix: the first part of the logged keys, default "wmbench". Reporting integrations
            put keys without an `eval_` prefix under `train/` (`train/wmbench/...` in W&B and
            TensorBoard); `prefix="eval_wmbench"` puts them under `eval/wmbench/...` instead.
        trainer: the `Trainer` to log through; or call `attach(trainer)` after building it.

    Logging: the callback needs the Trainer itself, because callback events receive no way to
    log that reaches `state.log_history` (the `logs` of `on_log` are a copy taken after the
    entry is stored, and handed to the reporting callbacks before user callbacks). After each
    evaluation it calls `trainer.log(values)`, the Trainer's public logging method: that appends
    `{**values, "epoch": ..., "step": global_step}` to `trainer.state.log_history` and runs
    `on_log` on every callback. `values` holds `<prefix>/<task>/<metric>` = the metric's mean
    (metrics whose mean is None, i.e. unavailable or nothing scored, are left out),
    `<prefix>/<task>/<metric>/n_failed` where samples failed to score on that metric, and
    `<prefix>/<task>/n_failed` where samples failed (model or data errors; counted by wmbench,
    never raised). The `RunResult` of each evaluation is kept in `results[global_step]`.

    During an evaluation the model is in eval mode under `torch.no_grad()`; afterwards every
    submodule gets back the training flag it had, and the Python, NumPy and torch (CPU and
    initialised CUDA) random states are restored, so the evaluation does not change the
    training run (wmbench seeds the global generators per batch).

    Only the main process (`state.is_world_process_zero`) evaluates and logs; the other
    processes wait at their next collective operation, so a long evaluation needs a distributed
    timeout to match. Models whose parameters are sharded across processes (FSDP, DeepSpeed
    ZeRO-3) cannot be run by one process alone: evaluate their saved checkpoints instead.
    """

    def __init__(self, tasks: str | Sequence[Any], adapter: Callable[..., Model],
                 adapter_args: dict[str, Any] | None = None, *, eval_steps: int | None = None,
                 on_save: bool = False, limit: int | None = None, batch_size: int = 8,
                 seed: int | None = None, output_dir: str | Path | None = None,
                 data_dir: str | Path | None = None, metrics: Sequence[str] | None = None,
                 prefix: str = "wmbench", include_path: Sequence[str | Path] | None = None,
                 device: str | None = None, trainer: Any = None):
        if eval_steps is not None and (isinstance(eval_steps, bool) or not isinstance(eval_steps, int)
                                       or eval_steps < 1):
            raise BadInput(f"eval_steps must be a positive integer, got {eval_steps!r}")
        if eval_steps is None and not on_save:
            raise BadInput("WmbenchCallback never evaluates: give eval_steps=N and/or on_save=True")
        if not callable(adapter):
            raise BadInput(f"adapter must be a wmbench.Model subclass or a callable returning one, "
                           f"got {adapter!r}")
        specs = task_specs(tasks, limit=limit, seed=seed, include_path=include_path)
        if metrics is not None:
            metrics = [metrics] if isinstance(metrics, str) else list(metrics)
            known = {ref.key for spec in specs for ref in spec.metric_refs}
            unknown = [m for m in metrics if m not in known]
            if unknown:
                raise BadInput(f"metrics {unknown} are not computed by tasks {[s.name for s in specs]} "
                               f"(they compute {sorted(known)})")
        self.tasks = tasks
        self.specs = specs
        self.adapter = adapter
        self.adapter_args = dict(adapter_args or {})
        self.eval_steps = eval_steps
        self.eval_on_save = bool(on_save)  # not `self.on_save`: that is the event method
        self.limit = limit
        self.batch_size = batch_size
        self.seed = seed
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.data_dir = data_dir
        self.metrics = metrics
        self.prefix = prefix.rstrip("/")
        self.include_path = include_path
        self.device = device
        self.trainer = trainer
        #: global_step -> the RunResult of the evaluation at that step (main process only).
        self.results: dict[int, RunResult] = {}
        self._evaluated: set[int] = set()
        self._instance: Model | None = None
        self._wrapped: torch.nn.Module | None = None

    def attach(self, trainer: Any) -> WmbenchCallback:
        """Log through `trainer`, and add this callback to it unless it was passed in `callbacks`."""
        self.trainer = trainer
        if not any(cb is self for cb in trainer.callback_handler.callbacks):
            trainer.add_callback(self)
        return self

    # --- Trainer events --------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.trainer is None:
            raise BadInput("WmbenchCallback logs through the Trainer: build it with trainer=trainer, "
                           "or call callback.attach(trainer) before trainer.train()")
        self._evaluated.clear()
        if state.is_world_process_zero and model is not None:
            self._adapter_for(model)  # a wrong adapter fails now, not after the first N steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.eval_steps is not None and state.global_step % self.eval_steps == 0:
            self._evaluate(args, state, model)

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.eval_on_save:
            self._evaluate(args, state, model)

    # --- evaluation ------------------------------------------------------------------------

    def run_dir(self, args: Any, step: int) -> Path:
        """The run directory of the evaluation at `step`."""
        root = self.output_dir if self.output_dir is not None else Path(args.output_dir) / "wmbench"
        return root / f"step-{step}"

    def log_values(self, result: RunResult) -> dict[str, float | int]:
        """What one evaluation logs (see the class docstring)."""
        values: dict[str, float | int] = {}
        for task, metrics in result.metrics.items():
            failed = result.counts.get(task, {}).get("failed", 0)
            if failed:
                values[f"{self.prefix}/{task}/n_failed"] = int(failed)
            for key, metric in metrics.items():
                if self.metrics is not None and key not in self.metrics:
                    continue
                if metric.available and metric.mean is not None:
                    values[f"{self.prefix}/{task}/{key}"] = float(metric.mean)
                if metric.n_failed:
                    values[f"{self.prefix}/{task}/{key}/n_failed"] = int(metric.n_failed)
        return values

    def _adapter_for(self, model: torch.nn.Module) -> Model:
        if self._instance is None or self._wrapped is not model:
            instance = self.adapter(model, **self.adapter_args)
            if not isinstance(instance, Model):
                raise BadInput(f"adapter {self.adapter!r} returned {type(instance).__name__}, "
                               f"not a wmbench.Model")
            check_capabilities(model_card(instance)[0], self.specs, instance)
            self._instance, self._wrapped = instance, model
        return self._instance

    def _evaluate(self, args: Any, state: Any, model: torch.nn.Module | None) -> None:
        step = state.global_step
        if not state.is_world_process_zero or step in self._evaluated:
            return
        if model is None:
            raise BadInput("WmbenchCallback: the Trainer handed no model to its callbacks")
        self._evaluated.add(step)
        instance = self._adapter_for(model)
        run_dir = self.run_dir(args, step)
        _clear_stale(run_dir)
        with _evaluation_mode(model), _preserved_rng():
            result = evaluate(self.tasks, instance, output=run_dir, limit=self.limit, seed=self.seed,
                              batch_size=self.batch_size, device=self.device, data_dir=self.data_dir,
                              progress=False, include_path=self.include_path,
                              model_name=f"{type(instance).__name__}-step-{step}")
        self.results[step] = result
        values = self.log_values(result)
        if values:
            self.trainer.log(values)


def _clear_stale(run_dir: Path) -> None:
    """Remove a run directory an earlier training run left at this step (its predictions are of
    another model); refuse to touch a folder that is not a wmbench run directory."""
    if not run_dir.exists():
        return
    if run_dir.is_dir() and (run_dir / "store.sqlite").is_file():
        logger.warning("wmbench: replacing the evaluation run directory %s left by an earlier run", run_dir)
        shutil.rmtree(run_dir)
    elif not run_dir.is_dir() or any(run_dir.iterdir()):
        raise BadInput(f"{run_dir} exists and is not a wmbench run directory; "
                       f"choose another output_dir for WmbenchCallback")


@contextlib.contextmanager
def _evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients; each submodule gets its own training flag back afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """Restore the global random states that the evaluation reseeds."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
