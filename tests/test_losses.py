"""Hinge and non-saturating losses against closed forms."""

import math

import torch

from sagan import losses


def test_hinge_closed_form():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = [0, 0.5, 2] -> 2.5/3; relu(1 + fake) = [0, 1, 1.5] -> 2.5/3
    assert math.isclose(losses.hinge_d(real, fake).item(), 5.0 / 3.0, rel_tol=1e-6)
    assert math.isclose(losses.hinge_g(fake).item(), 0.5, rel_tol=1e-6)
    assert losses.hinge_d(torch.full((4,), 1.0), torch.full((4,), -1.0)).item() == 0.0


def test_non_saturating_closed_form():
    real, fake = torch.tensor([0.0, 1.0]), torch.tensor([0.0, -1.0])
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    d = (sp(0.0) + sp(-1.0)) / 2 + (sp(0.0) + sp(-1.0)) / 2
    g = (sp(0.0) + sp(1.0)) / 2
    assert math.isclose(losses.ns_d(real, fake).item(), d, rel_tol=1e-6)
    assert math.isclose(losses.ns_g(fake).item(), g, rel_tol=1e-6)


def test_losses_are_differentiable():
    real = torch.randn(5, requires_grad=True)
    fake = torch.randn(5, requires_grad=True)
    for d_loss, g_loss in losses.LOSSES.values():
        (d_loss(real, fake) + g_loss(fake)).backward()
    assert real.grad is not None and fake.grad is not None
