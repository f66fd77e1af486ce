"""Layers: self-attention, conditional batch norm, residual blocks, spectral-norm helpers."""

from sagan.layers.attention import SelfAttention2d
from sagan.layers.blocks import DBlock, GBlock
from sagan.layers.norm import ConditionalBatchNorm2d

__all__ = ["ConditionalBatchNorm2d", "DBlock", "GBlock", "SelfAttention2d"]
