"""The peers' formulations, written here from their published structure (StudioGAN, BigGAN-PyTorch, mimicry,
heykeetae/Self-Attention-GAN), so the benchmarks time our code against theirs on the same machine, in the same
harness, with the same weights and widths.

- `ReferenceAttention`: the SAGAN block as StudioGAN's and BigGAN-PyTorch's `Attention` computes it: one 1x1 conv
  per projection, 2x2 max-pooling of keys and values one at a time, the map by bmm + softmax over its last dim,
  the output conv scaled by gamma and added to x.
- `NaiveAttention`: the common public implementation (heykeetae): full N x N map, value of width C, no pooling.
- `peer_models` / `PeerTrainer`: StudioGAN's SAGAN training iteration on our models' weights: nearest
  upsampling then 3x3 conv in G's blocks, conv then average pooling in D's, `ReferenceAttention`, spectral norm
  by `torch.nn.utils.spectral_norm` (forward pre-hooks, a power iteration per forward), D called on the real
  and the fake batch one after the other, `torch.optim.Adam` with its defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from sagan.layers.attention import SelfAttention2d  # noqa: E402
from sagan.layers.blocks import DBlock, DCGBlock, GBlock  # noqa: E402


class NaiveAttention(nn.Module):
    """The common public implementation: full N x N map via bmm and softmax, value of width C, no pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).view(B, -1, H * W).permute(0, 2, 1)  # (B, N, C/8)
        k = self.key(x).view(B, -1, H * W)  # (B, C/8, N)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N)
        o = torch.bmm(self.value(x).view(B, -1, H * W), attn.permute(0, 2, 1)).view(B, C, H, W)
        return self.gamma * o + x


class ReferenceAttention(SelfAttention2d):
    """The peers' formulation of the same block: the variant's convs, widths, pooling and initialisation, torch's
    spectral-norm parametrisation, one conv per projection, the map by bmm + softmax over the last dim, and the
    output conv scaled by gamma and added."""

    def __init__(self, channels: int, variant: str = "official", sn_eps: float = 1e-6, **kwargs) -> None:
        super().__init__(channels, variant, spectral_norm=False, **kwargs)
        for conv in (self.query, self.key, self.value, self.out):
            nn.utils.parametrizations.spectral_norm(conv, eps=sn_eps)

    def forward(self, x: torch.Tensor, return_attn: bool = False) -> torch.Tensor:
        B, _, H, W = x.shape
        theta, phi, g = self.query(x), self.key(x), self.value(x)
        if self.pool:
            phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
        theta, phi, g = theta.flatten(2), phi.flatten(2), g.flatten(2)  # (B, d, N), (B, d, M), (B, e, M)
        beta = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, N, M)
        o = torch.bmm(g, beta.transpose(1, 2)).view(B, -1, H, W)  # (B, e, N) -> (B, e, H, W)
        return x + self.gamma * self.out(o)


class PeerGBlock(GBlock):
    """StudioGAN's `GenBlock`: cBN-ReLU, nearest 2x upsampling, conv3, cBN-ReLU, conv3; shortcut upsampled, then
    its 1x1 conv at the high resolution."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest"))
        h = self.conv2(F.relu(self.bn2(h, y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class PeerDCGBlock(DCGBlock):
    """The DCGAN stage as upsampling models write it: cBN-ReLU, nearest 2x upsampling, conv3."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(F.relu(self.bn(x, y)), scale_factor=2, mode="nearest"))


class PeerDBlock(DBlock):
    """StudioGAN's `DiscOptBlock` (the first, no pre-activation: the shortcut pools, then convolves) and
    `DiscBlock` (ReLU-conv3-ReLU-conv3-avgpool; the shortcut convolves, then pools)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        h = F.avg_pool2d(h, 2) if self.downsample else h
        s = x
        if not self.preactivation:
            s = self.shortcut(F.avg_pool2d(s, 2) if self.downsample else s)
        elif self.shortcut is not None:
            s = self.shortcut(s)
            s = F.avg_pool2d(s, 2) if self.downsample else s
        return h + s


_PEER_CLASSES = {GBlock: PeerGBlock, DCGBlock: PeerDCGBlock, DBlock: PeerDBlock, SelfAttention2d: ReferenceAttention}


def peer_models(G: nn.Module, D: nn.Module, spectral_norm: bool = True) -> None:
    """Turn our G and D, in place, into the peers' formulation of the same networks: blocks computed as StudioGAN
    does, and spectral norm by torch.nn.utils.spectral_norm instead of the parametrisation, registered on the
    normalised weights (with `spectral_norm=False` those stay plain weights: the same function as the input G
    and D in eval mode, which is how the formulations are checked against each other).
    """
    from torch.nn.utils import parametrize

    for net in (G, D):
        for m in list(net.modules()):
            if type(m) in _PEER_CLASSES:
                m.__class__ = _PEER_CLASSES[type(m)]
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
                if spectral_norm:
                    nn.utils.spectral_norm(m)


class PeerTrainer:
    """One D update and one G update as StudioGAN's SAGAN iteration runs them (hinge loss, 1 D step): fresh noise
    for each, D on the real and the fake batch in two forwards, per-parameter Adam (its CPU default); with `amp`,
    under autocast in that precision."""

    def __init__(
        self, G: nn.Module, D: nn.Module, z_dim: int, num_classes: int, batch: int, lr: float = 2e-4, amp: str = "none"
    ):
        self.z_dim, self.num_classes, self.batch = z_dim, num_classes, batch
        self.opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.999))
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.999))
        G.train(), D.train()
        self.G, self.D = G, D
        device = next(G.parameters()).device.type
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        self.autocast = lambda: torch.autocast(device, dtype=dtype, enabled=amp != "none")

    def _noise(self, device):
        z = torch.randn(self.batch, self.z_dim, device=device)
        y = torch.randint(0, self.num_classes, (self.batch,), device=device) if self.num_classes else None
        return z, y

    def d_step(self, x_real: torch.Tensor, y_real: torch.Tensor | None) -> None:
        self.opt_D.zero_grad()
        z, y_fake = self._noise(x_real.device)
        with self.autocast():
            with torch.no_grad():
                x_fake = self.G(z, y_fake)
            d_real, d_fake = self.D(x_real, y_real).float(), self.D(x_fake, y_fake).float()
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        loss.backward()
        self.opt_D.step()

    def g_step(self) -> None:
        self.opt_G.zero_grad()
        self.D.requires_grad_(False)
        z, y_fake = self._noise(next(self.G.parameters()).device)
        with self.autocast():
            loss = -self.D(self.G(z, y_fake), y_fake).float().mean()
        loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
