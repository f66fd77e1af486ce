"""`sagan.training.trainer.Trainer` on its own: the precision its steps really run in, memory formats, and gradient
accumulation on G's side against the update computed by hand."""

import contextlib
import copy

import pytest
import torch

from sagan.config import ModelConfig, TrainConfig
from sagan.layers import SelfAttention2d
from sagan.layers.spectral import power_iteration_frozen
from sagan.losses import LOSSES
from sagan.training.trainer import Trainer, class_signal_at

MODEL = ModelConfig(resolution=32, g_channels=16, d_channels=16, z_dim=16, num_classes=4, img_channels=1,
                    g_attn_resolutions=(16,), d_attn_resolutions=(16,))  # fmt: skip


def _trainer(**train) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    cfg = TrainConfig(batch_size=8, seed=0, device="cpu", **{"amp": "none", **train})
    trainer = Trainer(MODEL, cfg, torch.device("cpu"))
    trainer.wrap()
    gen = torch.Generator().manual_seed(1)
    return trainer, torch.rand(8, 1, 32, 32, generator=gen) * 2 - 1, torch.randint(0, 4, (8,), generator=gen)


def _steps(trainer, x, y, n) -> list[tuple[float, float]]:
    out = []
    for _ in range(n):
        stats = trainer.d_step(x, y)
        out.append((stats[0].item(), trainer.g_step().item()))
    return out


def test_bf16_autocast_runs_in_bf16_and_tracks_fp32():
    """amp bf16: the convolutions of G and D really produce bf16 (forward hooks see it; fp32 trainers see
    float32), and over 5 steps from the same weights, data and noise the losses stay within 0.05 of fp32's
    (measured: at most 0.01)."""
    dtypes = {"none": set(), "bf16": set()}
    losses = {}
    for amp in dtypes:
        trainer, x, y = _trainer(amp=amp)
        convs = [m for net in (trainer.G, trainer.D) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        hooks = [m.register_forward_hook(lambda mod, i, o, amp=amp: dtypes[amp].add(o.dtype)) for m in convs]
        losses[amp] = _steps(trainer, x, y, 5)
        for h in hooks:
            h.remove()
    assert dtypes == {"none": {torch.float32}, "bf16": {torch.bfloat16}}
    pairs = zip(losses["none"], losses["bf16"], strict=True)
    worst = max(abs(a - b) for fp32, bf16 in pairs for a, b in zip(fp32, bf16, strict=True))
    print(f"largest loss difference bf16 - fp32 over 5 steps: {worst:.4f}")
    assert 0 < worst < 0.05


def test_channels_last_training_equals_nchw():
    """channels_last changes the memory format, not the maths: over 3 steps the losses agree to 1e-3 (measured:
    1e-4) and the weights to 3e-3 (measured 8e-4: Adam's first steps move every weight by about the learning rate,
    4e-4, whatever its gradient's size, so float32 rounding of tiny gradients shows at that scale)."""
    runs, losses = {}, {}
    for channels_last in (False, True):
        trainer, x, y = _trainer(channels_last=channels_last)
        losses[channels_last] = _steps(trainer, x, y, 3)
        runs[channels_last] = trainer
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), atol=1e-3, rtol=0)
    for net in ("G", "D"):
        a, b = getattr(runs[False], net).state_dict(), getattr(runs[True], net).state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=3e-3, rtol=0, msg=f"{net}.{key}")
    conv = next(m for m in runs[True].G.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_channels_last_reaches_every_layer_of_g(arch):
    """With channels_last, G's feature maps are channels last from the linear layer's 4 x 4 map on: every norm,
    conv and the attention block see the weights' layout (a conv keeps its input's layout, so G used to run
    channels first throughout for the DCGAN G, the `fashion-mnist-cpu` preset's). Without it, they stay channels
    first."""
    import dataclasses

    model = dataclasses.replace(MODEL, arch=arch, g_channel_mult=(), d_channel_mult=(), d_downsample=())
    for channels_last in (True, False):
        trainer = Trainer(
            model, TrainConfig(batch_size=8, amp="none", channels_last=channels_last), torch.device("cpu")
        )
        trainer.wrap()
        seen = []
        for module in trainer.G.modules():
            kind = next(
                (k for k in (torch.nn.Conv2d, torch.nn.BatchNorm2d, SelfAttention2d) if isinstance(module, k)), 0
            )
            if kind:
                module.register_forward_pre_hook(
                    lambda m, inp, kind=kind, seen=seen: seen.append((kind.__name__, inp[0])) and None
                )
        trainer.G(torch.randn(8, model.z_dim), torch.randint(0, 4, (8,)))
        assert {name for name, _ in seen} >= {"Conv2d", "BatchNorm2d", "SelfAttention2d"}
        for name, x in seen:
            assert x.is_contiguous(memory_format=torch.channels_last) == channels_last, name
            assert x.is_contiguous() != channels_last, name


@pytest.mark.parametrize("k", [2, 4])
def test_g_side_gradient_accumulation_averages_the_micro_batches(k):
    """With grad_accumulation K, G's update uses the mean of K micro-batch gradients, each micro-batch through G
    (its own batch statistics, as BigGAN-PyTorch accumulates) and D, and spectral norm's power iteration on the
    first micro-batch only. Computed here by hand from copies of G and D and the trainer's own noise."""
    trainer, x, y = _trainer(grad_accumulation=k)
    trainer.d_step(x, y)
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    gen_state = trainer.gen.get_state()
    trainer.g_step()
    trainer.gen.set_state(gen_state)
    z, y_fake = trainer.noise()  # the noise g_step drew
    G.zero_grad()
    D.requires_grad_(False)
    g_loss = LOSSES["hinge"][1]
    for i, (zc, yc) in enumerate(zip(z.chunk(k), y_fake.chunk(k), strict=True)):
        with power_iteration_frozen(G, D) if i else contextlib.nullcontext():
            (g_loss(D(G(zc, yc), yc)) / k).backward()
    for (name, p), q in zip(trainer.G.named_parameters(), G.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_class_signal_ramps_from_start_to_end():
    """Transitional conditioning's schedule: 0 until class_ramp_start, linear, 1 from class_ramp_end; off: 1."""
    ramp = TrainConfig(class_ramp_start=100, class_ramp_end=300)
    assert [class_signal_at(s, ramp) for s in (0, 99, 100, 150, 200, 299, 300, 10_000)] == [
        0.0, 0.0, 0.0, 0.25, 0.5, 0.995, 1.0, 1.0,
    ]  # fmt: skip
    assert {class_signal_at(s, TrainConfig()) for s in (0, 1, 10_000)} == {1.0}
    for bad in ({"class_ramp_start": 5, "class_ramp_end": 5}, {"class_ramp_start": -1, "class_ramp_end": 0}):
        with pytest.raises(ValueError, match="class_ramp"):
            TrainConfig(**bad)


def _signals(model) -> set[float]:
    return {b.item() for name, b in model.named_buffers() if name.endswith("class_signal")}


def test_trainer_gives_g_d_and_g_ema_the_step_s_class_signal():
    """The trainer sets the ramp's value on G and D before a step; G_ema takes G's at its update; with the ramp
    off the models stay fully conditional."""
    trainer, x, y = _trainer(class_ramp_start=2, class_ramp_end=6)
    for step, expected in ((0, 0.0), (3, 0.25), (5, 0.75), (9, 1.0)):
        trainer.set_class_signal(step)
        trainer.d_step(x, y), trainer.g_step(), trainer.update_ema(step)
        assert _signals(trainer.G) == _signals(trainer.D) == _signals(trainer.G_ema) == {expected}
    plain, _, _ = _trainer()
    plain.set_class_signal(0)
    assert _signals(plain.G) == _signals(plain.D) == {1.0}
