"""One command for a few lent GPU minutes: check the files it needs, print the device, run `pytest -m gpu`, the
attention and training-step benchmarks, train `fashion-mnist-cpu` on the GPU and score it (FID10k against the test
split), each part under a hard time limit, everything written under one output folder as Markdown and JSON.

    python benchmarks/gpu_check.py --out gpu-check                  # on a machine with one NVIDIA GPU (< 9 min)
    python benchmarks/gpu_check.py --device cpu --tiny --out dry    # every part at toy sizes on the CPU (< 3 min)

It runs from a fresh copy of the repository with no network. It needs, and checks first (one line each):
- the Fashion-MNIST archives (`train-*` and `t10k-*` `.gz`, as ../shared/data/fetch.sh makes them) in
  --fashion-mnist (default $SAGAN_SHARED_DATA/fashion-mnist, else ./gpu-data/fashion-mnist);
- the offline FID Inception module `default_1.pt` at --inception (default $SAGAN_SHARED_DATA/inception/default_1.pt,
  else ./gpu-data/inception/default_1.pt);
- torch-fidelity importable, or its wheel in --wheels (installed from there with `pip install --no-index`);
- this repository importable (`src/` is put on the path; no install needed).
Carry ./gpu-data (a git-ignored copy of those files) and ./gpu-wheels to the device machine.

Parts and their time limits (seconds; --tiny: toy sizes): pytest -m gpu (120), attention benchmark (75),
training-step benchmark (120), training (--train-seconds, 230; SIGTERM at the limit, which saves a checkpoint),
FID10k on the GPU (90). The training runs --train-steps steps (20,000): `fashion-mnist-cpu` is 33.8 GFLOP per
step (benchmarks/train_step.py's count), 0.1 ms of an H100's bf16 tensor-core peak, so the step is bound by its
~1,500 kernel launches (at ~10 us each, ~15 ms), not by arithmetic: 20,000 steps is ~5 minutes, and the time limit
stops it earlier if the GPU is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FM_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz")  # fmt: skip
LIMITS = {"pytest": 120, "attention": 75, "train_step": 120, "fid": 90}


def _default(sub: str) -> Path:
    shared = os.environ.get("SAGAN_SHARED_DATA")
    base = Path(shared) if shared else ROOT / "gpu-data"
    return base / sub


def check_inputs(args) -> list[str]:
    """One line per missing input (empty: all there); installs torch-fidelity from --wheels if needed."""
    problems = []
    missing = [f for f in FM_FILES if not (Path(args.fashion_mnist) / f).is_file()]
    if missing:
        problems.append(
            f"missing Fashion-MNIST in {args.fashion_mnist}: {', '.join(missing)} (../shared/data/fetch.sh)"
        )
    if not Path(args.inception).is_file():
        problems.append(f"missing the FID Inception module at {args.inception} (../shared/data/fetch.sh makes it)")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        wheels = sorted(Path(args.wheels).glob("torch_fidelity-*.whl")) if args.wheels else []
        if not wheels:
            problems.append(f"torch-fidelity is not installed and no torch_fidelity-*.whl is in {args.wheels or '-'}")
        else:
            cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", str(wheels[-1])]
            if subprocess.run(cmd, capture_output=True).returncode:
                problems.append(f"could not install {wheels[-1]}")
    return problems


def run_part(name: str, cmd: list[str], out: Path, limit: float, env: dict | None = None) -> dict:
    """Run one part under a hard time limit (SIGTERM, then SIGKILL after 20 s); its output goes to OUT/NAME.log."""
    start = time.time()
    log = out / f"{name}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env or _env(),
                                start_new_session=True)  # fmt: skip
        try:
            rc = proc.wait(timeout=limit)
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            status = f"time limit {limit:.0f} s"
    seconds = time.time() - start
    print(f"[{name}] {status} in {seconds:.0f} s (log: {log})", flush=True)
    return {"part": name, "status": status, "seconds": round(seconds, 1), "log": log.name}


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def device_info(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device}
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                    cuda=torch.version.cuda, gpus=torch.cuda.device_count())  # fmt: skip
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
            smi = subprocess.run(query, capture_output=True, text=True)
            info["nvidia_smi"] = smi.stdout.strip()
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def parts(args, out: Path) -> list[tuple[str, list[str], float]]:
    py, tiny, dev = sys.executable, args.tiny, args.device
    attention = [py, "benchmarks/attention.py", "--device", dev, "--rounds", "1"]
    attention += ["--sizes", "8", "--batches", "2", "--channels", "16", "--repeats", "1"] if tiny else [
        "--sizes", "8", "16", "32", "64", "128", "--batches", "64", "--repeats", "5"]  # fmt: skip
    steps = [py, "benchmarks/train_step.py", "--device", dev, "--rounds", "1", "--no-loop", "--no-peer"]
    steps += ["--presets", "demo", "--options", "fp32", "bf16", "--steps", "1"] if tiny else [
        "--presets", "cifar10", "imagenet128-official", "--options", "fp32", "bf16", "--steps", "10"]  # fmt: skip
    batches = ["8"] if tiny else ["64", "32"]
    run = [
        py, "-m", "sagan.cli", "train", "--preset", "fashion-mnist-cpu", "--device", dev, "--amp", "bf16",
        "--run-dir", str(out / "fm-run"), "--data-root", str(out / "data"), "--eval-every", "0",
        "--steps", str(20 if tiny else args.train_steps),
    ]  # fmt: skip
    if tiny:
        run += ["--set", "g_channels=4", "--set", "d_channels=8", "--set", "log_every=10", "--batch-size", "16"]
    num = "200" if tiny else "10000"
    fid = [
        py, "-m", "sagan.cli", "evaluate", "--checkpoint", str(out / "fm-run"), "--split", "test", "--num", num,
        "--inception", str(args.inception), "--data-root", str(out / "data"), "--device", dev,
        "--out", str(out / "fid.json"), "--overwrite",
    ]  # fmt: skip
    pytest = [py, "-m", "pytest", "-m", "gpu", "-q", "-rs", "tests/test_gpu.py", "tests/test_attention.py"]
    listed = [("pytest", pytest, LIMITS["pytest"]), ("attention", attention, LIMITS["attention"])]
    for b in batches:
        listed.append((f"train_step-batch{b}", [*steps, "--batch", b], LIMITS["train_step"] / len(batches)))
    listed += [("train", run, args.train_seconds), ("fid", fid, LIMITS["fid"])]
    return listed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="every part at toy sizes (a dry run of the plumbing)")
    ap.add_argument("--out", default="gpu-check", help="output folder (new or empty)")
    ap.add_argument("--fashion-mnist", default=str(_default("fashion-mnist")))
    ap.add_argument("--inception", default=str(_default("inception/default_1.pt")))
    ap.add_argument("--wheels", default=str(ROOT / "gpu-wheels"), help="folder with torch-fidelity's wheel")
    ap.add_argument("--train-steps", type=int, default=20_000)
    ap.add_argument("--train-seconds", type=float, default=230.0, help="time limit of the training part")
    ap.add_argument("--only", nargs="+", default=None, help="run only these parts (e.g. a rerun of one)")
    args = ap.parse_args()
    if args.tiny:
        args.train_seconds = min(args.train_seconds, 90.0)
    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()) and not args.only:
        sys.exit(f"{out} is not empty; give a new folder (or --only PART to rerun parts into it)")
    out.mkdir(parents=True, exist_ok=True)
    problems = check_inputs(args)
    for line in problems:
        print(f"MISSING: {line}", flush=True)
    if problems:
        sys.exit(1)
    data = out / "data" / "FashionMNIST" / "raw"  # the torchvision layout, as links
    data.mkdir(parents=True, exist_ok=True)
    for f in FM_FILES:
        if not (data / f).exists():
            (data / f).symlink_to(Path(args.fashion_mnist).resolve() / f)
    start = time.time()
    info = device_info(args.device)
    print(json.dumps(info), flush=True)
    (out / "device.json").write_text(json.dumps(info, indent=2) + "\n")
    results = []
    for name, cmd, limit in parts(args, out):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        results.append(run_part(name, cmd, out, limit))
    summary = {"device": info, "parts": results, "seconds": round(time.time() - start, 1)}
    if (out / "fid.json").is_file():
        summary["fid"] = json.loads((out / "fid.json").read_text())["metrics"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# GPU check: {info.get('gpu', info.get('cpu'))}, torch {info['torch']}", "",
             "| part | status | seconds | log |", "| --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {r['part']} | {r['status']} | {r['seconds']} | {r['log']} |" for r in results]
    for r in results:
        if r["part"] != "pytest" and r["status"] == "ok" and r["part"] not in ("train", "fid"):
            table = [ln for ln in (out / r["log"]).read_text().splitlines() if ln.startswith(("|", "#"))]
            lines += ["", f"## {r['part']}", "", *table]
    if "fid" in summary:
        lines += ["", "## FID of the trained generator (test split)", "", f"`{json.dumps(summary['fid'])}`"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'summary.md'} and summary.json in {summary['seconds']:.0f} s", flush=True)
    sys.exit(0 if all(r["status"] == "ok" for r in results) else 1)


if __name__ == "__main__":
    main()
