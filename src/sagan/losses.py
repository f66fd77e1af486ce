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


def lecam(d_real: torch.Tensor, d_fake: torch.Tensor, ema_real: torch.Tensor, ema_fake: torch.Tensor) -> torch.Tensor:
    """LeCam regulariser (Tseng, Jiang, Liu, Yang, Yang, CVPR 2021), as its official code computes it:
    E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2], where a_R and a_F are moving averages of D's mean output on
    real and generated images. It keeps D's outputs near the other side's average: D cannot push real and fake
    apart without bound, which matters most on small data. Scalar; added to L_D with a weight (lecam_weight)."""
    return F.relu(d_real - ema_fake).square().mean() + F.relu(ema_real - d_fake).square().mean()
