"""Benchmark the Inception feature extractor behind FID/KID: images per second and agreement of the features.

    python benchmarks/inception.py                                  # $SAGAN_INCEPTION_PATH or the shared data's
    python benchmarks/inception.py --inception default_1.pt --batch 50 --images 100

Rows: the TorchScript pool3 module run as it is (what torch-fidelity-style wrappers do), our `InceptionV3` with
its batch norms unfolded (torch-fidelity's network: conv, BN, ReLU; NCHW), and `InceptionV3` as `sagan evaluate`
runs it (batch norm folded into the convolutions, channels-last memory). Inputs are 32 x 32 uint8 images (what
the 32 px presets produce), resized to 299 inside the network as the protocol does. Each case runs in a forked
child process (benchmarks/_harness.py); figures are medians over --rounds rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _harness import measure, run_isolated  # noqa: E402

IMPLS = ("torchscript-as-is", "eager-unfolded", "eager-folded-cl")


def _network(impl: str, path: str):
    from sagan.metrics.inception import InceptionV3, TorchScriptPool3, _load_torchscript, state_from_torchscript

    ts = _load_torchscript(Path(path))
    if impl == "torchscript-as-is":
        return TorchScriptPool3(ts)
    net = InceptionV3()
    net.load_state_dict(state_from_torchscript(ts))
    return net.eval().requires_grad_(False) if impl == "eager-unfolded" else net.fold_batchnorm()


def bench(impl: str, path: str, batch: int, images: int, threads: int) -> tuple[float, float, float]:
    """(ms per batch, peak MiB, max |feature - TorchScript feature|) of one implementation."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = (torch.rand(batch, 3, 32, 32) * 255).to(torch.uint8)
    net = _network(impl, path)
    with torch.no_grad():
        ms, mib = measure(lambda: net(x), torch.device("cpu"), max(images // batch, 1), warmup=1, min_seconds=0)
        reference = _network("torchscript-as-is", path)(x[:8])["2048"]
        diff = (net(x[:8])["2048"] - reference).abs().max().item()
    return ms, mib, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SAGAN_INCEPTION_PATH") or str(
        Path.home() / ".cache" / "sagan-shared-data" / "inception" / "default_1.pt"
    )
    ap.add_argument("--inception", default=default, help="TorchScript pool3 module (default_1.pt)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--images", type=int, default=100, help="images timed per case (in batches)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()
    if not Path(args.inception).is_file():
        sys.exit(f"no Inception weights at {args.inception}; pass --inception (../shared/data/fetch.sh makes them)")
    print(
        f"# inception pool3 | cpu ({platform.processor() or platform.machine()}) | torch {torch.__version__} | "
        f"batch {args.batch} | {args.images} images per case | threads {args.threads or torch.get_num_threads()} "
        f"| median of {args.rounds} rounds"
    )
    print("| network | images/s | peak MiB | max abs diff to TorchScript | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    results: dict[str, list] = {impl: [] for impl in IMPLS}
    for _ in range(args.rounds):
        for impl in IMPLS:
            case = (impl, args.inception, args.batch, args.images, args.threads)
            results[impl].append(run_isolated(bench, case, args.max_seconds))
    base = None
    for impl in IMPLS:
        runs = results[impl]
        failed = next((r for r in runs if r[0] != "ok"), None)
        if failed:
            print(f"| {impl} | {failed[0]} | | | |")
            continue
        ms = statistics.median(r[1] for r in runs)
        rate = args.batch * 1000 / ms
        base = base or rate
        print(f"| {impl} | {rate:.2f} | {max(r[2] for r in runs):.0f} | {runs[0][3]:.1e} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
