"""Shared by the benchmarks: time and peak memory of a step, each case isolated in a forked child process.

A child per case keeps one case's memory peak from hiding another's (CPU peak = growth of the child's maximum
resident set, capped by RLIMIT_DATA; CUDA peak = torch's max_memory_allocated), and turns an out-of-memory
into an "OOM" row instead of a crash. The parent must not have run torch ops before forking.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable

import torch


def measure(
    step: Callable[[], None], device: torch.device, repeats: int, warmup: int = 1, min_seconds: float = 2.0
) -> tuple[float, float]:
    """Median milliseconds of `step` over at least `repeats` runs (more until `min_seconds` have passed, for
    stable medians of fast cases) after `warmup` runs, and the peak memory in MiB."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for _ in range(warmup):
        step()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < 100):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return statistics.median(times) * 1000, peak


def _child(target, args, mem_gib, out) -> None:
    try:
        if mem_gib:
            limit = int(mem_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        out.put(("ok", *target(*args)))
    except (torch.OutOfMemoryError, MemoryError):
        out.put(("OOM", None, None))
    except RuntimeError as e:
        oom = "allocate" in str(e) or "out of memory" in str(e)
        out.put(("OOM", None, None) if oom else (f"error: {str(e).splitlines()[0][:80]}", None, None))


def run_isolated(target: Callable, args: tuple, timeout: float, mem_gib: float = 0.0) -> tuple:
    """("ok", *target(*args)) with target run in a forked child, or (status, None, None) if it failed."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_child, args=(target, args, mem_gib, out))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        return (f">{timeout:.0f}s", None, None)
    if out.empty():
        return ("OOM" if p.exitcode == -9 else f"crash {p.exitcode}", None, None)
    return out.get()


def ratio(value: float, other: tuple, index: int) -> str:
    """value / other[index] as text, or "-" when the other case did not run."""
    if other is None or other[0] != "ok" or not other[index]:
        return "-"
    return f"{value / other[index]:.2f}"
