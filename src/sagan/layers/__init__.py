"""Layers: self-attention, conditional batch norm, residual and DCGAN blocks, spectral-norm helpers."""

from sagan.layers.attention import SelfAttention2d
from sagan.layers.blocks import DBlock, DCDBlock, DCGBlock, GBlock
from sagan.layers.norm import ConditionalBatchNorm2d

__all__ = ["ConditionalBatchNorm2d", "DBlock", "DCDBlock", "DCGBlock", "GBlock", "SelfAttention2d"]
