"""The evaluation protocol: Inception features of N generated and N real images, then FID/KID/IS and, for the
shapes dataset, the symmetry error. Generated images come from the EMA generator, class-balanced, as uint8
(what saving PNGs would give); real images are the dataset at the model's resolution. Reference features are
cached by (dataset, split, resolution, channels, count, extractor)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sagan.errors import SaganError
from sagan.metrics.inception import Inception, cached_features
from sagan.metrics.scores import (
    density_coverage,
    fid_from_features,
    fid_statistics,
    fid_terms,
    inception_score,
    kid_from_features,
    symmetry_error,
)
from sagan.metrics.sources import (
    folder_batches,
    generated_batches,
    read_npz_statistics,
    real_batches,
    real_labels,
    resized_batches,
    write_npz_statistics,
)

log = logging.getLogger("sagan")
PROGRESS_EVERY_S = 60.0  # seconds between progress lines of an evaluation outside a terminal
METRICS = ("fid", "kid", "is", "pr", "intra_fid", "density", "coverage")
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


BUILTIN_DATA = ("shapes", "mnist", "fashion-mnist", "cifar10", "cifar100")


def reference_key(data: str, split: str, resolution: int, channels: int, num: int, seed: int, extractor: str) -> str:
    """The cache key of real-image features: protocol version, data (a folder by a digest of its file list),
    split, resolution, channels, requested count, subset seed and the extractor's id (weights and version)."""
    from sagan.data.datasets import folder_digest

    data_id = data if data in BUILTIN_DATA else f"folder-{folder_digest(data)}"
    return f"p{PROTOCOL_VERSION}-{data_id}-{split}-{resolution}px-{channels}ch-n{num}-seed{seed}-{extractor}"


def _collect(batches, inception: Inception, total: int, desc: str, keep_images: bool, info=None):
    """Inception features of (batch index, uint8 batch) pairs, gathered from every rank in batch order (on
    every rank); also the images as floats in [-1, 1] if asked. A collective when `info` is distributed."""
    from sagan.distributed import DistInfo, all_gather_objects

    info = info or DistInfo()
    mine = []
    bar = tqdm(batches, desc=f"{desc} ({total})", unit="batch", leave=False, disable=None)  # a bar on a terminal
    # Elsewhere (nohup, a log file) a line a minute: an evaluation runs for half an hour on a CPU.
    lines = bar.disable and info.is_main
    start = last = time.perf_counter()
    done = 0
    for b, x in bar:
        mine.append((b, inception.features([x]), x if keep_images else None))
        done += len(x) * info.world_size
        if lines and time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            rate = done / (last - start)
            log.info(
                "%s: %d of %d, %.1f img/s, about %.0f min left", desc, done, total, rate, (total - done) / rate / 60
            )
    parts = sorted((p for rank_parts in all_gather_objects(mine, info) for p in rank_parts), key=lambda p: p[0])
    if not parts:
        raise SaganError(f"no {desc} to evaluate")
    feats = {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}
    images = torch.cat([p[2] for p in parts]).float() / 127.5 - 1 if keep_images else None
    return feats, images


def _reference_features(key: str, real_iter, inception: Inception, total: int, info) -> dict[str, torch.Tensor]:
    """Real-image features from the cache (read by rank 0 and shared), else computed by all ranks together."""
    from sagan.distributed import DistInfo, all_gather_objects

    info = info or DistInfo()
    if not info.enabled:
        return cached_features(key, lambda: _collect(real_iter, inception, total, "real images", False)[0])
    hit = all_gather_objects(cached_features(key, None) if info.is_main else None, info)[0]
    if hit is not None:
        return hit
    feats = _collect(real_iter, inception, total, "real images", False, info)[0]
    if info.is_main:
        cached_features(key, lambda: feats)
    return feats


# The metric registry: name -> function(fake features, real features, count tag) -> {metric name: value}.
# Names carry their protocol: the sample count (fid10k) and, for precision/recall, the features (Inception
# pool3, where Kynkaanniemi et al. and stylegan3 use VGG16).
def _fid(fake: dict, real: dict, tag: str) -> dict:
    return _fid_entries(fid_statistics(fake["2048"]), fid_statistics(real["2048"]), tag)


def _fid_entries(fake_stats: dict, real_stats: dict, tag: str) -> dict:
    """fid{tag} first (the key `main_fid` finds), then its mean and covariance terms (`fid_terms`)."""
    terms = fid_terms(fake_stats, real_stats)
    return {f"fid{tag}": terms["fid"], **{f"fid{tag}_{part}": terms[part] for part in ("mean_term", "cov_term")}}


def main_fid(metrics: dict) -> tuple[str, float] | None:
    """The FID entry of a metrics dict (fid10k, fid1k, fid200: not its terms, not intra_fid), or None."""
    return next(((k, v) for k, v in metrics.items() if re.fullmatch(r"fid\d+k?", k)), None)


def _kid(fake: dict, real: dict, tag: str) -> dict:
    mean, std = kid_from_features(fake["2048"], real["2048"])
    return {f"kid{tag}": mean, f"kid{tag}_std": std}


def _pr(fake: dict, real: dict, tag: str) -> dict:
    from torch_fidelity.metric_prc import prc_features_to_metric

    pr = prc_features_to_metric(
        fake["2048"].float(), real["2048"].float(), prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
        verbose=False,
    )  # fmt: skip
    return {f"precision_inception{tag}": pr["precision"], f"recall_inception{tag}": pr["recall"]}


def _is(fake: dict, real: dict | None, tag: str) -> dict:
    mean, std = inception_score(fake["logits_unbiased"])
    return {f"is{tag}": mean, f"is{tag}_std": std}


def _intra_fid(fake: dict, real: dict, tag: str) -> dict:
    """Mean over classes of the FID between the fakes and the real images of that class (StudioGAN's iFID)."""
    fake_y, real_y = fake["labels"], real["labels"]
    per_class = []
    for k in sorted(set(fake_y.tolist())):  # the generator's classes
        f, r = fake["2048"][fake_y == k], real["2048"][real_y == k]
        if len(f) < 2 or len(r) < 2:
            raise SaganError(f"intra_fid: class {k} has {len(f)} generated and {len(r)} real images; need 2 or more")
        per_class.append(fid_from_features(f, r))
    return {f"intra_fid{tag}": sum(per_class) / len(per_class)}


def _density(fake: dict, real: dict, tag: str) -> dict:
    return {f"density{tag}": density_coverage(real["2048"], fake["2048"])[0]}


def _coverage(fake: dict, real: dict, tag: str) -> dict:
    return {f"coverage{tag}": density_coverage(real["2048"], fake["2048"])[1]}


METRIC_FNS = {
    "fid": _fid, "kid": _kid, "pr": _pr, "is": _is, "intra_fid": _intra_fid, "density": _density,
    "coverage": _coverage,
}  # fmt: skip
NEEDS_REAL = ("fid", "kid", "pr", "intra_fid", "density", "coverage")


@dataclass(frozen=True)
class Protocol:
    """What an evaluation measures and against what: `metrics` (METRICS names) of `num` generated images against
    `num_real` (default `num`) real images of `data` (a dataset name or folder, at `resolution` px with
    `channels` channels; `split` of torchvision sets, from `data_root`), noise and real subset seeded by `seed`,
    `batch_size` images per batch. `ref_stats`: a pytorch-fid .npz (mu, sigma) that FID is computed against
    instead of `data`'s features; `save_ref_stats`: write the real features' statistics there."""

    data: str
    resolution: int
    channels: int
    metrics: tuple[str, ...] = ("fid",)
    num: int = 10_000
    num_real: int | None = None
    split: str = "train"
    data_root: str = ""
    seed: int = 0
    batch_size: int = 50
    ref_stats: str | Path | None = None
    save_ref_stats: str | Path | None = None


def evaluate(
    fake: torch.nn.Module | str | Path, protocol: Protocol, inception: Inception | None = None, info=None
) -> dict:
    """Metrics of a generator (or a folder of generated images) under `protocol`, and the protocol as run.

    `inception`: the feature extractor (default: torch-fidelity's weights, `Inception()`). Under torchrun
    (`info`: sagan.distributed.DistInfo), every rank generates and extracts its share of the images, the features
    are gathered once, and every rank returns the same result (a collective).
    """
    pr = protocol
    data, metrics, num, resolution, channels = pr.data, list(pr.metrics), pr.num, pr.resolution, pr.channels
    data_root, split, num_real, seed, batch_size = pr.data_root, pr.split, pr.num_real, pr.seed, pr.batch_size
    ref_stats, save_ref_stats = pr.ref_stats, pr.save_ref_stats
    from sagan.distributed import DistInfo

    info = info or DistInfo()
    shard = (info.rank, info.world_size)
    inception = inception or Inception(with_logits="is" in metrics)
    shapes = data == "shapes"
    resized_from = None
    if isinstance(fake, torch.nn.Module):
        fake_iter, n_fake = generated_batches(fake, num, batch_size, seed, shard), num
        source = "generator (EMA if kept), class-balanced" if fake.cfg.num_classes else "generator (EMA if kept)"
        if fake.cfg.resolution != resolution:  # scored as the real images are made, not at mismatched sizes
            fake_iter, resized_from = resized_batches(fake_iter, resolution, channels), fake.cfg.resolution
    else:
        fake_iter, n_fake = folder_batches(fake, batch_size, shard)
        source = f"folder {fake}"
    fake_feats, fake_images = _collect(fake_iter, inception, n_fake, "generated images", shapes, info)
    want_real = num_real or num
    real_feats, n_real = None, 0
    uses_real = [m for m in metrics if m in NEEDS_REAL and not (m == "fid" and ref_stats)]
    if uses_real or save_ref_stats:
        key = reference_key(data, split, resolution, channels, want_real, seed, inception.id)
        real_iter = real_batches(data, resolution, channels, want_real, data_root, split, batch_size, seed, shard)
        real_feats = dict(_reference_features(key, real_iter, inception, want_real, info))
        n_real = len(real_feats["2048"])
        if save_ref_stats and info.is_main:
            write_npz_statistics(save_ref_stats, real_feats["2048"], overwrite=True)
    if "intra_fid" in metrics:
        if not isinstance(fake, torch.nn.Module) or not fake.cfg.num_classes:
            raise SaganError("intra_fid needs a conditional generator (--checkpoint), not a folder of images")
        fake_feats["labels"] = torch.arange(n_fake) % fake.cfg.num_classes
        real_feats["labels"] = real_labels(data, resolution, channels, want_real, data_root, split, seed)
    out: dict[str, float] = {}
    if shapes:  # cheap: no Inception involved
        real = torch.cat([x for _, x in real_batches(data, resolution, channels, want_real, data_root, split)])
        n_real = len(real)
        out["symmetry_real"] = symmetry_error(real.float() / 127.5 - 1)
    tag = count_tag(n_fake)
    for name in metrics:
        if name == "fid" and ref_stats:
            reference = read_npz_statistics(ref_stats)
            out.update(_fid_entries(fid_statistics(fake_feats["2048"]), reference, tag))
        else:
            out.update(METRIC_FNS[name](fake_feats, real_feats, tag))
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
        "inception_precision": inception.precision,
        "features": "Inception-v3 pool3 (2048-d)" + (", logits for IS" if "is" in metrics else ""),
        "seed": seed,
        "processes": info.world_size,
    }
    if resized_from:
        protocol["fake_resized"] = f"{resized_from} -> {resolution} px by the real images' transform"
    if ref_stats:
        protocol["fid_reference"] = f"statistics file {ref_stats}"
    if "kid" in metrics:  # with fewer than 1000 images every subset is the whole set, so the std is 0
        protocol["kid_subsets"] = f"100 x {min(1000, n_fake, n_real)}"
    return {"metrics": out, "protocol": protocol}


class Evaluator:
    """Evaluates G during training with the `sagan evaluate` protocol; Inception and reference features load once.

    Constructing it loads (and checks) the Inception weights, so a bad --inception fails before training starts.
    """

    def __init__(self, cfg, model_cfg, device: torch.device, info=None) -> None:
        self.cfg, self.model_cfg, self.info = cfg, model_cfg, info
        self.metrics = parse_metrics(cfg.eval_metrics)
        self.inception = Inception(
            cfg.inception_path, device, with_logits="is" in self.metrics, precision=cfg.eval_precision
        )

    def __call__(self, G: torch.nn.Module, step: int) -> dict:
        """{metric name: value} of G (set to eval mode) at training step `step`; also logged."""
        G.eval()
        mc, cfg = self.model_cfg, self.cfg
        protocol = Protocol(cfg.data, mc.resolution, mc.img_channels, tuple(self.metrics), cfg.eval_num,
                            split=cfg.eval_split, data_root=cfg.data_root, seed=cfg.seed)  # fmt: skip
        result = evaluate(G, protocol, self.inception, self.info)
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items()))
        return result["metrics"]
