"""Differentiable augmentation (DiffAugment; Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020).

D sees every image, real and generated, through the same random, differentiable transformations, in both the
D and the G step, so that it cannot memorise a small training set while G still gets gradients through them.
The three policies of the paper, on images in [-1, 1]:

- "color": brightness + U(-0.5, 0.5); saturation: deviation from the per-pixel channel mean times U(0, 2);
  contrast: deviation from the image mean times U(0.5, 1.5);
- "translation": a shift by up to 1/8 of the image size in each direction (integers), zeros shifted in;
- "cutout": a square of half the image size, at a random centre, set to zero.

Each image draws its own parameters from the `generator` passed in (the trainer's step stream, so a resumed
run draws the same ones).
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """ "translation,cutout,color" -> ("translation", "cutout", "color"); "" -> () (off)."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown augmentation {bad[0]!r}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (B, C, H, W) in [-1, 1] -> the same shape, each policy applied in order; x itself when `policy` is ()."""
    for name in policy:
        x = {"color": color, "translation": translation, "cutout": cutout}[name](x, generator)
    return x


def _uniform(shape, x: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(shape, device=x.device, generator=generator, dtype=x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    B = x.shape[0]
    x = x + (_uniform((B, 1, 1, 1), x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform((B, 1, 1, 1), x, generator) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform((B, 1, 1, 1), x, generator) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    B, C, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (B, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-sx, sx + 1, (B, 1, 1), device=x.device, generator=generator)
    rows = torch.arange(H, device=x.device)[None, :, None] - dy + sy  # (B, H, 1): source row in the padded image
    cols = torch.arange(W, device=x.device)[None, None, :] - dx + sx  # (B, 1, W)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy))  # zeros shifted in
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    B, _, H, W = x.shape
    h, w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H + (1 - h % 2), (B, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, W + (1 - w % 2), (B, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(H, device=x.device)[None, :, None]
    xs = torch.arange(W, device=x.device)[None, None, :]
    inside = (ys >= cy - h // 2) & (ys < cy - h // 2 + h) & (xs >= cx - w // 2) & (xs < cx - w // 2 + w)
    return x * (~inside)[:, None].to(x.dtype)
