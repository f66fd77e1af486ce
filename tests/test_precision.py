"""`sagan.training.precision`: what amp "auto" decides from (the CPU's bf16 support and a cached timing of the step)."""

import json

import pytest
import torch

from sagan.config import ModelConfig, TrainConfig
from sagan.training.precision import (
    MIN_SPEEDUP,
    cached_bf16_speedup,
    choose_amp,
    cpu_bf16_kind,
    remember_bf16_speedup,
)
from sagan.training.trainer import time_bf16_speedup

MODEL = ModelConfig(resolution=32, g_channels=4, d_channels=4, z_dim=8, num_classes=3, img_channels=1)
TRAIN = TrainConfig(batch_size=4, device="cpu")


def test_cpu_bf16_kind_reads_the_flags():
    x86 = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2 avx512f {}\n"
    assert cpu_bf16_kind(x86.format("avx512_bf16 amx_bf16 amx_tile amx_int8")) == "amx"
    assert cpu_bf16_kind(x86.format("avx512_bf16 avx512_vnni")) == "avx512_bf16"
    assert cpu_bf16_kind(x86.format("avx512_vnni")) is None  # bf16 would be emulated
    assert cpu_bf16_kind(x86.format("amx_tile")) is None  # tiles without bf16 multiply no bf16
    assert cpu_bf16_kind("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") == "arm_bf16"
    assert cpu_bf16_kind("processor\t: 0\nFeatures\t: fp asimd\n") is None
    assert cpu_bf16_kind("") is None


def test_choose_amp_needs_native_bf16_and_a_faster_step(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    def speed(ratio):
        return lambda model, train, may_measure: ratio

    native, none = (lambda: "avx512_bf16"), (lambda: None)
    assert choose_amp("cpu", MODEL, TRAIN, bf16_kind=native, speedup=speed(1.46)).amp == "bf16"
    slower = choose_amp("cpu", MODEL, TRAIN, bf16_kind=native, speedup=speed(MIN_SPEEDUP - 0.01))
    assert slower.amp == "none" and "0.99x" not in slower.why and f"{MIN_SPEEDUP - 0.01:.2f}x" in slower.why
    assert (
        choose_amp("cpu", MODEL, TRAIN, bf16_kind=none, speedup=speed(3.0)).amp == "none"
    )  # emulated: never timed, never bf16
    assert choose_amp("cuda", MODEL, TRAIN, bf16_kind=native, speedup=speed(3.0)).amp == "none"
    assert choose_amp("cpu", MODEL, TRAIN, bf16_kind=lambda: "amx", speedup=speed(1.7)).why.startswith(
        "bf16 autocast: this CPU has amx"
    )


def test_torchrun_ranks_do_not_time(monkeypatch):
    """Ranks resolve on their own before they can talk: they use a cached timing or train in fp32, never time."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    asked = []

    def cached_only(model, train, may_measure):
        asked.append(may_measure)
        return None

    choice = choose_amp("cpu", MODEL, TRAIN, bf16_kind=lambda: "avx512_bf16", speedup=cached_only)
    assert choice.amp == "none" and asked == [False] and "torchrun" in choice.why


def test_timing_is_remembered_per_model(tmp_path, monkeypatch):
    """A timing is measured when none is stored, stored only when asked (once the run has started), then read back
    without timing again; another model is not taken for this one; a broken file is timed again and replaced."""
    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path))
    calls = []

    def measure(model, train):
        calls.append(model)
        return 1.25

    assert cached_bf16_speedup(MODEL, TRAIN, measure) == 1.25 and not (tmp_path / "amp-timings.json").exists()
    remember_bf16_speedup(MODEL, TRAIN, 1.25)
    assert cached_bf16_speedup(MODEL, TRAIN, measure) == 1.25 and len(calls) == 1  # read back, not timed again
    other = ModelConfig(resolution=32, g_channels=8, d_channels=4, z_dim=8, num_classes=3, img_channels=1)
    assert cached_bf16_speedup(other, TRAIN, measure, may_measure=False) is None  # another model: not stored
    assert len(json.loads((tmp_path / "amp-timings.json").read_text())) == 1
    (tmp_path / "amp-timings.json").write_text("{ not json")
    assert cached_bf16_speedup(MODEL, TRAIN, measure) == 1.25 and len(calls) == 2  # a broken file: timed again
    remember_bf16_speedup(MODEL, TRAIN, 1.5)
    assert list(json.loads((tmp_path / "amp-timings.json").read_text()).values()) == [1.5]


def test_the_timing_runs_the_step_and_leaves_the_rng_alone():
    state = torch.random.get_rng_state()
    ratio = time_bf16_speedup(MODEL, TRAIN)
    assert ratio > 0 and torch.equal(torch.random.get_rng_state(), state)


def test_a_resolved_run_says_why_in_its_config(tmp_path, monkeypatch):
    """config.json records the precision and why (the log says the same)."""
    from sagan.run_config import resolve

    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("sagan.training.precision.cpu_bf16_kind", lambda: None)
    r = resolve("demo", {"device": "cpu"})
    assert r.train.amp == "none" and r.as_dict()["amp_reason"].startswith("amp auto: fp32: this CPU has no native")


def test_a_run_stores_its_timing_and_the_next_resolve_reads_it(tmp_path, monkeypatch):
    """The timing amp "auto" measured for a run is stored when the run starts; resolving the same model again
    reads it (no second timing) and decides the same."""
    from sagan.run_config import resolve

    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr("sagan.training.precision.cpu_bf16_kind", lambda: "avx512_bf16")
    monkeypatch.setattr("sagan.training.trainer.time_bf16_speedup", lambda model, train: 1.3)
    sets = ["g_channels=4", "d_channels=4", "z_dim=8", "log_every=1"]
    first = resolve("demo", {"device": "cpu", "steps": 1, "batch_size": 4, "outdir": str(tmp_path / "runs")}, sets)
    assert first.train.amp == "bf16" and "1.30x" in first.amp_reason and first.amp_speedup == 1.3
    assert not (tmp_path / "amp-timings.json").exists()  # nothing written by resolving alone
    import sagan

    sagan.train(first)
    monkeypatch.setattr("sagan.training.trainer.time_bf16_speedup", lambda model, train: pytest.fail("timed twice"))
    again = resolve("demo", {"device": "cpu", "steps": 1, "batch_size": 4, "outdir": str(tmp_path / "runs")}, sets)
    assert again.train.amp == "bf16" and again.amp_reason == first.amp_reason
