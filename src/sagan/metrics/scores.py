"""Metric maths as pure functions of features, logits or images.

FID (Heusel et al. 2017): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). KID (Binkowski et al. 2018): unbiased
MMD^2 with the cubic polynomial kernel over random subsets. IS (Salimans et al. 2016): exp(E[KL(p(y|x) || p(y))])
averaged over splits. The first three are torch-fidelity's own functions (the protocol of the SAGAN reproductions),
so numbers agree with `fidelity` run on the same features. The symmetry error is ours (see `symmetry_error`).
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric


def fid_statistics(features: torch.Tensor) -> dict:
    """features (N, D) -> {"mu": (D,), "sigma": (D, D)} in float64 numpy arrays."""
    return fid_features_to_statistics(features.double().cpu())


def fid_from_statistics(stats_1: dict, stats_2: dict) -> float:
    """Frechet distance between two Gaussians given as {"mu", "sigma"}."""
    return fid_statistics_to_metric(stats_1, stats_2, verbose=False)["frechet_inception_distance"]


def fid_from_features(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """FID between two feature sets (N1, D) and (N2, D)."""
    return fid_from_statistics(fid_statistics(features_1), fid_statistics(features_2))


def fid_terms(stats_1: dict, stats_2: dict) -> dict:
    """FID and its two parts: {"fid", "mean_term": |mu1 - mu2|^2, "cov_term": the rest, Tr(S1 + S2 - 2 (S1 S2)^(1/2))}.

    The mean term says how far apart the feature centres are, the covariance term how the spreads differ (too little
    variety in the generated set shows there, as does a set that is spread differently)."""
    fid = fid_from_statistics(stats_1, stats_2)
    mean_term = float(((stats_1["mu"] - stats_2["mu"]) ** 2).sum())
    return {"fid": fid, "mean_term": mean_term, "cov_term": fid - mean_term}


def kid_from_features(
    features_1: torch.Tensor, features_2: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID mean and std over `subsets` random subsets of `subset_size` (capped at the smaller set's size)."""
    size = min(subset_size, len(features_1), len(features_2))
    out = kid_features_to_metric(
        features_1.double().cpu(),
        features_2.double().cpu(),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_degree=3,
        kid_gamma=None,
        kid_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """IS mean and std over `splits` splits of logits (N, K), unshuffled."""
    out = isc_features_to_metric(logits.cpu(), splits=splits, shuffle=False)
    return out["inception_score_mean"], out["inception_score_std"]


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem, Oh, Uh, Choi, Yoo, ICML 2020) of fake features (M, D) against real (N, D).

    Each real sample i gets the ball of radius r_i, the distance to its k-th nearest other real sample.
    density = 1 / (k M) * sum_j #{i : |Y_j - X_i| <= r_i}  (how crowded the fakes sit in the real balls);
    coverage = 1 / N * #{i : some fake within r_i of X_i}  (how much of the real data the fakes reach).
    """
    real, fake = real.double(), fake.double()
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values  # (N,); the 1st value is the point itself
    inside = torch.cdist(fake, real) <= radii[None, :]  # (M, N)
    return inside.sum().item() / (k * len(fake)), inside.any(dim=0).double().mean().item()


def symmetry_error(images: torch.Tensor) -> float:
    """Mean |x - mirror(x)| over images (N, C, H, W) in [-1, 1], in [0, 1] units (0: perfectly symmetric).

    Every real image of the built-in shapes dataset has 0. On generated images it measures whether G keeps the
    two halves, which are far apart in the image, consistent: what SAGAN's attention is for.
    """
    return ((images - images.flip(-1)).abs().mean() / 2).item()


# Shapes images: backgrounds have channel values in [0, 0.35] and shapes in [0.55, 1] (in [0, 1] units), so a
# pixel whose brightest channel exceeds the midpoint belongs to the shape.
SHAPE_THRESHOLD = 0.45


def _halves(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left half and mirrored right half of images (N, C, H, W) in [-1, 1], as [0, 1] values."""
    x = (images.float() + 1) / 2
    W = x.shape[-1]
    return x[..., : W // 2], x[..., W - W // 2 :].flip(-1)


def mirror_iou(images: torch.Tensor) -> float:
    """Mean IoU of the shape in the left half and the mirrored shape in the right half (1: the two halves hold the
    same shape at mirrored places; real shapes images: exactly 1). Images (N, 3, H, W) in [-1, 1].

    Beside `symmetry_error`, which averages every pixel, this asks whether G drew one object consistently across
    the image: a shape present on one side only, or of another kind or position on the other, scores low
    however clean the background is. An image with no shape pixels on either side counts as 0.
    """
    left, right = _halves(images)
    a, b = left.amax(1) > SHAPE_THRESHOLD, right.amax(1) > SHAPE_THRESHOLD  # (N, H, W/2)
    inter, union = (a & b).flatten(1).sum(1), (a | b).flatten(1).sum(1)
    return (inter.float() / union.clamp(min=1)).mean().item()


def mirror_colour_gap(images: torch.Tensor) -> float:
    """Mean distance (L1 over RGB / 3, [0, 1] units) between the mean shape colour of the left and of the right
    half; 0 for real shapes images. Images whose halves lack shape pixels count as the largest gap, 1."""
    left, right = _halves(images)
    gaps = []
    for l_half, r_half in zip(left, right, strict=True):
        ml, mr = l_half.amax(0) > SHAPE_THRESHOLD, r_half.amax(0) > SHAPE_THRESHOLD
        if not ml.any() or not mr.any():
            gaps.append(1.0)
            continue
        gaps.append((l_half[:, ml].mean(1) - r_half[:, mr].mean(1)).abs().mean().item())
    return sum(gaps) / len(gaps)
