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

from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan.layers.spectral import apply_spectral_norm, autocast_dtype, init_weights, stacked_spectral_norm
from sagan.layers.spectral import autocast_enabled as _autocast_enabled


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
        """Project x: (B, C, H, W) to q: (B, d_qk, N), k: (B, d_qk, M), v: (B, d_v, M); M = N/4 if pooled.

        One 1x1 conv with the three (spectrally normalised) weights stacked computes q, k and v together, and
        one 2x2 max-pool pools k and v together: the same linear maps as three convs and two pools, in one
        larger matrix product that reads x once (and one for its gradient). Their spectral norms run batched
        (`stacked_spectral_norm`: one power iteration and one division for the three). Channels first, as the
        conv produces them: the slices and the flattening of the positions are views, no copy.
        """
        if self.pool and (x.shape[-2] % 2 or x.shape[-1] % 2):
            raise ValueError(f"the official variant pools 2x2 and needs even H and W, got {tuple(x.shape[-2:])}")
        d = self.query.out_channels
        w = stacked_spectral_norm([self.query, self.key, self.value])  # (2 d + d_v, C)
        qkv = _conv1x1(x, w.to(x.dtype) if _autocast_enabled(x.device.type) else w)
        q, kv = qkv[:, :d], qkv[:, d:]
        if self.pool:
            kv = F.max_pool2d(kv, 2)
        return q.flatten(2), kv[:, :d].flatten(2), kv[:, d:].flatten(2)

    def residual(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """y = x + gamma * out(o) for o: (B, d_v, N), in the memory format of x.

        One matrix product that accumulates into x (`baddbmm` per sample for NCHW, `addmm` over all positions for
        channels last) with gamma folded into the out weight, instead of a conv, a scaling and an addition over the
        whole map. Under autocast the product runs in autocast's precision, as the conv would, and accumulates into
        x where x is in that precision too (else it is added to x in x's precision, as autocast's addition would).
        Measured on 2 CPU cores, bf16: 0.8x the block's fwd+bwd time of the conv, scaling and addition.
        """
        B, C, H, W = x.shape
        if not (x.is_contiguous() or _channels_last(x)):
            return x + self.gamma * self.out(o.reshape(B, -1, H, W))
        w = self.gamma * self.out.weight.flatten(1)  # (C, d_v), float32 under autocast (spectral norm's precision)
        if not _autocast_enabled(x.device.type):
            return _accumulate(x, o, w.to(o.dtype))
        low = autocast_dtype(x.device.type)
        with torch.autocast(x.device.type, enabled=False):
            if x.dtype == low:
                return _accumulate(x, o.to(low), w.to(low))
            return x + _accumulate(torch.zeros_like(x, dtype=low), o.to(low), w.to(low)).to(x.dtype)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """x: (B, C, H, W) -> y: (B, C, H, W); with return_attn also the map (B, N, M), rows summing to 1.

        Without return_attn the fast path runs (`fast_attention`); with it, the explicit path.
        """
        q, k, v = self.qkv(x)
        if return_attn:
            o, attn = explicit_attention(q, k, v)
        else:
            o = fast_attention(q, k, v)
        y = self.residual(x, o)
        return (y, attn) if return_attn else y


def _accumulate(x: torch.Tensor, o: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x + w @ o at every position, in the memory format of x (contiguous or channels last): x (B, C, H, W),
    o (B, e, N), w (C, e), all of one dtype."""
    B, C, H, W = x.shape
    if x.is_contiguous():  # NCHW: y (B, C, N) = x + w @ o
        return torch.baddbmm(x.view(B, C, H * W), w.expand(B, -1, -1), o).view(B, C, H, W)
    # Channels last: y^T (B N, C) = x^T + o^T @ w^T over all positions of the batch in one matrix product (o^T is
    # copied, x^T is a view), a channels-last view of (B, C, H, W). Measured fwd+bwd on 2 CPU cores: 0.6-0.9x the
    # time of the per-sample products for N <= 256, within a few % above.
    o_t = o.transpose(1, 2).reshape(B * H * W, -1)
    y_t = torch.addmm(x.permute(0, 2, 3, 1).reshape(B * H * W, C), o_t, w.t())
    return y_t.view(B, H, W, C).permute(0, 3, 1, 2)


def _conv1x1(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv without bias as one matrix product, (B, C, H, W) -> (B, R, H, W) in the memory format of x:
    channels last, all positions of the batch at once, (B H W, C) @ (C, R); else per sample, (R, C) @ (B, C, N).
    On CPU the convolution's backward costs several times its forward at the attention block's small maps
    (profiled: 0.87 ms of a 3.9 ms fwd+bwd at 8 x 8, batch 8, C = 64)."""
    B, C, H, W = x.shape
    if _channels_last(x):
        y_t = x.permute(0, 2, 3, 1).reshape(B * H * W, C) @ w.t()  # a view of x, no copy
        return y_t.view(B, H, W, -1).permute(0, 3, 1, 2)
    if not x.is_contiguous():
        x = x.contiguous()
    return torch.matmul(w, x.view(B, C, H * W)).view(B, -1, H, W)


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lift: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with the map materialised, channels first: q (B, d, N), k (B, d, M), v (B, e, M) ->
    o (B, e, N) with o[:, :, j] = sum_i attn[:, j, i] v[:, :, i], and attn (B, N, M) = softmax over i of q_j . k_i.

    With `lift` (the explicit path) bf16/fp16 inputs are lifted to float32 first, so the logits cannot overflow or
    lose precision and the map is float32; without it (the fast path) everything runs in the inputs' precision,
    as autocast runs it on CPU (the softmax kernels accumulate in float32 either way). float64 stays float64.
    Both outputs are differentiable (`DenseAttention`).
    """
    low = v.dtype
    if lift:
        dtype = torch.promote_types(q.dtype, torch.float32)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    # This function picks its own precisions; entering autocast's off switch costs more than checking for it.
    guard = torch.autocast(q.device.type, enabled=False) if _autocast_enabled(q.device.type) else nullcontext()
    with guard:
        o, attn = DenseAttention.apply(q, k, v)
    return o.to(low), attn


def softmax_backward(grad: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """The gradient through a softmax over the last dim with output `attn`: attn * (grad - sum(grad * attn)).

    torch's fused kernel, the private `torch._softmax_backward_data`: one pass over the N x M map where the formula
    takes four, 0.3x its time on 2 CPU cores for a (128, 256, 64) map. Its only use is here; a test checks it
    against the formula and fails, not skips, on a torch that changed it, and pyproject bounds torch to versions
    the suite passed on. Differentiable (double backward works)."""
    return torch._softmax_backward_data(grad, attn, -1, attn.dtype)


class DenseAttention(torch.autograd.Function):
    """o = v attn^T with attn = softmax(q^T k) over its last dim; q (B, d, N), k (B, d, M), v (B, e, M).

    All in the inputs' dtype. The maths of autograd through bmm, softmax, bmm, with a backward that takes every
    operand in the layout it is stored in: autograd's own backward brings the N x M gradient back transposed,
    and the softmax backward then copies it (measured on CPU, fwd+bwd: 0.58-0.95x the time of the usual
    formulation). The backward is made of differentiable ops, so double backward (gradient penalties) works.
    """

    @staticmethod
    def forward(ctx, q, k, v):
        logits = torch.bmm(q.transpose(1, 2), k)  # (B, N, M), unscaled as in SAGAN
        attn = torch.softmax(logits, dim=-1)
        ctx.save_for_backward(q, k, v, attn)
        ctx.set_materialize_grads(False)  # an unused map gets None, not an N x M tensor of zeros
        return torch.bmm(v, attn.transpose(1, 2)), attn  # (B, e, M) @ (B, M, N) -> (B, e, N)

    @staticmethod
    def backward(ctx, grad_o, grad_attn):
        q, k, v, attn = ctx.saved_tensors
        guard = torch.autocast(q.device.type, enabled=False) if _autocast_enabled(q.device.type) else nullcontext()
        with guard:
            grad_v, grad_map = None, grad_attn
            if grad_o is not None:
                grad_v = torch.bmm(grad_o, attn)  # (B, e, N) @ (B, N, M) -> (B, e, M)
                from_o = torch.bmm(grad_o.transpose(1, 2), v)  # (B, N, e) @ (B, e, M) -> (B, N, M), contiguous
                grad_map = from_o if grad_map is None else from_o + grad_map
            if grad_map is None:
                return None, None, None
            grad_s = softmax_backward(grad_map, attn)  # (B, N, M)
            grad_q = torch.bmm(k, grad_s.transpose(1, 2))  # (B, d, M) @ (B, M, N) -> (B, d, N)
            grad_k = torch.bmm(q, grad_s)  # (B, d, N) @ (B, N, M) -> (B, d, M)
        return grad_q, grad_k, grad_v


# On CPU, maps of at most this many bytes (float32, all of the batch) are materialised by `DenseAttention`; larger
# ones go to SDPA's fused kernel, which never stores the map. Measured fwd+bwd on 2 cores (benchmarks/attention.py
# and the commit that set this): the fused kernel took 0.88-1.06x the dense time for maps of 1-16 MiB with heads
# up to 64 wide, but 1.15-1.3x for the official variant at C = 256 (its value, hence its padded head, is 128
# wide) below 8 MiB. Above 8 MiB it is never more than 1.06x slower, and it saves the map's memory.
CPU_DENSE_MAP_BYTES = 8 * 2**20
# bf16 maps (bytes at 2 per entry) up to this size are materialised too: at 64 x 64, C = 256, batch 8 (a 64 MiB
# bf16 map) the materialised route took 360 ms fwd+bwd against the fused kernel's 467 and the peers' bmm + softmax
# 447 (2 AMD EPYC cores with AVX512-BF16, benchmarks/attention.py, docs/benchmarks.md); at 128 x 128 (1 GiB) the
# fused kernel stays: 0.78x the peers' time and a tenth of their memory.
CPU_DENSE_MAP_BYTES_BF16 = 64 * 2**20


def _dense_on_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """True where `fast_attention` materialises the map: on CPU, for maps of at most CPU_DENSE_MAP_BYTES (at 4
    bytes per entry), or CPU_DENSE_MAP_BYTES_BF16 for bf16 inputs (at 2 bytes per entry)."""
    entries = q.shape[0] * q.shape[-1] * k.shape[-1]
    if q.device.type != "cpu":
        return False
    if q.dtype == torch.bfloat16:
        return entries * 2 <= CPU_DENSE_MAP_BYTES_BF16
    return entries * 4 <= CPU_DENSE_MAP_BYTES


def fast_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention without returning the map; shapes as in explicit_attention.

    CPU: maps up to CPU_DENSE_MAP_BYTES (CPU_DENSE_MAP_BYTES_BF16 in bf16) materialised (explicit_attention),
    larger ones through SDPA on zero-padded inputs (`layout="pad"`). GPU and others: SDPA with the value split into
    heads of the query width (`layout="split"`).
    """
    if _dense_on_cpu(q, k, v):
        return explicit_attention(q, k, v, lift=False)[0]
    return sdpa_attention(q, k, v, layout="pad" if q.device.type == "cpu" else "split")


def fast_path_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str:
    """Which kernel `fast_attention` runs for these inputs: "dense" (materialised) or torch's SDPA backend name.

    For reports (benchmarks, tests) only: torch tells its choice through the private `torch._fused_sdp_choice`
    alone; a test fails, not skips, on a torch that changed it."""
    if _dense_on_cpu(q, k, v):
        return "dense"
    q, k, v, _ = prepare_sdpa(q, k, v, "pad" if q.device.type == "cpu" else "split")
    from torch.nn.attention import SDPBackend

    choice = torch._fused_sdp_choice(q, k, v, scale=1.0)
    return next(b.name for b in (getattr(SDPBackend, n) for n in dir(SDPBackend) if n.isupper()) if b.value == choice)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str = "split") -> torch.Tensor:
    """Attention through `F.scaled_dot_product_attention` with scale=1; shapes as in explicit_attention.

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
    """SDPA inputs (B, heads, positions, w) for `layout` ("split" or "pad") from channels-first q, k, v, and a
    function mapping SDPA's output back to (B, e, N).

    Fused kernels need a unit stride in the last dim (the channels), so q, k and v are copied once into
    positions-first layout: small next to the N x M map that the fused kernels avoid.
    """
    B, d, N = q.shape
    e, M = v.shape[1], k.shape[-1]
    if layout not in ("split", "pad"):
        raise ValueError(f"layout must be 'split' or 'pad', got {layout!r}")
    q, k, v = (t.transpose(1, 2).contiguous() for t in (q, k, v))  # (B, N, d), (B, M, d), (B, M, e)
    if layout == "split" and e % d == 0:
        h = e // d
        # (B, h, N, d): q and k repeated per head. Materialised (B * N * e values, small next to the N x M map)
        # rather than stride-0 views, so that GPU kernels' stride checks cannot send them to the math kernel.
        q = q.unsqueeze(1).expand(B, h, N, d).contiguous()
        k = k.unsqueeze(1).expand(B, h, M, d).contiguous()
        v = v.unflatten(-1, (h, d)).transpose(1, 2)  # (B, M, e) -> (B, h, M, d)
        return q, k, v, lambda o: o.transpose(2, 3).reshape(B, e, N)  # (B, h, N, d) -> (B, h, d, N) -> (B, e, N)
    w = max(d, e)  # "split" with e not a multiple of d falls back to padding as well
    q, k, v = F.pad(q, (0, w - d))[:, None], F.pad(k, (0, w - d))[:, None], F.pad(v, (0, w - e))[:, None]
    return q, k, v, lambda o: o[:, 0, :, :e].transpose(1, 2)  # (B, 1, N, w) -> (B, e, N)
