"""Datasets: the built-in `shapes` (`sagan.data.shapes`), torchvision's standard sets, and folders of images;
an infinite sampler.

Every dataset yields (x, y): x a float tensor (C, R, R) in [-1, 1], y an int class label (0 when the data has
no classes). `dataset_info` tells the number of classes and channels without loading anything.

torchvision's sets (MNIST, Fashion-MNIST, CIFAR) are small: they are decoded, resized and cropped once, with the
same PIL transform as image folders and the evaluation, and held in memory as one uint8 tensor (`TensorImages`),
which training batches by indexing, with no PIL or per-sample Python in the loop.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from sagan.data.shapes import SHAPE_NAMES, ShapesDataset
from sagan.errors import SaganError, first_line

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")
# name -> (torchvision class, number of classes, channels); files live in <data root>/<class name>/
TORCHVISION = {
    "mnist": ("MNIST", 10, 1),
    "fashion-mnist": ("FashionMNIST", 10, 1),
    "cifar10": ("CIFAR10", 10, 3),
    "cifar100": ("CIFAR100", 100, 3),
}


@dataclass
class DatasetInfo:
    num_classes: int
    channels: int


def default_data_root() -> Path:
    """$SAGAN_DATA_ROOT if set, else ~/.cache/sagan/data."""
    return Path(os.environ.get("SAGAN_DATA_ROOT") or Path.home() / ".cache" / "sagan" / "data")


def dataset_info(name: str) -> DatasetInfo:
    """Classes and channels of a dataset name or image folder, without loading images."""
    if name == "shapes":
        return DatasetInfo(len(SHAPE_NAMES), 3)
    if name in TORCHVISION:
        return DatasetInfo(TORCHVISION[name][1], TORCHVISION[name][2])
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"unknown dataset {name!r}: use shapes, {', '.join(TORCHVISION)}, or the path of a folder of images"
            + (" (ImageNet: pass --data /path/to/train with one sub-folder per class)" if "imagenet" in name else "")
        )
    return DatasetInfo(len(_class_dirs(folder)), 3)


def may_train_gray(name: str) -> bool:
    """Whether a dataset can train with 1 channel: the grayscale torchvision sets, and image folders (their images
    are converted to grayscale; by default folders train in colour, with 3)."""
    if name == "shapes":
        return False
    return TORCHVISION[name][2] == 1 if name in TORCHVISION else True


def load_dataset(
    name: str,
    resolution: int,
    channels: int,
    data_root: str = "",
    download: bool = False,
    seed: int = 0,
    train: bool = True,
    scan: tuple | None = None,
) -> Dataset:
    """The dataset `name` at `resolution` px with `channels` channels (1 or 3), values in [-1, 1].

    `train` picks the split of torchvision datasets; shapes and image folders have one split. `scan`: an image
    folder's `scan_image_folder` result made elsewhere (by rank 0 under torchrun).
    """
    if channels == 1 and not may_train_gray(name):
        raise ValueError(f"{name} has colour images; train it with 3 image channels")
    if name == "shapes":
        return ShapesDataset(resolution, seed=seed)
    if name in TORCHVISION:
        root = Path(data_root).expanduser() if data_root else default_data_root()
        return _torchvision_dataset(name, root, resolution, channels, download, train)
    return ImageFolderDataset(name, resolution, channels, scan)


def first_images(dataset: Dataset, n: int) -> Dataset:
    """The first `n` images of `dataset` (in its own order) as a dataset of the same kind where it has one."""
    if not 0 < n <= len(dataset):
        raise ValueError(f"data_limit {n} needs a dataset of at least that many images; this one has {len(dataset)}")
    if isinstance(dataset, TensorImages):
        return TensorImages(dataset.images[:n], dataset.labels[:n])
    if isinstance(dataset, ShapesDataset):
        return ShapesDataset(dataset.resolution, length=n, seed=dataset.seed, supersample=dataset.supersample)
    return torch.utils.data.Subset(dataset, range(n))


def to_8bit(im: Image.Image, channels: int) -> Image.Image:
    """An image as 8-bit "L" (channels 1) or "RGB" (3), converted by bit depth: 16-bit images ("I;16", "I": PNG,
    TIFF) are scaled to 8 bits, where PIL's own convert() would clip everything above 255 to white."""
    if im.mode.startswith("I"):
        arr = np.asarray(im).astype(np.float64)
        im = Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8))
    return im.convert("RGB" if channels == 3 else "L")


def _to_rgb(im: Image.Image) -> Image.Image:
    return to_8bit(im, 3)


def _to_gray(im: Image.Image) -> Image.Image:
    return to_8bit(im, 1)


def pil_transform(resolution: int, channels: int):
    """PIL image -> 8-bit PIL image of `channels` channels, resized (shorter side) and centre-cropped."""
    from torchvision import transforms as T

    convert = T.Lambda(_to_rgb if channels == 3 else _to_gray)  # module-level functions pickle for workers
    return T.Compose([convert, T.Resize(resolution), T.CenterCrop(resolution)])


def _transform(resolution: int, channels: int):
    """PIL image -> (channels, resolution, resolution) in [-1, 1]; grayscale is repeated to RGB if asked."""
    from torchvision import transforms as T

    steps = [pil_transform(resolution, channels), T.ToTensor()]
    return T.Compose([*steps, T.Normalize([0.5] * channels, [0.5] * channels)])


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [-1, 1], computed as ToTensor + Normalize(0.5, 0.5) compute it (bit-identical)."""
    return images.float().div_(255).sub_(0.5).div_(0.5)


class TensorImages(Dataset):
    """A dataset held in memory: images (N, C, R, R) uint8 and labels (N,) int64, on any device.

    `batch(indices)` gives (x (B, C, R, R) float32 in [-1, 1], y (B,) int64) by indexing, on the tensors' device;
    x is bit-identical to what the PIL transform + ToTensor + Normalize path gives for the same images.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or labels.shape != images.shape[:1]:
            raise ValueError("TensorImages needs uint8 images (N, C, R, R) and labels (N,)")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return uint8_to_float(self.images[index]), int(self.labels[index])

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return uint8_to_float(self.images[idx]), self.labels[idx]

    def to(self, device: torch.device | str) -> TensorImages:
        return TensorImages(self.images.to(device), self.labels.to(device))


# What decoding a broken, changed or hostile image file raises (PIL's UnidentifiedImageError is an OSError).
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file (a truncated file fails here, not later). PIL raises many kinds of
    errors on broken or hostile files (OSError, DecompressionBombError, SyntaxError, ...): callers catch them."""
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.mode != "P" else im.convert("RGBA" if "transparency" in im.info else "RGB")


def check_image(path: Path) -> str | None:
    """None if `path` decodes completely, else why not. JPEGs decode at 1/8 scale (fast, and still every byte)."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (max(im.width // 8, 1), max(im.height // 8, 1)))
            im.load()
    except Exception as e:  # noqa: BLE001  (any decoder failure means: unreadable)
        return f"{type(e).__name__}: {str(e)[:120]}"
    return None


def _torchvision_dataset(
    name: str, root: Path, resolution: int, channels: int, download: bool, train: bool
) -> TensorImages:
    images, labels = _torchvision_tensors(name, str(root.resolve()), resolution, train, download)
    if channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)  # what PIL's convert("RGB") does to a grayscale image
    return TensorImages(images, labels)


@functools.lru_cache(maxsize=4)
def _torchvision_tensors(name: str, root: str, resolution: int, train: bool, download: bool):
    """A torchvision set decoded once: (images (N, C, R, R) uint8 in the data's own channels, labels (N,) int64).

    Cached in the process (tests and evaluation ask for the same split again); ~10 s for Fashion-MNIST's 60k.
    """
    import torchvision.datasets as tvd
    from tqdm.auto import tqdm

    cls = getattr(tvd, TORCHVISION[name][0])
    # MNIST-style sets check for extracted files; if the original archives sit in raw/ with the right md5,
    # torchvision's download() verifies and extracts them without touching the network.
    raw = Path(root) / cls.__name__ / "raw"
    resources = getattr(cls, "resources", [])
    local_archives = bool(resources) and all((raw / Path(url).name).is_file() for url, _ in resources)
    try:
        with warnings.catch_warnings():  # torch's multi-line unpickler warnings on a bad processed/*.pt
            warnings.simplefilter("ignore")
            ds = cls(root, train=train, download=download or local_archives)
    except RuntimeError as e:
        expected = raw if resources else root
        raise FileNotFoundError(
            f"{name} not found under {root} (expected files in {expected}); pass --download to fetch it, "
            f"or --data-root pointing at a folder that has it ({first_line(e)})"
        ) from None
    except Exception as e:  # noqa: BLE001  (e.g. a processed/*.pt that torchvision refuses to unpickle)
        raise SaganError(
            f"cannot load {name} from {Path(root) / cls.__name__} ({first_line(e)}); "
            f"files there that torchvision cannot read (e.g. processed/*.pt) must be removed or replaced"
        ) from None
    channels = TORCHVISION[name][2]
    transform = pil_transform(resolution, channels)
    images = np.empty((len(ds), resolution, resolution, channels), dtype=np.uint8)
    labels = np.empty(len(ds), dtype=np.int64)
    split = "train" if train else "test"
    for i in tqdm(range(len(ds)), desc=f"{name} {split} to {resolution} px", unit="img", leave=False, disable=None):
        im, labels[i] = ds[i]
        images[i] = np.asarray(transform(im)).reshape(resolution, resolution, channels)
    # (N, R, R, C) -> (N, C, R, R)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _class_dirs(folder: Path) -> list[Path]:
    """Sub-folders that contain images directly; empty for a flat folder."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and any(image_files(d)))


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files (by extension) in `folder`, or anywhere below it when `recursive`, sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def folder_digest(folder: str | Path) -> str:
    """SHA-256 (12 hex digits) of the image files under `folder`: relative names, sizes and modification times.
    Adding, removing, replacing or touching a file changes it; a listing, no file is opened."""
    import hashlib

    root = Path(folder).expanduser().resolve()
    h = hashlib.sha256()
    for p in image_files(root, recursive=True):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


_SCANS: dict[tuple[str, str], tuple[list[str], list[tuple[Path, int]]]] = {}


def scan_image_folder(folder: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names, [(file, label), ...] of the files that decode) of an image folder, every file decoded once.

    Kept for the process while the folder's files are unchanged (`folder_digest`), so training and evaluation
    (and every resume of the loader) scan a folder of 1.28M files once; under torchrun rank 0 scans and sends.
    """
    from tqdm.auto import tqdm

    folder = Path(folder).expanduser()
    key = (str(folder.resolve()), folder_digest(folder))
    if key in _SCANS:
        return _SCANS[key]
    classes = _class_dirs(folder)
    groups = [(i, image_files(d)) for i, d in enumerate(classes)] or [(0, image_files(folder))]
    candidates = [(p, label) for label, files in groups for p in files]
    if not candidates:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    samples = [
        (p, y)
        for p, y in tqdm(candidates, desc="checking images", unit="img", leave=False, disable=None)
        if check_image(p) is None
    ]
    skipped = len(candidates) - len(samples)
    if skipped:
        log.warning("skipped %d unreadable of %d image files in %s", skipped, len(candidates), folder)
    if len(samples) < len(candidates) / 2:
        raise ValueError(f"{skipped} of {len(candidates)} image files in {folder} are unreadable")
    _SCANS[key] = ([d.name for d in classes], samples)
    return _SCANS[key]


class ImageFolderDataset(Dataset):
    """Images in `folder`: one sub-folder per class gives labels; a flat folder is unconditional (label 0).

    Images are decoded completely when the folder is scanned, converted to 8 bits by their bit depth, resized
    (shorter side) and centre-cropped to `resolution`. Unreadable files (truncated, corrupt, decompression bombs)
    are skipped and counted in the log; an empty folder, or one where most files are unreadable, raises
    ValueError. A file that fails to load later (changed on disk) is replaced by the next image, with a warning.
    """

    def __init__(self, folder: str | Path, resolution: int, channels: int = 3, scan: tuple | None = None):
        self.folder = Path(folder).expanduser()
        self.classes, self.samples = scan if scan is not None else scan_image_folder(self.folder)
        self.transform = _transform(resolution, channels)
        self.failures = 0  # files that failed after the scan, in this process

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for attempt in range(min(len(self.samples), 10)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                return self.transform(open_image(path)), label
            except IMAGE_ERRORS as e:  # the file changed after the scan (a bug or MemoryError is not swallowed)
                self.failures += 1
                log.warning("skipped %s (%s: %s); %d skipped in this process", path, type(e).__name__, e, self.failures)
        raise ValueError(f"10 images in a row failed to load in {self.folder}; check the folder")


class InfiniteSampler(Sampler):
    """Endless indices: epoch e is a permutation seeded by (seed, e), dealt round-robin to the ranks.

    The stream is a function of (seed, rank, world_size) alone, so `start` (indices already consumed by this
    rank) resumes it exactly.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0):
        if size < world_size:
            raise ValueError(f"dataset of {size} items is too small for {world_size} processes")
        self.size, self.rank, self.world_size, self.seed, self.start = size, rank, world_size, seed, start

    def __iter__(self):
        per_epoch = self.size // self.world_size
        epoch, offset = divmod(self.start, per_epoch)
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.size, generator=g)[self.rank :: self.world_size][:per_epoch]
            yield from perm[offset:].tolist()
            epoch, offset = epoch + 1, 0
