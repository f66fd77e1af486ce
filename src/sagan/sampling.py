"""Drawing images from a generator: fixed or truncated noise, class-balanced labels, latent and class
interpolation, grids, GIFs and folders of PNGs."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.utils as vutils

from sagan.safe_files import atomic_folder, atomic_output

GRID_COLUMNS = 8  # images per row of a sample grid
GRID_ROWS = 8  # rows of a grid at least (64 images)
GRID_MAX_CLASS_ROWS = 16  # conditional models with up to this many classes get one row per class


def grid_size(num_classes: int) -> int:
    """Images in a sample grid of GRID_COLUMNS per row, one class per row (`make_labels(per_row=GRID_COLUMNS)`):
    for a conditional model of up to GRID_MAX_CLASS_ROWS classes, the fewest whole rounds of the classes that
    make at least GRID_ROWS rows, so every class shows (10 rows for Fashion-MNIST; 8 for 4 classes, each twice);
    else GRID_ROWS rows (unconditional, or the first classes of a larger label set)."""
    if 0 < num_classes <= GRID_MAX_CLASS_ROWS:
        return GRID_COLUMNS * num_classes * math.ceil(GRID_ROWS / num_classes)
    return GRID_COLUMNS * GRID_ROWS


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


def fixed_noise(n: int, z_dim: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    """Noise (n, z_dim) that depends on the seed alone; with `truncation` T, every entry with |z| > T is drawn
    again until none is (BigGAN's truncation trick: a standard normal truncated to [-T, T])."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=g)
    if truncation is None:
        return z
    if not truncation > 0:
        raise ValueError(f"truncation must be > 0, got {truncation}")
    outside = z.abs() > truncation
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=g)
        outside = z.abs() > truncation
    return z


def sample(
    G: torch.nn.Module,
    n: int,
    classes: int | list[int] | torch.Tensor | None = None,
    truncation: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """n images (n, C, R, R) in [-1, 1] on the CPU from generator G (in eval mode).

    classes: None (balanced: class i % K for image i), one class for all, or n labels; unconditional generators
    take None. truncation: the truncation trick's threshold (None: plain N(0, 1) noise). seed: of the noise.
    """
    K = G.cfg.num_classes
    if isinstance(classes, int):
        y = make_labels(n, K, classes)
    elif classes is None:
        y = make_labels(n, K)
    else:
        y = torch.as_tensor(classes, dtype=torch.long)
        if K == 0 or y.shape != (n,) or y.min() < 0 or y.max() >= K:
            raise ValueError(f"classes must be {n} labels in [0, {K})" if K else "this generator is unconditional")
    G.eval()
    return generate(G, fixed_noise(n, G.cfg.z_dim, seed, truncation), y, batch_size)


def lerp_path(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points from a to b inclusive, linearly: (steps, *a.shape); the ends are a and b exactly."""
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, got {steps}")
    t = torch.linspace(0, 1, steps).view(-1, *([1] * a.dim()))
    path = a[None] + t * (b - a)[None]
    path[0], path[-1] = a, b
    return path


@torch.no_grad()
def interpolate(
    G: torch.nn.Module,
    rows: int,
    steps: int,
    mode: str = "z",
    classes: tuple[int, int] | None = None,
    truncation: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Images (steps, rows, C, R, R) in [-1, 1]: `rows` interpolations of `steps` frames each.

    mode "z": from noise z0 to z1 (one class per row, row r of class r mod K); mode "class": the same z, from
    class classes[0] to classes[1] by mixing their conditional-BN embeddings (class weights (1 - t, t)).
    The first and last frames equal direct samples of the end points.
    """
    K = G.cfg.num_classes
    z0 = fixed_noise(rows, G.cfg.z_dim, seed, truncation)
    G.eval()
    device = next(G.parameters()).device
    if mode == "z":
        z1 = fixed_noise(rows, G.cfg.z_dim, seed + 1, truncation)
        y = make_labels(rows, K)
        frames = [generate(G, z, y) for z in lerp_path(z0, z1, steps)]
    elif mode == "class":
        if K == 0:
            raise ValueError("class interpolation needs a conditional generator")
        a, b = classes if classes is not None else (0, 1)
        if not (0 <= a < K and 0 <= b < K):
            raise ValueError(f"classes must be in [0, {K}), got {a} and {b}")
        weights = lerp_path(F.one_hot(torch.tensor(a), K).float(), F.one_hot(torch.tensor(b), K).float(), steps)
        frames = [G(z0.to(device), w.expand(rows, K).to(device)).float().cpu() for w in weights]
    else:
        raise ValueError(f"mode must be 'z' or 'class', got {mode!r}")
    return torch.stack(frames)


def save_gif(frames: torch.Tensor, path: str | Path, nrow: int = 8, ms_per_frame: int = 120, overwrite: bool = False):
    """Frames (T, n, C, R, R) in [-1, 1] as an animated GIF, each frame a grid of the n images (atomically)."""
    from PIL import Image

    pictures = []
    for frame in frames:
        grid = vutils.make_grid(frame.add(1).div(2).clamp(0, 1), nrow=nrow, padding=2)
        pictures.append(Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()))
    with atomic_output(path, overwrite) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0)
    return Path(path).expanduser()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = GRID_COLUMNS, overwrite: bool = False) -> Path:
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
