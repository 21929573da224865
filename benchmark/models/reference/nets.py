"""The reference models' networks: small conv nets on frames resized to `size` x `size`.

- `IDPNet`: (frame t, frame t+k) -> four categorical distributions, one per factor of the
  Meta-World motion language (data/metaworld_motion.py). The product of the four is a proper
  distribution over the language's 81 texts.
- `FDPNet`: (frame t, motion factors) -> a mixture of `components` Gaussian images: mixture
  weights pi_k, means mu_k = frame t + delta_k (at `size` x `size`, pixels in [0, 1]) and one
  learned standard deviation sigma. A sample is the mean image of a component drawn from pi; the
  likelihood of a target frame is the mixture density of its resized pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...data.metaworld_motion import FACTORS, Motion

N_FACTORS, N_VALUES = len(FACTORS), 3
ACTION_DIM = N_FACTORS * N_VALUES


def resize(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(H, W, 3) uint8 frames -> (B, 3, size, size) float32 in [0, 1], box-filtered (PIL), aspect not kept."""
    from PIL import Image

    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im)).convert("RGB")
                               .resize((size, size), Image.BOX)) for im in images])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def one_hot(motions: Sequence[Motion] | torch.Tensor) -> torch.Tensor:
    """(B, 12): each factor's value one-hot (motions: Motion tuples or a (B, 4) index tensor)."""
    index = motions.long() if isinstance(motions, torch.Tensor) else torch.tensor([list(m) for m in motions],
                                                                                 dtype=torch.long)
    return F.one_hot(index, N_VALUES).float().reshape(len(motions), ACTION_DIM)


def _coords(batch: int, size: int) -> torch.Tensor:
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx, yy]).expand(batch, 2, size, size)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(4, cout), nn.GELU())


class IDPNet(nn.Module):
    def __init__(self, size: int = 32, width: int = 32):
        super().__init__()
        if size % 8:
            raise ValueError(f"size must be a multiple of 8, got {size}")
        self.size = size
        self.features = nn.Sequential(_block(9 + 2, width), _block(width, 2 * width, 2),
                                      _block(2 * width, 2 * width, 2), _block(2 * width, 2 * width, 2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (size // 8) ** 2, 128), nn.GELU(),
                                  nn.Linear(128, ACTION_DIM))

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (B, 4, 3) of each factor's values."""
        x = torch.cat([source, target, target - source, _coords(len(source), self.size)], dim=1)
        return F.log_softmax(self.head(self.features(x)).view(-1, N_FACTORS, N_VALUES), dim=-1)


class FDPNet(nn.Module):
    def __init__(self, size: int = 32, width: int = 24, components: int = 8):
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be a multiple of 4, got {size}")
        self.size, self.components = size, components
        w = width
        self.stem = _block(3 + 2 + ACTION_DIM, w)
        self.down1 = _block(w, 2 * w, 2)
        self.down2 = _block(2 * w, 4 * w, 2)
        self.film = nn.Linear(ACTION_DIM, 8 * w)  # scale and shift of the bottleneck's channels
        self.mid = _block(4 * w, 4 * w)
        self.up2 = _block(4 * w + 2 * w, 2 * w)
        self.up1 = _block(2 * w + w, w)
        self.out = nn.Conv2d(w, 3 * components, 3, padding=1)
        with torch.no_grad():  # start near "copy" (delta ~ 0); components differ a little, so they can split
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
        self.mix = nn.Sequential(nn.Linear(4 * w + ACTION_DIM, 64), nn.GELU(), nn.Linear(64, components))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(0.1)))

    def forward(self, source: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log pi (B, K), means (B, K, 3, S, S), log sigma (scalar))."""
        b, s = len(source), self.size
        a_map = action[:, :, None, None].expand(b, ACTION_DIM, s, s)
        h0 = self.stem(torch.cat([source, _coords(b, s), a_map], dim=1))
        h1 = self.down1(h0)
        h2 = self.down2(h1)
        scale, shift = self.film(action).chunk(2, dim=1)
        h2 = self.mid(h2 * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        u2 = self.up2(torch.cat([F.interpolate(h2, scale_factor=2.0, mode="nearest"), h1], dim=1))
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), h0], dim=1))
        delta = self.out(u1).view(b, self.components, 3, s, s)
        log_pi = F.log_softmax(self.mix(torch.cat([h2.mean(dim=(2, 3)), action], dim=1)), dim=1)
        return log_pi, source[:, None] + delta, self.log_sigma.clamp(min=math.log(0.01))

    @staticmethod
    def component_loglik(means: torch.Tensor, target: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """(B, K): log N(target; mu_k, sigma^2 I) summed over the pixels (nats)."""
        z = (target[:, None] - means) / log_sigma.exp()
        per_dim = -0.5 * z.pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)
        return per_dim.flatten(2).sum(dim=2)

    def loglik(self, source: torch.Tensor, action: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(target | source, action) (B,), per-component log-likelihoods (B, K))."""
        log_pi, means, log_sigma = self(source, action)
        parts = self.component_loglik(means, target, log_sigma)
        return torch.logsumexp(log_pi + parts, dim=1), parts


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
