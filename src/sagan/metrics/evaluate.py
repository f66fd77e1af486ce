"""The evaluation protocol: Inception features of N generated and N real images, then FID/KID/IS and, for the
shapes dataset, the symmetry error. Generated images come from the EMA generator, class-balanced, as uint8
(what saving PNGs would give); real images are the dataset at the model's resolution. Reference features are
cached by (dataset, split, resolution, channels, count, extractor)."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from sagan.data import TensorImages, load_dataset
from sagan.files import SaganError
from sagan.metrics.inception import Inception, cached_features, to_uint8
from sagan.metrics.math import fid_from_features, inception_score, kid_from_features, symmetry_error

log = logging.getLogger("sagan")
METRICS = ("fid", "kid", "is", "pr")
PROTOCOL_VERSION = 1  # part of every reference-feature cache key: bump it when the protocol changes


def count_tag(n: int) -> str:
    """50000 -> "50k", 5000 -> "5k", 200 -> "200": metric names carry their sample count (fid50k)."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ValueError(f"unknown metrics {bad or text!r}; choose from {', '.join(METRICS)}")
    return names


def real_batches(
    data: str,
    resolution: int,
    channels: int,
    num: int,
    data_root: str = "",
    split: str = "train",
    batch_size: int = 50,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """uint8 batches of `num` real images (a seeded random subset when the split is larger; all when smaller).

    Lazy: the dataset is loaded when the first batch is asked for, so a cache hit never loads it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    ds = load_dataset(data, resolution, channels, data_root, train=split == "train", seed=seed)
    n = min(num, len(ds))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    for i in range(0, n, batch_size):
        chunk = idx[i : i + batch_size]
        if isinstance(ds, TensorImages):  # the uint8 images themselves: what to_uint8 of the floats gives
            yield ds.images[chunk]
        else:
            yield to_uint8(torch.stack([ds[j][0] for j in chunk]))


BUILTIN_DATA = ("shapes", "mnist", "fashion-mnist", "cifar10", "cifar100")


def reference_key(data: str, split: str, resolution: int, channels: int, num: int, seed: int, extractor: str) -> str:
    """The cache key of real-image features: protocol version, data (a folder by a digest of its file list),
    split, resolution, channels, requested count, subset seed and the extractor's id (weights and version)."""
    data_id = data if data in BUILTIN_DATA else f"folder-{folder_digest(data)}"
    return f"p{PROTOCOL_VERSION}-{data_id}-{split}-{resolution}px-{channels}ch-n{num}-seed{seed}-{extractor}"


@functools.lru_cache(maxsize=8)
def folder_digest(folder: str) -> str:
    """SHA-256 (12 hex digits) of the image files under `folder`: relative names, sizes and modification times.

    Adding, removing, replacing or touching a file changes it; scanned once per process."""
    from sagan.data import IMAGE_EXTENSIONS

    root = Path(folder).expanduser().resolve()
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_EXTENSIONS and q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def generated_batches(G: torch.nn.Module, num: int, batch_size: int = 50, seed: int = 0) -> Iterator[torch.Tensor]:
    """uint8 batches of `num` images of G (eval mode), classes cycling 0..K-1 for a balanced set."""
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    K = G.cfg.num_classes
    for i in range(0, num, batch_size):
        b = min(batch_size, num - i)
        z = torch.randn(b, G.cfg.z_dim, generator=g)
        y = (torch.arange(i, i + b) % K).to(device) if K else None
        with torch.no_grad():
            yield to_uint8(G(z.to(device), y).float().cpu())


def _image_files(folder: str | Path) -> list[Path]:
    from sagan.data import IMAGE_EXTENSIONS

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of generated images at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SaganError(f"no images in {folder}")
    return files


def _load_uint8(path: Path) -> torch.Tensor:
    """(1 or 3, H, W) uint8 of an image file, decoded completely and converted by bit depth."""
    from sagan.data import open_image, to_8bit

    try:
        im = open_image(path)
    except Exception as e:  # noqa: BLE001  (any decoder failure: the folder is not usable as it is)
        raise SaganError(f"cannot read generated image {path}: {type(e).__name__}: {str(e)[:120]}") from None
    gray = im.getbands()[0] in ("1", "L", "I", "F") and len(im.getbands()) <= 2
    arr = np.asarray(to_8bit(im, 1 if gray else 3))
    return torch.from_numpy(arr.copy()).unsqueeze(0) if arr.ndim == 2 else torch.from_numpy(arr.copy()).permute(2, 0, 1)


def folder_resolution(folder: str | Path) -> int:
    """The size of the (square) images in `folder`, read from the first file's header."""
    path = _image_files(folder)[0]
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001
        raise SaganError(f"cannot read generated image {path}: {type(e).__name__}: {str(e)[:120]}") from None
    if width != height:
        raise SaganError(f"{path} is {width}x{height}, not square: give --resolution for the real images")
    return height


def folder_batches(folder: str | Path, batch_size: int = 50) -> tuple[Iterator[torch.Tensor], int]:
    """uint8 batches of the image files in `folder` (all of one size); an unreadable file is an error."""
    files = _image_files(folder)

    def gen():
        for i in range(0, len(files), batch_size):
            batch = [_load_uint8(p) for p in files[i : i + batch_size]]
            if len({t.shape for t in batch}) > 1:
                raise SaganError(f"images in {folder} differ in size or channels")
            yield torch.stack(batch)

    return gen(), len(files)


def _collect(batches: Iterator[torch.Tensor], inception: Inception, total: int, desc: str, keep_images: bool):
    """Run Inception over the batches; also return the images as floats in [-1, 1] if asked."""
    images = []

    def tee():
        for x in tqdm(batches, total=-(-total // 50), desc=desc, unit="batch", leave=False, disable=None):
            if keep_images:
                images.append(x.float() / 127.5 - 1)
            yield x

    feats = inception.features(tee())
    return feats, (torch.cat(images) if keep_images else None)


def evaluate(
    fake: torch.nn.Module | str | Path,
    data: str,
    metrics: list[str],
    num: int,
    resolution: int,
    channels: int,
    data_root: str = "",
    split: str = "train",
    num_real: int | None = None,
    inception: Inception | None = None,
    inception_path: str = "",
    seed: int = 0,
    batch_size: int = 50,
) -> dict:
    """Metrics of a generator (or a folder of generated images) against `data`, and the protocol used."""
    want_is = "is" in metrics
    inception = inception or Inception(inception_path, with_logits=want_is)
    shapes = data == "shapes"
    if isinstance(fake, torch.nn.Module):
        fake_iter, n_fake = generated_batches(fake, num, batch_size, seed), num
        source = "generator (EMA if kept), class-balanced" if fake.cfg.num_classes else "generator (EMA if kept)"
    else:
        fake_iter, n_fake = folder_batches(fake, batch_size)
        source = f"folder {fake}"
    fake_feats, fake_images = _collect(fake_iter, inception, n_fake, "generated images", keep_images=shapes)
    out: dict[str, float] = {}
    needs_real = any(m in metrics for m in ("fid", "kid", "pr"))
    n_real = 0
    want_real = num_real or num
    if needs_real:
        key = reference_key(data, split, resolution, channels, want_real, seed, inception.id)
        real_iter = real_batches(data, resolution, channels, want_real, data_root, split, batch_size, seed)
        real_feats = cached_features(key, lambda: _collect(real_iter, inception, want_real, "real images", False)[0])
        n_real = len(real_feats["2048"])
    if shapes:  # cheap: no Inception involved
        real = torch.cat(list(real_batches(data, resolution, channels, want_real, data_root, split, batch_size, seed)))
        n_real = len(real)
        out["symmetry_real"] = symmetry_error(real.float() / 127.5 - 1)
    tag = count_tag(n_fake)
    if "fid" in metrics:
        out[f"fid{tag}"] = fid_from_features(fake_feats["2048"], real_feats["2048"])
    if "kid" in metrics:
        out[f"kid{tag}"], out[f"kid{tag}_std"] = kid_from_features(fake_feats["2048"], real_feats["2048"])
    if "pr" in metrics:
        from torch_fidelity.metric_prc import prc_features_to_metric

        pr = prc_features_to_metric(
            fake_feats["2048"].float(),
            real_feats["2048"].float(),
            prc_neighborhood=3,
            prc_batch_size=10000,
            save_cpu_ram=False,
            verbose=False,
        )
        out[f"precision{tag}"], out[f"recall{tag}"] = pr["precision"], pr["recall"]
    if want_is:
        out[f"is{tag}"], out[f"is{tag}_std"] = inception_score(fake_feats["logits_unbiased"])
    if shapes:
        out["symmetry_fake"] = symmetry_error(fake_images)
    protocol = {
        "data": data,
        "split": split,
        "resolution": resolution,
        "num_fake": n_fake,
        "num_real": n_real,
        "fake_source": source,
        "feature_extractor": inception.id,
        "features": "Inception-v3 pool3 (2048-d)" + (", logits for IS" if want_is else ""),
        "seed": seed,
    }
    if "kid" in metrics:  # with fewer than 1000 images every subset is the whole set, so the std is 0
        protocol["kid_subsets"] = f"100 x {min(1000, n_fake, n_real)}"
    return {"metrics": out, "protocol": protocol}


class Evaluator:
    """Evaluates G during training with the `sagan evaluate` protocol; Inception and reference features load once.

    Constructing it loads (and checks) the Inception weights, so a bad --inception fails before training starts.
    """

    def __init__(self, cfg, model_cfg, device: torch.device) -> None:
        self.cfg, self.model_cfg = cfg, model_cfg
        self.metrics = parse_metrics(cfg.eval_metrics)
        self.inception = Inception(cfg.inception_path, device, with_logits="is" in self.metrics)

    def __call__(self, G: torch.nn.Module, step: int) -> dict:
        """{metric name: value} of G (set to eval mode) at training step `step`; also logged."""
        G.eval()
        mc, cfg = self.model_cfg, self.cfg
        result = evaluate(
            G,
            cfg.data,
            self.metrics,
            cfg.eval_num,
            mc.resolution,
            mc.img_channels,
            cfg.data_root,
            cfg.eval_split,
            inception=self.inception,
            seed=cfg.seed,
        )
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items()))
        return result["metrics"]
