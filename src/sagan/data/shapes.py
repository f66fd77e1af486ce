"""The built-in `shapes` dataset: procedural, mirror-symmetric images of simple shapes, the kind of shape being
the class. Needs no download; image i is a function of (seed, i) alone."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPE_NAMES = ("circle", "square", "triangle", "ring")


class ShapesDataset(Dataset):
    """Procedural, mirror-symmetric images of simple shapes; needs no download.

    Image i is a function of (seed, i) alone. Its label is the kind of shape (SHAPE_NAMES). The left half holds
    one shape on a random background colour, and the right half is its exact mirror image, so every real
    image is symmetric about the vertical axis: the symmetry error of generated images measures whether G
    keeps distant parts of an image consistent. Batches render in one vectorised pass (`__getitems__`, which
    the DataLoader uses): 32 images take about 2 ms instead of 21 ms one by one.

    x: (3, resolution, resolution) in [-1, 1]; y: int in [0, 4).
    """

    def __init__(self, resolution: int = 32, length: int = 50_000, seed: int = 0, supersample: int = 4):
        if resolution < 4 or resolution % 2:
            raise ValueError(f"shapes needs an even resolution >= 4, got {resolution}")
        self.resolution, self.length, self.seed, self.supersample = resolution, length, seed, supersample

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.__getitems__([index])[0]
        return x, y

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """The samples of `indices`, rendered together."""
        for i in indices:
            if not 0 <= i < self.length:
                raise IndexError(i)
        images, labels = render_shapes(self.seed, indices, self.resolution, self.supersample)
        return list(zip(images, labels.tolist(), strict=True))


def _shape_params(seed: int, index: int) -> tuple:
    """(label, size, cy, cx, background rgb, colour rgb) of image `index`, drawn from its own generator."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(SHAPE_NAMES)))
    size = rng.uniform(0.11, 0.17)
    cy, cx = rng.uniform(0.25, 0.75), rng.uniform(0.18, 0.32)  # the shape stays inside the left half
    return label, size, cy, cx, rng.uniform(0.0, 0.35, size=3), rng.uniform(0.55, 1.0, size=3)


def shape_label(seed: int, index: int) -> int:
    """The class (kind of shape) of image `index` of the dataset of `seed`, without rendering it."""
    return _shape_params(seed, index)[0]


def _inside(kind: int, dy: np.ndarray, dx: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Which sub-pixels (offsets dy, dx from the centre, in image heights) lie inside a shape of `kind`."""
    if kind == 0:  # circle
        return dx**2 + dy**2 <= size**2
    if kind == 1:  # square
        return (np.abs(dx) <= size * 0.85) & (np.abs(dy) <= size * 0.85)
    if kind == 2:  # upward triangle
        return (dy <= size) & (dy >= -size) & (np.abs(dx) <= (dy + size) * 0.6)
    r2 = dx**2 + dy**2  # ring
    return (r2 <= size**2) & (r2 >= (0.55 * size) ** 2)


def render_shapes(seed: int, indices: list[int], resolution: int, supersample: int = 4):
    """Images (n, 3, R, R) in [-1, 1] (float32 tensor) and labels (n,) (int64) of the shapes dataset.

    Each shape is drawn on a grid `supersample` times finer than the image; a pixel's value mixes the shape's
    colour and the background by the fraction of its sub-pixels inside the shape (anti-aliasing). The left
    half is rendered and mirrored.
    """
    params = [_shape_params(seed, i) for i in indices]
    label = np.array([p[0] for p in params])
    size, cy, cx = (np.array([p[k] for p in params], dtype=np.float32)[:, None, None] for k in (1, 2, 3))
    background = np.array([p[4] for p in params], dtype=np.float32)  # (n, 3)
    colour = np.array([p[5] for p in params], dtype=np.float32)
    s, R = supersample, resolution
    h, w = R * s, R // 2 * s
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / h  # unit = image height
    mask = np.empty((len(indices), h, w), dtype=bool)
    for kind in range(len(SHAPE_NAMES)):  # each kind's test on its own images only
        sel = label == kind
        if sel.any():
            mask[sel] = _inside(kind, yy - cy[sel], xx - cx[sel], size[sel])
    counts = mask.reshape(-1, R, s, R // 2, s).sum(axis=(2, 4), dtype=np.int32)
    coverage = counts.astype(np.float32) / (s * s)  # (n, R, R/2) in [0, 1]
    half = background[:, None, None] + coverage[..., None] * (colour - background)[:, None, None]  # (n, R, R/2, 3)
    img = np.concatenate([half, half[:, :, ::-1]], axis=2)  # mirror about the vertical axis
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(0, 3, 1, 2))) * 2 - 1
    return x, torch.from_numpy(label)
