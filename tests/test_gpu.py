"""What a GPU adds, written so that the same test bodies run on the CPU: every test takes a `device` parameter;
its "cuda" case carries the `gpu` marker and is skipped, saying why, where torch.cuda.is_available() is false.
`pytest -m gpu` runs the cuda cases alone (benchmarks/gpu_check.sh does, on a GPU machine); the default run runs
the cpu cases, which prove the test code itself.

Covered: training steps with finite losses in fp32, bf16 autocast, fp16 autocast with the grad scaler,
channels-last and torch.compile; the fp16 grad scaler's state across a resume, continuing bit-exactly; the
attention block's fast path against the explicit path, on o = (y - x) / gamma (y is dominated by x), and the SDPA
backend that actually runs at 32-128 px maps; on cuda only: the fast path's memory at a 64 x 64 map, `sagan
evaluate` on cuda against the CPU on the same images, and a 2-process nccl run where two GPUs exist.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagan.config import ModelConfig, TrainConfig
from sagan.layers.attention import SelfAttention2d, fast_path_kernel
from sagan.model_files.checkpoints import rng_state
from sagan.training.trainer import Trainer

CUDA = torch.cuda.is_available()
NO_CUDA = "needs an NVIDIA GPU (torch.cuda.is_available() is false here); run `pytest -m gpu` on a GPU machine"
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason=NO_CUDA)]),
]
GPU_ONLY = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason=NO_CUDA)]
MODEL = ModelConfig(resolution=32, g_channels=16, d_channels=16, z_dim=16, num_classes=4, g_attn_resolutions=(16,),
                    d_attn_resolutions=(16,))  # fmt: skip
OPTIONS = {
    "fp32": {"amp": "none"},
    "bf16": {"amp": "bf16"},
    "fp16-scaler": {"amp": "fp16"},
    "channels-last": {"amp": "none", "channels_last": True},
    "compile": {"amp": "none", "compile": True},
}


def _trainer(device: str, **train) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    cfg = TrainConfig(batch_size=8, seed=0, device=device, **train)
    trainer = Trainer(MODEL, cfg, torch.device(device))
    trainer.wrap()
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1).to(device)
    y = torch.randint(0, 4, (8,), generator=gen).to(device)
    return trainer, x, y


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("device", DEVICES)
def test_training_steps_are_finite(device, option):
    if option == "compile" and device == "cpu":
        pytest.skip("torch.compile of G and D takes minutes on 2 CPU cores; the cuda case covers it")
    trainer, x, y = _trainer(device, **OPTIONS[option])
    assert trainer.scaler_G.is_enabled() == (option == "fp16-scaler")
    for _ in range(3):
        stats = trainer.d_step(x, y)
        loss_g = trainer.g_step()
    assert torch.isfinite(stats).all() and torch.isfinite(loss_g), (stats, loss_g)
    assert trainer.parameters_finite()
    if option == "channels-last":
        conv = next(m for m in trainer.G.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_grad_scaler_survives_a_resume_bit_exactly(device):
    """fp16 with the grad scaler: after 2 steps the state (scales, growth trackers, optimisers, RNG) goes into a
    checkpoint dict and a fresh Trainer continues from it; 2 more steps equal 4 uninterrupted, bit for bit."""
    straight, x, y = _trainer(device, amp="fp16")
    for _ in range(4):
        straight.d_step(x, y), straight.g_step()
    first, _, _ = _trainer(device, amp="fp16")
    for _ in range(2):
        first.d_step(x, y), first.g_step()
    ckpt = {**first.state_dict(), "rng": [rng_state(first.gen)], "step": 2}
    assert ckpt["scaler_G"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler_G"]
    second = Trainer(MODEL, TrainConfig(batch_size=8, seed=0, device=device, amp="fp16"), torch.device(device))
    second.load_state_dict(ckpt)
    second.wrap()
    assert second.scaler_G.state_dict() == first.scaler_G.state_dict()
    for _ in range(2):
        second.d_step(x, y), second.g_step()
    for a, b in zip(straight.G.state_dict().values(), second.G.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert straight.scaler_D.state_dict() == second.scaler_D.state_dict()


def _block(device: str, channels: int = 64) -> SelfAttention2d:
    torch.manual_seed(0)
    block = SelfAttention2d(channels).to(device).eval()
    with torch.no_grad():
        block.gamma.fill_(1.0)  # the attention contributes fully: o = y - x
    return block


# Tolerances on o = (y - x) / gamma, relative to max |o|: fp32 1e-4; bf16 (8 mantissa bits) and fp16 (11) through
# three matrix products and a softmax: measured below 1e-2 on CPU, so 3e-2 and 1e-2.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 1e-2}
SIZES = {"cpu": (16, 32), "cuda": (32, 64, 128)}  # the explicit map of a 128 x 128 map is 1 GiB: not on a CPU


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("device", DEVICES)
def test_fast_path_equals_explicit_on_the_attention_output(device, dtype):
    block = _block(device)
    for size in SIZES[device]:
        x = torch.randn(2, 64, size, size, device=device)
        with torch.no_grad():
            o_ref = block(x, return_attn=True)[0] - x  # explicit path in fp32: the reference
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                o = (block(x).float() - x) / block.gamma
        error = ((o - o_ref).abs().max() / o_ref.abs().max()).item()
        assert error < TOLERANCE[dtype], f"{size} x {size}: relative error {error:.2e}"


@pytest.mark.skipif(not hasattr(torch, "_fused_sdp_choice"), reason="this torch cannot report its SDPA choice")
@pytest.mark.parametrize("device", DEVICES)
def test_the_sdpa_backend_that_runs(device, monkeypatch):
    """Which kernel the fast path runs (torch's choice for our inputs) at 32-128 px maps; forcing that backend
    with sdpa_kernel runs and agrees with the default, so the report names a kernel that really runs. On CPU
    the SDPA route is forced (small maps are materialised there)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import sagan.layers.attention as attention

    if device == "cpu":
        monkeypatch.setattr(attention, "CPU_DENSE_MAP_BYTES", 0)
    block = _block(device)
    for size in SIZES[device]:
        x = torch.randn(2, 64, size, size, device=device)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            q, k, v = block.qkv(x)
            kernel = fast_path_kernel(q, k, v)
            assert kernel in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"), (size, kernel)
            default = block(x)
            with sdpa_kernel([getattr(SDPBackend, kernel)]):
                forced = block(x)
        print(f"{device} {size}x{size}: {kernel}")
        torch.testing.assert_close(forced, default)


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=GPU_ONLY)])
def test_fast_path_memory_at_a_64_map(device):
    """bf16, batch 8, C = 256, 64 x 64 map (N = 4096 queries, 1024 pooled keys): forward + backward of the fast path
    needs at most half the explicit path's peak memory (which stores the N x M map and its gradient)."""
    block = _block(device, channels=256)
    x = torch.randn(8, 256, 64, 64, device=device, requires_grad=True)
    peaks = {}
    for path in ("fast", "explicit"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = block(x) if path == "fast" else block(x, return_attn=True)[0]
        y.float().sum().backward()
        torch.cuda.synchronize()
        peaks[path] = (torch.cuda.max_memory_allocated() - base) / 2**20
        x.grad = None
    print(f"peak MiB: fast {peaks['fast']:.0f}, explicit {peaks['explicit']:.0f}")
    assert peaks["fast"] <= 0.5 * peaks["explicit"]


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=GPU_ONLY)])
def test_evaluate_on_cuda_equals_the_cpu(device, inception_torchscript, fashion_mnist_root):
    """The same 200 generated and 200 real images give the same FID on cuda as on the CPU (to 1e-3)."""
    from sagan.metrics.evaluate import Protocol, evaluate
    from sagan.metrics.inception import Inception
    from sagan.models import Generator

    torch.manual_seed(0)
    G = Generator(ModelConfig(resolution=32, img_channels=1, num_classes=10, g_channels=8, d_channels=8,
                              g_attn_resolutions=(16,), d_attn_resolutions=(16,))).eval()  # fmt: skip
    fids = {}
    for dev in ("cpu", device):
        inception = Inception(str(inception_torchscript), dev)
        protocol = Protocol("fashion-mnist", 32, 1, ("fid",), 200, split="test", data_root=str(fashion_mnist_root))
        result = evaluate(G.to(dev), protocol, inception)
        fids[dev] = result["metrics"]["fid200"]
    print(f"FID200 cpu {fids['cpu']:.4f}, cuda {fids[device]:.4f}")
    assert abs(fids["cpu"] - fids[device]) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2, reason="needs two NVIDIA GPUs for a 2-process nccl run")
def test_two_processes_with_nccl(tmp_path):
    from tests.conftest import tiny_args

    args = tiny_args(tmp_path / "runs", steps=3, extra=["--set", "log_every=1"])
    args[args.index("--device") + 1] = "cuda"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "sagan.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
