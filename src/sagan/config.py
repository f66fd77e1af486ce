"""Configuration dataclasses and named presets.

The dataclasses are the single source of truth: models take a `ModelConfig`, the training loop a `TrainConfig`,
and a run folder's `config.json` is `asdict()` of both. Presets are plain dicts of overrides on the defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ATTN_VARIANTS = ("official", "paper")
INITS = ("orthogonal", "xavier", "normal")

# Default channel multipliers by image resolution (BigGAN-PyTorch's `G_arch` / `D_arch`, which the official
# SAGAN 128 px model also follows). G: one entry per feature resolution 4, 8, ..., resolution.
# D: one entry per residual block, with whether that block halves the resolution.
_G_MULT = {
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
_D_MULT = {32: (4, 4, 4, 4), 64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16), 256: (1, 2, 4, 8, 8, 16, 16)}
_D_DOWN = {
    32: (True, True, False, False),
    64: (True, True, True, True, False),
    128: (True, True, True, True, True, False),
    256: (True, True, True, True, True, True, False),
}


@dataclass
class ModelConfig:
    """Architecture of G and D.

    Channel counts are `g_channels * g_channel_mult[i]` (G stage at feature resolution 4 * 2**i) and
    `d_channels * d_channel_mult[i]` (D block i). Empty multiplier tuples take the default for `resolution`.
    Attention is inserted after the G stage / D block whose output has a listed feature resolution.
    """

    resolution: int = 32
    img_channels: int = 3
    num_classes: int = 0  # 0: unconditional
    z_dim: int = 128
    g_channels: int = 64
    d_channels: int = 64
    g_channel_mult: tuple[int, ...] = ()
    d_channel_mult: tuple[int, ...] = ()
    d_downsample: tuple[bool, ...] = ()
    g_attn_resolutions: tuple[int, ...] = (32,)
    d_attn_resolutions: tuple[int, ...] = (32,)
    attn_variant: str = "official"  # "official" (pooled keys/values, C/2 value) or "paper"
    attn_qk_ratio: int = 8  # query/key width = C // attn_qk_ratio
    attn_v_ratio: int = 0  # value width = C // attn_v_ratio; 0: 2 for "official", attn_qk_ratio for "paper"
    g_spectral_norm: bool = True  # False: the paper's "SN on D only" baseline
    cbn_spectral_norm: bool = False  # SN on conditional-BN embeddings (off in the official and BigGAN code)
    sn_eps: float = 1e-6
    sn_power_iterations: int = 1
    bn_eps: float = 1e-5
    init: str = "orthogonal"  # "orthogonal", "xavier" or "normal" (N(0, 0.02))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fill resolution-dependent defaults and raise ValueError on an inconsistent config."""
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {r}")
        if self.img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {self.img_channels}")
        if self.num_classes < 0 or self.z_dim < 1 or self.g_channels < 1 or self.d_channels < 1:
            raise ValueError("num_classes must be >= 0; z_dim, g_channels and d_channels must be >= 1")
        if self.attn_variant not in ATTN_VARIANTS:
            raise ValueError(f"attn_variant must be one of {ATTN_VARIANTS}, got {self.attn_variant!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.sn_power_iterations < 1:
            raise ValueError("sn_power_iterations must be >= 1")
        num_stages = int(math.log2(r)) - 1
        for name, table in (("g_channel_mult", _G_MULT), ("d_channel_mult", _D_MULT), ("d_downsample", _D_DOWN)):
            if not getattr(self, name):
                if r not in table:
                    raise ValueError(f"no default {name} for {r} px (have {sorted(table)}); give it explicitly")
                setattr(self, name, table[r])
        self.g_channel_mult = tuple(int(m) for m in self.g_channel_mult)
        self.d_channel_mult = tuple(int(m) for m in self.d_channel_mult)
        self.d_downsample = tuple(bool(d) for d in self.d_downsample)
        self.g_attn_resolutions = tuple(int(a) for a in self.g_attn_resolutions)
        self.d_attn_resolutions = tuple(int(a) for a in self.d_attn_resolutions)
        if len(self.g_channel_mult) != num_stages:
            raise ValueError(
                f"g_channel_mult needs {num_stages} entries (feature resolutions 4..{r}), "
                f"got {len(self.g_channel_mult)}"
            )
        if len(self.d_channel_mult) != len(self.d_downsample):
            raise ValueError("d_channel_mult and d_downsample must have the same length")
        if r >> sum(self.d_downsample) < 1:
            raise ValueError(f"d_downsample halves {r} px too often")
        self._check_attn("g_attn_resolutions", self.g_attn_resolutions, self.g_feature_resolutions())
        self._check_attn("d_attn_resolutions", self.d_attn_resolutions, self.d_feature_resolutions())

    @staticmethod
    def _check_attn(name: str, wanted: tuple[int, ...], available: list[int]) -> None:
        for a in wanted:
            if a not in available:
                raise ValueError(f"{name}: no feature map of resolution {a}; available: {sorted(set(available))}")

    def g_feature_resolutions(self) -> list[int]:
        """Output resolution of each G stage: 4, 8, ..., resolution."""
        return [4 << i for i in range(len(self.g_channel_mult))]

    def d_feature_resolutions(self) -> list[int]:
        """Output resolution of each D block."""
        out, r = [], self.resolution
        for down in self.d_downsample:
            r = r // 2 if down else r
            out.append(r)
        return out

    @property
    def value_ratio(self) -> int:
        """Channel ratio of the attention value (C // value_ratio)."""
        if self.attn_v_ratio:
            return self.attn_v_ratio
        return 2 if self.attn_variant == "official" else self.attn_qk_ratio


@dataclass
class TrainConfig:
    """Data, optimisation, precision and bookkeeping of a training run. Steps count G updates."""

    data: str = "shapes"  # shapes | mnist | fashion-mnist | cifar10 | cifar100 | path to a folder of images
    data_root: str = ""  # torchvision datasets; "" -> $SAGAN_DATA_ROOT, else ~/.cache/sagan/data
    download: bool = False
    unconditional: bool = False  # ignore the dataset's labels
    hflip: bool = False  # random horizontal flips of real images
    outdir: str = "runs"
    steps: int = 100_000
    batch_size: int = 64  # per process
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    loss: str = "hinge"  # hinge | ns
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps: int = 1  # D updates per G update
    use_ema: bool = True
    ema_decay: float = 0.9999
    ema_start_step: int = 1000  # G_ema copies G until then
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    num_workers: int = -1  # -1: min(4, cpu count) on CUDA, 0 on CPU
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000  # rewrite checkpoints/latest.pt
    snapshot_every: int = 10_000  # keep checkpoints/step-NNNNNNN.pt
    keep_snapshots: int = 5
    eval_every: int = 0  # steps between evaluations of G_ema (0: never); keeps checkpoints/best.pt by FID
    eval_metrics: str = "fid"  # comma-separated: fid, kid, is, pr
    eval_num: int = 5000  # generated (and real) images per evaluation
    inception_path: str = ""  # "" -> $SAGAN_INCEPTION_PATH, else torch-fidelity's download

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on impossible values."""
        positive = ("steps", "batch_size", "d_steps", "log_every", "sample_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.snapshot_every < 0 or self.keep_snapshots < 0 or self.eval_every < 0 or self.eval_num < 2:
            raise ValueError("snapshot_every, keep_snapshots and eval_every must be >= 0, eval_num >= 2")
        if self.loss not in ("hinge", "ns"):
            raise ValueError(f"loss must be 'hinge' or 'ns', got {self.loss!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.lr_g <= 0 or self.lr_d <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("learning rates must be > 0 and betas in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def from_dict(cls, d: dict):
    """Build a config dataclass from a dict (e.g. a checkpoint's), rejecting unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**d)


# Named presets: overrides of ModelConfig ("model") and TrainConfig ("train") defaults.
MODEL_PRESETS: dict[str, dict] = {
    "demo": dict(
        resolution=32,
        num_classes=4,
        z_dim=64,
        g_channels=8,
        d_channels=8,
        g_attn_resolutions=(16,),
        d_attn_resolutions=(16,),
    ),
    "mnist": dict(
        resolution=32,
        img_channels=1,
        num_classes=10,
        g_channels=32,
        d_channels=32,
        g_attn_resolutions=(16,),
        d_attn_resolutions=(16,),
    ),
    "fashion-mnist": dict(
        resolution=32,
        img_channels=1,
        num_classes=10,
        g_channels=32,
        d_channels=32,
        g_attn_resolutions=(16,),
        d_attn_resolutions=(16,),
    ),
    "cifar10": dict(resolution=32, num_classes=10, g_attn_resolutions=(16,), d_attn_resolutions=(16,)),
    "cifar10-ttur": dict(resolution=32, num_classes=10, g_attn_resolutions=(16,), d_attn_resolutions=(16,)),
    "imagenet64": dict(resolution=64, num_classes=1000, g_attn_resolutions=(32,), d_attn_resolutions=(32,)),
    "imagenet128-official": dict(resolution=128, num_classes=1000, g_attn_resolutions=(32,), d_attn_resolutions=(32,)),
    "imagenet128-paper": dict(resolution=128, num_classes=1000, g_attn_resolutions=(32,), d_attn_resolutions=(32,)),
    # BigGAN-PyTorch's SAGAN script: attention at 64, xavier init, SN eps 1e-8 (its shared class embedding
    # for cBN is not reproduced: each cBN layer has its own embeddings).
    "imagenet128-biggan": dict(
        resolution=128,
        num_classes=1000,
        g_attn_resolutions=(64,),
        d_attn_resolutions=(64,),
        init="xavier",
        sn_eps=1e-8,
    ),
}

_CIFAR_STRONG = dict(batch_size=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, d_steps=5)
_TTUR_PAPER = dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, d_steps=1)
_IMAGENET = dict(data="imagenet", batch_size=256, steps=1_000_000, hflip=True, use_ema=False)
TRAIN_PRESETS: dict[str, dict] = {
    # About 8 minutes on 2 CPU cores (measured: 8m08s, 2.7 steps/s); samples show the shapes.
    "demo": dict(
        data="shapes",
        steps=1300,
        batch_size=32,
        lr_g=2e-4,
        lr_d=4e-4,
        beta1=0.0,
        beta2=0.9,
        ema_decay=0.99,
        ema_start_step=200,
        log_every=20,
        sample_every=100,
        checkpoint_every=100,
        snapshot_every=0,
    ),
    "mnist": dict(data="mnist", steps=20_000, **_TTUR_PAPER),
    "fashion-mnist": dict(data="fashion-mnist", steps=20_000, **_TTUR_PAPER),
    # The strong reproductions' CIFAR-10 recipe (e.g. StudioGAN, mimicry).
    "cifar10": dict(data="cifar10", steps=100_000, hflip=False, **_CIFAR_STRONG),
    # The paper's TTUR settings on CIFAR-10.
    "cifar10-ttur": dict(data="cifar10", steps=100_000, batch_size=64, **_TTUR_PAPER),
    "imagenet64": dict(_IMAGENET, **_TTUR_PAPER),
    # brain-research/self-attention-gan: TTUR with Adam betas (0, 0.999).
    "imagenet128-official": dict(_IMAGENET, lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.999, d_steps=1),
    # The paper's text: betas (0, 0.9).
    "imagenet128-paper": dict(_IMAGENET, **_TTUR_PAPER),
    # BigGAN-PyTorch scripts/launch_SAGAN_bs128x2_ema.sh: batch 128 x 2 accumulations (one batch of 256 here),
    # lr 1e-4/4e-4, betas (0, 0.999), EMA 0.9999 from step 2000.
    "imagenet128-biggan": dict(
        _IMAGENET,
        lr_g=1e-4,
        lr_d=4e-4,
        beta1=0.0,
        beta2=0.999,
        d_steps=1,
        use_ema=True,
        ema_decay=0.9999,
        ema_start_step=2000,
    ),
}
PRESETS = tuple(MODEL_PRESETS)
assert set(TRAIN_PRESETS) == set(MODEL_PRESETS)
