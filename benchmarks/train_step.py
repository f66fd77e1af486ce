"""Benchmark SAGAN training: the bare step (one D update + one G update, the library's `Trainer`), the whole
`sagan train` loop on the same model (data loading, EMA, statistics, logging), the same iteration as the peers
compute it (`peer` rows: StudioGAN's SAGAN iteration on the same networks and options, benchmarks/_peers.py),
and optionally the bare step of another git revision, all measured in the same run.

    python benchmarks/train_step.py --quick                     # CPU: the cifar10 model (StudioGAN's CIFAR-10
                                                                # SAGAN), batch 64: step and loop
    python benchmarks/train_step.py --quick --baseline 457ba35  # also that revision's bare step
    python benchmarks/train_step.py --device cuda               # 32/64/128 px presets x fp32/bf16/channels_last/compile
    python benchmarks/train_step.py --presets fashion-mnist-cpu --options fp32 fp32+cl fp32+compile --threads 1 2

images/s counts real images through D per second (batch x D steps / step time). The bare step runs on fixed
random batches; the loop is `sagan train` on the preset's own data where it is a torchvision set held in memory
(Fashion-MNIST: needs the files, see --data-root), else on the built-in shapes data, at the model's resolution
with 1 D step, and its rate is the one `sagan train` logs over the timed steps (the steps between two log rows,
so start-up is excluded). Each case runs in its own process (benchmarks/_harness.py; a baseline revision in a
fresh interpreter on its own source tree), in --rounds rounds; figures are medians.

Roofline: GFLOP is one step's floating-point work as `torch.utils.flop_counter` counts it (convolutions, matrix
products, attention; elementwise ops are not counted), GFLOP/s that work per second, and "of GEMM" its fraction
of the machine's matrix-multiply rate in the step's precision (a 2048^3 matmul in fp32, and in bf16 for the bf16
rows, measured in the same run): how close to the limit of the arithmetic each step runs.
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
from sagan.config import MODEL_PRESETS, TRAIN_PRESETS, ModelConfig, TrainConfig  # noqa: E402

OPTIONS = {  # every row names its precision: the default (amp "auto") would train bf16 on an AMX CPU
    "fp32": {"amp": "none"},
    "fp32+cl": {"amp": "none", "channels_last": True},
    "fp32+compile": {"amp": "none", "compile": True},
    "fp32+cl+compile": {"amp": "none", "channels_last": True, "compile": True},
    "bf16": {"amp": "bf16"},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    "bf16+cl+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
# What the bare step trains with: the optimiser settings do not change the cost, 1 D step per G step.
STEP_TRAIN = {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.999, "d_steps": 1}


def bench_step(
    model: dict, option: str, batch: int, device: str, steps: int, warmup: int, threads: int = 0
) -> tuple[float, float, float]:
    """(ms per D + G step, peak MiB, GFLOP per step) of the ModelConfig fields `model` on fixed random batches.
    Runs on older revisions too (--baseline), which is why the model comes as a dict and not as a preset name."""
    from torch.utils.flop_counter import FlopCounterMode

    if threads:
        torch.set_num_threads(threads)
    try:
        from sagan.training.trainer import Trainer
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

    ms, mib = measure(step, dev, steps, warmup)
    with FlopCounterMode(display=False) as counter:  # after timing: counting slows the step down
        step()
    return ms, mib, counter.get_total_flops() / 1e9


def bench_peer_step(
    model: dict, option: str, batch: int, device: str, steps: int, warmup: int, threads: int = 0
) -> tuple[float, float, float]:
    """bench_step for the peers' formulation of the same networks and iteration (benchmarks/_peers.py), with the
    same options (channels last, autocast, torch.compile of G and D)."""
    from torch.utils.flop_counter import FlopCounterMode

    from _peers import PeerTrainer, peer_models
    from sagan.models import Discriminator, Generator

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    cfg = ModelConfig(**model)
    torch.manual_seed(0)
    G, D = Generator(cfg).to(dev), Discriminator(cfg).to(dev)
    peer_models(G, D)
    opts = OPTIONS[option]
    if opts.get("channels_last"):
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    t = PeerTrainer(G, D, cfg.z_dim, cfg.num_classes, batch, amp=opts.get("amp", "none"))
    if opts.get("compile"):
        t.G, t.D = torch.compile(G), torch.compile(D)
    C, R, K = cfg.img_channels, cfg.resolution, cfg.num_classes
    x = torch.rand(batch, C, R, R, device=dev) * 2 - 1
    if OPTIONS[option].get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, K, (batch,), device=dev) if K else None

    def step() -> None:
        t.d_step(x, y)
        t.g_step()

    ms, mib = measure(step, dev, steps, warmup)
    with FlopCounterMode(display=False) as counter:
        step()
    return ms, mib, counter.get_total_flops() / 1e9


def bench_gemm(device: str, threads: int = 0, n: int = 2048, dtype: str = "fp32") -> tuple[float, float, float]:
    """(ms per n^3 matmul in `dtype`, 0, GFLOP of it): the machine's matrix-multiply rate, the roofline's ceiling."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=kind), torch.randn(n, n, device=dev, dtype=kind)
    ms, _ = measure(lambda: torch.mm(a, b), dev, 5, 2)
    return ms, 0.0, 2 * n**3 / 1e9


def bench_loop(
    model: dict, option: str, batch: int, device: str, steps: int, warmup: int, threads: int = 0, data: str = "shapes"
) -> tuple[float, float, float]:
    """(ms per step of `sagan train`, NaN, NaN): `data`, EMA, logging; the rate of the timed steps."""
    from sagan.run_config import resolve
    from sagan.training.loop import train

    if threads:
        torch.set_num_threads(threads)
    sets = [f"{k}={v}" for k, v in OPTIONS[option].items()] + ["d_steps=1", f"log_every={steps}"]
    sets += [f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple) else v}" for k, v in model.items()]
    sets += ["eval_every=0", f"sample_every={warmup + steps}", f"checkpoint_every={warmup + steps}"]
    with tempfile.TemporaryDirectory() as tmp:
        flags = {"data": data, "batch_size": batch, "device": device, "steps": warmup + steps, "outdir": tmp}
        if warmup % steps:
            raise ValueError("warm-up steps must be a multiple of the timed steps (one log row each)")
        resolved = resolve("demo", flags, sets)  # the demo's training settings, `model` for the model
        run_dir = train(resolved)
        last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    return batch * 1000 / last["images_per_s"], float("nan"), float("nan")


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
            return (f">{timeout:.0f}s", None, None, None)
    if out.returncode:
        return (f"error: {(out.stderr.strip().splitlines() or ['?'])[-1][:80]}", None, None, None)
    return ("ok", *json.loads(out.stdout.strip().splitlines()[-1]))


def _median(results: list[tuple]) -> tuple:
    failed = next((r for r in results if r[0] != "ok"), None)
    return failed or ("ok", statistics.median(r[1] for r in results), max(r[2] for r in results), results[0][3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU-sized: the cifar10 model only")
    ap.add_argument("--presets", nargs="+", default=None)
    ap.add_argument("--options", nargs="+", default=None, choices=list(OPTIONS))
    ap.add_argument("--threads", nargs="+", type=int, default=[0], help="torch threads per case (0: torch's default)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--attn",
        nargs="+",
        default=["preset"],
        help="attention placements to time, each as its own model: preset (the preset's own), none, or e.g. "
        "g16,d16 / g32,d16 / g32 (G's and D's feature resolutions); with none among them, a column gives each "
        "placement's time over none's",
    )
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all cases; figures are medians")
    ap.add_argument("--no-loop", action="store_true", help="skip the `sagan train` loop rows")
    ap.add_argument("--no-peer", action="store_true", help="skip the peers' formulation rows")
    ap.add_argument("--baseline", default=None, metavar="REV", help="also time the bare step of this git revision")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="time limit of each case")
    ap.add_argument("--child-step", default=None, help=argparse.SUPPRESS)  # internal: one bench_step, JSON out
    args = ap.parse_args()
    if args.child_step:
        print(json.dumps(bench_step(*json.loads(args.child_step))))
        return
    cuda = args.device.startswith("cuda")
    presets = args.presets or (["cifar10"] if args.quick else ["cifar10", "imagenet64", "imagenet128-official"])
    # bf16 convolutions run far slower than fp32 on CPUs without native bf16 (AMX, AVX512-BF16): no bf16 rows there.
    from sagan.training.precision import cpu_bf16_kind

    native = cpu_bf16_kind() is not None
    options = args.options or (list(OPTIONS) if cuda else ["fp32", "fp32+cl"] + (["bf16+cl"] if native else []))
    steps = args.steps or (20 if cuda else 3)
    warmup = 3 if cuda else 1
    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    gemm_rate = {}  # GFLOP/s by precision: fp32, and bf16 where bf16 rows run (their roofline)
    for dtype in ["fp32"] + (["bf16"] if any(o.startswith("bf16") for o in options) else []):
        gemm = _median([run_isolated(bench_gemm, (args.device, max(args.threads), 2048, dtype), args.max_seconds)])
        gemm_rate[dtype] = gemm[3] / gemm[1] * 1000 if gemm[0] == "ok" else float("nan")
    print(
        f"# training step | device {args.device} ({name}) | torch {torch.__version__} | batch {args.batch} | "
        f"{steps} timed steps | threads {torch.get_num_threads()} by default | median of {args.rounds} rounds | "
        + " | ".join(f"{k} GEMM {v:.1f} GFLOP/s" for k, v in gemm_rate.items())
    )
    print(
        "| model | px | attention | options | threads | what | images/s | peak GiB | GFLOP | GFLOP/s | of GEMM "
        "| vs fp32 | vs bare step | vs peer | vs baseline | time / no attention |"
    )
    print("|" + " --- |" * 16)
    for preset in presets:
        px = MODEL_PRESETS[preset]["resolution"]
        results = _time_placements(preset, args, options, steps, warmup)
        none = results.get("none")
        for attn, rows in results.items():
            _print_rows(preset, px, attn, rows, args, gemm_rate, none)


def attention_placement(text: str, preset_model: dict) -> dict:
    """The ModelConfig fields of an --attn value: "preset" (none changed), "none", or "g16,d16"-like lists."""
    if text == "preset":
        return {}
    if text == "none":
        return {"g_attn_resolutions": (), "d_attn_resolutions": ()}
    fields = {"g_attn_resolutions": [], "d_attn_resolutions": []}
    for item in text.split(","):
        side, res = item[:1], item[1:]
        if side not in "gd" or not res.isdigit():
            raise SystemExit(f"--attn: bad placement {text!r}; use preset, none, or e.g. g16,d16")
        fields[f"{side}_attn_resolutions"].append(int(res))
    return {k: tuple(v) for k, v in fields.items()}


def _time_placements(preset: str, args, options: list[str], steps: int, warmup: int) -> dict[str, dict]:
    """{placement: {(option, threads, what): median result}}; every case of every placement in each round, so
    that a drift of the machine hits them alike (paired)."""
    data = TRAIN_PRESETS[preset].get("data", "shapes")
    data = data if data in ("mnist", "fashion-mnist") else "shapes"  # offline and held in memory
    cases = [(o, n, "step") for o in options for n in args.threads]
    cases += [] if args.no_loop else [(o, n, "loop") for o in options for n in args.threads]
    cases += [] if args.no_peer else [(o, n, "peer") for o in options for n in args.threads]
    cases += [("fp32", args.threads[0], f"step @ {args.baseline}")] if args.baseline else []
    results: dict[str, dict[tuple, list]] = {a: {c: [] for c in cases} for a in args.attn}
    for _ in range(args.rounds):
        for attn in args.attn:
            for option, threads, what in cases:
                # In the loop the data decides the classes (shapes has 4).
                model = {k: v for k, v in MODEL_PRESETS[preset].items() if k != "num_classes" or what != "loop"}
                model.update(attention_placement(attn, model))
                if what == "step":
                    case = (model, option, args.batch, args.device, steps, warmup, threads)
                    r = run_isolated(bench_step, case, args.max_seconds)
                elif what == "peer":
                    case = (model, option, args.batch, args.device, steps, warmup, threads)
                    r = run_isolated(bench_peer_step, case, args.max_seconds)
                elif what == "loop":
                    case = (model, option, args.batch, args.device, steps, steps, threads, data)
                    r = run_isolated(bench_loop, case, args.max_seconds)
                else:
                    case = (model, option, args.batch, args.device, steps, warmup, threads)
                    r = _baseline_step(args.baseline, case, args.max_seconds)
                results[attn][(option, threads, what)].append(r)
    return {a: {c: _median(r) for c, r in per.items()} for a, per in results.items()}


def _print_rows(preset: str, px: int, attn: str, rows: dict, args, gemm_rate: dict, none: dict | None) -> None:
    for (option, threads, what), row in rows.items():
        status, ms, mib, gflop = (tuple(row) + (None,) * 4)[:4]
        head = f"| {preset} | {px} | {attn} | {option} | {threads or 'default'} | {what}"
        if status != "ok":
            print(f"{head} | {status} | | | | | | | | | |", flush=True)
            continue
        fp32 = rows.get(("fp32", threads, what)) if option != "fp32" else None
        bare = rows.get((option, threads, "step")) if what == "loop" else None
        base = rows.get(("fp32", threads, f"step @ {args.baseline}")) if what == "step" else None
        peer = rows.get((option, threads, "peer")) if what == "step" else None
        mem = "-" if mib != mib else f"{mib / 1024:.2f}"  # NaN: not measured (the loop)
        flops = (bare or row)[3] if what == "loop" else gflop  # the loop does the bare step's work
        roof = (
            "- | - | -"
            if flops is None or flops != flops
            else (f"{flops:.1f} | {flops / ms * 1000:.1f} | {flops / ms * 1000 / gemm_rate[option[:4]]:.0%}")
        )
        ratios = " | ".join(_speedup(other, ms) for other in (fp32, bare, peer, base))
        plain = (none or {}).get((option, threads, what))
        over = f"{ms / plain[1]:.2f}" if plain and plain[0] == "ok" and attn != "none" else "-"
        print(f"{head} | {args.batch * 1000 / ms:.2f} | {mem} | {roof} | {ratios} | {over} |", flush=True)


def _speedup(other: tuple | None, ms: float) -> str:
    """How many times faster than `other` (a result row) a case of `ms` per step is; "-" without one."""
    return f"{other[1] / ms:.2f}" if other and other[0] == "ok" else "-"


if __name__ == "__main__":
    main()
