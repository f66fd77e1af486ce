"""What an evaluation reads: batches of uint8 images from a generator (class-balanced, one seeded noise stream),
from a folder of generated image files, or from a dataset's split (a seeded subset), each shardable over the
ranks of a torchrun launch; and FID statistics files in pytorch-fid's .npz format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sagan.data.datasets import TensorImages, load_dataset
from sagan.errors import SaganError
from sagan.metrics.inception import to_uint8
from sagan.metrics.scores import fid_statistics


def real_batches(
    data: str,
    resolution: int,
    channels: int,
    num: int,
    data_root: str = "",
    split: str = "train",
    batch_size: int = 50,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, torch.Tensor]]:
    """(batch index, uint8 batch) of `num` real images (a seeded random subset when the split is larger; all when
    smaller). `shard` (rank, world): only the batches b with b % world == rank.

    Lazy: the dataset is loaded when the first batch is asked for, so a cache hit never loads it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    ds = load_dataset(data, resolution, channels, data_root, train=split == "train", seed=seed)
    n = min(num, len(ds))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    rank, world = shard
    for b, i in enumerate(range(0, n, batch_size)):
        if b % world != rank:
            continue
        chunk = idx[i : i + batch_size]
        if isinstance(ds, TensorImages):  # the uint8 images themselves: what to_uint8 of the floats gives
            yield b, ds.images[chunk]
        else:
            yield b, to_uint8(torch.stack([ds[j][0] for j in chunk]))


def real_labels(
    data: str, resolution: int, channels: int, num: int, data_root: str = "", split: str = "train", seed: int = 0
) -> torch.Tensor:
    """The class labels (n,) of the images `real_batches` gives for the same arguments, in the same order."""
    from sagan.data.datasets import ImageFolderDataset
    from sagan.data.shapes import ShapesDataset, shape_label

    ds = load_dataset(data, resolution, channels, data_root, train=split == "train", seed=seed)
    n = min(num, len(ds))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    if isinstance(ds, TensorImages):
        return ds.labels[idx].cpu()
    if isinstance(ds, ImageFolderDataset):
        return torch.tensor([ds.samples[j][1] for j in idx.tolist()])
    if isinstance(ds, ShapesDataset):
        return torch.tensor([shape_label(ds.seed, j) for j in idx.tolist()])
    return torch.tensor([ds[j][1] for j in idx.tolist()])


def generated_batches(
    G: torch.nn.Module, num: int, batch_size: int = 50, seed: int = 0, shard: tuple[int, int] = (0, 1)
) -> Iterator[tuple[int, torch.Tensor]]:
    """(batch index, uint8 batch) of `num` images of G (eval mode), classes cycling 0..K-1 for a balanced set.

    The noise is one seeded stream over all batches; with `shard` (rank, world) every rank draws it all (it is
    cheap) and runs G on its batches b % world == rank only, so the shards together are the single-process set.
    """
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    K = G.cfg.num_classes
    rank, world = shard
    for b, i in enumerate(range(0, num, batch_size)):
        n = min(batch_size, num - i)
        z = torch.randn(n, G.cfg.z_dim, generator=g)
        if b % world != rank:
            continue
        y = (torch.arange(i, i + n) % K).to(device) if K else None
        with torch.no_grad():
            yield b, to_uint8(G(z.to(device), y).float().cpu())


def resized_batches(
    batches: Iterator[tuple[int, torch.Tensor]], resolution: int, channels: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """(batch index, uint8 (B, C, H, W)) batches resized to `resolution` by the transform that prepares the real
    images (`sagan.data.datasets.pil_transform`: PIL resize of the shorter side, centre crop), so that a generator
    of another size is scored on images made the way the real ones are (e.g. 28 px images at the 32 px protocol)."""
    from sagan.data.datasets import pil_transform

    resize = pil_transform(resolution, channels)
    for b, x in batches:
        if x.shape[-1] == x.shape[-2] == resolution:
            yield b, x
            continue
        ims = [Image.fromarray(im[0].numpy() if im.shape[0] == 1 else im.permute(1, 2, 0).numpy()) for im in x]
        arrs = [np.asarray(resize(im)) for im in ims]
        out = torch.from_numpy(np.stack(arrs))
        yield b, out[:, None] if out.dim() == 3 else out.permute(0, 3, 1, 2).contiguous()


def _generated_files(folder: str | Path) -> list[Path]:
    from sagan.data.datasets import image_files

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of generated images at {folder}")
    files = image_files(folder, recursive=True)
    if not files:
        raise SaganError(f"no images in {folder}")
    return files


def _load_uint8(path: Path) -> torch.Tensor:
    """(1 or 3, H, W) uint8 of an image file, decoded completely and converted by bit depth."""
    from sagan.data.datasets import open_image, to_8bit

    try:
        im = open_image(path)
    except Exception as e:  # noqa: BLE001  (any decoder failure: the folder is not usable as it is)
        raise SaganError(f"cannot read generated image {path}: {type(e).__name__}: {str(e)[:120]}") from None
    gray = im.getbands()[0] in ("1", "L", "I", "F") and len(im.getbands()) <= 2
    arr = np.asarray(to_8bit(im, 1 if gray else 3))
    return torch.from_numpy(arr.copy()).unsqueeze(0) if arr.ndim == 2 else torch.from_numpy(arr.copy()).permute(2, 0, 1)


def folder_resolution(folder: str | Path) -> int:
    """The size of the (square) images in `folder`, read from the first file's header."""
    path = _generated_files(folder)[0]
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001
        raise SaganError(f"cannot read generated image {path}: {type(e).__name__}: {str(e)[:120]}") from None
    if width != height:
        raise SaganError(f"{path} is {width}x{height}, not square: give --resolution for the real images")
    return height


def folder_batches(
    folder: str | Path, batch_size: int = 50, shard: tuple[int, int] = (0, 1)
) -> tuple[Iterator[tuple[int, torch.Tensor]], int]:
    """(batch index, uint8 batch) of the image files in `folder` (all of one size; an unreadable file is an
    error), this shard's batches only, and the number of files."""
    files = _generated_files(folder)
    rank, world = shard

    def gen():
        for b, i in enumerate(range(0, len(files), batch_size)):
            if b % world != rank:
                continue
            batch = [_load_uint8(p) for p in files[i : i + batch_size]]
            if len({t.shape for t in batch}) > 1:
                raise SaganError(f"images in {folder} differ in size or channels")
            yield b, torch.stack(batch)

    return gen(), len(files)


def read_npz_statistics(path: str | Path) -> dict:
    """{"mu", "sigma"} from a pytorch-fid style .npz file (arrays `mu` (D,) and `sigma` (D, D))."""
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as f:
            mu, sigma = np.asarray(f["mu"], dtype=np.float64), np.asarray(f["sigma"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as e:
        raise SaganError(
            f"{path} is not a statistics file with arrays mu and sigma ({type(e).__name__}: {e})"
        ) from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise SaganError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not (D,) and (D, D)")
    return {"mu": mu, "sigma": sigma}


def write_npz_statistics(path: str | Path, features: torch.Tensor, overwrite: bool = False) -> Path:
    """Write the FID statistics of features (N, D) as a pytorch-fid style .npz (mu, sigma; float64)."""
    from sagan.safe_files import atomic_output

    stats = fid_statistics(features)
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=stats["mu"], sigma=stats["sigma"])
    return Path(path).expanduser()
