"""Set-level realism: FID and KID between the predicted frames and the target frames.

torchmetrics computes both; the feature extractor is torchmetrics' `NoTrainInceptionV3`
(torch-fidelity's `FeatureExtractorInceptionV3`, 2048-d pool features) built with
`feature_extractor_weights_path` = the manifest's `fid-inception-v3` file, so nothing is
downloaded (by default torch-fidelity fetches the same file through torch hub).

Set-level protocol (see `Metric`): `set_level = True`, `score` returns NaN per sample, and the
runner calls `score_set(predictions, targets)` once per task with every scored sample that has a
target. FID is strongly biased upwards on small sets (it needs thousands of samples to be
stable; below the feature dimension the covariance is rank-deficient): compare FIDs only at equal
set sizes. KID is unbiased and the better choice for a few hundred samples.
Not edit-aware: `copy` has realistic statistics, so both rank it well.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .base import Metric, MetricInput

WEIGHT_ID = "fid-inception-v3"


class _InceptionSetMetric(Metric):
    kind = "fdp"
    higher_is_better = False
    set_level = True
    needs = frozenset({"target", "weights"})

    def __init__(self, weights_dir: str | None = None, feature: int = 2048, backbone: Any = None):
        if feature not in (64, 192, 768, 2048):
            raise TypeError(f"{self.name}: feature must be 64, 192, 768 or 2048, got {feature!r}")
        self.weights_dir, self.feature, self.backbone = weights_dir, feature, backbone

    def options(self) -> dict[str, Any]:
        return {"feature": self.feature}

    def _path(self):
        from . import weights

        return weights.locate(WEIGHT_ID, self.weights_dir)

    def available(self) -> tuple[bool, str]:
        from . import weights

        if self.backbone is not None or self._path() is not None:
            return True, ""
        return False, weights.missing_reason(WEIGHT_ID, self.weights_dir)

    def weights_info(self) -> list[dict[str, Any]]:
        from . import weights

        if self.backbone is not None:
            return [{"id": "injected-feature-extractor", "sha256": None, "path": None}]
        return [weights.weight_record(WEIGHT_ID, self._path())]

    def extractor(self):
        """The feature network (the injected test backbone, or InceptionV3 from the manifest)."""
        if self.backbone is None:
            from torchmetrics.image.fid import NoTrainInceptionV3

            ok, reason = self.available()
            if not ok:
                from ..core.errors import BadInput

                raise BadInput(reason)
            self.backbone = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(self.feature)],
                                               feature_extractor_weights_path=str(self._path()))
        return self.backbone.to(self.device)

    def score(self, batch: MetricInput) -> np.ndarray:
        return np.full(len(batch.predictions), np.nan)  # defined over the set only: see score_set

    @staticmethod
    def feed(metric: Any, images: list[np.ndarray], real: bool, device: str, chunk: int = 32) -> None:
        """update() with uint8 NCHW tensors, one shape group at a time (a set may mix sizes)."""
        import torch

        groups: dict[tuple, list[np.ndarray]] = {}
        for image in images:
            groups.setdefault(np.shape(image), []).append(image)
        for members in groups.values():
            for start in range(0, len(members), chunk):
                x = torch.from_numpy(np.stack(members[start:start + chunk])).permute(0, 3, 1, 2).contiguous()
                metric.update(x.to(device), real=real)


class FID(_InceptionSetMetric):
    name = "fid"
    description = "Frechet Inception Distance of predicted vs target frames over the whole set (torchmetrics)"

    def score_set(self, predictions: list[np.ndarray], targets: list[np.ndarray]) -> tuple[float, dict[str, Any]]:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if min(len(predictions), len(targets)) < 2:
            return float("nan"), {"n_predictions": len(predictions), "n_targets": len(targets)}  # a covariance needs two samples
        fid = FrechetInceptionDistance(feature=self.extractor(), normalize=False).to(self.device)
        self.feed(fid, targets, True, self.device)
        self.feed(fid, predictions, False, self.device)
        return float(fid.compute()), {"n_predictions": len(predictions), "n_targets": len(targets)}


class KID(_InceptionSetMetric):
    """KID (unbiased polynomial-kernel MMD), mean over `subsets` random subsets of
    min(subset_size, n) samples drawn with a fixed seed; with n <= subset_size every subset is the
    whole set and the value is exact and seed-free."""

    name = "kid"
    description = "Kernel Inception Distance (unbiased MMD, cubic kernel) of predicted vs target frames (torchmetrics)"

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "subsets": self.subsets, "subset_size": self.subset_size, "seed": self.seed}

    def score_set(self, predictions: list[np.ndarray], targets: list[np.ndarray]) -> tuple[float, dict[str, Any]]:
        import torch
        from torchmetrics.image.kid import KernelInceptionDistance

        size = min(self.subset_size, len(predictions), len(targets))
        if size < 2:
            return float("nan"), {"subset_size": 0, "subsets": self.subsets}
        with warnings.catch_warnings():  # "will save all extracted features": that is the design
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            kid = KernelInceptionDistance(feature=self.extractor(), subsets=self.subsets, subset_size=size,
                                          normalize=False).to(self.device)
        self.feed(kid, targets, True, self.device)
        self.feed(kid, predictions, False, self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            mean, std = kid.compute()
        return float(mean), {"std": float(std), "subset_size": size, "subsets": self.subsets}
