"""LPIPS / CLIP / DINO metrics and the consistency metrics built on them, with RANDOM tiny or
random-initialised backbones (named as such; no downloads), compared with the reference
library called directly on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wmbench.metrics import METRICS, MetricInput
from wmbench.metrics.embedders import cosine_rows


def images(seed: int, n: int = 3, h: int = 48, w: int = 64):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    targets = [np.roll(s, 9, axis=1) for s in sources]
    return sources, targets


def data(preds, sources, targets, actions=None):
    return MetricInput("fdp", list(preds), list(sources), list(targets), actions or ["push it left"] * len(preds))


@pytest.fixture(scope="module")
def random_alexnet_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds a RANDOM-initialised AlexNet under torchvision's file
    name, so that both lpips' own loader and ours read the same (random) weights offline."""
    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    import torchvision

    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    return home


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips' own torchvision call
def test_lpips_matches_lpips_package(random_alexnet_home, monkeypatch):
    import lpips
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(random_alexnet_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    metric = METRICS.get("lpips")()
    assert metric.available() == (True, "")
    sources, targets = images(0)
    preds = [np.clip(t.astype(int) + 20, 0, 255).astype(np.uint8) for t in targets]
    ours = metric.score(data(preds, sources, targets))
    # reference: lpips' own constructor (linear layers from its wheel, AlexNet via torchvision)
    reference = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()
    to_t = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = reference(to_t(preds), to_t(targets)).reshape(-1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    records = {r["id"]: r for r in metric.weights_info()}
    assert records["lpips-alex-v0.1"]["sha256"].startswith("df73285e")
    assert records["torchvision-alexnet"]["path"].endswith("alexnet-owt-7be5be79.pth")
    disc = METRICS.get("disc_lpips")()
    assert list(disc.score(data(sources, sources, targets))) == [0.0] * 3  # copy never wins
    assert list(disc.score(data(targets, sources, targets))) == [1.0] * 3


@pytest.fixture(scope="module")
def tiny_clip():
    """A RANDOM tiny open_clip CLIP (real architecture, real tokenizer, 32 px)."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
        text_cfg=open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)).eval()
    return model, open_clip.image_transform(32, is_train=False), open_clip.get_tokenizer("ViT-B-32")


def test_clip_metrics_match_open_clip(tiny_clip):
    from PIL import Image

    model, preprocess, tokenizer = tiny_clip
    sources, targets = images(1)
    preds = [np.flipud(t).copy() for t in targets]
    actions = ["push the cup left", "open the drawer", "lift the lid"]

    def embed_images(xs):
        with torch.no_grad():
            e = model.encode_image(torch.stack([preprocess(Image.fromarray(x)) for x in xs]))
        return torch.nn.functional.normalize(e, dim=-1).numpy()

    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(actions)), dim=-1).numpy()
    p, s, t = embed_images(preds), embed_images(sources), embed_images(targets)
    b = data(preds, sources, targets, actions)
    np.testing.assert_allclose(METRICS.get("clip_i")(backbone=tiny_clip).score(b), (p * t).sum(1), atol=1e-5)
    np.testing.assert_allclose(METRICS.get("clip_t")(backbone=tiny_clip).score(b), (p * text).sum(1), atol=1e-5)
    np.testing.assert_allclose(METRICS.get("clip_direction")(backbone=tiny_clip).score(b),
                               cosine_rows(p - s, text), atol=1e-5)
    np.testing.assert_allclose(METRICS.get("clip_direction_image")(backbone=tiny_clip).score(b),
                               cosine_rows(p - s, t - s), atol=1e-5)
    # captions, when the dataset has them, replace the action as the text direction
    b.meta = [{"source_caption": "a cup", "target_caption": "a cup on the left"}] * 3
    with torch.no_grad():
        cap = model.encode_text(tokenizer(["a cup on the left", "a cup"]))
    cap = torch.nn.functional.normalize(cap, dim=-1).numpy()
    np.testing.assert_allclose(METRICS.get("clip_direction")(backbone=tiny_clip).score(b),
                               cosine_rows(p - s, np.repeat((cap[0] - cap[1])[None], 3, 0)), atol=1e-5)
    assert METRICS.get("clip_i")(backbone=tiny_clip).weights_info()[0]["id"].startswith("injected")


@pytest.mark.parametrize("name", ["clip_direction_image", "disc_clip", "clip_i", "clip_direction"])
def test_clip_edit_awareness(tiny_clip, name):
    sources, targets = images(2)
    metric = METRICS.get(name)(backbone=tiny_clip)
    copy = metric.score(data(sources, sources, targets))
    oracle = metric.score(data(targets, sources, targets))
    if metric.edit_aware:
        assert (oracle > copy).all() and np.allclose(copy, 0.0)
    elif name == "clip_i":
        assert (copy > 0.5).all()  # copy scores high: CLIP-I rewards copying (paper)
    else:
        assert np.allclose(copy, 0.0)  # no image change, no direction; oracle not guaranteed > 0


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory):
    """A --weights-dir holding a RANDOM tiny DINOv2 saved in the hub's file layout."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          image_size=28, patch_size=14)
    Dinov2Model(config).save_pretrained(root / "dinov2-small")
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                      ).save_pretrained(root / "dinov2-small")
    return root


def test_dino_loads_from_weights_dir_and_matches_transformers(tiny_dino_dir):
    from transformers import AutoImageProcessor, Dinov2Model

    metric = METRICS.get("dino")(weights_dir=str(tiny_dino_dir))
    assert metric.available() == (True, "")
    assert metric.weights_info()[0]["path"].startswith(str(tiny_dino_dir))
    sources, targets = images(3)
    preds = [np.fliplr(t).copy() for t in targets]
    ours = metric.score(data(preds, sources, targets))
    model = Dinov2Model.from_pretrained(tiny_dino_dir / "dinov2-small").eval()
    processor = AutoImageProcessor.from_pretrained(tiny_dino_dir / "dinov2-small")
    with torch.no_grad():
        emb = lambda xs: torch.nn.functional.normalize(
            model(**processor(images=xs, return_tensors="pt")).pooler_output, dim=-1).numpy()
        expected = (emb(preds) * emb(targets)).sum(1)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    disc = METRICS.get("disc_dino")(weights_dir=str(tiny_dino_dir))
    assert list(disc.score(data(sources, sources, targets))) == [0.0] * 3
    assert list(disc.score(data(targets, sources, targets))) == [1.0] * 3
