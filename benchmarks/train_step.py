"""Benchmark SAGAN training: the bare step (one D update + one G update, the library's `Trainer`) and the whole
`sagan train` loop on the same model (data loading, EMA, statistics, logging), optionally against the bare step
of another git revision measured in the same run.

    python benchmarks/train_step.py --quick                     # CPU: the cifar10 model (StudioGAN's CIFAR-10
                                                                # SAGAN), batch 64: step and loop
    python benchmarks/train_step.py --quick --baseline 457ba35  # also that revision's bare step
    python benchmarks/train_step.py --device cuda               # 32/64/128 px presets x fp32/bf16/channels_last/compile

images/s counts real images through D per second (batch x D steps / step time). The bare step runs on fixed
random batches; the loop trains the built-in shapes data (no download; CIFAR-10 may be absent offline) at the
model's resolution with 1 D step, and its rate is the one `sagan train` logs over the timed steps (the steps
between two log rows, so start-up is excluded). Each case runs in its own process (benchmarks/_harness.py; a
baseline revision in a fresh interpreter on its own source tree), in --rounds rounds; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("SAGAN_BENCH_SRC") or str(ROOT / "src"))  # a baseline revision's tree, if set
import torch  # noqa: E402

from _harness import measure, run_isolated  # noqa: E402
from sagan.config import MODEL_PRESETS, ModelConfig, TrainConfig  # noqa: E402

OPTIONS = {
    "fp32": {},
    "fp32+cl": {"channels_last": True},
    "bf16": {"amp": "bf16"},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    "bf16+cl+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
# What the bare step trains with: the optimiser settings do not change the cost, 1 D step per G step.
STEP_TRAIN = {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.999, "d_steps": 1}


def bench_step(model: dict, option: str, batch: int, device: str, steps: int, warmup: int) -> tuple[float, float]:
    """(ms per D + G step, peak MiB) of the ModelConfig fields `model` on fixed random batches. Runs on older
    revisions too (--baseline), which is why the model comes as a dict and not as a preset name."""
    try:
        from sagan.trainer import Trainer
    except ImportError:  # revisions before the trainer module
        from sagan.train import Trainer
    dev = torch.device(device)
    model_cfg = ModelConfig(**model)
    t = Trainer(model_cfg, TrainConfig(**STEP_TRAIN, **OPTIONS[option], batch_size=batch, device=device), dev)
    t.wrap()
    C, R, K = model_cfg.img_channels, model_cfg.resolution, model_cfg.num_classes
    x = torch.rand(batch, C, R, R, device=dev) * 2 - 1
    y = torch.randint(0, K, (batch,), device=dev) if K else None

    def step() -> None:
        t.d_step(x, y)
        t.g_step()

    return measure(step, dev, steps, warmup)


def bench_loop(model: dict, option: str, batch: int, device: str, steps: int, warmup: int) -> tuple[float, float]:
    """(ms per step of `sagan train`, peak MiB): shapes data, EMA, logging; the rate of the timed steps."""
    from sagan.config import resolve
    from sagan.train import train

    sets = [f"{k}={v}" for k, v in OPTIONS[option].items()] + ["d_steps=1", f"log_every={steps}"]
    sets += [f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple) else v}" for k, v in model.items()]
    with tempfile.TemporaryDirectory() as tmp:
        flags = {"data": "shapes", "batch_size": batch, "device": device, "steps": warmup + steps, "outdir": tmp}
        if warmup % steps:
            raise ValueError("warm-up steps must be a multiple of the timed steps (one log row each)")
        resolved = resolve("demo", flags, sets)  # the demo's training settings, `model` for the model
        run_dir = train(resolved)
        last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    return batch * 1000 / last["images_per_s"], float("nan")


def _baseline_step(rev: str, case: tuple, timeout: float) -> tuple:
    """bench_step of git revision `rev`, run by this script in a fresh interpreter on that revision's source."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {**os.environ, "SAGAN_BENCH_SRC": str(Path(tmp) / "src")}
        cmd = [sys.executable, __file__, "--child-step", json.dumps(case)]
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return (f">{timeout:.0f}s", None, None)
    if out.returncode:
        return (f"error: {(out.stderr.strip().splitlines() or ['?'])[-1][:80]}", None, None)
    return ("ok", *json.loads(out.stdout.strip().splitlines()[-1]))


def _median(results: list[tuple]) -> tuple:
    failed = next((r for r in results if r[0] != "ok"), None)
    return failed or ("ok", statistics.median(r[1] for r in results), max(r[2] for r in results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU-sized: the cifar10 model only")
    ap.add_argument("--presets", nargs="+", default=None)
    ap.add_argument("--options", nargs="+", default=None, choices=list(OPTIONS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all cases; figures are medians")
    ap.add_argument("--no-loop", action="store_true", help="skip the `sagan train` loop rows")
    ap.add_argument("--baseline", default=None, metavar="REV", help="also time the bare step of this git revision")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="time limit of each case")
    ap.add_argument("--child-step", default=None, help=argparse.SUPPRESS)  # internal: one bench_step, JSON out
    args = ap.parse_args()
    if args.child_step:
        print(json.dumps(bench_step(*json.loads(args.child_step))))
        return
    cuda = args.device.startswith("cuda")
    presets = args.presets or (["cifar10"] if args.quick else ["cifar10", "imagenet64", "imagenet128-official"])
    # bf16 convolutions run far slower than fp32 on CPUs without bf16 matrix units: bf16 rows on GPUs only.
    options = args.options or (list(OPTIONS) if cuda else ["fp32", "fp32+cl"])
    steps = args.steps or (20 if cuda else 3)
    warmup = 3 if cuda else 1
    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print(
        f"# training step | device {args.device} ({name}) | torch {torch.__version__} | batch {args.batch} | "
        f"{steps} timed steps | threads {torch.get_num_threads()} | median of {args.rounds} rounds"
    )
    print("| model | px | options | what | images/s | peak GiB | vs fp32 | vs bare step | vs baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for preset in presets:
        px = MODEL_PRESETS[preset]["resolution"]
        cases = [(o, "step") for o in options]
        cases += [] if args.no_loop else [(o, "loop") for o in options]
        cases += [("fp32", f"step @ {args.baseline}")] if args.baseline else []
        results: dict[tuple, list] = {c: [] for c in cases}
        for _ in range(args.rounds):
            for option, what in cases:
                model = {k: v for k, v in MODEL_PRESETS[preset].items() if k != "num_classes" or what != "loop"}
                case = (model, option, args.batch, args.device, steps, warmup if what != "loop" else steps)
                if what == "step":
                    r = run_isolated(bench_step, case, args.max_seconds)
                elif what == "loop":
                    r = run_isolated(bench_loop, case, args.max_seconds)
                else:
                    r = _baseline_step(args.baseline, case, args.max_seconds)
                results[(option, what)].append(r)
        rows = {c: _median(r) for c, r in results.items()}
        for (option, what), (status, ms, mib) in rows.items():
            head = f"| {preset} | {px} | {option} | {what}"
            if status != "ok":
                print(f"{head} | {status} | | | | |", flush=True)
                continue
            fp32 = rows.get(("fp32", what)) if option != "fp32" else None
            bare = rows.get((option, "step")) if what == "loop" else None
            base = rows.get(("fp32", f"step @ {args.baseline}")) if what == "step" else None
            mem = "-" if mib != mib else f"{mib / 1024:.2f}"  # NaN: not measured (the loop)
            ratios = " | ".join(_speedup(other, ms) for other in (fp32, bare, base))
            print(f"{head} | {args.batch * 1000 / ms:.2f} | {mem} | {ratios} |", flush=True)


def _speedup(other: tuple | None, ms: float) -> str:
    """How many times faster than `other` (a result row) a case of `ms` per step is; "-" without one."""
    return f"{other[1] / ms:.2f}" if other and other[0] == "ok" else "-"


if __name__ == "__main__":
    main()
