"""Conditional batch normalisation (de Vries et al. 2017; Miyato & Koyama 2018), as in SAGAN's generator."""

from __future__ import annotations

import torch
import torch.nn as nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias depend on the class: y = BN(x) * (1 + gain[y]) + bias[y].

    With num_classes = 0 this is a plain affine BatchNorm2d. The class embeddings `embed_gain` and
    `embed_bias` start at zero, so the layer starts as plain BN (models that spectrally normalise them
    re-initialise them, since a zero matrix has no spectral norm).

    x: (B, C, H, W); y: (B,) int64 class labels in [0, num_classes).
    """

    def __init__(self, num_features: int, num_classes: int = 0, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=num_classes == 0)
        if num_classes > 0:
            self.embed_gain = nn.Embedding(num_classes, num_features)
            self.embed_bias = nn.Embedding(num_classes, num_features)
            nn.init.zeros_(self.embed_gain.weight)
            nn.init.zeros_(self.embed_bias.weight)

    def embeddings(self) -> list[nn.Module]:
        """The class embeddings (empty when unconditional)."""
        return [self.embed_gain, self.embed_bias] if self.num_classes > 0 else []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.bn(x)
        if self.num_classes == 0:
            return h
        if y is None:
            raise ValueError("a conditional batch norm needs class labels y")
        gain = 1.0 + self.embed_gain(y)[:, :, None, None]  # (B, C, 1, 1)
        return h * gain + self.embed_bias(y)[:, :, None, None]
