"""Benchmark SelfAttention2d: forward+backward time and peak memory of the fast path, against the explicit path
and two reference formulations written here from the formula:

- `reference-*`: what the peers' SAGAN blocks do (StudioGAN, BigGAN-PyTorch, mimicry): the same block (same widths,
  pooling and convs as the variant) with the map materialised by bmm + softmax in the usual orientation;
- `naive`: the common public implementation (heykeetae): full N x N map, value of width C, no pooling.
Both are in benchmarks/_peers.py. `fast-official-per-layer-sn` is our fast path with the spectral norms of query,
key and value computed one layer at a time (as before `stacked_spectral_norm`), for a before/after in one run;
`dense-official` is our fast path with the materialised route forced at every size (for the routing threshold).

    python benchmarks/attention.py --quick            # CPU, maps 8..64, a few minutes on 2 cores
    python benchmarks/attention.py --device cuda      # full grid on a GPU
    python benchmarks/attention.py --sizes 8 --batches 8 --channels 256 --profile 20   # where each block's time goes

Each case runs in a forked child process (benchmarks/_harness.py): an out-of-memory is reported as OOM, a case
over --max-seconds as such, and one case's memory peak does not hide another's. Cases run in --rounds rounds,
each round visiting every implementation once, and each time is the median over rounds: slow drifts of a shared
machine then hit all implementations alike instead of the ones that happened to run last.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _harness import measure, ratio, run_isolated  # noqa: E402
from _peers import NaiveAttention, ReferenceAttention  # noqa: E402
from sagan.layers.attention import SelfAttention2d, explicit_attention, fast_path_kernel  # noqa: E402
from sagan.training.precision import cpu_bf16_kind, cpu_name  # noqa: E402


class PerLayerSpectralNorm(SelfAttention2d):
    """Our block with each of query, key and value spectrally normalised by its own parametrisation call."""

    def qkv(self, x):
        d = self.query.out_channels
        qkv = F.conv2d(x, torch.cat([self.query.weight, self.key.weight, self.value.weight]))
        q, kv = qkv[:, :d], F.max_pool2d(qkv[:, d:], 2)
        return q.flatten(2), kv[:, :d].flatten(2), kv[:, d:].flatten(2)


class DenseRoute(SelfAttention2d):
    """Our block with the fast path's materialised route forced at every size (`explicit_attention` without
    lifting bf16 to float32, as `fast_attention` runs it for small maps): for choosing the routing threshold."""

    def forward(self, x, return_attn=False):
        q, k, v = self.qkv(x)
        return self.residual(x, explicit_attention(q, k, v, lift=False)[0])


IMPLS = {
    "fast-official": lambda c: SelfAttention2d(c, "official"),
    "fast-official-per-layer-sn": lambda c: PerLayerSpectralNorm(c, "official"),
    "dense-official": lambda c: DenseRoute(c, "official"),
    "explicit-official": lambda c: SelfAttention2d(c, "official"),
    "reference-official": lambda c: ReferenceAttention(c, "official"),
    "fast-paper": lambda c: SelfAttention2d(c, "paper"),
    "explicit-paper": lambda c: SelfAttention2d(c, "paper"),
    "reference-paper": lambda c: ReferenceAttention(c, "paper"),
    "naive": NaiveAttention,
}


def _setup(impl, size, batch, channels, dtype, device):
    """The block, its input and one fwd+bwd step of the case; the fast path's kernel ("-" for other paths)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    module = IMPLS[impl](channels).to(dev)
    with torch.no_grad():
        module.gamma.fill_(0.5)
    explicit = impl.startswith("explicit")
    x = torch.randn(batch, channels, size, size, device=dev, requires_grad=True)
    kernel = "-"
    if impl.startswith("fast"):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            kernel = fast_path_kernel(*module.qkv(x))

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            y = module(x, return_attn=True)[0] if explicit else module(x)
        y.float().sum().backward()

    return step, kernel


def _case(impl, size, batch, channels, dtype, device, repeats):
    step, kernel = _setup(impl, size, batch, channels, dtype, device)
    return (*measure(step, torch.device(device), repeats), kernel)


def _profile(impl, size, batch, channels, dtype, device, steps, rows=12):
    """torch.profiler's ops of `steps` fwd+bwd steps after 3 warm-up steps, by self CPU time, in this process."""
    step, _ = _setup(impl, size, batch, channels, dtype, device)
    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) / steps / 1e3
    print(f"\n{size}x{size} batch {batch} {dtype} {impl}: {total:.2f} ms self CPU time per step ({steps} steps)")
    print("| op | calls per step | self ms per step |\n| --- | --- | --- |")
    for e in events[:rows]:
        print(f"| {e.key} | {e.count / steps:g} | {e.self_cpu_time_total / steps / 1e3:.3f} |")


def _combine(rounds: list[tuple]) -> tuple:
    """One row from the results of several rounds: median time, largest peak; the first failure if any."""
    failed = next((r for r in rounds if r[0] != "ok"), None)
    if failed:
        return failed
    return ("ok", statistics.median(r[1] for r in rounds), max(r[2] for r in rounds), rounds[0][3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small grid: maps 8..64, batch 4, for a CPU check")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="feature map sizes (H = W)")
    ap.add_argument("--batches", type=int, nargs="+", default=None)
    ap.add_argument("--channels", type=int, default=None, help="C (default 64 on CPU, 256 on CUDA)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case and round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds over all implementations; times are medians")
    ap.add_argument("--cpu-mem-gib", type=float, default=12.0, help="memory cap of each CPU case")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="time limit of each case (warm-up + repeats)")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="instead of timing: torch.profiler's largest ops over STEPS steps of each case")  # fmt: skip
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    sizes = args.sizes or ([8, 16, 32, 64] if args.quick else [8, 16, 32, 64, 128])
    batches = args.batches or ([4] if args.quick else ([16, 64] if cuda else [1, 4, 16]))
    channels = args.channels or (256 if cuda else 64)
    repeats = args.repeats or (2 if args.quick else (20 if cuda else 3))

    name = torch.cuda.get_device_name() if cuda else cpu_name()
    if args.profile:
        print(f"# attention fwd+bwd profile | device {args.device} ({name}) | torch {torch.__version__} | C={channels}")
        for size in sizes:
            for batch in batches:
                for dtype in args.dtypes:
                    for impl in args.impls:
                        _profile(impl, size, batch, channels, dtype, args.device, args.profile)
        return
    print(
        f"# attention fwd+bwd | device {args.device} ({name}) | torch {torch.__version__} | "
        f"python {platform.python_version()} | C={channels} | threads {torch.get_num_threads()} | "
        f"{'' if cuda else 'native bf16: ' + (cpu_bf16_kind() or 'none') + ' | '}"
        f"median of {args.rounds} rounds"
    )
    print(
        "| map | batch | dtype | impl | kernel | ms | peak MiB | time / reference | mem / reference "
        "| time / naive | mem / naive |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for batch in batches:
            for dtype in args.dtypes:
                if not cuda and dtype == "bf16" and size > 32 and cpu_bf16_kind() is None:
                    continue  # without native bf16 (AMX, AVX512-BF16) CPU bf16 matmuls are emulated: minutes a case
                case = (size, batch, channels, dtype, args.device, repeats)
                mem = 0.0 if cuda else args.cpu_mem_gib
                rounds: dict[str, list] = {i: [] for i in args.impls}
                for _ in range(args.rounds):
                    for impl in args.impls:
                        if rounds[impl] and rounds[impl][-1][0] != "ok":
                            continue  # an OOM or a timeout does not get better in the next round
                        rounds[impl].append(run_isolated(_case, (impl, *case), args.max_seconds, mem))
                res = {impl: _combine(r) for impl, r in rounds.items()}
                for impl, (status, *vals) in res.items():
                    row = f"| {size}x{size} | {batch} | {dtype} | {impl}"
                    if status != "ok":
                        print(f"{row} | - | {status} | {status} | | | | |")
                        continue
                    ms, mib, kernel = vals
                    ref = (
                        res.get("reference-" + ("official" if "official" in impl else "paper"))
                        if impl != "naive"
                        else None
                    )
                    naive = res.get("naive")
                    print(
                        f"{row} | {kernel} | {ms:.2f} | {mib:.1f} | {ratio(ms, ref, 1)} | {ratio(mib, ref, 2)} | "
                        f"{ratio(ms, naive, 1)} | {ratio(mib, naive, 2)} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
