"""Exponential moving average of the generator's weights (Yazici et al. 2019; BigGAN's G_ema).

Parameters are averaged; BatchNorm running statistics are copied from G at each update. Those are G's
statistics, not G_ema's (whose weights trail G's by about 1 / (1 - decay) steps), so before G_ema is evaluated,
drawn or saved its own are computed: `standing_statistics` (BigGAN-PyTorch's "standing stats") runs it on fresh
noise and sets every BatchNorm to the average batch statistics of its own activations. Spectral norm needs care
too: its singular-vector buffers `_u`/`_v` belong to each weight, so G_ema keeps its own and refines them with
one power iteration on its averaged weight after every update, so that G_ema's normalised weights have sigma ~ 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from sagan.layers.spectral import SpectralNorm

# Every batch norm of G (our SyncBatchNorm2d and the one inside conditional BN are BatchNorm2d subclasses or
# instances): the public classes, not torch's private base class.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G for parameters; copy other buffers; refresh spectral norm.

    decay = 0 copies G's parameters and buffers, spectral-norm vectors included, then runs one power iteration
    on them like any other update (so G_ema's vectors are one iteration ahead of G's). Both modules must have
    the same structure (G_ema a deepcopy of G).
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
        if sn is None or not isinstance(sn[0], SpectralNorm):
            continue
        was_training = sn[0].training
        sn[0].train()  # the parametrisation updates _u/_v only in training mode
        _ = m.weight  # evaluating the parametrised weight runs n_power_iterations
        sn[0].train(was_training)


@torch.no_grad()
def standing_statistics(G: nn.Module, num_batches: int, batch_size: int, seed: int = 0) -> None:
    """Set every BatchNorm's running statistics of G to the mean batch statistics of G's own activations over
    `num_batches` batches of noise (seeded by `seed` alone, classes balanced), then leave G in eval mode.

    Only BatchNorm layers run in training mode meanwhile: spectral norm's vectors and everything else stay as they
    are. The running mean is the average of the batch means and the running variance the average of the
    unbiased batch variances (BatchNorm with momentum=None), as BigGAN-PyTorch's standing statistics do.
    """
    norms = [m for m in G.modules() if isinstance(m, BATCH_NORMS)]
    if not norms or num_batches < 1:
        return
    device = next(G.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    G.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    cfg = G.cfg
    for i in range(num_batches):
        z = torch.randn(batch_size, cfg.z_dim, device=device, generator=gen)
        y = (torch.arange(batch_size, device=device) + i * batch_size) % cfg.num_classes if cfg.num_classes else None
        G(z, y)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    G.eval()
