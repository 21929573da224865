"""The VQGAN decoder Chameleon / Anole need to turn generated image tokens into pixels.

transformers ships Chameleon's VQ *encoder* only (`ChameleonVQVAE` has no `decode`), so image
generation needs the decoder half of the taming-transformers VQGAN that Chameleon's tokenizer is.
It mirrors the encoder exactly (transformers' own `ChameleonVQVAEEncoderResnetBlock` and
`ChameleonVQVAEEncoderAttnBlock`), with the parameter names of the original checkpoint
(`decoder.conv_in`, `decoder.mid.block_1`, `decoder.up.<i>.block.<j>`, `decoder.up.<i>.upsample.conv`,
`decoder.norm_out`, `decoder.conv_out`), which are also the names under `model.vqmodel.decoder.` in
community HF-format Anole ports that keep it. Weights come from a separate file (`vq_decoder=`: a
safetensors / torch file with `decoder.*` keys, e.g. the original release's `tokenizer/vqgan.ckpt`,
local or `<hub repo>:<file>`) or, when a checkpoint keeps them, from its safetensors (keys
`model.vqmodel.decoder.*`); see `load_decoder_state`. Official transformers conversions
(`convert_chameleon_weights_to_hf.py`) keep only the encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import BadInput

PREFIXES = ("model.vqmodel.decoder.", "vqmodel.decoder.", "decoder.")


def build_decoder(vq_config: Any) -> Any:
    import torch
    from torch import nn
    from transformers.models.chameleon.modeling_chameleon import (ChameleonVQVAEEncoderAttnBlock,
                                                                  ChameleonVQVAEEncoderResnetBlock)

    class Upsample(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

        def forward(self, x):
            return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))

    class Decoder(nn.Module):
        def __init__(self, config):
            super().__init__()
            mults = list(config.channel_multiplier)
            self.num_resolutions, self.num_res_blocks = len(mults), config.num_res_blocks
            block_in = config.base_channels * mults[-1]
            curr_res = config.resolution // 2 ** (self.num_resolutions - 1)
            attn = config.attn_type == "vanilla"
            self.conv_in = nn.Conv2d(config.latent_channels, block_in, kernel_size=3, stride=1, padding=1)
            self.mid = nn.Module()
            self.mid.block_1 = ChameleonVQVAEEncoderResnetBlock(config, block_in, block_in)
            self.mid.attn_1 = ChameleonVQVAEEncoderAttnBlock(block_in) if attn else nn.Identity()
            self.mid.block_2 = ChameleonVQVAEEncoderResnetBlock(config, block_in, block_in)
            self.up = nn.ModuleList()
            for level in reversed(range(self.num_resolutions)):
                up = nn.Module()
                up.block, up.attn = nn.ModuleList(), nn.ModuleList()
                block_out = config.base_channels * mults[level]
                for _ in range(self.num_res_blocks + 1):
                    up.block.append(ChameleonVQVAEEncoderResnetBlock(config, block_in, block_out))
                    block_in = block_out
                    if attn and config.attn_resolutions and curr_res in config.attn_resolutions:
                        up.attn.append(ChameleonVQVAEEncoderAttnBlock(block_in))
                if level != 0:
                    up.upsample = Upsample(block_in)
                    curr_res *= 2
                self.up.insert(0, up)
            self.norm_out = nn.GroupNorm(num_groups=32, num_channels=block_in, eps=1e-6, affine=True)
            self.conv_out = nn.Conv2d(block_in, config.out_channels if hasattr(config, "out_channels") else 3,
                                      kernel_size=3, stride=1, padding=1)

        def forward(self, h):
            h = self.conv_in(h)
            h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
            for level in reversed(range(self.num_resolutions)):
                up = self.up[level]
                for j in range(self.num_res_blocks + 1):
                    h = up.block[j](h)
                    if len(up.attn) > 0:
                        h = up.attn[j](h)
                if level != 0:
                    h = up.upsample(h)
            h = self.norm_out(h)
            return self.conv_out(h * torch.sigmoid(h))

    return Decoder(vq_config)


def load_decoder_state(checkpoint: str, vq_decoder: str | None, revision: str | None = None) -> dict[str, Any]:
    """The decoder's tensors, and only those (no shard is read whole):

    - `vq_decoder` given: a local file, or `<hub repo id>:<path in the repo>` (e.g.
      `GAIR/Anole-7b-v0.1:tokenizer/vqgan.ckpt`, the original release's VQGAN), fetched through the
      hub cache. Torch files load with `weights_only=True` (memory-mapped where the format allows).
    - else the checkpoint (a local folder or a hub id): its safetensors index names the shards that
      hold `model.vqmodel.decoder.*`; only those are opened, and only those tensors read. Official
      transformers conversions of Chameleon drop the decoder, so they need `vq_decoder=`.
    """
    files = [_resolve_file(vq_decoder, revision)] if vq_decoder else _decoder_shards(checkpoint, revision)
    state: dict[str, Any] = {}
    for file in files:
        for key, read in _tensors(file):
            name = _strip(key)
            if name is not None:
                state[name] = read()
    if not state:
        raise BadInput(
            f"no VQ decoder weights (keys {', '.join(p + '*' for p in PREFIXES)}) in {vq_decoder or checkpoint}: "
            "transformers' Chameleon has no image decoder and its official conversions drop it; pass "
            "vq_decoder=<the original release's tokenizer/vqgan.ckpt>, e.g. GAIR/Anole-7b-v0.1:tokenizer/vqgan.ckpt")
    return state


def _strip(key: str) -> str | None:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


def _resolve_file(spec: str, revision: str | None = None) -> Path:
    """A local file, or `<repo id>:<file in the repo>` through huggingface_hub (its cache first)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    repo, sep, filename = spec.partition(":")
    if not sep or not filename or repo.count("/") != 1:
        raise BadInput(f"VQ decoder weights not found: {spec} (a local file, or <hub repo id>:<file in the repo>)")
    return _hub_file(repo, filename, revision)


def _hub_file(repo: str, filename: str, revision: str | None = None) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, revision=revision))
    except Exception as exc:  # noqa: BLE001 - offline, gated, missing: all say the same to the user
        raise BadInput(f"cannot fetch '{filename}' from the hub repo '{repo}': {type(exc).__name__}: {exc}") from exc


def _decoder_shards(checkpoint: str, revision: str | None = None) -> list[Path]:
    """The checkpoint's safetensors files that hold decoder keys (by the index, without reading them)."""
    import json

    folder = Path(checkpoint).expanduser()
    local = folder.is_dir()
    index = folder / "model.safetensors.index.json" if local else None
    if not local:
        try:
            index = _hub_file(checkpoint, "model.safetensors.index.json", revision)
        except BadInput:
            return [_hub_file(checkpoint, "model.safetensors", revision)]
    if index is not None and index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        names = sorted({f for k, f in weight_map.items() if _strip(k) is not None})
        return [folder / n if local else _hub_file(checkpoint, n, revision) for n in names]
    return sorted(folder.glob("*.safetensors"))


def _tensors(file: Path) -> list[tuple[str, Any]]:
    """(key, loader) pairs of a weights file; a loader reads its one tensor when called."""
    import torch

    if not file.is_file():
        raise BadInput(f"VQ decoder weights not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        handle = safe_open(str(file), framework="pt", device="cpu")
        return [(k, (lambda k=k: handle.get_tensor(k))) for k in handle.keys()]
    try:
        tensors = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) torch file cannot be memory-mapped
        tensors = torch.load(str(file), map_location="cpu", weights_only=True)
    tensors = tensors.get("state_dict", tensors)
    return [(k, (lambda v=v: v)) for k, v in tensors.items() if hasattr(v, "shape")]
