"""Training the reference networks, and their checkpoint files.

`train(config, pairs)` fits one network on `Pairs` (frame pairs at the network's size with their
motion factors) with Adam for a fixed number of steps, in minibatches drawn by a seeded generator,
so the same seed, data and torch build give the same weights. The loss: IDP, the cross-entropy of
the four motion factors (the negative log-likelihood of the text); FDP, the mixture's negative
log-likelihood per pixel dimension plus `wta_relax` times the mean over components (a relaxed
winner-takes-all term that keeps every component learning; 0 gives the pure likelihood).

A checkpoint is a safetensors file of float32 tensors whose metadata key `wmbench_reference`
holds the config and training record as JSON (no timestamps, so retraining reproduces the bytes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.errors import BadInput
from .nets import FDPNet, IDPNet, one_hot

FORMAT_VERSION = 1
METADATA_KEY = "wmbench_reference"
RETRAIN = "retrain it with `wmbench reference train` (docs/paper-in-miniature.md)"


@dataclass(frozen=True)
class TrainConfig:
    kind: str  # "idp" | "fdp"
    size: int = 32
    width: int = 32
    components: int = 8  # FDP mixture components
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    wta_relax: float = 0.05
    seed: int = 0

    def build(self) -> torch.nn.Module:
        if self.kind == "idp":
            return IDPNet(self.size, self.width)
        if self.kind == "fdp":
            return FDPNet(self.size, self.width, self.components)
        raise ValueError(f"kind must be 'idp' or 'fdp', got {self.kind!r}")


@dataclass
class Pairs:
    """Training pairs: sources and targets (N, 3, S, S) in [0, 1], motions (N, 4) factor indices."""

    sources: torch.Tensor
    targets: torch.Tensor
    motions: torch.Tensor
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sources)

    @staticmethod
    def concat(parts: list["Pairs"]) -> "Pairs":
        return Pairs(torch.cat([p.sources for p in parts]), torch.cat([p.targets for p in parts]),
                     torch.cat([p.motions for p in parts]), {"parts": [p.description for p in parts]})


def loss_of(net: torch.nn.Module, config: TrainConfig, src: torch.Tensor, tgt: torch.Tensor,
            motions: torch.Tensor) -> torch.Tensor:
    if config.kind == "idp":
        log_probs = net(src, tgt)  # (B, 4, 3)
        return -log_probs.gather(2, motions[:, :, None]).squeeze(2).sum(dim=1).mean()
    action = one_hot(motions)
    loglik, parts = net.loglik(src, action, tgt)
    dims = tgt[0].numel()
    return -(loglik.mean() + config.wta_relax * parts.mean()) / dims


def train(config: TrainConfig, pairs: Pairs, progress: bool = True, desc: str = "") -> tuple[torch.nn.Module, list[float]]:
    """The trained network (eval mode) and the loss of every step."""
    if len(pairs) < config.batch_size:
        raise BadInput(f"{desc or config.kind}: {len(pairs)} training pairs, fewer than one batch of {config.batch_size}")
    from tqdm import tqdm

    torch.manual_seed(config.seed)
    net = config.build()
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    rng = np.random.default_rng(config.seed)
    order, cursor, losses = rng.permutation(len(pairs)), 0, []
    bar = tqdm(range(config.steps), desc=desc or f"train {config.kind}", unit="step", disable=not progress)
    for step in bar:
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(pairs)), 0
        index = torch.from_numpy(order[cursor:cursor + config.batch_size])
        cursor += config.batch_size
        loss = loss_of(net, config, pairs.sources[index], pairs.targets[index], pairs.motions[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    net.eval()
    return net, losses


def save(path: Path, net: torch.nn.Module, config: TrainConfig, record: dict[str, Any]) -> str:
    """Write the checkpoint; returns its sha256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().float() for k, v in net.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps({"format_version": FORMAT_VERSION, "config": asdict(config),
                                          "training": record}, sort_keys=True)}
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)
    return sha256_of(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load(path: Path, kind: str, sha256: str | None = None) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any], str]:
    """(network in eval mode, config, metadata, sha256). Every problem is a BadInput that names the
    file and how to get a good one."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise BadInput(f"reference checkpoint {path} does not exist; {RETRAIN}")
    digest = sha256_of(path)
    if sha256 is not None and str(sha256).lower() != digest:
        raise BadInput(f"reference checkpoint {path} has sha256 {digest}, the model card says {sha256}: the file "
                       f"is not the one the card was made with; restore it, {RETRAIN}, or put the new sha256 "
                       "in the card (args.sha256)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[METADATA_KEY])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        config = TrainConfig(**meta["config"])
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {meta.get('format_version')!r}, this wmbench reads {FORMAT_VERSION}")
        net = config.build()
        net.load_state_dict(tensors)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise BadInput(f"reference checkpoint {path} is not a readable wmbench reference checkpoint "
                       f"({type(exc).__name__}: {str(exc)[:300]}); {RETRAIN}") from None
    if config.kind != kind:
        raise BadInput(f"reference checkpoint {path} holds an {config.kind.upper()} network, not an {kind.upper()} one")
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise BadInput(f"reference checkpoint {path} holds non-finite weights; {RETRAIN}")
    net.eval()
    return net, config, meta, digest


def curve(losses: list[float], every: int = 10) -> list[float]:
    """The loss curve as means over consecutive windows of `every` steps."""
    return [float(np.mean(losses[i:i + every])) for i in range(0, len(losses), every)]
