"""Weight-free FDP metrics against skimage / torchmetrics / scipy on the same inputs, and the
edit-aware property (copy ranked below the ground truth) on synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wmbench.metrics import METRICS, MetricInput, change, physics, pixel

WEIGHT_FREE_FDP = ["l1", "psnr", "ssim", "change_iou", "change_iou_weighted", "masked_mse",
                   "background_preservation"]


def scene(seed: int, h: int = 40, w: int = 56):
    """Smooth background, an object that moves between source and target; uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((h, w, 3)), sigma=(3, 3, 0))
    base = ((base - base.min()) / (base.max() - base.min()) * 200).astype(np.uint8)
    source, target = base.copy(), base.copy()
    colour = rng.integers(100, 256, 3).astype(np.uint8)
    source[5:15, 5:15] = colour
    target[20:30, 30:40] = colour
    return source, target


def batch_of(predictions, sources, targets) -> MetricInput:
    return MetricInput(kind="fdp", predictions=list(predictions), sources=list(sources),
                       targets=list(targets), actions=["move it"] * len(predictions))


def test_l1_psnr_ssim_match_reference_libraries():
    import torch
    from torchmetrics.functional import mean_absolute_error

    rng = np.random.default_rng(1)
    preds = rng.integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    targets = np.clip(preds.astype(int) + rng.integers(-40, 40, preds.shape), 0, 255).astype(np.uint8)
    targets[0] = preds[0]  # identical pair: PSNR capped, SSIM 1
    b = batch_of(preds, preds, targets)
    pf, tf = preds / 255.0, targets / 255.0
    ref_l1 = [float(mean_absolute_error(torch.from_numpy(p), torch.from_numpy(t))) for p, t in zip(pf, tf)]
    with np.errstate(divide="ignore"):
        ref_psnr = [min(peak_signal_noise_ratio(t, p, data_range=1.0), 100.0) for p, t in zip(pf, tf)]
    ref_ssim = [structural_similarity(p, t, channel_axis=-1, data_range=1.0) for p, t in zip(pf, tf)]
    np.testing.assert_allclose(METRICS.get("l1")().score(b), ref_l1, atol=1e-6)
    np.testing.assert_allclose(METRICS.get("psnr")().score(b), ref_psnr, atol=1e-4)
    np.testing.assert_allclose(METRICS.get("ssim")().score(b), ref_ssim, atol=1e-5)
    # the float code path (float images, explicit data range) agrees with skimage too
    np.testing.assert_allclose(pixel.ssim(pf, tf, data_range=1.0), ref_ssim, atol=1e-6)
    np.testing.assert_allclose(pixel.psnr(pf[1:], tf[1:], data_range=1.0), ref_psnr[1:], atol=1e-6)
    grey = [structural_similarity(p[..., 0], t[..., 0], data_range=1.0) for p, t in zip(pf, tf)]
    np.testing.assert_allclose(pixel.ssim(pf[..., 0], tf[..., 0], data_range=1.0), grey, atol=1e-6)
    np.testing.assert_allclose(pixel.ssim(preds[..., 0], targets[..., 0]), grey, atol=1e-6)  # uint8 kernel
    # non-contiguous input (a crop) and the smallest image SSIM accepts
    crop = [structural_similarity(p[3:10, 5:12], t[3:10, 5:12], channel_axis=-1, data_range=1.0)
            for p, t in zip(pf, tf)]
    np.testing.assert_allclose(pixel.ssim(preds[:, 3:10, 5:12], targets[:, 3:10, 5:12]), crop, atol=1e-6)


def test_mixed_sizes_and_missing_targets():
    a, b = scene(0)
    small = a[:20, :24].copy()
    data = MetricInput(kind="fdp", predictions=[a, small, b], sources=[a, small, a], targets=[b, small, None])
    for name in WEIGHT_FREE_FDP:
        scores = METRICS.get(name)().score(data)
        assert scores.shape == (3,) and np.isnan(scores[2]) and not np.isnan(scores[0]), name
    assert METRICS.get("ssim")().score(data)[1] == pytest.approx(1.0)


def test_change_iou_matches_per_image_scipy_reference():
    rng = np.random.default_rng(3)
    sources = rng.integers(0, 256, (4, 30, 30, 3), dtype=np.uint8)
    targets, preds = sources.copy(), sources.copy()
    targets[:, 5:15, 5:15] = 255
    preds[:, 8:18, 6:16] = 255
    preds[3] = sources[3]  # copy

    def mask(a, b):
        diff = np.abs(a.astype(np.float32) / 255 - b.astype(np.float32) / 255).mean(axis=-1)
        return gaussian_filter(diff, 1.0, mode="nearest") > 0.1

    expected = []
    for p, s, t in zip(preds, sources, targets):
        pm, tm = mask(p, s), mask(t, s)
        expected.append((pm & tm).sum() / (pm | tm).sum())
    np.testing.assert_allclose(METRICS.get("change_iou")().score(batch_of(preds, sources, targets)), expected, atol=1e-9)
    assert expected[3] == 0.0
    # the torch blur equals scipy's gaussian_filter (mode nearest, truncate 4)
    images = rng.random((3, 17, 23)).astype(np.float32)
    np.testing.assert_allclose(change.gaussian_blur(images, 1.0),
                               gaussian_filter(images, (0, 1.0, 1.0), mode="nearest"), atol=1e-6)


@pytest.mark.parametrize("name", [n for n in WEIGHT_FREE_FDP + ["sim_motion"]])
def test_edit_aware_flag_is_honest(name):
    """Metrics marked edit-aware rank the oracle above copy on every synthetic scene; at least
    one scene shows each unmarked metric preferring copy or tying it (or copy scoring high)."""
    scenes = [scene(s) for s in range(6)]
    sources = [s for s, _ in scenes]
    targets = [t for _, t in scenes]
    aux = [{"source_segmentation": (s != s[..., :1] * 0 + s[0, 0]).any(-1).astype(np.uint8) * 0,
            "target_segmentation": None} for s in sources]
    for i, (s, t) in enumerate(scenes):  # label 2 = the object, where it is in each frame
        src_seg = np.zeros(s.shape[:2], np.uint8)
        tgt_seg = src_seg.copy()
        src_seg[5:15, 5:15] = 2
        tgt_seg[20:30, 30:40] = 2
        aux[i] = {"source_segmentation": src_seg, "target_segmentation": np.stack([tgt_seg] * 3, -1)}
    metric = METRICS.get(name)()
    copy = metric.score(MetricInput("fdp", list(sources), sources, targets, aux=aux))
    oracle = metric.score(MetricInput("fdp", list(targets), sources, targets, aux=aux))
    better = oracle > copy if metric.higher_is_better else oracle < copy
    if metric.edit_aware:
        assert better.all(), (name, copy, oracle)
        floor = 0.0
        assert np.allclose(copy, floor), (name, copy)  # copy sits at the floor by construction
    elif name == "background_preservation":
        assert (copy > 0.99).all()  # rewards copying: documented, not edit-aware
    else:
        assert metric.edit_aware is False


def test_physics_functions():
    s, t = scene(7)
    src, tgt = s[None], t[None]
    dp = change.change_magnitude(tgt, src)
    assert physics.weighted_change_iou(dp, dp)[0] == pytest.approx(1.0)
    assert physics.weighted_change_iou(np.zeros_like(dp), dp)[0] == 0.0
    assert physics.weighted_change_iou(np.zeros_like(dp), np.zeros_like(dp))[0] == 1.0
    mask = dp > change.THRESHOLD
    # masked MSE of copy inside the true change equals the plain MSE of source vs target there
    diff = ((s.astype(float) - t.astype(float)) / 255) ** 2
    assert physics.masked_mse(src, tgt, mask)[0] == pytest.approx(diff.mean(-1)[mask[0]].mean())
    assert physics.masked_mse(tgt, tgt, mask)[0] == 0.0
    bg = physics.background_preservation(src, tgt, mask)[0]
    assert bg == pytest.approx(1 - (np.abs(s.astype(float) - t) / 255).mean(-1)[~mask[0]].mean())
    # counterfactual: an unchanged prediction under a different action is insensitive (0)
    assert physics.counterfactual_sensitivity(tgt, tgt, src, tgt)[0] == 0.0
    assert physics.counterfactual_sensitivity(tgt, src, src, tgt)[0] == pytest.approx(1.0)
    assert np.isnan(physics.counterfactual_sensitivity(src, src, src, src)[0])
    # seg label maps at another resolution are resized (nearest)
    assert physics.labels_of(np.ones((10, 10, 3), np.uint8) * 2, (20, 30)).shape == (20, 30)


def test_counterfactual_metric_reads_aux():
    s, t = scene(2)
    metric = METRICS.get("counterfactual_sensitivity")()
    data = MetricInput("fdp", [t, t], [s, s], [t, t], aux=[{"counterfactual_prediction": s}, {}])
    scores = metric.score(data)
    assert scores[0] == pytest.approx(1.0) and np.isnan(scores[1])
