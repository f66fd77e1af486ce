"""Configuration dataclasses and named presets.

The dataclasses are the single source of truth: models take a `ModelConfig`, the training loop a `TrainConfig`,
and a run folder's `config.json` is `asdict()` of both. Presets are plain dicts of overrides on the defaults
(`sagan.presets`); resolving a run's config from a preset, flags and --set items is `sagan.run_config`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from sagan.presets import MODEL_PRESETS, PRESETS, TRAIN_PRESETS  # noqa: F401 (re-exported)

ATTN_VARIANTS = ("official", "paper")
INITS = ("orthogonal", "xavier", "normal")
ARCHS = ("resnet", "dcgan")
AMP_MODES = ("none", "bf16", "fp16", "auto")

# Default channel multipliers by image resolution (BigGAN-PyTorch's `G_arch` / `D_arch`, which the official
# SAGAN 128 px model also follows). G: one entry per feature resolution 4, 8, ..., resolution (7, 14, 28 at 28 px).
# D: one entry per residual block, with whether that block halves the resolution.
_G_MULT = {
    28: (4, 4, 4),
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
_D_MULT = {
    28: (4, 4, 4, 4),
    32: (4, 4, 4, 4),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
}
_D_DOWN = {
    28: (True, True, False, False),
    32: (True, True, False, False),
    64: (True, True, True, True, False),
    128: (True, True, True, True, True, False),
    256: (True, True, True, True, True, True, False),
}
# The DCGAN backbone (SNGAN's "standard CNN", heykeetae's SAGAN): G halves the channels at every doubling of the
# resolution; D doubles them at every halving, one conv per stage, down to 4 x 4 (at 28 px: 7 x 7, where the last
# stage keeps the size; 28 px, MNIST's native size, starts G at 7 x 7).
_DC_G_MULT = {
    28: (4, 2, 1),
    32: (8, 4, 2, 1),
    64: (16, 8, 4, 2, 1),
    128: (16, 8, 8, 4, 2, 1),
    256: (16, 8, 8, 4, 4, 2, 1),
}
_DC_D_MULT = {28: (1, 2, 4), 32: (1, 2, 4), 64: (1, 2, 4, 8), 128: (1, 2, 4, 8, 16), 256: (1, 2, 4, 8, 8, 16)}
_DC_D_DOWN = {**{r: (True,) * len(m) for r, m in _DC_D_MULT.items()}, 28: (True, True, False)}
_DEFAULTS = {
    "resnet": {"g_channel_mult": _G_MULT, "d_channel_mult": _D_MULT, "d_downsample": _D_DOWN},
    "dcgan": {"g_channel_mult": _DC_G_MULT, "d_channel_mult": _DC_D_MULT, "d_downsample": _DC_D_DOWN},
}


@dataclass
class ModelConfig:
    """Architecture of G and D.

    `resolution` is s * 2**k with a start size s of 4 to 7 and k >= 1: a power of two >= 8 (s = 4), or e.g. 28
    (s = 7, MNIST's native size). G starts at s x s, or at `g_start` x `g_start` where that is set (at most half the
    resolution): e.g. 8 at 32 px, three G stages 8-16-32 as the 28 px G's 7-14-28. G doubles its maps while they fit
    the resolution; where its last map is smaller (g_start 7 at 32 px: 7-14-28), its images are resized to the
    resolution (bilinear, differentiable), as 28 px data is resized to 32 px.
    Channel counts are `g_channels * g_channel_mult[i]` (G stage at feature resolution s * 2**i) and
    `d_channels * d_channel_mult[i]` (D block i). Empty multiplier tuples take the default for `resolution`.
    Attention is inserted after the G stage / D block whose output has a listed feature resolution.
    `arch` picks the backbone: "resnet" (residual blocks, the official SAGAN and BigGAN models) or "dcgan" (one
    conv per stage, about a tenth of the FLOPs at equal width; see `sagan.layers.blocks`).
    """

    arch: str = "resnet"
    resolution: int = 32
    g_start: int = 0  # G's first feature map's size; 0: resolution's own start size s (4, or 7 at 28 px)
    img_channels: int = 3
    num_classes: int = 0  # 0: unconditional
    z_dim: int = 128
    g_channels: int = 64
    d_channels: int = 64
    g_channel_mult: tuple[int, ...] = ()
    d_channel_mult: tuple[int, ...] = ()
    d_downsample: tuple[bool, ...] = ()
    g_attn_resolutions: tuple[int, ...] = (32,)
    d_attn_resolutions: tuple[int, ...] = (16,)  # D's largest map after its first downsampling at 32 px
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
        _check_types(self)
        r = self.resolution
        if r < 8 or r % (1 << (r.bit_length() - 3)):  # r = s * 2**k, s = r's leading 3 bits
            raise ValueError(
                f"resolution must be s * 2**k with s in 4..7 and k >= 1 (a power of two >= 8, or e.g. 28), got {r}"
            )
        if self.g_start and not 1 <= self.g_start <= r // 2:
            raise ValueError(f"g_start must be from 1 to half the resolution ({r // 2}), got {self.g_start}")
        if self.img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {self.img_channels}")
        if self.num_classes < 0 or self.z_dim < 1 or self.g_channels < 1 or self.d_channels < 1:
            raise ValueError("num_classes must be >= 0; z_dim, g_channels and d_channels must be >= 1")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.attn_variant not in ATTN_VARIANTS:
            raise ValueError(f"attn_variant must be one of {ATTN_VARIANTS}, got {self.attn_variant!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.sn_power_iterations < 1:
            raise ValueError("sn_power_iterations must be >= 1")
        if not (self.sn_eps > 0 and self.bn_eps > 0):
            raise ValueError("sn_eps and bn_eps must be > 0")
        num_stages = int(math.log2(r // self.start_resolution)) + 1
        for name, table in _DEFAULTS[self.arch].items():
            if not getattr(self, name):
                if r not in table:
                    raise ValueError(f"no default {name} for {r} px (have {sorted(table)}); give it explicitly")
                # G's table has one entry per stage from s; a later start drops the first ones.
                setattr(self, name, table[r][-num_stages:] if name == "g_channel_mult" else table[r])
        self.g_channel_mult = tuple(int(m) for m in self.g_channel_mult)
        self.d_channel_mult = tuple(int(m) for m in self.d_channel_mult)
        self.d_downsample = tuple(bool(d) for d in self.d_downsample)
        self.g_attn_resolutions = tuple(int(a) for a in self.g_attn_resolutions)
        self.d_attn_resolutions = tuple(int(a) for a in self.d_attn_resolutions)
        if len(self.g_channel_mult) != num_stages:
            raise ValueError(
                f"g_channel_mult needs {num_stages} entries (feature resolutions {self.start_resolution}..{r}), "
                f"got {len(self.g_channel_mult)}"
            )
        if len(self.d_channel_mult) != len(self.d_downsample):
            raise ValueError("d_channel_mult and d_downsample must have the same length")
        if r >> sum(self.d_downsample) < 1:
            raise ValueError(f"d_downsample halves {r} px too often")
        self._check_attn("g_attn_resolutions", self.g_attn_resolutions, self.g_feature_resolutions())
        self._check_attn("d_attn_resolutions", self.d_attn_resolutions, self.d_feature_resolutions())
        odd = sorted({a for a in self.g_attn_resolutions + self.d_attn_resolutions if a % 2})
        if odd and self.attn_variant == "official":
            raise ValueError(
                f"attention at {odd} px: the official variant max-pools keys and values 2x2 and needs even feature "
                "maps (attend at an even size, or set attn_variant=paper)"
            )

    @staticmethod
    def _check_attn(name: str, wanted: tuple[int, ...], available: list[int]) -> None:
        for a in wanted:
            if a not in available:
                raise ValueError(f"{name}: no feature map of resolution {a}; available: {sorted(set(available))}")

    @property
    def start_resolution(self) -> int:
        """G's first feature map's size: `g_start` where set, else s (4 to 7, resolution = s * 2**k): 4 for powers
        of two, 7 at 28 px."""
        return self.g_start or self.resolution >> (self.resolution.bit_length() - 3)

    def g_output_resolution(self) -> int:
        """The size of G's last feature map and of the images its output conv makes; G resizes them to `resolution`
        where this is smaller (a `g_start` that does not double up to the resolution)."""
        return self.g_feature_resolutions()[-1]

    def g_feature_resolutions(self) -> list[int]:
        """Output resolution of each G stage: s, 2s, ..., resolution (4, 8, ... for powers of two)."""
        return [self.start_resolution << i for i in range(len(self.g_channel_mult))]

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
    data_limit: int = 0  # train on the first N images of the data only (0: all of them); small-data experiments
    hflip: bool = False  # random horizontal flips of real images
    outdir: str = "runs"
    steps: int = 100_000
    batch_size: int = 64  # the global batch: split over the processes of a torchrun launch
    sync_bn: bool = False  # under torchrun, G's BatchNorm statistics over the global batch (SyncBatchNorm2d)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    loss: str = "hinge"  # hinge | ns
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps: int = 1  # D updates per G update
    grad_accumulation: int = 1  # micro-batches per update (batch_size / K images each; BigGAN's 2 x 128 = 256)
    augment: str = ""  # DiffAugment policies for D's inputs, real and fake: e.g. "translation,cutout,color"
    lecam_weight: float = 0.0  # LeCam regulariser's weight in D's loss (0: off; StudioGAN uses 0.1-0.5)
    lecam_decay: float = 0.99  # decay of LeCam's moving averages of D's outputs
    # Transitional conditioning (Shahbazi et al. 2022): the class signal (G's conditional-BN gains and biases, D's
    # projection term) is 0 until step class_ramp_start, rises linearly and is 1 from class_ramp_end on.
    # class_ramp_end 0: off, conditional from the first step (the paper's model).
    class_ramp_start: int = 0
    class_ramp_end: int = 0
    use_ema: bool = True
    ema_decay: float = 0.9999
    ema_start_step: int = 1000  # G_ema copies G until then
    ema_rampup: bool = False  # decay min(ema_decay, (1 + n) / (10 + n)) at n steps after the start (TF's EMA)
    ema_standing_batches: int = 16  # G_ema's own BN statistics over this many batches before use (0: G's)
    # none | bf16 | fp16 | auto: bf16 autocast for CPU training where the CPU has native bf16 dot products (AMX,
    # AVX512-BF16, Arm BF16) and a timing of this model's step shows bf16 >= 1.1x faster (`sagan.training.precision`),
    # fp32 elsewhere; resolved before the run, so config.json says which and why
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    # CPU: freed memory stays in the process for the next step (glibc's malloc, `mallopt`) instead of going back
    # to the OS and being page-faulted in again: 5-12% faster steps of the cifar10 model on 2 cores
    cpu_malloc_cache: bool = True
    num_workers: int = -1  # -1: min(4, cpu count) on CUDA, 0 on CPU
    log_every: int = 50
    explode_patience: int = 5  # log rows in a row with |mean loss or D output| > 100 before stopping (0: warn only)
    sample_every: int = 1000
    checkpoint_every: int = 1000  # rewrite checkpoints/latest.pt
    snapshot_every: int = 10_000  # keep checkpoints/step-NNNNNNN.pt
    keep_snapshots: int = 5
    eval_every: int = 0  # steps between evaluations of G_ema (0: never); keeps checkpoints/best.pt by FID
    eval_metrics: str = "fid"  # comma-separated: fid, kid, is, pr
    eval_num: int = 5000  # generated (and real) images per evaluation
    eval_split: str = "train"  # reference split of torchvision datasets (tune on train, report test)
    inception_path: str = ""  # "" -> $SAGAN_INCEPTION_PATH, else torch-fidelity's download
    eval_precision: str = "fp32"  # fp32 | bf16: the Inception network's precision for evaluations during training

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on impossible values (NaN and inf included)."""
        _check_types(self)
        positive = ("steps", "batch_size", "d_steps", "log_every", "sample_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grad_accumulation < 1 or self.lecam_weight < 0 or not 0 <= self.lecam_decay < 1:
            raise ValueError("grad_accumulation must be >= 1, lecam_weight >= 0 and lecam_decay in [0, 1)")
        from sagan.augment import parse_policy

        parse_policy(self.augment)
        if self.class_ramp_end and not 0 <= self.class_ramp_start < self.class_ramp_end:
            raise ValueError(
                f"class_ramp_start must be in [0, class_ramp_end), got {self.class_ramp_start} "
                f"and class_ramp_end {self.class_ramp_end}"
            )
        if self.class_ramp_start < 0 or self.class_ramp_end < 0:
            raise ValueError("class_ramp_start and class_ramp_end must be >= 0 (class_ramp_end 0: off)")
        if self.data_limit < 0:
            raise ValueError(f"data_limit must be >= 0 (0: all images), got {self.data_limit}")
        if self.explode_patience < 0:
            raise ValueError(f"explode_patience must be >= 0, got {self.explode_patience}")
        if self.snapshot_every < 0 or self.keep_snapshots < 0 or self.eval_every < 0 or self.eval_num < 2:
            raise ValueError("snapshot_every, keep_snapshots and eval_every must be >= 0, eval_num >= 2")
        if not 0 <= self.seed < 2**32:  # the trainer seeds from it (and from seed + 7919 * step on a reseed)
            raise ValueError(f"seed (--seed) must be in [0, 2**32), got {self.seed}")
        if self.eval_precision not in ("fp32", "bf16"):
            raise ValueError(f"eval_precision must be 'fp32' or 'bf16', got {self.eval_precision!r}")
        if self.eval_split not in ("train", "test"):
            raise ValueError(f"eval_split must be 'train' or 'test', got {self.eval_split!r}")
        if self.loss not in ("hinge", "ns"):
            raise ValueError(f"loss must be 'hinge' or 'ns', got {self.loss!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.lr_g <= 0 or self.lr_d <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("learning rates must be > 0 and betas in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.ema_start_step < 0 or self.num_workers < -1 or self.ema_standing_batches < 0:
            raise ValueError("ema_start_step and ema_standing_batches must be >= 0, num_workers >= -1")


def _field_types(cls) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def _coerce(kind, value, name: str):
    """`value` as the field type `kind` (int, float, bool, str or tuple[T, ...]); ValueError if it is not one."""
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name} must be a list, got {value!r}")
        return tuple(_coerce(typing.get_args(kind)[0], v, name) for v in value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[kind]
    if not ok:
        raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return kind(value)


def _check_types(cfg) -> None:
    """Raise ValueError unless every field of the dataclass `cfg` has its declared type (floats finite)."""
    for name, kind in _field_types(type(cfg)).items():
        setattr(cfg, name, _coerce(kind, getattr(cfg, name), name))


def from_dict(cls, d: dict):
    """Build a config dataclass from a dict (e.g. a checkpoint's or a JSON file's), checking keys and types.

    Unknown keys and values of the wrong type (None included) raise ValueError; missing keys take defaults.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be a mapping, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**d)
