"""The weight-free metrics of the core against their reference libraries on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sacrebleu.metrics import BLEU as SacreBLEU
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wmbench.metrics import METRICS, MetricInput
from wmbench.metrics.change import change_iou, change_mask
from wmbench.metrics.pixel import PSNR_MAX_DB, l1, psnr, ssim
from wmbench.metrics.text import bleu, exact_match, token_f1


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    a = rng.random((4, 24, 24, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    return a, b


def test_pixel_metrics_match_skimage_and_torchmetrics(pairs):
    import torch
    from torchmetrics.functional import mean_absolute_error

    a, b = pairs
    for i in range(len(a)):
        assert psnr(a[i:i + 1], b[i:i + 1])[0] == pytest.approx(peak_signal_noise_ratio(b[i], a[i], data_range=1.0), abs=1e-4)
        assert ssim(a[i:i + 1], b[i:i + 1])[0] == pytest.approx(
            structural_similarity(a[i], b[i], channel_axis=-1, data_range=1.0), abs=1e-4)
        assert l1(a[i:i + 1], b[i:i + 1])[0] == pytest.approx(
            float(mean_absolute_error(torch.from_numpy(a[i]), torch.from_numpy(b[i]))), abs=1e-6)


def test_psnr_of_identical_images_is_capped(pairs):
    a, _ = pairs
    assert psnr(a, a).tolist() == [PSNR_MAX_DB] * len(a)


def test_change_iou_ranks_copy_low_and_truth_high():
    source = np.zeros((1, 32, 32, 3), np.float32)
    target = source.copy()
    target[0, 8:16, 8:16] = 1.0
    blurred_everywhere = np.full_like(source, 0.5)
    assert change_iou(target, source, target)[0] == 1.0
    assert change_iou(source, source, target)[0] == 0.0  # copy: no predicted change
    assert 0 < change_iou(blurred_everywhere, source, target)[0] < 0.2
    assert change_iou(source, source, source)[0] == 1.0  # nothing changed, nothing predicted
    assert change_mask(target, source)[0, 12, 12] and not change_mask(target, source)[0, 0, 0]


def test_metric_objects_skip_samples_without_target():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    batch = MetricInput(kind="fdp", predictions=images, sources=images, targets=[images[0], None, images[2]])
    for name in ("l1", "psnr", "ssim", "change_iou"):
        scores = METRICS.get(name)().score(batch)
        assert np.isnan(scores[1]) and not np.isnan(scores[0]) and not np.isnan(scores[2])


def test_text_metrics_against_sacrebleu():
    preds = ["move the arm left", "Close the gripper.", "push the puck", ""]
    refs = ["move the arm left and down", "close the gripper", "open the drawer", ""]
    scorer = SacreBLEU(effective_order=True)
    expected = [scorer.sentence_score(p, [r]).score / 100 for p, r in zip(preds, refs)]
    np.testing.assert_allclose(bleu(preds, refs), expected, atol=1e-9)
    assert exact_match(preds, refs).tolist() == [0.0, 1.0, 0.0, 1.0]
    f1 = token_f1(preds, refs)
    assert f1[0] == pytest.approx(2 * 1.0 * (4 / 6) / (1.0 + 4 / 6))
    assert f1[1] == 1.0 and f1[2] == pytest.approx(1 / 3) and f1[3] == 1.0  # only "the" shared
