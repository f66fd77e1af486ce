"""Exponential moving average of the generator's weights (Yazici et al. 2019; BigGAN's G_ema).

Parameters are averaged; BatchNorm running statistics are copied from G. Spectral norm needs care: its
singular-vector buffers `_u`/`_v` belong to each weight, so G_ema keeps its own and refines them with one power
iteration on its averaged weight after every update, so that G_ema's normalised weights have sigma ~ 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import _SpectralNorm


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G for parameters; copy other buffers; refresh spectral norm.

    decay = 0 copies G exactly, spectral-norm vectors included. Both modules must have the same structure
    (G_ema a deepcopy of G).
    """
    ema_params = dict(G_ema.named_parameters())
    for name, p in G.named_parameters():
        ema_params[name].lerp_(p.detach(), 1.0 - decay)
    ema_buffers = dict(G_ema.named_buffers())
    for name, b in G.named_buffers():
        if decay == 0.0 or not name.endswith(("._u", "._v")):
            ema_buffers[name].copy_(b)
    refresh_spectral_norm(G_ema)


@torch.no_grad()
def refresh_spectral_norm(module: nn.Module) -> None:
    """Run the power iterations of every spectral-norm parametrisation in `module` on its current weight."""
    for m in module.modules():
        sn = getattr(getattr(m, "parametrizations", None), "weight", None)
        if sn is None or not isinstance(sn[0], _SpectralNorm):
            continue
        was_training = sn[0].training
        sn[0].train()  # the parametrisation updates _u/_v only in training mode
        _ = m.weight  # evaluating the parametrised weight runs n_power_iterations
        sn[0].train(was_training)
