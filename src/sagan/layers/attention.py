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
        """x: (B, C, H, W) -> y: (B, C, H, W); with return_attn also the map (B, N, M), rows summing to 1.

        Without return_attn the fast path runs (`fast_attention`); with it, the explicit path.
        """
        B, _, H, W = x.shape
        q, k, v = self.qkv(x)
        if return_attn:
            o, attn = explicit_attention(q, k, v)
        else:
            o = fast_attention(q, k, v)
        o = o.transpose(1, 2).reshape(B, -1, H, W)  # (B, N, d_v) -> (B, d_v, H, W)
        y = x + self.gamma * self.out(o)
        return (y, attn) if return_attn else y


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T) v with the map materialised: q (B, N, d), k (B, M, d), v (B, M, e) -> (B, N, e), (B, N, M).

    Logits and softmax are computed in at least float32 (bf16/fp16 inputs are lifted, so they cannot overflow or
    lose the map; float64 stays float64).
    """
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):  # autocast would cast the bmm back to low precision
        logits = torch.bmm(q.to(dtype), k.to(dtype).transpose(1, 2))  # (B, N, M), unscaled as in SAGAN
        attn = torch.softmax(logits, dim=-1)
        o = torch.bmm(attn, v.to(dtype))
    return o.to(v.dtype), attn


# On CPU, a map of at most this many bytes (float32) is materialised: for small maps that is the fastest way
# there (measured in benchmarks/attention.py), and memory is no concern. Larger maps, and all maps on GPUs, go to
# SDPA's fused kernels, which never store the N x M map.
CPU_DENSE_MAP_BYTES = 32 * 2**20


def fast_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T) v without returning the map; shapes as in explicit_attention.

    CPU: small maps materialised (explicit_attention), large ones through SDPA on zero-padded inputs
    (`layout="pad"`). GPU and others: SDPA with the value split into heads of the query width (`layout="split"`).
    """
    B, N, _ = q.shape
    if q.device.type == "cpu":
        if B * N * k.shape[1] * 4 <= CPU_DENSE_MAP_BYTES:
            return explicit_attention(q, k, v)[0]
        return sdpa_attention(q, k, v, layout="pad")
    return sdpa_attention(q, k, v, layout="split")


def fast_path_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str:
    """Which kernel `fast_attention` runs for these inputs: "dense" (materialised) or torch's SDPA backend name."""
    B, N, _ = q.shape
    if q.device.type == "cpu" and B * N * k.shape[1] * 4 <= CPU_DENSE_MAP_BYTES:
        return "dense"
    layout = "pad" if q.device.type == "cpu" else "split"
    q, k, v, _ = prepare_sdpa(q, k, v, layout)
    from torch.nn.attention import SDPBackend

    choice = torch._fused_sdp_choice(q, k, v, scale=1.0)
    return next(b.name for b in (getattr(SDPBackend, n) for n in dir(SDPBackend) if n.isupper()) if b.value == choice)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str = "split") -> torch.Tensor:
    """softmax(q k^T) v through `F.scaled_dot_product_attention` with scale=1; shapes as in explicit_attention.

    Fused (flash / memory-efficient) kernels need q, k and v of one head size, but SAGAN's value is wider than
    its query (C/2 vs C/8), and torch silently falls back to its math kernel, which stores the N x M map.
    Either layout makes the fused kernels eligible and gives the same result:
    - "split": v cut into e / d heads of width d that share q and k (the weights do not depend on v); the
      logits are computed once per head. Used on GPUs, whose fused kernels favour small head sizes.
    - "pad": q and k zero-padded to the value width (zeros add nothing to q . k): one head, one softmax.
      Used on CPU, where repeating the softmax per head costs more than the padded dot products.
    """
    q, k, v, undo = prepare_sdpa(q, k, v, layout)
    return undo(F.scaled_dot_product_attention(q, k, v, scale=1.0))


def prepare_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str):
    """SDPA inputs (B, heads, ., w) for `layout` ("split" or "pad") and a function mapping its output to (B, N, e).

    Fused kernels also need a unit stride in the last dim; the conv outputs have it along positions, hence
    the contiguous copies (of q, k, v only: small next to the map).
    """
    B, N, d = q.shape
    M, e = k.shape[1], v.shape[-1]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if layout == "split" and e % d == 0:
        h = e // d
        # (B, h, N, d): q and k repeated per head. Materialised (B * N * e values, small next to the N x M map)
        # rather than stride-0 views, so that GPU kernels' stride checks cannot send them to the math kernel.
        q = q.unsqueeze(1).expand(B, h, N, d).contiguous()
        k = k.unsqueeze(1).expand(B, h, M, d).contiguous()
        v = v.unflatten(-1, (h, d)).transpose(1, 2)  # (B, M, e) -> (B, h, M, d)
        return q, k, v, lambda o: o.transpose(1, 2).reshape(B, N, e)  # (B, h, N, d) -> (B, N, e)
    if layout not in ("split", "pad"):
        raise ValueError(f"layout must be 'split' or 'pad', got {layout!r}")
    w = max(d, e)  # "split" with e not a multiple of d falls back to padding as well
    q, k, v = F.pad(q, (0, w - d))[:, None], F.pad(k, (0, w - d))[:, None], F.pad(v, (0, w - e))[:, None]
    return q, k, v, lambda o: o[:, 0, :, :e]  # (B, 1, N, w) -> (B, N, e)
