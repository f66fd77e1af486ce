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


def model_config_from_dict(d: dict) -> ModelConfig:
    """Build a ModelConfig from a dict (e.g. a checkpoint's), rejecting unknown keys."""
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    return ModelConfig(**d)


# Model parts of the named presets. Training parts are added in `PRESETS` below.
MODEL_PRESETS: dict[str, dict] = {
    "demo": dict(
        resolution=32,
        num_classes=4,
        z_dim=64,
        g_channels=16,
        d_channels=16,
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
    "imagenet128-biggan": dict(
        resolution=128, num_classes=1000, z_dim=120, g_attn_resolutions=(64,), d_attn_resolutions=(64,)
    ),
}
