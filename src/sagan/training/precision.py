"""What `amp="auto"` (the default) means for a run: bf16 autocast for CPU training where the CPU multiplies bf16
in hardware (AMX tiles or AVX512-BF16 on x86, the BF16 extension on Arm) **and** a short timing of the run's own
training step shows bf16 faster; fp32 where bf16 would be emulated (an AVX2-only EPYC ran it ~25x slower) and on
GPUs, where no preset asks for autocast. The timing (a few D + G steps of the model in each precision, in turns)
is cached per CPU, torch version, thread count, model and batch, so it runs once per machine and model.

Measured (docs/benchmarks.md): bf16 tracked fp32's losses and fid1k over 2,000 steps of `fashion-mnist-cpu` on
an AMX Xeon (1.7x the step's speed) and on an AVX512-BF16 EPYC (1.3-1.5x).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("sagan")
MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this factor: a tie is not worth the rounding
TIMING_STEPS = 3  # timed D + G steps per precision and round, after one warm-up step each
TIMING_BATCH = 16  # at most this many images per step in the timing: a 128 px model's step takes seconds


@dataclass(frozen=True)
class AmpChoice:
    """The precision a run trains in ("bf16" or "none") and why, in words for the log and config.json."""

    amp: str
    why: str
    speedup: float | None = None  # the bf16 timing it decided from (to remember once the run starts)


def cpu_bf16_kind(cpuinfo: str | None = None) -> str | None:
    """How this CPU multiplies bf16 in hardware: "amx" (AMX tiles), "avx512_bf16", "arm_bf16", or None (emulated
    or unknown), from the CPU flags in `cpuinfo` (default: Linux's /proc/cpuinfo; None where there is none)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags.update(value.split())
    if "amx_bf16" in flags and "amx_tile" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "bf16" in flags and "asimd" in flags:  # Arm's BF16 extension (FEAT_BF16) beside its SIMD
        return "arm_bf16"
    return None


def cpu_name() -> str:
    """The CPU's model name as Linux reports it (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timing_key(model, train) -> str:
    what = {
        "cpu": cpu_name(),
        "bf16": cpu_bf16_kind(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": dataclasses.asdict(model),
        "batch": min(train.batch_size, TIMING_BATCH),
        "d_steps": train.d_steps,
        "channels_last": train.channels_last,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def timings_file() -> Path:
    """$SAGAN_CACHE_DIR/amp-timings.json, else ~/.cache/sagan/amp-timings.json."""
    root = os.environ.get("SAGAN_CACHE_DIR") or Path.home() / ".cache" / "sagan"
    return Path(root) / "amp-timings.json"


def _read_timings(path: Path) -> dict:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def cached_bf16_speedup(model, train, measure, may_measure: bool = True) -> float | None:
    """The bf16 speed-up of this model's step on this CPU from the timings file, else measured when `may_measure`
    (by `measure(model, train)`: `sagan.training.trainer.time_bf16_speedup`; `remember_bf16_speedup` stores it
    once the run has started, so a command that fails on bad input leaves no file), else None."""
    value = _read_timings(timings_file()).get(_timing_key(model, train))
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if not may_measure:
        return None
    log.info("timing the training step in fp32 and bf16 on this CPU (once per CPU and model)")
    return measure(model, train)


def remember_bf16_speedup(model, train, speedup: float) -> None:
    """Store a measured speed-up in the timings file (an unreadable file is replaced); a failed write is a
    warning, the choice stands, it is just timed again next time."""
    path, key = timings_file(), _timing_key(model, train)
    table = _read_timings(path)
    if table.get(key) == round(speedup, 4):
        return
    try:
        from sagan.safe_files import write_text

        write_text(path, json.dumps({**table, key: round(speedup, 4)}, indent=1) + "\n", overwrite=True)
    except OSError as e:
        log.warning("could not cache the bf16 timing in %s (%s)", path, e.strerror or e)


def choose_amp(device_type: str, model, train, measure=None, bf16_kind=None, speedup=None) -> AmpChoice:
    """What amp "auto" becomes for training `model` with `train` on a device of `device_type` ("cpu", "cuda", ...):
    `bf16_kind()` (default `cpu_bf16_kind`) says whether the CPU has native bf16, `speedup(model, train,
    may_measure)` (default: the timings file, else `measure(model, train)`: `sagan.training.trainer.time_bf16_speedup`,
    which this module does not import, the trainer being above it) how much faster the step runs in it.

    Under torchrun with several processes every rank resolves the config on its own before they can talk, so no
    timing runs there (ranks could disagree): the cached timing decides, else fp32.
    """
    if device_type != "cpu":
        return AmpChoice("none", f"fp32 on {device_type}: amp auto uses bf16 for CPU training only")
    kind = (bf16_kind or cpu_bf16_kind)()
    if kind is None:
        return AmpChoice("none", "fp32: this CPU has no native bf16 (no AMX, AVX512-BF16 or Arm BF16)")
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if speedup is None:  # without a timer, only a stored timing can decide
        ratio = cached_bf16_speedup(model, train, measure, may_measure=not several and measure is not None)
    else:
        ratio = speedup(model, train, may_measure=not several)
    if ratio is None:
        return AmpChoice(
            "none",
            f"fp32: this CPU has {kind}, but no bf16 timing of this model is cached and torchrun's processes do not "
            "time it (they could disagree); a one-process run of the same model times it once",
        )
    faster = ratio >= MIN_SPEEDUP
    verdict = "bf16 autocast" if faster else "fp32"
    return AmpChoice(
        "bf16" if faster else "none",
        f"{verdict}: this CPU has {kind}, and the training step of this model ran {ratio:.2f}x as fast in bf16 as "
        f"in fp32 (bf16 needs >= {MIN_SPEEDUP}x)",
        ratio,
    )
