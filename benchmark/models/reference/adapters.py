"""The reference models as wmbench adapters (`reference-idp`, `reference-fdp`).

Both speak the built-in Meta-World motion language (data/metaworld_motion.py) and work on frames
resized to the checkpoint's size (32 x 32 by default; the aspect is not kept).

- `reference-idp`: `infer_action` answers the most likely text (the most likely value of each
  factor); `action_logprob` is log p(text | frames) = the sum of the four factors' log-probabilities,
  a proper log-likelihood over the 81 texts (they sum to 1). A text outside the language gets
  the floor: the log-probability of the least likely text of the language minus log(1000) (about
  6.9 nats), so it ranks below every text the model can say. Prompts are ignored.
- `reference-fdp`: `predict_next` draws a mixture component per prediction (seeded by the card's
  `seed`, the task seed, the sample id and the draw's index, as the unified adapters do) and
  returns its mean image: the source frame at full size plus the component's change, upsampled
  bilinearly. `transition_logprob` is the mixture's log-density (nats) of the target resized to the
  network's size with pixels in [0, 1]: comparable between targets of one sample, not across sizes.
  An action outside the language is a failed sample (the network was never conditioned on one).

`checkpoint` is a .safetensors path; a bare file name (no folder: not "./name") is looked up in the committed weights
folder (baselines/weights/). With `sha256` the file must have that digest (else exit 2).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import BadInput, SampleError
from ...core.types import Batch
from ...data.metaworld_motion import VOCABULARY, Motion, motion_text, parse_motion
from .. import CARDS_DIR
from ..base import Frame, Model

WEIGHTS_DIR = CARDS_DIR / "weights"  # the committed checkpoints, beside the cards
#: nats below the least likely text of the language given to a text outside it
OUT_OF_LANGUAGE_MARGIN = math.log(1000.0)


def resolve_checkpoint(checkpoint: str) -> Path:
    """A bare file name ("ref-fdp.safetensors") is a committed checkpoint in WEIGHTS_DIR; anything
    with a folder in it ("./ref-fdp.safetensors", "~/ckpt/ref-fdp.safetensors") is a path."""
    text = str(checkpoint)
    if "/" not in text and os.sep not in text:
        return WEIGHTS_DIR / text
    return Path(text).expanduser()


class _Reference(Model):
    kind = ""

    def __init__(self, checkpoint: str, sha256: str | None = None, device: str = "cpu"):
        super().__init__()
        from .training import load

        self.path = resolve_checkpoint(checkpoint)
        self.net, self.config, self.meta, self.sha256 = load(self.path, self.kind, sha256)
        self.device = str(device)
        self.net.to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        return {"checkpoint": self.path.name, "checkpoint_sha256": self.sha256, "size": self.config.size}

    def _frames(self, images: list[np.ndarray]) -> Any:
        from .nets import resize

        return resize(images, self.config.size).to(self.device)


class ReferenceIDP(_Reference):
    """Reference inverse dynamics model trained on the built-in Meta-World data (wmbench reference train)."""

    description = "reference IDP: a small conv net over a frame pair, answers in the Meta-World motion language"
    kind = "idp"
    logprob_reduction = "text"  # the whole text's log-likelihood over the language (annotate records it)

    def _log_probs(self, batch: Batch) -> np.ndarray:
        import torch

        if batch.targets is None:
            raise BadInput("reference-idp needs both frames of each pair")
        with torch.no_grad():
            return self.net(self._frames(batch.sources), self._frames(batch.targets)).cpu().double().numpy()

    def infer_action(self, batch: Batch) -> list[str]:
        return [motion_text(Motion(*row.argmax(axis=1).tolist())) for row in self._log_probs(batch)]

    def action_logprob(self, batch: Batch, actions: list[str]) -> list[float]:
        out = []
        for row, action in zip(self._log_probs(batch), actions):
            motion = parse_motion(action)
            if motion is None:
                out.append(float(row.min(axis=1).sum() - OUT_OF_LANGUAGE_MARGIN))
            else:
                out.append(float(row[np.arange(len(motion)), list(motion)].sum()))
        return out


class ReferenceFDP(_Reference):
    """Reference forward dynamics model (a mixture of Gaussian images) trained on the built-in Meta-World data."""

    description = "reference FDP: a small conv net predicting a mixture of next frames from a frame and a motion text"
    kind = "fdp"

    def __init__(self, checkpoint: str, sha256: str | None = None, device: str = "cpu", seed: int = 0):
        super().__init__(checkpoint, sha256, device)
        self.seed = int(seed)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "seed": self.seed}

    def _actions(self, batch: Batch) -> Any:
        from .nets import one_hot

        texts = batch.actions
        if texts is None:
            raise BadInput("reference-fdp needs the action text of each sample")
        motions = [parse_motion(t) for t in texts]
        bad = [t for t, m in zip(texts, motions) if m is None]
        if bad:
            raise SampleError(f"reference-fdp understands the Meta-World motion language only ({len(VOCABULARY)} "
                              f"texts, e.g. {VOCABULARY[-1]!r}); got {bad[0]!r}")
        return one_hot(motions).to(self.device)

    def predict_next(self, batch: Batch, n: int = 1) -> list[list[np.ndarray]]:
        import torch
        from torch.nn import functional as F

        from .._hf import stable_seed

        small_source = self._frames(batch.sources)
        with torch.no_grad():
            log_pi, means, _ = self.net(small_source, self._actions(batch))
        weights = log_pi.exp().cpu().double().numpy()
        out = []
        for i, (source, sid) in enumerate(zip(batch.sources, batch.sample_ids)):
            h, w = source.shape[:2]
            full = torch.from_numpy(np.array(source, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)
            draws = []
            for j in range(n):
                rng = np.random.default_rng(stable_seed(self.seed, [str(batch.seed), sid, str(j)]))
                k = int(rng.choice(len(weights[i]), p=weights[i] / weights[i].sum()))
                delta = F.interpolate((means[i, k] - small_source[i])[None].cpu(), size=(h, w), mode="bilinear",
                                      align_corners=False)[0]
                image = (full + delta).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
                draws.append(Frame(image, {"component": k, "component_weight": round(float(weights[i, k]), 4)}))
            out.append(draws)
        return out

    def transition_logprob(self, batch: Batch, targets: list[np.ndarray]) -> list[float]:
        import torch

        with torch.no_grad():
            loglik, _ = self.net.loglik(self._frames(batch.sources), self._actions(batch), self._frames(targets))
        return [float(v) for v in loglik.cpu().double()]
