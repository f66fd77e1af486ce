"""GAN losses as pure functions of discriminator logits (B,).

Hinge (Lim & Ye 2017; used by SAGAN, Eq. 4): L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],
L_G = -E[D(G(z))]. Non-saturating (Goodfellow et al. 2014): L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))],
L_G = E[softplus(-D(G(z)))].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss; scalar."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss; scalar."""
    return -fake_logits.mean()


def ns_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator non-saturating (logistic) loss; scalar."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ns_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss; scalar."""
    return F.softplus(-fake_logits).mean()


LOSSES = {"hinge": (hinge_d, hinge_g), "ns": (ns_d, ns_g)}
