"""Benchmark one full SAGAN training step (D step + G step + EMA) with the library's own `Trainer`.

    python benchmarks/train_step.py --quick           # CPU: 32 and 64 px, small batches
    python benchmarks/train_step.py --device cuda     # 32/64/128 px presets, fp32/bf16/channels_last/compile

Prints images/s (real images through D per second) and peak memory for each preset and option set. Synthetic
batches stand in for data, so the numbers measure the model step alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from sagan.config import MODEL_PRESETS, TRAIN_PRESETS, ModelConfig, TrainConfig  # noqa: E402
from sagan.train import Trainer  # noqa: E402

OPTIONS = {
    "fp32": {},
    "bf16": {"amp": "bf16"},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    "bf16+cl+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}


def bench(preset: str, option: str, batch: int, device: torch.device, steps: int, warmup: int):
    model_cfg = ModelConfig(**MODEL_PRESETS[preset])
    train = {**TRAIN_PRESETS[preset], **OPTIONS[option], "batch_size": batch, "d_steps": 1, "device": str(device)}
    cfg = TrainConfig(**{k: v for k, v in train.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    t = Trainer(model_cfg, cfg, device)
    t.wrap()
    C, R = model_cfg.img_channels, model_cfg.resolution
    x = torch.rand(batch, C, R, R, device=device) * 2 - 1
    y = torch.randint(0, max(model_cfg.num_classes, 1), (batch,), device=device) if model_cfg.num_classes else None

    def step(i: int) -> None:
        t.d_step(x, y)
        t.g_step()
        t.update_ema(i)

    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process high-water mark, GiB
    return batch * steps / (time.perf_counter() - start), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU-sized: 32 and 64 px, fp32 and bf16")
    ap.add_argument("--presets", nargs="+", default=None)
    ap.add_argument("--options", nargs="+", default=None, choices=list(OPTIONS))
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    presets = args.presets or (
        ["cifar10", "imagenet64"] if args.quick else ["cifar10", "imagenet64", "imagenet128-official"]
    )
    options = args.options or (list(OPTIONS) if cuda else ["fp32", "bf16"])
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
        base = None
        for option in options:
            try:
                ips, peak = bench(preset, option, batch, device, steps, warmup=2 if cuda or not args.quick else 1)
            except torch.OutOfMemoryError:
                print(f"| {preset} | {MODEL_PRESETS[preset]['resolution']} | {option} | OOM | OOM | |")
                torch.cuda.empty_cache()
                continue
            base = ips if option == "fp32" else base
            ratio = f"{ips / base:.2f}" if base else "-"
            peak_note = f"{peak:.2f}" + ("" if cuda else " (process max RSS)")
            px = MODEL_PRESETS[preset]["resolution"]
            print(f"| {preset} | {px} | {option} | {ips:.1f} | {peak_note} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
