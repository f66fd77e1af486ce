"""The ablation grids as data (as `sagan.presets` holds the presets): each a preset, the settings every run
shares, and its configurations as --set items, compared with one reference configuration.

- "attention" (the paper's Table 2 on shapes): no attention; G and D at 16 x 16; G and D at 8 x 8; G at 32 x 32
  and D at its largest map (16 x 16). Same model otherwise, same step budget.
- "sn-ttur" (the paper's Table 1 / Fig. 3): spectral norm in D only with equal learning rates (1e-4 / 1e-4);
  in G and D with equal rates; in G and D with TTUR (1e-4 / 4e-4). Adam betas (0, 0.9), as in the paper.
- "diffaugment" (small data): DiffAugment off against on (translation, cutout, colour; Zhao et al. 2020), each run
  training on a fixed set of only SMALL_DATA shapes images (the first of its seed's stream), so that D can
  overfit them; FID is against images of seed 0's whole stream, almost all unseen in training.
- "fm-attention" (the paper's central claim on real data): the `fashion-mnist-cpu` SAGAN without attention, with
  attention at 16 x 16 in G and D (the preset's), and with G's at 32 x 32 (its largest map, where the paper
  finds attention helps most) and D's at 16 x 16; FID against all 10,000 test images.
"""

from __future__ import annotations

from dataclasses import dataclass

# Shapes runs: the demo model, a step budget that fits a CPU, fewer files than the demo writes.
_INTERVALS = ("log_every=50", "sample_every=500", "checkpoint_every=250", "snapshot_every=0")
_COMMON = ("steps=2000", *_INTERVALS)
_PAPER_ADAM = ("beta1=0.0", "beta2=0.9")
SMALL_DATA = 500  # images of the "diffaugment" grid's fixed training set
# Fashion-MNIST runs: no evaluation during training (each run is scored once, at its end, on the test split).
_FM_COMMON = ("steps=2000", "log_every=100", "sample_every=500", "checkpoint_every=500", "snapshot_every=0")
_NO_ATTENTION = ("g_attn_resolutions=", "d_attn_resolutions=")


@dataclass(frozen=True)
class Grid:
    """A named set of configurations of one preset; each configuration is a list of --set items.

    FID is measured against the `eval_split` of the preset's data, on `fid_real` real images (0: as many as
    generated); the shape measures (symmetry error, mirror IoU, colour gap) only on the built-in shapes data.
    """

    name: str
    description: str
    preset: str
    sets: tuple[str, ...]
    configs: dict[str, tuple[str, ...]]
    reference: str  # the configuration the others are compared with
    eval_split: str = "train"
    fid_real: int = 0

    def run_name(self, config: str, seed: int) -> str:
        return f"{config}-seed{seed}"


GRIDS = {
    "attention": Grid(
        "attention",
        "attention placement (paper Table 2), demo model on shapes",
        "demo",
        _COMMON,
        {
            "none": _NO_ATTENTION,
            "g16-d16": ("g_attn_resolutions=16", "d_attn_resolutions=16"),
            "g8-d8": ("g_attn_resolutions=8", "d_attn_resolutions=8"),
            "g32-d16": ("g_attn_resolutions=32", "d_attn_resolutions=16"),
        },
        reference="none",
    ),
    "sn-ttur": Grid(
        "sn-ttur",
        "spectral norm and TTUR (paper Table 1), demo model on shapes",
        "demo",
        _COMMON + _PAPER_ADAM,
        {
            "sn-d-equal": ("g_spectral_norm=false", "lr_g=1e-4", "lr_d=1e-4"),
            "sn-gd-equal": ("lr_g=1e-4", "lr_d=1e-4"),
            "sn-gd-ttur": ("lr_g=1e-4", "lr_d=4e-4"),
        },
        reference="sn-d-equal",
    ),
    "diffaugment": Grid(
        "diffaugment",
        f"DiffAugment off / on, {SMALL_DATA} training images, demo model on shapes",
        "demo",
        ("steps=1000", *_INTERVALS, f"data_limit={SMALL_DATA}"),  # 64 passes over the data; ~6 min a run here
        {"off": (), "translation-cutout-color": ("augment=translation,cutout,color",)},
        reference="off",
    ),
    "fm-attention": Grid(
        "fm-attention",
        "attention against none on Fashion-MNIST (fashion-mnist-cpu model), FID against the 10,000 test images",
        "fashion-mnist-cpu",
        (*_FM_COMMON, "eval_every=0"),
        {
            "none": _NO_ATTENTION,
            "g16-d16": ("g_attn_resolutions=16", "d_attn_resolutions=16"),
            "g32-d16": ("g_attn_resolutions=32", "d_attn_resolutions=16"),
        },
        reference="none",
        eval_split="test",
        fid_real=10_000,
    ),
}
