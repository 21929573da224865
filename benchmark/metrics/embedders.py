"""Pretrained backbones behind the perceptual and consistency metrics, loaded lazily from the
weights manifest (never downloaded here, never random outside tests).

Each embedder takes `weights_dir` (the metric option / --weights-dir) and `device`, reports
`available()` from `weights.locate` without loading anything, and loads on first use.
`backbone=` injects an already built model: tests use it for tiny random backbones, and nothing
else should (a metric with an injected backbone reports weights "injected", not a hash).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import weights

CLIP_WEIGHTS = {"laion2b_s34b_b79k": "open-clip-vit-b-32-laion2b", "openai": "open-clip-vit-b-32-openai"}


def _to_pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.asarray(image, dtype=np.uint8))


class Embedder:
    weight_ids: tuple[str, ...] = ()

    def __init__(self, weights_dir: str | None = None, device: str = "cpu", backbone: Any = None):
        self.weights_dir = weights_dir
        self.device = device
        self.backbone = backbone
        self.injected = backbone is not None
        self._paths: dict[str, Path | None] = {}

    def path(self, weight_id: str) -> Path | None:
        if weight_id not in self._paths:
            self._paths[weight_id] = weights.locate(weight_id, self.weights_dir)
        return self._paths[weight_id]

    def available(self) -> tuple[bool, str]:
        if self.injected:
            return True, ""
        for weight_id in self.weight_ids:
            if self.path(weight_id) is None:
                return False, weights.missing_reason(weight_id, self.weights_dir)
        return True, ""

    def weights_info(self) -> list[dict[str, Any]]:
        if self.injected:
            return [{"id": f"injected-{type(self).__name__}", "sha256": None, "path": None}]
        return [weights.weight_record(i, self.path(i)) for i in self.weight_ids]

    def model(self) -> Any:
        if self.backbone is None:
            ok, reason = self.available()
            if not ok:
                from ..core.errors import BadInput

                raise BadInput(reason)
            self.backbone = self.load()
        return self.backbone

    def load(self) -> Any:
        raise NotImplementedError


class LpipsNet(Embedder):
    """lpips.LPIPS (AlexNet, v0.1): linear layers from the lpips wheel, AlexNet features from the
    torchvision checkpoint located in the manifest (not from torchvision's own download)."""

    weight_ids = ("lpips-alex-v0.1", "torchvision-alexnet")

    def load(self) -> Any:
        import lpips
        import torch
        import torchvision

        with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            net = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True,
                              model_path=str(self.path("lpips-alex-v0.1")), verbose=False)
        alexnet = torchvision.models.alexnet(weights=None)
        alexnet.load_state_dict(torch.load(self.path("torchvision-alexnet"), map_location="cpu", weights_only=True))
        for stage in (net.net.slice1, net.net.slice2, net.net.slice3, net.net.slice4, net.net.slice5):
            for index in list(stage._modules):  # lpips names each layer by its index in features
                stage._modules[index] = alexnet.features[int(index)]
        net.net.requires_grad_(False)
        return net.eval().to(self.device)

    def distance(self, a: list[np.ndarray], b: list[np.ndarray], chunk: int = 16) -> np.ndarray:
        """LPIPS(a[i], b[i]) for same-shape pairs of uint8 images (pixels mapped to [-1, 1])."""
        import torch

        net = self.model()
        out = np.zeros(len(a))
        for start in range(0, len(a), chunk):
            x = torch.from_numpy(np.stack(a[start:start + chunk])).permute(0, 3, 1, 2).float()
            y = torch.from_numpy(np.stack(b[start:start + chunk])).permute(0, 3, 1, 2).float()
            with torch.no_grad():
                d = net(x.to(self.device) / 127.5 - 1.0, y.to(self.device) / 127.5 - 1.0)
            out[start:start + chunk] = d.reshape(-1).double().cpu().numpy()
        return out


class ClipEmbedder(Embedder):
    """open_clip ViT-B-32; `pretrained` picks the checkpoint (laion2b_s34b_b79k or openai).
    `backbone=(model, preprocess, tokenizer)` for tests."""

    def __init__(self, pretrained: str = "laion2b_s34b_b79k", **kwargs: Any):
        if pretrained not in CLIP_WEIGHTS:
            raise TypeError(f"pretrained must be one of {sorted(CLIP_WEIGHTS)}, got {pretrained!r}")
        super().__init__(**kwargs)
        self.pretrained = pretrained
        self.weight_ids = (CLIP_WEIGHTS[pretrained],)

    def load(self) -> Any:
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(
            "ViT-B-32", pretrained=str(self.path(self.weight_ids[0])), device=self.device,
            force_quick_gelu=self.pretrained == "openai")  # OpenAI's weights were trained with QuickGELU
        return model.eval(), preprocess, open_clip.get_tokenizer("ViT-B-32")

    def images(self, images: list[np.ndarray], chunk: int = 32) -> np.ndarray:
        """(N, D) L2-normalised image embeddings."""
        import torch

        model, preprocess, _ = self.model()
        parts = []
        for start in range(0, len(images), chunk):
            pixels = torch.stack([preprocess(_to_pil(im)) for im in images[start:start + chunk]]).to(self.device)
            with torch.no_grad():
                parts.append(torch.nn.functional.normalize(model.encode_image(pixels).float(), dim=-1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0))

    def texts(self, texts: list[str]) -> np.ndarray:
        """(N, D) L2-normalised text embeddings."""
        import torch

        model, _, tokenizer = self.model()
        with torch.no_grad():
            tokens = tokenizer(list(texts)).to(self.device)
            return torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).cpu().numpy()


class DinoEmbedder(Embedder):
    """DINOv2-small (transformers); the embedding is the final layer-normed CLS token
    (`pooler_output`). `backbone=(model, image_processor)` for tests."""

    weight_ids = ("dinov2-small",)

    def load(self) -> Any:
        from transformers import AutoImageProcessor, Dinov2Model

        folder = self.path("dinov2-small").parent
        return Dinov2Model.from_pretrained(folder).eval().to(self.device), AutoImageProcessor.from_pretrained(folder)

    def images(self, images: list[np.ndarray], chunk: int = 32) -> np.ndarray:
        import torch

        model, processor = self.model()
        parts = []
        for start in range(0, len(images), chunk):
            inputs = processor(images=[_to_pil(im) for im in images[start:start + chunk]], return_tensors="pt")
            with torch.no_grad():
                out = model(pixel_values=inputs["pixel_values"].to(self.device))
            parts.append(torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays; a zero row gives 0."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = na * nb
    cos = np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.clip(cos, -1.0, 1.0)  # float rounding can give 1.0000001 for identical images
