"""The VQGAN decoder Chameleon / Anole need to turn generated image tokens into pixels.

transformers ships Chameleon's VQ *encoder* only (`ChameleonVQVAE` has no `decode`), so image
generation needs the decoder half of the taming-transformers VQGAN that Chameleon's tokenizer is.
It mirrors the encoder exactly (transformers' own `ChameleonVQVAEEncoderResnetBlock` and
`ChameleonVQVAEEncoderAttnBlock`), with the parameter names of the original checkpoint
(`decoder.conv_in`, `decoder.mid.block_1`, `decoder.up.<i>.block.<j>`, `decoder.up.<i>.upsample.conv`,
`decoder.norm_out`, `decoder.conv_out`), which are also the names under `model.vqmodel.decoder.` in
HF-format Anole checkpoints (the transformers Anole port). Weights come from the checkpoint's
safetensors (keys `model.vqmodel.decoder.*`) or from a separate file (`vq_decoder=`: a
safetensors / torch file with `decoder.*` keys, e.g. Chameleon's `tokenizer/vqgan.ckpt`).
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


def load_decoder_state(checkpoint: str, vq_decoder: str | None) -> dict[str, Any]:
    """The decoder's tensors, from `vq_decoder` when given, else from the checkpoint's safetensors."""
    import torch
    from safetensors.torch import load_file

    files = [Path(vq_decoder).expanduser()] if vq_decoder else sorted(Path(checkpoint).expanduser().glob("*.safetensors"))
    state: dict[str, Any] = {}
    for file in files:
        if not file.is_file():
            raise BadInput(f"VQ decoder weights not found: {file}")
        if file.suffix == ".safetensors":
            tensors = load_file(str(file))
        else:
            tensors = torch.load(str(file), map_location="cpu", weights_only=True)
            tensors = tensors.get("state_dict", tensors)
        for key, value in tensors.items():
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    state[key[len(prefix):]] = value
                    break
    if not state:
        raise BadInput(
            f"no VQ decoder weights (keys {', '.join(p + '*' for p in PREFIXES)}) in "
            f"{vq_decoder or checkpoint}: transformers' Chameleon has no image decoder; pass vq_decoder=<file>")
    return state
