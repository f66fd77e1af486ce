"""Benchmark SelfAttention2d: forward+backward time and peak memory, fast SDPA path vs explicit path vs a naive
reference (full N x N attention with bmm + softmax and a C-wide value, as most public SAGAN code does).

    python benchmarks/attention.py --quick            # CPU, small grid, < 2 minutes on 2 cores
    python benchmarks/attention.py --device cuda      # full grid on a GPU

Each case runs in a forked child process (benchmarks/_harness.py): an out-of-memory is reported as OOM, a case
over --max-seconds as such, and one case's memory peak does not hide another's.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _harness import measure, ratio, run_isolated  # noqa: E402
from sagan.layers.attention import SelfAttention2d, fast_path_kernel  # noqa: E402


class NaiveAttention(nn.Module):
    """The common public implementation: full N x N map via bmm and softmax, value of width C, no pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).view(B, -1, H * W).permute(0, 2, 1)  # (B, N, C/8)
        k = self.key(x).view(B, -1, H * W)  # (B, C/8, N)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N)
        o = torch.bmm(self.value(x).view(B, -1, H * W), attn.permute(0, 2, 1)).view(B, C, H, W)
        return self.gamma * o + x


IMPLS = {
    "fast-official": lambda c: SelfAttention2d(c, "official"),
    "explicit-official": lambda c: SelfAttention2d(c, "official"),
    "fast-paper": lambda c: SelfAttention2d(c, "paper"),
    "explicit-paper": lambda c: SelfAttention2d(c, "paper"),
    "naive": NaiveAttention,
}


def _case(impl, size, batch, channels, dtype, device, repeats):
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

    return (*measure(step, dev, repeats), kernel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small grid: maps 16..64, batch 4, for a CPU check")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="feature map sizes (H = W)")
    ap.add_argument("--batches", type=int, nargs="+", default=None)
    ap.add_argument("--channels", type=int, default=None, help="C (default 64 on CPU, 256 on CUDA)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--cpu-mem-gib", type=float, default=12.0, help="memory cap of each CPU case")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="time limit of each case (warm-up + repeats)")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    sizes = args.sizes or ([16, 32, 64] if args.quick else [16, 32, 64, 128])
    batches = args.batches or ([4] if args.quick else ([16, 64] if cuda else [1, 4]))
    channels = args.channels or (256 if cuda else 64)
    repeats = args.repeats or (2 if args.quick else (20 if cuda else 3))

    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print(
        f"# attention fwd+bwd | device {args.device} ({name}) | torch {torch.__version__} | "
        f"python {platform.python_version()} | C={channels} | threads {torch.get_num_threads()}"
    )
    print("| map | batch | dtype | impl | kernel | ms | peak MiB | time / naive | mem / naive | time / explicit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for batch in batches:
            for dtype in args.dtypes:
                if args.quick and dtype == "bf16" and size > 32:
                    continue  # CPU bf16 matmuls of big maps are slow (the naive one takes minutes)
                case = (size, batch, channels, dtype, args.device, repeats)
                mem = 0.0 if cuda else args.cpu_mem_gib
                res = {i: run_isolated(_case, (i, *case), args.max_seconds, mem) for i in args.impls}
                for impl, (status, *vals) in res.items():
                    row = f"| {size}x{size} | {batch} | {dtype} | {impl}"
                    if status != "ok":
                        print(f"{row} | - | {status} | {status} | | | |")
                        continue
                    ms, mib, kernel = vals
                    explicit = res.get("explicit-" + impl.split("-")[-1])
                    print(
                        f"{row} | {kernel} | {ms:.2f} | {mib:.1f} | {ratio(ms, res.get('naive'), 1)} | "
                        f"{ratio(mib, res.get('naive'), 2)} | {ratio(ms, explicit, 1)} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
