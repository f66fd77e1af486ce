"""The peers' formulations the benchmarks time ours against compute the same networks (benchmarks/_peers.py)."""

import sys
from pathlib import Path

import pytest
import torch

from sagan.config import MODEL_PRESETS, ModelConfig
from sagan.models import Discriminator, Generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _peers import ReferenceAttention, peer_models  # noqa: E402


def _models(cfg: ModelConfig):
    torch.manual_seed(0)
    G, D = Generator(cfg).double().eval(), Discriminator(cfg).double().eval()
    with torch.no_grad():
        for net in (G, D):
            for block in net.attention_layers().values():
                block.gamma.fill_(0.5)  # attention contributes
            for m in net.modules():
                if hasattr(m, "embed_gain"):  # class-dependent batch norm contributes
                    m.embed_gain.weight.normal_(0, 0.3)
    return G, D


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_the_peer_formulation_computes_the_same_generator_and_discriminator(arch):
    cfg = ModelConfig(**{**MODEL_PRESETS["cifar10"], "g_channels": 8, "d_channels": 8, "arch": arch})
    G, D = _models(cfg)
    G_peer, D_peer = _models(cfg)
    peer_models(G_peer, D_peer, spectral_norm=False)  # eval mode: the same normalised weights, as plain weights
    assert any(isinstance(m, ReferenceAttention) for m in G_peer.modules())
    z, y = torch.randn(3, cfg.z_dim, dtype=torch.float64), torch.tensor([0, 4, 9])
    x = G(z, y)
    torch.testing.assert_close(G_peer(z, y), x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(D_peer(x, y), D(x, y), atol=1e-9, rtol=1e-10)
