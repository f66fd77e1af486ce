"""SAGAN discriminator: down-blocks (residual, or DCGAN conv stages), self-attention at chosen feature
resolutions, ReLU, global sum pooling and a projection head (Miyato & Koyama 2018):
D(x, y) = linear(h) + <embed(y), h>."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan.config import ModelConfig
from sagan.layers import DBlock, DCDBlock, SelfAttention2d
from sagan.layers.spectral import apply_spectral_norm, init_weights
from sagan.models.generator import make_attention


class Discriminator(nn.Module):
    """x: (B, C, R, R) in [-1, 1], y: (B,) int64 labels or None when unconditional -> logits (B,)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList()
        self.attn_names: dict[int, str] = {}
        in_ch = cfg.img_channels
        resolutions = cfg.d_feature_resolutions()
        for i, (mult, down) in enumerate(zip(cfg.d_channel_mult, cfg.d_downsample, strict=True)):
            out_ch = cfg.d_channels * mult
            if cfg.arch == "resnet":
                self.blocks.append(DBlock(in_ch, out_ch, downsample=down, preactivation=i > 0))
            else:
                self.blocks.append(DCDBlock(in_ch, out_ch, downsample=down))
            # Attention once per feature resolution: after the first block that produces it.
            if resolutions[i] in cfg.d_attn_resolutions and resolutions[i] not in resolutions[:i]:
                self.attn_names[len(self.blocks)] = f"d{resolutions[i]}"
                self.blocks.append(make_attention(out_ch, cfg))
            in_ch = out_ch
        self.linear = nn.Linear(in_ch, 1)
        self.embed = nn.Embedding(cfg.num_classes, in_ch) if cfg.num_classes > 0 else None
        # The projection term's weight (transitional conditioning); not in the state dict, 1 unless set.
        self.register_buffer("class_signal", torch.ones(()), persistent=False)
        init_weights(self, cfg.init)
        apply_spectral_norm(self, cfg.sn_eps, cfg.sn_power_iterations)

    @torch.no_grad()
    def set_class_signal(self, strength: float) -> None:
        """Weight the projection term by `strength` in [0, 1]: 0 leaves the unconditional head linear(h) alone."""
        self.class_signal.fill_(strength)

    def attention_layers(self) -> dict[str, SelfAttention2d]:
        """Attention blocks by name ("d<feature resolution>"), in forward order."""
        return {name: self.blocks[i] for i, name in self.attn_names.items()}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, R, R) -> h: (B, C_last), ReLU then sum over positions (DCGAN stages end activated)."""
        h = x
        for block in self.blocks:
            h = block(h)
        return (F.relu(h) if self.cfg.arch == "resnet" else h).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.linear(h).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass class labels y")
            out = out + self.class_signal * (self.embed(y) * h).sum(dim=1)  # projection term
        return out
