"""sagan: Self-Attention Generative Adversarial Networks (Zhang et al., ICML 2019) in PyTorch."""

from sagan import losses
from sagan.checkpoint import load_discriminator, load_generator
from sagan.config import ModelConfig
from sagan.layers import ConditionalBatchNorm2d, SelfAttention2d
from sagan.models import Discriminator, Generator

__version__ = "0.1.0"
__all__ = [
    "ConditionalBatchNorm2d",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "SelfAttention2d",
    "load_discriminator",
    "load_generator",
    "losses",
]
