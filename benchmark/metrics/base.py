"""The metric protocol: every metric scores a batch into one number per sample.

Per-sample scores (not only a running mean, as in torchmetrics) are what the store keeps, what
confidence intervals and paired tests need, and what `--rescore` recomputes. A score of NaN
means "not applicable to this sample" (e.g. no target): it is counted, never averaged as zero.
Each metric class wraps a functional twin in the same module that works on plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

Need = Literal["source", "target", "action", "weights"]


@dataclass
class MetricInput:
    """One batch to score. FDP: `predictions` are (H, W, 3) uint8 images, resized to the source's
    size; IDP: `predictions` are texts and `references` the reference action texts."""

    kind: Literal["fdp", "idp", "probe"]
    predictions: list[Any]
    sources: list[np.ndarray] | None = None
    targets: list[np.ndarray | None] | None = None
    actions: list[str] | None = None
    references: list[str] | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)
    #: Per-sample extra arrays that are not model inputs, keyed by name (empty dict = none).
    #: Known keys: "source_segmentation" / "target_segmentation" (the loaded `Transition.aux`
    #: images of the same names: uint8 label maps, 0 background, 1 robot, 2 objects; (H, W) or
    #: (H, W, 3) with the label in channel 0) and "counterfactual_prediction" (the model's
    #: prediction for the same source under a different action, (H, W, 3) uint8, resized to the
    #: source size like `predictions`). Metrics that need a key score NaN where it is missing.
    aux: list[dict[str, Any]] = field(default_factory=list)
    #: Per-batch memo shared by the metrics scoring this batch (e.g. stacked float images, change
    #: masks) so that five pixel metrics do not convert the same images five times.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def aux_of(self, i: int, key: str) -> Any:
        """`aux[i][key]`, or None when the batch carries no such array for sample i."""
        return self.aux[i].get(key) if i < len(self.aux) and self.aux[i] else None


@dataclass(frozen=True)
class Scores:
    """What `Metric.score` returns: one value per sample (NaN = not applicable) and, for metrics
    with something to keep per sample (a judge's replies, a predicted class), one details dict (or
    None) per sample. A details dict with "failed": True marks a sample that could not be scored
    (e.g. unparseable judge replies after every retry): its value is not used. A metric without
    details may return the bare array."""

    values: np.ndarray
    details: list[dict[str, Any] | None] | None = None

    def __iter__(self):  # values, details = metric.score(batch)
        return iter((self.values, self.details))

    @classmethod
    def of(cls, result: Any, n: int) -> Scores:
        """`score`'s return value (Scores or array-like) checked against the batch size `n`."""
        scores = result if isinstance(result, Scores) else cls(result)
        values = np.asarray(scores.values, dtype=np.float64).reshape(-1)
        if len(values) != n:
            raise ValueError(f"returned {len(values)} scores for {n} samples")
        details = list(scores.details) if scores.details is not None else [None] * n
        if len(details) != n:
            raise ValueError(f"returned {len(details)} detail records for {n} samples")
        return cls(values, details)


class Metric:
    """A metric class; the runner builds one instance per task and calls `score` per batch.

    Options: a task's `metrics` entry may be `{name: NAME, args: {...}}`; the runner passes
    `args` as keyword arguments to the constructor (`METRICS.get(NAME)(**args)`). A metric
    without options takes none (the base constructor refuses unknown keywords with TypeError).
    `describe()` reports the instance (class info + options + weights) for results.json.

    `score(batch)` returns the values, or `Scores(values, details)` with one details dict per
    sample that the runner stores next to the score (see `Scores`). A metric keeps no per-batch
    state on the instance: one instance serves every task of a run.

    Set-level metrics (`set_level = True`, e.g. FID) have no per-sample value: `score` returns
    NaN per sample and the runner calls `score_set(predictions, targets)` once per task on all
    scored samples (uint8 (H, W, 3) lists); it returns the task-level value, or (value, details).

    `device`: where a backbone runs; the runner may set it (e.g. from `--device`) before the
    first `score` call; backbones are loaded lazily on that first call.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    kind: ClassVar[Literal["fdp", "idp", "probe"]]
    higher_is_better: ClassVar[bool]
    needs: ClassVar[frozenset[str]] = frozenset()
    #: True when the metric ranks "copy the source" below the ground truth by design.
    edit_aware: ClassVar[bool] = False
    description: ClassVar[str] = ""
    #: True for metrics defined over a whole set (FID, KID): see `score_set`.
    set_level: ClassVar[bool] = False
    #: Keys of `MetricInput.aux` this metric reads (the runner loads those only when asked).
    aux_keys: ClassVar[frozenset[str]] = frozenset()

    device: str = "cpu"

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"metric {type(self).name!r} takes no options, got {sorted(options)}")

    def available(self) -> tuple[bool, str]:
        """(False, reason) when the metric cannot run here (e.g. its weights are missing)."""
        return True, ""

    def prepare(self, kind: str, transitions: list[Any]) -> None:
        """Called once per task with every selected `Transition` (no pixels loaded), before any
        `score` call (e.g. to collect the class vocabulary). Default: nothing."""

    def score(self, batch: MetricInput) -> Scores | np.ndarray:
        raise NotImplementedError

    def score_set(self, predictions: list[np.ndarray], targets: list[np.ndarray]) -> float | tuple[float, dict]:
        """Set-level value, or (value, details) (only when `set_level`)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor options this instance was built with (JSON-ready)."""
        return {}

    def weights_info(self) -> list[dict[str, Any]]:
        """[{id, sha256, path}] of the weight files this instance uses ([] for weight-free)."""
        return []

    def describe(self) -> dict[str, Any]:
        """`info()` plus this instance's options and weights, for results.json."""
        return {**self.info(), "options": self.options(), "weights": self.weights_info()}

    @classmethod
    def info(cls) -> dict[str, Any]:
        return {"name": cls.name, "version": cls.version, "kind": cls.kind,
                "higher_is_better": cls.higher_is_better, "needs": sorted(cls.needs),
                "edit_aware": cls.edit_aware, "set_level": cls.set_level, "aux_keys": sorted(cls.aux_keys),
                "description": cls.description}


class ModelBackedMetric(Metric):
    """A metric that asks a model adapter (an IDP model, a VLM judge) named by its `model` option
    (adapter name, card name or card path, as `--model`) with `model_args`; tests pass an adapter
    instance as `adapter`. The adapter is built on the first `adapter()` call."""

    #: The capability the adapter must have (may depend on options: override `capability`).
    capability: ClassVar[str] = "answer"
    role: ClassVar[str] = "model"

    def _init_model(self, model: str | None, model_args: dict[str, Any] | None, adapter: Any) -> None:
        self.model_name, self.model_args = model, dict(model_args or {})
        self._adapter = adapter

    def model_card(self):
        from ..models import resolve_card

        return resolve_card(self.model_name, self.model_args)

    def model_id(self) -> str:
        return self.model_name or (type(self._adapter).__name__ if self._adapter is not None else "<none>")

    def needed_capability(self) -> str:
        return self.capability

    def available(self) -> tuple[bool, str]:
        from ..core.errors import BadInput

        if self.model_name is None and self._adapter is None:
            return False, (f"{self.name} needs the metric option 'model' "
                           f"(metrics: [{{name: {self.name}, args: {{model: ...}}}}])")
        try:
            if self._adapter is not None:
                capabilities = type(self._adapter).capabilities()
            else:
                from ..models import adapter_class

                capabilities = adapter_class(self.model_card()).capabilities()
        except BadInput as exc:
            return False, str(exc)
        if self.needed_capability() not in capabilities:
            return False, f"{self.role} {self.model_id()!r} has no `{self.needed_capability()}` capability"
        return True, ""

    def weights_info(self) -> list[dict[str, Any]]:
        if self.model_name is None and self._adapter is None:
            return []
        record: dict[str, Any] = {"id": f"{self.role}:{self.model_id()}", "sha256": None, "path": None}
        if self.model_name:
            record["card_fingerprint"] = self.model_card().fingerprint
        if self._adapter is not None:
            record["model_fingerprint"] = self._adapter.fingerprint()
        return [record]

    def adapter(self):
        if self._adapter is None:
            from ..models import instantiate

            self._adapter = instantiate(self.model_card())
        return self._adapter


def stack(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images).astype(np.float32) / 255.0


def pick(items: list[Any], indices: list[int]) -> list[Any]:
    return [items[i] for i in indices]


def score_with_targets(batch: MetricInput, compute: Any) -> np.ndarray:
    """NaN ("not applicable") for samples without a target; `compute(indices)` -> scores for the
    samples that have one (not called when none has)."""
    out = np.full(len(batch.predictions), np.nan)
    have = with_targets(batch)
    if have:
        out[have] = compute(have)
    return out


def with_targets(batch: MetricInput) -> list[int]:
    """Indices of the samples that have a target."""
    targets = batch.targets or [None] * len(batch.predictions)
    return [i for i, t in enumerate(targets) if t is not None]


def shape_groups(batch: MetricInput, indices: list[int]) -> list[list[int]]:
    """`indices` split into groups whose predictions share one shape (a batch may mix sizes,
    e.g. Aurora-Bench images; arrays of one group can be stacked)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        groups.setdefault(np.shape(batch.predictions[i]), []).append(i)
    return list(groups.values())


def stacked(batch: MetricInput, field_name: str, indices: list[int], uint8: bool = False) -> np.ndarray:
    """batch.<field_name>[indices] stacked, as uint8 or as float32 in [0, 1] (`stack`); memoised
    in `batch.cache` so the other metrics of this batch reuse it."""
    key = ("stack", field_name, tuple(indices), uint8)
    if key not in batch.cache:
        images = getattr(batch, field_name)
        picked = [images[i] for i in indices]
        batch.cache[key] = np.stack(picked) if uint8 else stack(picked)
    return batch.cache[key]


class PairedImageMetric(Metric):
    """Compares each prediction with its target; samples without a target score NaN."""

    kind = "fdp"
    needs = frozenset({"target"})
    #: True: `compare` gets uint8 arrays (exact integer arithmetic, faster) instead of floats.
    uint8_inputs: ClassVar[bool] = False

    def compare(self, predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) float in [0, 1] (uint8 if `uint8_inputs`) twice -> (N,) scores."""
        raise NotImplementedError

    def score(self, batch: MetricInput) -> np.ndarray:
        out = np.full(len(batch.predictions), np.nan)
        for group in shape_groups(batch, with_targets(batch)):
            out[group] = self.compare(stacked(batch, "predictions", group, self.uint8_inputs),
                                      stacked(batch, "targets", group, self.uint8_inputs))
        return out
