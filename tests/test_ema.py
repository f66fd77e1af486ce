"""G_ema's own BatchNorm statistics (standing statistics), against batch statistics computed in the test."""

import copy

import torch
import torch.nn as nn

from sagan.config import ModelConfig
from sagan.models import Generator
from sagan.training.ema import ema_update, standing_statistics


def _generator(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, num_classes=3, z_dim=8, g_channels=4, d_channels=4, g_attn_resolutions=(16,))
    return Generator(cfg).train()


def test_standing_statistics_are_the_mean_batch_statistics_of_its_own_activations():
    """After standing_statistics, each BN's running mean / variance is the average over the batches of the mean /
    unbiased variance of the activations G_ema itself produces on that noise (its BNs normalising by batch
    statistics meanwhile), not those of the G it was copied from."""
    for arch in ("resnet", "dcgan"):
        G = _generator(arch)
        G_ema = copy.deepcopy(G)
        with torch.no_grad():  # G_ema's weights differ from G's, as after many EMA steps
            for p in G_ema.parameters():
                p.add_(0.3 * torch.randn_like(p))
        reference = copy.deepcopy(G_ema)
        standing_statistics(G_ema, num_batches=3, batch_size=6, seed=5)
        assert not G_ema.training

        # The same noise, drawn in the test: seeded generator, balanced classes.
        gen = torch.Generator().manual_seed(5)
        seen: dict[nn.Module, list] = {}
        norms = [m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.register_forward_pre_hook(lambda mod, args, seen=seen: seen.setdefault(mod, []).append(args[0].detach()))
        reference.eval()
        for m in norms:
            m.train()
        with torch.no_grad():
            for i in range(3):
                z = torch.randn(6, 8, generator=gen)
                reference(z, (torch.arange(6) + 6 * i) % 3)
        ema_norms = [m for m in G_ema.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(ema_norms) == len(norms) >= 3
        for m_ema, m_ref in zip(ema_norms, norms, strict=True):
            xs = seen[m_ref]
            mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in xs]).mean(0)
            var = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in xs]).mean(0)
            torch.testing.assert_close(m_ema.running_mean, mean, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(m_ema.running_var, var, atol=1e-5, rtol=1e-5)
            assert m_ema.momentum == m_ref.momentum  # restored
        ema_update(G_ema, G, 0.5)  # the EMA update copies G's statistics: they differ from G_ema's own
        assert not torch.allclose(ema_norms[-1].running_var, var)


def test_standing_statistics_leave_spectral_norm_vectors_alone():
    G = _generator("dcgan")
    before = {k: v.clone() for k, v in G.state_dict().items() if k.endswith(("._u", "._v"))}
    standing_statistics(G, num_batches=2, batch_size=4)
    after = G.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())


def test_ema_decay_schedule():
    from sagan.config import TrainConfig
    from sagan.training.trainer import ema_decay_at

    plain = TrainConfig(ema_decay=0.999, ema_start_step=100)
    assert [ema_decay_at(s, plain) for s in (0, 99, 100, 5000)] == [0.0, 0.0, 0.999, 0.999]
    ramp = TrainConfig(ema_decay=0.999, ema_start_step=100, ema_rampup=True)
    assert ema_decay_at(99, ramp) == 0.0
    assert ema_decay_at(100, ramp) == 0.1  # (1 + 0) / (10 + 0)
    assert ema_decay_at(190, ramp) == 91 / 100
    assert ema_decay_at(100 + 8990, ramp) == 0.999  # (1 + n) / (10 + n) reaches the cap at n = 8990
    assert ema_decay_at(100 + 8000, ramp) == 8001 / 8010
