"""The stream of real images a training run draws: endless batches for this rank, resumable at any image."""

from __future__ import annotations

import itertools
import os
import signal

import torch
from torch.utils.data import DataLoader

from sagan import distributed as dist_utils
from sagan.data.datasets import (
    TORCHVISION,
    InfiniteSampler,
    TensorImages,
    first_images,
    load_dataset,
    scan_image_folder,
)
from sagan.run_config import Resolved


def _ignore_sigint(_worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business


def make_loader(resolved: Resolved, dist, device: torch.device, consumed: int):
    """Endless (x, y) batches for this rank, starting after the `consumed` images it has already used.

    A dataset held in memory (`TensorImages`: the torchvision sets) moves to `device` and is batched by indexing;
    others go through a DataLoader. Both follow the same `InfiniteSampler` stream, so they give the same batches.
    """
    cfg, mc = resolved.train, resolved.model
    scan = None
    if dist.enabled and cfg.data not in TORCHVISION and cfg.data != "shapes":  # rank 0 decodes the folder once
        scan = dist_utils.all_gather_objects(scan_image_folder(cfg.data) if dist.is_main else None, dist)[0]
    dataset = load_dataset(
        cfg.data, mc.resolution, mc.img_channels, cfg.data_root, cfg.download, seed=cfg.seed, scan=scan
    )
    if cfg.data_limit:
        dataset = first_images(dataset, cfg.data_limit)
    if len(dataset) < cfg.batch_size:
        raise ValueError(f"dataset has {len(dataset)} images, fewer than one (global) batch")
    local = dist_utils.local_batch(cfg.batch_size, dist.world_size)
    sampler = InfiniteSampler(len(dataset), dist.rank, dist.world_size, cfg.seed, start=consumed)
    if isinstance(dataset, TensorImages):
        return memory_batches(dataset.to(device), sampler, local)
    workers = cfg.num_workers if cfg.num_workers >= 0 else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
    return DataLoader(
        dataset,
        batch_size=local,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_sigint,
        prefetch_factor=4 if workers > 0 else None,
    )


def memory_batches(dataset: TensorImages, sampler: InfiniteSampler, batch_size: int):
    """Endless batches of an in-memory dataset: `batch_size` consecutive indices of `sampler` each."""
    indices = iter(sampler)
    while True:
        yield dataset.batch(list(itertools.islice(indices, batch_size)))
