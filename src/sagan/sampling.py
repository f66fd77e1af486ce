"""Drawing images from a generator: fixed noise, class-balanced labels, grids and folders of PNGs."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.utils as vutils

from sagan.files import atomic_folder, atomic_output


def make_labels(n: int, num_classes: int, class_id: int | None = None, per_row: int = 0) -> torch.Tensor | None:
    """Labels for n samples: None if unconditional, all `class_id` if given, else balanced.

    per_row > 0 gives one class per grid row (row r has class r mod num_classes); else classes cycle.
    """
    if num_classes == 0:
        if class_id is not None:
            raise ValueError("this generator is unconditional; it takes no class")
        return None
    if class_id is not None:
        if not 0 <= class_id < num_classes:
            raise ValueError(f"class must be in [0, {num_classes}), got {class_id}")
        return torch.full((n,), class_id, dtype=torch.long)
    idx = torch.arange(n)
    return (idx // per_row if per_row else idx) % num_classes


@torch.no_grad()
def generate(
    G: torch.nn.Module,
    z: torch.Tensor,
    y: torch.Tensor | None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Images (n, C, R, R) in [-1, 1] on the CPU for noise z (n, z_dim) and labels y (n,) or None."""
    device = next(G.parameters()).device
    out = []
    for i in range(0, z.shape[0], batch_size):
        yb = None if y is None else y[i : i + batch_size].to(device)
        out.append(G(z[i : i + batch_size].to(device), yb).float().cpu())
    return torch.cat(out)


def fixed_noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """Noise (n, z_dim) that depends on the seed alone."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, overwrite: bool = False) -> Path:
    """Save images in [-1, 1] as one PNG grid (atomically; an existing file only with `overwrite`)."""
    with atomic_output(path, overwrite) as tmp:
        vutils.save_image(images.add(1).div(2).clamp(0, 1), str(tmp), nrow=nrow, padding=2)
    return Path(path).expanduser()


def save_folder(images: torch.Tensor, folder: str | Path, labels: torch.Tensor | None = None) -> Path:
    """Save images in [-1, 1] as numbered PNGs (class in the name when labels are given) in a new or empty
    folder, which appears complete or not at all."""
    with atomic_folder(folder) as tmp:
        for i, img in enumerate(images):
            name = f"{i:06d}.png" if labels is None else f"{i:06d}_c{int(labels[i])}.png"
            vutils.save_image(img.add(1).div(2).clamp(0, 1), str(tmp / name))
    return Path(folder).expanduser()
