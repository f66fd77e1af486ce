"""Benchmark one full SAGAN training step (D step + G step + EMA) with the library's own `Trainer`.

    python benchmarks/train_step.py --quick           # CPU: 32 and 64 px, small batches
    python benchmarks/train_step.py --device cuda     # 32/64/128 px presets, fp32/bf16/channels_last/compile

Prints images/s (real images through D per second) and peak memory (CUDA: allocated; CPU: growth of the max
resident set) for each preset and option set, each case in its own process. Synthetic batches stand in for
data, so the numbers measure the model step alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _harness import measure, run_isolated  # noqa: E402
from sagan.config import MODEL_PRESETS, TRAIN_PRESETS, ModelConfig, TrainConfig  # noqa: E402
from sagan.trainer import Trainer  # noqa: E402

OPTIONS = {
    "fp32": {},
    "fp32+cl": {"channels_last": True},
    "bf16": {"amp": "bf16"},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    "bf16+cl+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}


def bench(preset: str, option: str, batch: int, device: str, steps: int, warmup: int):
    """(ms per step, peak MiB) of D step + G step + EMA update on synthetic batches."""
    dev = torch.device(device)
    model_cfg = ModelConfig(**MODEL_PRESETS[preset])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train = {**TRAIN_PRESETS[preset], **OPTIONS[option], "batch_size": batch, "d_steps": 1, "device": device}
    t = Trainer(model_cfg, TrainConfig(**{k: v for k, v in train.items() if k in fields}), dev)
    t.wrap()
    C, R, K = model_cfg.img_channels, model_cfg.resolution, model_cfg.num_classes
    x = torch.rand(batch, C, R, R, device=dev) * 2 - 1
    y = torch.randint(0, K, (batch,), device=dev) if K else None
    counter = iter(range(10**9))

    def step() -> None:
        t.d_step(x, y)
        t.g_step()
        t.update_ema(next(counter))

    return measure(step, dev, steps, warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU-sized: 32 and 64 px presets")
    ap.add_argument("--presets", nargs="+", default=None)
    ap.add_argument("--options", nargs="+", default=None, choices=list(OPTIONS))
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--max-seconds", type=float, default=600.0, help="time limit of each case")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    presets = args.presets or (
        ["cifar10", "imagenet64"] if args.quick else ["cifar10", "imagenet64", "imagenet128-official"]
    )
    # CPUs without bf16 units run bf16 convolutions far slower than fp32 (0.03x measured here): GPU only.
    options = args.options or (list(OPTIONS) if cuda else ["fp32", "fp32+cl"])
    batch = args.batch or (64 if cuda else 8)
    steps = args.steps or (20 if cuda else 3)
    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print(
        f"# train step (D + G + EMA) | device {device} ({name}) | torch {torch.__version__} | batch {batch} | "
        f"{steps} timed steps | threads {torch.get_num_threads()}"
    )
    print("| preset | px | options | images/s | peak GiB | speed-up vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for preset in presets:
        base_ms = None
        for option in options:
            px = MODEL_PRESETS[preset]["resolution"]
            case = (preset, option, batch, args.device, steps, 3 if cuda else 1)
            status, ms, mib = run_isolated(bench, case, args.max_seconds)
            if status != "ok":
                print(f"| {preset} | {px} | {option} | {status} | {status} | |", flush=True)
                continue
            base_ms = ms if option == "fp32" else base_ms
            speedup = f"{base_ms / ms:.2f}" if base_ms else "-"
            print(
                f"| {preset} | {px} | {option} | {batch * 1000 / ms:.1f} | {mib / 1024:.2f} | {speedup} |", flush=True
            )


if __name__ == "__main__":
    main()
