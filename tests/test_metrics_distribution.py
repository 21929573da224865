"""FID / KID through the set-level hook, against torchmetrics called directly with the same
RANDOM tiny feature extractor (named as such; the real one is InceptionV3 from the manifest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wmbench.metrics import METRICS, MetricInput


class RandomTinyFeatures(torch.nn.Module):
    """RANDOM conv features for tests only: uint8 NCHW of any size -> (N, 8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=2)

    def forward(self, x):
        return torch.relu(self.conv(x.float() / 255.0)).mean(dim=(2, 3))


def sets(n=12, seed=0):
    rng = np.random.default_rng(seed)
    targets = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(n)]
    preds = [np.clip(t.astype(int) + rng.integers(-60, 60, t.shape), 0, 255).astype(np.uint8) for t in targets]
    preds[-1] = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)  # a different size in the set
    return preds, targets


def reference(metric_cls, preds, targets, **kwargs):
    m = metric_cls(feature=RandomTinyFeatures(), **kwargs)
    for image in targets:
        m.update(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(), real=True)
    for image in preds:
        m.update(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(), real=False)
    return m


def test_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    preds, targets = sets()
    metric = METRICS.get("fid")(backbone=RandomTinyFeatures())
    assert metric.set_level and metric.describe()["set_level"]
    per_sample = metric.score(MetricInput("fdp", preds, targets, targets))
    assert np.isnan(per_sample).all()  # set-level: no per-sample value
    ours, details = metric.score_set(preds, targets)
    assert details == {"n_predictions": len(preds), "n_targets": len(targets)}
    expected = float(reference(FrechetInceptionDistance, preds, targets).compute())
    assert ours == pytest.approx(expected, abs=1e-4)
    assert metric.score_set(targets, targets)[0] == pytest.approx(0.0, abs=1e-4)
    assert np.isnan(metric.score_set(preds[:1], targets[:1])[0])


@pytest.mark.filterwarnings("ignore:.*will save all extracted features.*:UserWarning")  # the reference's
def test_kid_matches_torchmetrics_and_is_seeded():
    from torchmetrics.image.kid import KernelInceptionDistance

    preds, targets = sets()
    metric = METRICS.get("kid")(backbone=RandomTinyFeatures(), subsets=5, subset_size=8, seed=3)
    ours, details = metric.score_set(preds, targets)
    ref = reference(KernelInceptionDistance, preds, targets, subsets=5, subset_size=8)
    torch.manual_seed(3)
    assert ours == pytest.approx(float(ref.compute()[0]), abs=1e-4)
    assert metric.score_set(preds, targets)[0] == ours  # same seed, same subsets
    assert details["subset_size"] == 8
    # subset larger than the set: the whole set, exact
    whole, _ = METRICS.get("kid")(backbone=RandomTinyFeatures()).score_set(preds, targets)
    ref = reference(KernelInceptionDistance, preds, targets, subsets=2, subset_size=len(preds))
    assert whole == pytest.approx(float(ref.compute()[0]), abs=1e-4)


def test_options_are_validated():
    with pytest.raises(TypeError):
        METRICS.get("fid")(feature=123)
    with pytest.raises(TypeError):
        METRICS.get("l1")(unknown=1)
