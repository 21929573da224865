"""Metrics (`METRICS` registry, entry-point group `wmbench.metrics`)."""

from __future__ import annotations

from ..registry import Registry
from .base import Metric, MetricInput

METRICS: Registry = Registry("metric", "wmbench.metrics")
for _name, _target in {
    "l1": "benchmark.metrics.pixel:L1",
    "psnr": "benchmark.metrics.pixel:PSNR",
    "ssim": "benchmark.metrics.pixel:SSIM",
    "change_iou": "benchmark.metrics.change:ChangeIoU",
    "change_iou_weighted": "benchmark.metrics.physics:ChangeIoUWeighted",
    "masked_mse": "benchmark.metrics.physics:MaskedMSE",
    "background_preservation": "benchmark.metrics.physics:BackgroundPreservation",
    "counterfactual_sensitivity": "benchmark.metrics.physics:CounterfactualSensitivity",
    "sim_motion": "benchmark.metrics.physics:SimMotion",
    "lpips": "benchmark.metrics.perceptual:LPIPS",
    "clip_i": "benchmark.metrics.perceptual:ClipI",
    "clip_t": "benchmark.metrics.perceptual:ClipT",
    "dino": "benchmark.metrics.perceptual:Dino",
    "fid": "benchmark.metrics.distribution:FID",
    "kid": "benchmark.metrics.distribution:KID",
    "clip_direction": "benchmark.metrics.consistency:ClipDirection",
    "clip_direction_image": "benchmark.metrics.consistency:ClipDirectionImage",
    "disc_lpips": "benchmark.metrics.consistency:DiscLPIPS",
    "disc_clip": "benchmark.metrics.consistency:DiscCLIP",
    "disc_dino": "benchmark.metrics.consistency:DiscDINO",
    "idp_cycle": "benchmark.metrics.consistency:IdpCycle",
    "vlm_judge": "benchmark.metrics.judge:VLMJudge",
    "exact_match": "benchmark.metrics.text:ExactMatch",
    "token_f1": "benchmark.metrics.text:TokenF1",
    "bleu": "benchmark.metrics.text:BLEU",
    "rouge1": "benchmark.metrics.text:Rouge1",
    "rougeL": "benchmark.metrics.text:RougeL",
    "bertscore": "benchmark.metrics.text:BERTScore",
    "minilm_cosine": "benchmark.metrics.text:MiniLMCosine",
    "class_accuracy": "benchmark.metrics.text:ClassAccuracy",
}.items():
    METRICS.register(_name, _target)

__all__ = ["METRICS", "Metric", "MetricInput"]
