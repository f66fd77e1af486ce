"""Benchmark the Inception feature extractor behind FID/KID: images per second and agreement of the features.

    python benchmarks/inception.py                                  # $SAGAN_INCEPTION_PATH or the shared data's
    python benchmarks/inception.py --baseline 54f8d30 --rounds 3    # also that revision's extractor

Rows: the TorchScript pool3 module run as it is (what torch-fidelity-style wrappers do), torch-fidelity's network
as it is (`InceptionV3`: conv, BN, ReLU, NCHW), and `sagan.metrics.inception.Inception` as `sagan evaluate` runs
it (the fused network of `inception_fused.py`, in fp32 and bf16), fed batches of --batch images as `evaluate`
feeds it; with --baseline, the same `Inception.features` of another git revision, run on that revision's source in
a fresh interpreter. Inputs are 32 x 32 uint8 images (what the 32 px presets produce), resized to 299 inside the
network as the protocol does. Each case runs in its own child process (benchmarks/_harness.py); figures are
medians over --rounds rounds. "max abs diff" is against the TorchScript module on the same 8 images.
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

IMPLS = ("torchscript-as-is", "torch-fidelity-network", "sagan-fp32", "sagan-bf16")


def _extractor(impl: str, path: str):
    """A function uint8 (B, 3, H, W) -> (B, 2048) features for one implementation."""
    from sagan.metrics.inception import Inception, InceptionV3, TorchScriptPool3, _load_torchscript

    if impl.startswith("sagan-"):
        precision = impl.split("-", 1)[1]
        inc = Inception(path, precision=precision) if precision != "baseline" else Inception(path)
        return lambda x: inc.features([x])["2048"].float()
    ts = _load_torchscript(Path(path))
    if impl == "torchscript-as-is":
        net = TorchScriptPool3(ts)
    else:
        from sagan.metrics.inception import state_from_torchscript

        net = InceptionV3()
        net.load_state_dict(state_from_torchscript(ts))
        net.eval().requires_grad_(False)
    return lambda x: net(x)["2048"]


def bench(impl: str, path: str, batch: int, images: int, threads: int) -> tuple[float, float, float]:
    """(ms per batch, peak MiB, max |feature - TorchScript feature|) of one implementation."""
    from sagan.metrics.inception import TorchScriptPool3, _load_torchscript

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = (torch.rand(batch, 3, 32, 32) * 255).to(torch.uint8)
    run = _extractor(impl, path)
    with torch.no_grad():
        ms, mib = measure(lambda: run(x), torch.device("cpu"), max(images // batch, 1), warmup=1, min_seconds=0)
        reference = TorchScriptPool3(_load_torchscript(Path(path)))(x[:8])["2048"]
        diff = (run(x[:8]) - reference).abs().max().item()
    return ms, mib, diff


def _baseline(rev: str, case: tuple, timeout: float) -> tuple:
    """bench of `sagan-baseline` at git revision `rev`, in a fresh interpreter on that revision's source."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {**os.environ, "SAGAN_BENCH_SRC": str(Path(tmp) / "src")}
        cmd = [sys.executable, __file__, "--child", json.dumps(case)]
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return (f">{timeout:.0f}s", None, None, None)
    if out.returncode:
        return (f"error: {(out.stderr.strip().splitlines() or ['?'])[-1][:80]}", None, None, None)
    return ("ok", *json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SAGAN_INCEPTION_PATH") or str(
        Path.home() / ".cache" / "sagan-shared-data" / "inception" / "default_1.pt"
    )
    ap.add_argument("--inception", default=default, help="TorchScript pool3 module (default_1.pt)")
    ap.add_argument("--batch", type=int, default=50, help="images per call (sagan evaluate's batch: 50)")
    ap.add_argument("--images", type=int, default=100, help="images timed per case (in batches)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--baseline", default=None, metavar="REV", help="also time Inception.features of this revision")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one baseline bench, JSON out
    args = ap.parse_args()
    if args.child:
        print(json.dumps(bench(*json.loads(args.child))))
        return
    if not Path(args.inception).is_file():
        sys.exit(f"no Inception weights at {args.inception}; pass --inception (../shared/data/fetch.sh makes them)")
    print(
        f"# inception pool3 | cpu ({platform.processor() or platform.machine()}) | torch {torch.__version__} | "
        f"batch {args.batch} | {args.images} images per case | threads {args.threads or torch.get_num_threads()} "
        f"| median of {args.rounds} rounds"
    )
    print("| extractor | images/s | peak MiB | max abs diff to TorchScript | vs first row |")
    print("| --- | --- | --- | --- | --- |")
    impls = list(args.impls) + ([f"sagan-fp32 @ {args.baseline}"] if args.baseline else [])
    results: dict[str, list] = {impl: [] for impl in impls}
    for _ in range(args.rounds):
        for impl in impls:
            if "@" in impl:
                case = ("sagan-baseline", args.inception, args.batch, args.images, args.threads)
                results[impl].append(_baseline(args.baseline, case, args.max_seconds))
            else:
                case = (impl, args.inception, args.batch, args.images, args.threads)
                results[impl].append(run_isolated(bench, case, args.max_seconds))
    base = None
    for impl in impls:
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
