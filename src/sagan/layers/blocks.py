"""Residual up- and down-blocks of the SNGAN/BigGAN ResNet backbones that SAGAN's official code uses."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan.layers.norm import ConditionalBatchNorm2d


class GBlock(nn.Module):
    """Generator block: (c)BN-ReLU-up2-conv3-(c)BN-ReLU-conv3, plus a 1x1-conv upsampled shortcut.

    x: (B, in_channels, H, W), y: (B,) or None -> (B, out_channels, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0, bn_eps: float = 1e-5):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_channels, num_classes, eps=bn_eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(out_channels, num_classes, eps=bn_eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        # A 1x1 conv commutes with nearest upsampling, so convolve at the lower resolution.
        return h + F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest")


class DBlock(nn.Module):
    """Discriminator block: [ReLU]-conv3-ReLU-conv3-[avgpool2], plus a 1x1-conv shortcut when shapes change.

    The first block of D sees images and has no pre-activation (BigGAN's `preactivation=False`).
    x: (B, in_channels, H, W) -> (B, out_channels, H/2, W/2) when downsampling, else same size.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True, preactivation: bool = True):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        learnable = in_channels != out_channels or downsample
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        # Average pooling and a 1x1 conv are both linear and commute exactly, so pool first (cheaper).
        x = F.avg_pool2d(x, 2) if self.downsample else x
        return x if self.shortcut is None else self.shortcut(x)
