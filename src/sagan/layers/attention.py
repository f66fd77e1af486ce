"""The SAGAN self-attention block (Zhang et al. 2019, Sec. 3, Eq. 1-3; official code: non_local.py).

For a feature map x with C channels and N = H * W positions:

    f(x) = W_f x (`key`), g(x) = W_g x (`query`), h(x) = W_h x (`value`), v = W_v (`out`)
    s_ij = f(x_i)^T g(x_j)                      (no 1/sqrt(d) scaling)
    beta_ji = softmax_i(s_ij)                   (over attended positions i, for each output position j)
    o_j = v(sum_i beta_ji h(x_i))
    y = gamma * o + x                           (gamma is a learned scalar, initialised to 0)

Variant "official" follows brain-research/self-attention-gan: query/key C/8, value C/2, keys and values 2x2
max-pooled (N/4 of them), `out` maps C/2 back to C. Variant "paper" has no pooling and a C/8 value.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan.layers.spectral import apply_spectral_norm, init_weights


class SelfAttention2d(nn.Module):
    """Self-attention over the positions of a (B, C, H, W) feature map; output has the input's shape.

    Args:
        channels: C.
        variant: "official" (pooled keys/values, value C / 2) or "paper" (no pooling, value C / 8).
        qk_ratio: query/key width is C // qk_ratio.
        v_ratio: value width is C // v_ratio; None takes 2 ("official") or qk_ratio ("paper").
        spectral_norm: register spectral norm on `query`, `key`, `value` and `out`.
    """

    def __init__(
        self,
        channels: int,
        variant: str = "official",
        qk_ratio: int = 8,
        v_ratio: int | None = None,
        spectral_norm: bool = True,
        sn_eps: float = 1e-6,
        sn_power_iterations: int = 1,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        if variant not in ("official", "paper"):
            raise ValueError(f"variant must be 'official' or 'paper', got {variant!r}")
        if v_ratio is None:
            v_ratio = 2 if variant == "official" else qk_ratio
        qk_dim, v_dim = channels // qk_ratio, channels // v_ratio
        if qk_dim < 1 or v_dim < 1:
            raise ValueError(f"channels={channels} too small for qk_ratio={qk_ratio}, v_ratio={v_ratio}")
        self.channels, self.variant, self.pool = channels, variant, variant == "official"
        self.query = nn.Conv2d(channels, qk_dim, 1, bias=False)  # g in the paper
        self.key = nn.Conv2d(channels, qk_dim, 1, bias=False)  # f
        self.value = nn.Conv2d(channels, v_dim, 1, bias=False)  # h
        self.out = nn.Conv2d(v_dim, channels, 1, bias=False)  # v
        self.gamma = nn.Parameter(torch.zeros(()))
        init_weights(self, init)
        if spectral_norm:
            apply_spectral_norm(self, eps=sn_eps, n_power_iterations=sn_power_iterations)

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        """Spatial shape of the key/value grid for an input of (height, width)."""
        return (height // 2, width // 2) if self.pool else (height, width)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project x: (B, C, H, W) to q: (B, N, d_qk), k: (B, M, d_qk), v: (B, M, d_v); M = N/4 if pooled."""
        if self.pool and (x.shape[-2] % 2 or x.shape[-1] % 2):
            raise ValueError(f"the official variant pools 2x2 and needs even H and W, got {tuple(x.shape[-2:])}")
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, d_qk)
        k, v = self.key(x), self.value(x)
        if self.pool:
            k, v = F.max_pool2d(k, 2), F.max_pool2d(v, 2)
        return q, k.flatten(2).transpose(1, 2), v.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """x: (B, C, H, W) -> y: (B, C, H, W); with return_attn also the map (B, N, M), rows summing to 1."""
        B, _, H, W = x.shape
        q, k, v = self.qkv(x)
        if return_attn:
            o, attn = explicit_attention(q, k, v)
        else:
            o = fused_attention(q, k, v)
        o = o.transpose(1, 2).reshape(B, -1, H, W)  # (B, N, d_v) -> (B, d_v, H, W)
        y = x + self.gamma * self.out(o)
        return (y, attn) if return_attn else y


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T) v with the map materialised: q (B, N, d), k (B, M, d), v (B, M, e) -> (B, N, e), (B, N, M).

    Logits and softmax are computed in float32 so that bf16/fp16 inputs cannot overflow or lose the map.
    """
    with torch.autocast(q.device.type, enabled=False):  # autocast would cast the bmm back to low precision
        logits = torch.bmm(q.float(), k.float().transpose(1, 2))  # (B, N, M), unscaled as in SAGAN
        attn = torch.softmax(logits, dim=-1)
        o = torch.bmm(attn, v.float())
    return o.to(v.dtype), attn


def split_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reshape q (B, N, d), k (B, M, d), v (B, M, e) to heads of width d: (B, e // d, ., d), q and k shared.

    Fused (flash / memory-efficient) SDPA kernels need equal head sizes for q, k and v, but SAGAN's value is
    wider than its query. Splitting v into e // d heads that share q and k gives the same result, since the
    attention weights do not depend on v, and lets torch pick a kernel that never stores the N x M map.
    When e is not a multiple of d, the inputs get a single head and torch uses its math kernel.
    """
    B, N, d = q.shape
    e = v.shape[-1]
    heads = e // d if e % d == 0 else 1
    # Fused kernels also need a unit stride in the last dim; the conv outputs have it along positions.
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    q = q.unsqueeze(1).expand(B, heads, N, d)  # (B, heads, N, d), a view shared across heads
    k = k.unsqueeze(1).expand(B, heads, k.shape[1], d)
    v = v.unflatten(-1, (heads, e // heads)).transpose(1, 2)  # (B, M, e) -> (B, heads, M, e // heads)
    return q, k, v


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T) v through `F.scaled_dot_product_attention` with scale=1; shapes as in explicit_attention."""
    B, N, _ = q.shape
    o = F.scaled_dot_product_attention(*split_heads(q, k, v), scale=1.0)  # (B, heads, N, e // heads)
    return o.transpose(1, 2).reshape(B, N, v.shape[-1])
