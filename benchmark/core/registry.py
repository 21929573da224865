"""One registry class for models, metrics, dataset formats and generators.

Entries are lazy "module:attr" strings (or objects), so listing names costs no heavy import;
third-party packages add entries through an entry-point group (e.g. `wmbench.models`).
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import BadInput

T = TypeVar("T")


def import_target(target: str) -> Any:
    """Import "package.module:attr" and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise BadInput(f"target '{target}' must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"cannot import '{module_name}' for '{target}': {exc}") from exc
    except BadInput:
        raise
    except Exception as exc:  # a plugin module that does not compile, or raises while it is imported
        raise BadInput(f"cannot import '{module_name}' for '{target}': {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise BadInput(f"module '{module_name}' has no attribute '{attr}' (from '{target}')") from exc


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Names mapped to lazily imported objects, plus an entry-point group scanned on first lookup."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._targets: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points_scanned = False

    def register(self, name: str, target: str | T) -> None:
        if name in self._targets and self._targets[name] != target:
            raise BadInput(f"{self.kind} '{name}' is registered twice ({self._targets[name]!r} and {target!r})")
        self._targets[name] = target

    def _scan_entry_points(self) -> None:
        if self._entry_points_scanned or not self.entry_point_group:
            return
        self._entry_points_scanned = True
        for ep in entry_points(group=self.entry_point_group):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._scan_entry_points()
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        self._scan_entry_points()
        return name in self._targets

    def get(self, name: str) -> T:
        self._scan_entry_points()
        if name not in self._targets:
            raise BadInput(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; "
                               f"known: {', '.join(self.names())}")
        if name not in self._loaded:
            target = self._targets[name]
            self._loaded[name] = import_target(target) if isinstance(target, str) else target
        return self._loaded[name]


# The registries, with the built-in entries (lazy targets: listing names imports nothing heavy).
FORMATS: Registry = Registry("dataset format", "wmbench.formats")
FORMATS.register("lerobot", "wmbench.data.lerobot:read")
FORMATS.register("metaworld", "wmbench.data.metaworld:read")
FORMATS.register("jsonl", "wmbench.data.jsonl:read")
FORMATS.register("aurora", "wmbench.data.aurora:read")
FORMATS.register("ssv2", "wmbench.data.ssv2:read")
FORMATS.register("epic", "wmbench.data.epic:read")
FORMATS.register("ego4d", "wmbench.data.ego4d:read")
FORMATS.register("rlds", "wmbench.data.rlds:read")
FORMATS.register("libero", "wmbench.data.libero:read")
FORMATS.register("calvin", "wmbench.data.calvin:read")
FORMATS.register("bridge", "wmbench.data.bridge:read")

GENERATORS: Registry = Registry("dataset generator", "wmbench.generators")
GENERATORS.register("metaworld", "wmbench.data.metaworld:generate")

MODELS: Registry = Registry("model adapter", "wmbench.models")
MODELS.register("copy", "wmbench.models.baselines:CopyModel")
MODELS.register("blur", "wmbench.models.baselines:BlurModel")
MODELS.register("oracle", "wmbench.models.baselines:OracleModel")
MODELS.register("majority", "wmbench.models.baselines:MajorityModel")
MODELS.register("hf-vlm", "wmbench.models.hf_vlm:HFVisionLanguageModel")
MODELS.register("emu3", "wmbench.models.unified:Emu3WorldModel")
MODELS.register("janus", "wmbench.models.unified:JanusWorldModel")
MODELS.register("chameleon", "wmbench.models.unified:ChameleonWorldModel")
MODELS.register("instruct-pix2pix", "wmbench.models.editors:InstructPix2PixEditor")
MODELS.register("diffusers-editor", "wmbench.models.editors:DiffusersEditor")
MODELS.register("openai-compatible", "wmbench.models.api:OpenAIChatModel")
MODELS.register("openai-compatible-scoring", "wmbench.models.api:OpenAIScoringModel")
MODELS.register("verified", "wmbench.models.verified:VerifiedModel")
MODELS.register("reference-idp", "wmbench.models.reference.adapters:ReferenceIDP")
MODELS.register("reference-fdp", "wmbench.models.reference.adapters:ReferenceFDP")

METRICS: Registry = Registry("metric", "wmbench.metrics")
for _name, _target in {
    "l1": "wmbench.metrics.pixel:L1",
    "psnr": "wmbench.metrics.pixel:PSNR",
    "ssim": "wmbench.metrics.pixel:SSIM",
    "change_iou": "wmbench.metrics.change:ChangeIoU",
    "change_iou_weighted": "wmbench.metrics.physics:ChangeIoUWeighted",
    "masked_mse": "wmbench.metrics.physics:MaskedMSE",
    "background_preservation": "wmbench.metrics.physics:BackgroundPreservation",
    "counterfactual_sensitivity": "wmbench.metrics.physics:CounterfactualSensitivity",
    "sim_motion": "wmbench.metrics.physics:SimMotion",
    "lpips": "wmbench.metrics.perceptual:LPIPS",
    "clip_i": "wmbench.metrics.perceptual:ClipI",
    "clip_t": "wmbench.metrics.perceptual:ClipT",
    "dino": "wmbench.metrics.perceptual:Dino",
    "fid": "wmbench.metrics.distribution:FID",
    "kid": "wmbench.metrics.distribution:KID",
    "clip_direction": "wmbench.metrics.consistency:ClipDirection",
    "clip_direction_image": "wmbench.metrics.consistency:ClipDirectionImage",
    "disc_lpips": "wmbench.metrics.consistency:DiscLPIPS",
    "disc_clip": "wmbench.metrics.consistency:DiscCLIP",
    "disc_dino": "wmbench.metrics.consistency:DiscDINO",
    "idp_cycle": "wmbench.metrics.consistency:IdpCycle",
    "vlm_judge": "wmbench.metrics.judge:VLMJudge",
    "exact_match": "wmbench.metrics.text:ExactMatch",
    "token_f1": "wmbench.metrics.text:TokenF1",
    "bleu": "wmbench.metrics.text:BLEU",
    "rouge1": "wmbench.metrics.text:Rouge1",
    "rougeL": "wmbench.metrics.text:RougeL",
    "bertscore": "wmbench.metrics.text:BERTScore",
    "minilm_cosine": "wmbench.metrics.text:MiniLMCosine",
    "class_accuracy": "wmbench.metrics.text:ClassAccuracy",
    "preference_accuracy": "wmbench.metrics.probes:PreferenceAccuracy",
    "logprob_margin": "wmbench.metrics.probes:LogprobMargin",
}.items():
    METRICS.register(_name, _target)


def _decorator(registry: Registry, name: str | None):
    def register(obj):
        registry.register(name or getattr(obj, "name", None) or obj.__name__, obj)
        return obj
    return register


def register_model(name: str):
    """Class decorator: `@wmbench.register_model("my-model")` makes `--model my-model` (and
    `wmbench.evaluate(..., "my-model")`) build this `Model` subclass in this process. Packages
    register for every process through the `wmbench.models` entry point instead."""
    return _decorator(MODELS, name)


def register_metric(name: str | None = None):
    """Class decorator for a `Metric` subclass (default name: its `name` attribute); tasks name it
    in their `metrics`. Entry-point group: `wmbench.metrics`."""
    return _decorator(METRICS, name)


def register_format(name: str):
    """Function decorator for a dataset reader `read(root, spec, frames) -> Iterable[Transition]`;
    tasks name it in `dataset.format`. Entry-point group: `wmbench.formats`."""
    return _decorator(FORMATS, name)
