"""SAGAN generator: linear -> 4x4 (7x7 at 28 px, or `g_start`), up-blocks with conditional BN (residual, as the
official code's `generator_test` and BigGAN-PyTorch's `Generator`, or DCGAN stages), self-attention at chosen
feature resolutions, BN-ReLU-conv3-tanh (then a bilinear resize where G's last map is smaller than the images)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from sagan.config import ModelConfig
from sagan.layers import ConditionalBatchNorm2d, DCGBlock, GBlock, SelfAttention2d
from sagan.layers.spectral import apply_spectral_norm, init_weights


def make_attention(channels: int, cfg: ModelConfig) -> SelfAttention2d:
    """A self-attention block as `cfg` describes it, without spectral norm (the model registers it)."""
    return SelfAttention2d(
        channels, variant=cfg.attn_variant, qk_ratio=cfg.attn_qk_ratio, v_ratio=cfg.value_ratio, spectral_norm=False
    )


class Generator(nn.Module):
    """z: (B, z_dim), y: (B,) int64 labels or None when unconditional -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = [cfg.g_channels * m for m in cfg.g_channel_mult]
        self.start = cfg.start_resolution  # 4, or 7 at 28 px
        self.resize = cfg.g_output_resolution() != cfg.resolution  # a g_start whose doublings fall short of it
        self.linear = nn.Linear(cfg.z_dim, ch[0] * self.start**2)
        self.blocks = nn.ModuleList()
        self.attn_names: dict[int, str] = {}  # index in blocks -> public name, e.g. "g32"
        block = GBlock if cfg.arch == "resnet" else DCGBlock
        for i, res in enumerate(cfg.g_feature_resolutions()):
            if i > 0:
                self.blocks.append(block(ch[i - 1], ch[i], cfg.num_classes, cfg.bn_eps))
            if res in cfg.g_attn_resolutions:
                self.attn_names[len(self.blocks)] = f"g{res}"
                self.blocks.append(make_attention(ch[i], cfg))
        self.out_bn = nn.BatchNorm2d(ch[-1], eps=cfg.bn_eps)
        self.out_conv = nn.Conv2d(ch[-1], cfg.img_channels, 3, padding=1)

        cbn_embeddings = [e for m in self.modules() if isinstance(m, ConditionalBatchNorm2d) for e in m.embeddings()]
        init_weights(self, cfg.init, skip=[] if cfg.cbn_spectral_norm else cbn_embeddings)
        if cfg.g_spectral_norm:
            apply_spectral_norm(
                self, cfg.sn_eps, cfg.sn_power_iterations, skip=[] if cfg.cbn_spectral_norm else cbn_embeddings
            )
        elif cfg.cbn_spectral_norm:
            for e in cbn_embeddings:
                apply_spectral_norm(e, cfg.sn_eps, cfg.sn_power_iterations)

    def _memory_format(self) -> torch.memory_format:
        """channels_last where the convolution weights are (`G.to(memory_format=torch.channels_last)`, as training's
        channels_last does), else contiguous. The first feature map, which the linear layer makes, takes it: a conv
        keeps its input's layout, so without this every layer of G ran channels first against channels-last
        weights, and the attention block too."""
        conv = self.out_conv
        w = conv.parametrizations.weight.original if parametrize.is_parametrized(conv, "weight") else conv.weight
        channels_last = w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
        return torch.channels_last if channels_last else torch.contiguous_format

    @torch.no_grad()
    def set_class_signal(self, strength: float) -> None:
        """Scale every conditional BN's class gain and bias by `strength` in [0, 1] (transitional conditioning;
        1, fully conditional, is what a new or loaded generator has). No effect on an unconditional G."""
        for m in self.modules():
            if isinstance(m, ConditionalBatchNorm2d) and m.num_classes:
                m.class_signal.fill_(strength)

    def attention_layers(self) -> dict[str, SelfAttention2d]:
        """Attention blocks by name ("g<feature resolution>"), in forward order."""
        return {name: self.blocks[i] for i, name in self.attn_names.items()}

    def sample(self, n: int, classes=None, truncation: float | None = None, seed: int = 0) -> torch.Tensor:
        """n images (n, C, R, R) in [-1, 1] on the CPU, in eval mode; see `sagan.sampling.sample`."""
        from sagan.sampling import sample

        return sample(self, n, classes, truncation, seed)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.num_classes > 0 and y is None:
            raise ValueError("this generator is conditional: pass class labels y")
        h = self.linear(z).view(z.shape[0], -1, self.start, self.start)  # (B, C0, s, s)
        h = h.contiguous(memory_format=self._memory_format())
        for block in self.blocks:
            h = block(h) if isinstance(block, SelfAttention2d) else block(h, y)
        x = torch.tanh(self.out_conv(F.relu(self.out_bn(h))))
        if self.resize:  # as 28 px data is resized to 32
            size = (self.cfg.resolution, self.cfg.resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # upsampling: no antialias needed
        return x
