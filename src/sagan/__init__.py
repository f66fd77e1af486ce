"""sagan: Self-Attention Generative Adversarial Networks (Zhang et al., ICML 2019) in PyTorch.

import sagan
G = sagan.load_generator("fashion-mnist")              # shipped with the package; no download
images = G.sample(16, classes=3, truncation=1.0)       # (16, 1, 32, 32) in [-1, 1]
run_dir = sagan.train("demo", steps=200, outdir="runs")  # a run folder, as `sagan train` makes
"""

from __future__ import annotations

from pathlib import Path

from sagan import losses
from sagan.config import ModelConfig, TrainConfig
from sagan.layers import ConditionalBatchNorm2d, SelfAttention2d
from sagan.model_files.loading import load_discriminator, load_generator
from sagan.models import Discriminator, Generator
from sagan.run_config import Resolved, resolve

__version__ = "0.1.0"
__all__ = [
    "ConditionalBatchNorm2d",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "Resolved",
    "SelfAttention2d",
    "TrainConfig",
    "load_discriminator",
    "load_generator",
    "losses",
    "resolve",
    "train",
]


def train(config: str | Resolved = "demo", **overrides) -> Path | None:
    """Train as `sagan train` does and return the run folder: `config` is a preset name (with `overrides`:
    any ModelConfig / TrainConfig field, e.g. steps=200, lr_d=2e-4, g_attn_resolutions=(16,)) or a config
    already resolved with `sagan.resolve`. Under torchrun, non-zero ranks return None."""
    from sagan.training.loop import train as run_training

    if isinstance(config, Resolved):
        if overrides:
            raise ValueError("give overrides to sagan.resolve, not beside a resolved config")
        resolved = config
    else:
        resolved = resolve(config, flags=overrides)
    return run_training(resolved)
