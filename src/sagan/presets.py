"""Named presets: plain dicts of overrides on the `ModelConfig` ("model") and `TrainConfig` ("train") defaults,
one pair per name (`sagan train --preset NAME`). `sagan.config` resolves them and re-exports these tables."""

from __future__ import annotations

# Named presets: overrides of ModelConfig ("model") and TrainConfig ("train") defaults.
_CIFAR_MODEL = dict(
    resolution=32, num_classes=10, g_channels=64, d_channels=32, g_attn_resolutions=(16,), d_attn_resolutions=(16,)
)
_FASHION_MNIST_CPU_MODEL = dict(
    arch="dcgan",
    resolution=32,
    img_channels=1,
    num_classes=10,
    g_channels=32,
    d_channels=64,
    g_attn_resolutions=(16,),
    d_attn_resolutions=(16,),
)
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
    # Fashion-MNIST on a 2-core CPU in 90 minutes: the DCGAN backbone (a tenth of the ResNet's FLOPs at equal
    # width), G 256-128-64-32 channels, D 64-128-256, attention at 16 x 16 in G and D. docs/results.md.
    "fashion-mnist-cpu": _FASHION_MNIST_CPU_MODEL,
    # The same at Fashion-MNIST's native 28 x 28, for scores comparable with papers that generate and score 28 px
    # images (no resize anywhere): G starts at 7 x 7, 128-64-32 channels (0.91M), D 64-128-256 down to 7 x 7 (0.44M),
    # attention at 14 x 14 in both.
    "fashion-mnist-28": dict(
        _FASHION_MNIST_CPU_MODEL, resolution=28, g_attn_resolutions=(14,), d_attn_resolutions=(14,)
    ),
    # The 32 px recipe with the 28 px G inside: G from 7 x 7 (128-64-32 channels, attention at 14 x 14) makes 28 x 28
    # images and resizes them to 32 bilinearly, as the data is resized; D as in fashion-mnist-cpu. At 4,000 steps
    # its conditional model scored FID5k 19.6 on the train split, where fashion-mnist-cpu's scored 26.9 (and 22.6
    # unconditional): docs/results.md, round seven.
    "fashion-mnist-g28": dict(_FASHION_MNIST_CPU_MODEL, g_start=7, g_attn_resolutions=(14,)),
    # The standard SN-ResNet CIFAR-10 architecture (Miyato et al. 2018; StudioGAN's and mimicry's SAGAN): G 256
    # channels (4.39M parameters), D 128 channels (1.08M), attention at 16 x 16 in both, as StudioGAN places it.
    "cifar10": dict(_CIFAR_MODEL),
    "cifar10-ttur": dict(_CIFAR_MODEL),
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
# The 32 px ResNet presets train channels last: 1.2x the NCHW step of the cifar10 model on 2 CPU cores
# (benchmarks/train_step.py, docs/benchmarks.md); not measured on GPUs yet.
_CL = dict(channels_last=True)
_IMAGENET = dict(data="imagenet", batch_size=256, steps=1_000_000, hflip=True, use_ema=False)
# Steps fixed from the measured uncontended speed (benchmarks/train_step.py), so that contention delays a
# run but never changes it. FID on 1,000 samples against the train split every 1,000 steps; the test split
# is for the final score (sagan evaluate --split test --num 10000).
_FASHION_MNIST_CPU = dict(
    data="fashion-mnist",
    # 14,000 steps: ~75 minutes at the ~200 img/s measured on 2 AMD EPYC cores (2026-12-04; ~130 img/s on
    # 2026-12-03, partly contended). Both shipped generators are this preset's 14,000 steps (76 and 79 min).
    steps=14_000,
    batch_size=64,
    # Twice the usual SAGAN rates: a 2,000-step pilot on the train split reached fid1k 60.1 / 49.8 at 1k / 2k
    # steps, where 2e-4 / 4e-4 had 86.3 / 60.0 (and 50.0 at 4k): half the steps for the same FID.
    lr_g=4e-4,
    lr_d=8e-4,
    beta1=0.0,
    beta2=0.9,
    ema_decay=0.999,
    ema_start_step=0,
    ema_rampup=True,  # measured: at step 1000 a plain 0.999 EMA from step 500 scored fid1k 119, G itself 90
    channels_last=True,  # 1.04x on 2 CPU cores (benchmarks/train_step.py); torch.compile 0.98x: off
    log_every=100,
    sample_every=500,
    checkpoint_every=500,
    snapshot_every=2000,
    keep_snapshots=10,
    eval_every=2000,
    eval_num=1000,
    eval_metrics="fid,kid",
)
TRAIN_PRESETS: dict[str, dict] = {
    # 8-10 minutes on 2 CPU cores: a fresh clone's `sagan train` took 476 s on an AMD EPYC and 578 s on an Intel
    # Xeon without AMX (2026-12, wall time with start-up; 4m56s on 2026-11-22's machine); samples show the shapes.
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
    "mnist": dict(data="mnist", steps=20_000, **_TTUR_PAPER, **_CL),
    "fashion-mnist": dict(data="fashion-mnist", steps=20_000, **_TTUR_PAPER, **_CL),
    "fashion-mnist-cpu": _FASHION_MNIST_CPU,
    "fashion-mnist-28": dict(_FASHION_MNIST_CPU),  # the same recipe at 28 px (its 7 x 7 start and D down to 7)
    "fashion-mnist-g28": dict(_FASHION_MNIST_CPU),  # the same recipe, G making 28 px images resized to 32
    # The strong reproductions' CIFAR-10 recipe (e.g. StudioGAN, mimicry).
    "cifar10": dict(data="cifar10", steps=100_000, hflip=False, **_CIFAR_STRONG, **_CL),
    # The paper's TTUR settings on CIFAR-10.
    "cifar10-ttur": dict(data="cifar10", steps=100_000, batch_size=64, **_TTUR_PAPER, **_CL),
    "imagenet64": dict(_IMAGENET, **_TTUR_PAPER),
    # brain-research/self-attention-gan: TTUR with Adam betas (0, 0.999).
    "imagenet128-official": dict(_IMAGENET, lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.999, d_steps=1),
    # The paper's text: betas (0, 0.9).
    "imagenet128-paper": dict(_IMAGENET, **_TTUR_PAPER),
    # BigGAN-PyTorch scripts/launch_SAGAN_bs128x2_ema.sh: batch 128 x 2 accumulations (256 per update),
    # lr 1e-4/4e-4, betas (0, 0.999), EMA 0.9999 from step 2000.
    "imagenet128-biggan": dict(
        _IMAGENET,
        grad_accumulation=2,
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
