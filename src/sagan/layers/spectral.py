"""Weight initialisation and spectral normalisation (Miyato et al. 2018) for whole modules.

SAGAN puts spectral norm on every layer of G and D. We use torch's own parametrisation
(`torch.nn.utils.parametrizations.spectral_norm`), which runs 15 power iterations when it is registered and
`n_power_iterations` more on every training-mode forward. Initialise weights *before* registering it, so the
stored singular vectors belong to the initialised weight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

WEIGHTED = (nn.Conv2d, nn.Linear, nn.Embedding)


def weighted_layers(module: nn.Module, skip: Iterable[nn.Module] = ()) -> list[nn.Module]:
    """All conv, linear and embedding layers inside `module`, except those in `skip`."""
    skip_ids = {id(m) for m in skip}
    return [m for m in module.modules() if isinstance(m, WEIGHTED) and id(m) not in skip_ids]


def init_weights(module: nn.Module, scheme: str, skip: Iterable[nn.Module] = ()) -> None:
    """Initialise weights of conv/linear/embedding layers: "orthogonal", "xavier" or "normal" (N(0, 0.02)).

    Biases are set to zero. Layers already spectrally normalised are rejected, because their stored singular
    vectors would no longer match the new weight.
    """
    for m in weighted_layers(module, skip):
        if parametrize.is_parametrized(m, "weight"):
            raise RuntimeError("init_weights must run before spectral norm is registered")
        if scheme == "orthogonal":
            nn.init.orthogonal_(m.weight)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(m.weight)
        elif scheme == "normal":
            nn.init.normal_(m.weight, 0.0, 0.02)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}; use orthogonal, xavier or normal")
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def apply_spectral_norm(
    module: nn.Module, eps: float = 1e-6, n_power_iterations: int = 1, skip: Iterable[nn.Module] = ()
) -> None:
    """Register spectral norm on every conv/linear/embedding weight in `module` not in `skip`."""
    for m in weighted_layers(module, skip):
        if not parametrize.is_parametrized(m, "weight"):
            spectral_norm(m, n_power_iterations=n_power_iterations, eps=eps)


def spectrally_normalised(module: nn.Module) -> list[nn.Module]:
    """Layers inside `module` whose weight carries a spectral-norm parametrisation."""
    return [m for m in weighted_layers(module) if parametrize.is_parametrized(m, "weight")]


@contextlib.contextmanager
def power_iteration_frozen(*modules: nn.Module):
    """Within the context, training-mode forwards of `modules` use their stored singular vectors without another
    power iteration (as in eval mode). Gradient accumulation runs one iteration per update, on its first
    micro-batch, so that K micro-batches normalise by the same sigma as one batch would."""
    norms = [m for module in modules for m in module.modules() if isinstance(m, _SpectralNorm)]
    modes = [m.training for m in norms]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(norms, modes, strict=True):
            m.train(mode)
