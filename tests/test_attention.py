"""SelfAttention2d against an explicit float64 formula written here from the block's own weights."""

import pytest
import torch
import torch.nn.functional as F

from sagan import SelfAttention2d
from sagan.layers.attention import explicit_attention

torch.set_default_dtype(torch.float32)


def weight(conv):
    """The effective (spectrally normalised) 1x1 conv weight as a (out, in) float64 matrix."""
    return conv.weight.detach().double()[:, :, 0, 0]


def reference(block, x):
    """SAGAN Eq. 1-3 with loops-free but transparent maths, in float64.

    f = key, g = query, h = value, v = out. s[j, i] = f(x_i) . g(x_j); beta[j] = softmax over i.
    """
    x = x.double()
    B, C, H, W = x.shape
    f = torch.einsum("oc,bchw->bohw", weight(block.key), x)
    g = torch.einsum("oc,bchw->bohw", weight(block.query), x)
    h = torch.einsum("oc,bchw->bohw", weight(block.value), x)
    if block.variant == "official":  # keys and values are 2x2 max-pooled
        f, h = F.max_pool2d(f, 2), F.max_pool2d(h, 2)
    f, h, g = f.flatten(2), h.flatten(2), g.flatten(2)  # (B, d, M), (B, e, M), (B, d, N)
    s = torch.einsum("bdi,bdj->bji", f, g)  # s[b, j, i] = f(x_i)^T g(x_j), no scaling
    beta = torch.exp(s - s.amax(-1, keepdim=True))
    beta = beta / beta.sum(-1, keepdim=True)  # normalise over attended positions i
    o = torch.einsum("bji,bei->bej", beta, h)  # sum_i beta_ji h(x_i)
    o = torch.einsum("ce,bej->bcj", weight(block.out), o).reshape(B, C, H, W)
    return x + block.gamma.detach().double() * o, beta


@pytest.fixture(params=["official", "paper"])
def block(request):
    torch.manual_seed(0)
    b = SelfAttention2d(16, variant=request.param, init="normal").eval()
    with torch.no_grad():
        b.gamma.fill_(0.7)
        for conv in (b.query, b.key, b.value, b.out):  # larger weights give a peaked, informative map
            conv.parametrizations.weight.original.mul_(30.0)
    return b


def test_widths_follow_variant():
    off, pap = SelfAttention2d(64, "official"), SelfAttention2d(64, "paper")
    assert (off.query.out_channels, off.key.out_channels, off.value.out_channels) == (8, 8, 32)
    assert (pap.query.out_channels, pap.key.out_channels, pap.value.out_channels) == (8, 8, 8)
    assert off.out.in_channels == 32 and off.out.out_channels == 64 and pap.out.in_channels == 8
    assert SelfAttention2d(64, "official", qk_ratio=4, v_ratio=4).value.out_channels == 16


def test_matches_explicit_float64_formula(block):
    x = torch.randn(2, 16, 8, 8)
    y_ref, beta_ref = reference(block, x)
    y, attn = block(x, return_attn=True)
    m = 16 if block.variant == "official" else 64
    assert attn.shape == (2, 64, m)
    assert beta_ref.std() > 1e-3  # the map is not uniform, so a wrong axis or transpose shows
    torch.testing.assert_close(attn.double(), beta_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(y.double(), y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(block(x).double(), y_ref, atol=1e-4, rtol=1e-4)  # fast path too


@pytest.mark.parametrize("block", ["paper"], indirect=True)  # square map: N queries, N keys
def test_transposed_map_would_fail(block):
    """Guard that the reference distinguishes the classic bug (softmax over the wrong axis)."""
    x = torch.randn(2, 16, 8, 8)
    _, attn = block(x, return_attn=True)
    assert not torch.allclose(attn, attn.transpose(1, 2), atol=1e-3)
    assert not torch.allclose(attn.sum(1), torch.ones(2, 64), atol=1e-3)  # columns do not sum to 1


def test_rows_sum_to_one(block):
    _, attn = block(torch.randn(3, 16, 8, 8), return_attn=True)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 64))
    assert (attn >= 0).all()


@pytest.fixture(params=["dense", "sdpa"])
def fast_route(request, monkeypatch):
    """Force the fast path's route on CPU: the materialised map, or SDPA's fused kernel (threshold 0)."""
    import sagan.layers.attention as attention

    for name in ("CPU_DENSE_MAP_BYTES", "CPU_DENSE_MAP_BYTES_BF16"):
        monkeypatch.setattr(attention, name, 2**62 if request.param == "dense" else 0)
    return request.param


def test_fast_path_equals_explicit_path(block, fast_route):
    from sagan.layers.attention import fast_path_kernel

    x = torch.randn(2, 16, 16, 16)
    kernel = fast_path_kernel(*block.qkv(x))
    assert (kernel == "dense") == (fast_route == "dense") and kernel != "MATH"  # the route under test ran
    y_fast = block(x)
    y_slow, _ = block(x, return_attn=True)
    torch.testing.assert_close(y_fast, y_slow, atol=1e-5, rtol=1e-5)


def test_float64_stays_float64(block, fast_route):
    """A float64 block matches the float64 formula to float64 precision, on both routes, and passes gradcheck."""
    block = block.double()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    y_ref, beta_ref = reference(block, x)
    y, attn = block(x, return_attn=True)
    assert attn.dtype == torch.float64
    torch.testing.assert_close(attn, beta_ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(block(x), y_ref, atol=1e-12, rtol=1e-12)
    small = torch.randn(1, 16, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: block(t), (small,))


def test_channels_last_input_gives_the_same_output_and_gradients_in_its_own_format(block, fast_route):
    """The residual's matrix product has a branch per memory format: both compute the formula, and a
    channels-last input gets a channels-last output (the next conv keeps its fast layout)."""
    block = block.double()  # eval mode: no power iteration, the same weights for both formats
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    y_ref, _ = reference(block, x)
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        xi = x.clone().contiguous(memory_format=fmt).requires_grad_()
        y = block(xi)
        assert y.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-12)
        block.zero_grad()
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        weights = [getattr(block, n).parametrizations.weight.original for n in ("query", "key", "value", "out")]
        grads.append([xi.grad, block.gamma.grad] + [w.grad for w in weights])
    for a, b in zip(*grads, strict=True):
        assert a is not None and a.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_gamma_zero_is_identity_and_gamma_gets_gradient(variant):
    torch.manual_seed(0)
    b = SelfAttention2d(16, variant)
    assert b.gamma.item() == 0.0
    x = torch.randn(2, 16, 8, 8)
    y = b(x)
    assert torch.equal(y, x)
    y.square().sum().backward()
    assert b.gamma.grad is not None and b.gamma.grad.abs() > 0


def test_attention_convs_are_spectrally_normalised():
    b = SelfAttention2d(16)
    for name in ("query", "key", "value", "out"):
        assert hasattr(getattr(b, name), "parametrizations"), name
    b = SelfAttention2d(16, spectral_norm=False)
    assert not hasattr(b.query, "parametrizations")


def test_odd_map_rejected_by_official_variant():
    with pytest.raises(ValueError, match="even"):
        SelfAttention2d(16)(torch.randn(1, 16, 7, 7))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "cl"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stable_under_autocast(block, dtype, fast_route, memory_format):
    """Under autocast both paths stay close to float32 on the attention's own output o = (y - x) / gamma (y alone
    is dominated by x), for float32 inputs and for inputs already in autocast's precision (which keep it, and
    their memory format)."""
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=memory_format)
    y32, _ = block(x, return_attn=True)
    o32 = (y32 - x) / block.gamma
    tolerance = 0.05 if dtype == torch.bfloat16 else 0.01  # of max |o|: 8 and 11 mantissa bits
    for xin in (x, x.to(dtype)):
        with torch.autocast("cpu", dtype=dtype):
            y_fast = block(xin)
            y_slow, a = block(xin, return_attn=True)
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
        assert y_fast.dtype == xin.dtype and y_fast.is_contiguous(memory_format=memory_format)
        for y in (y_fast, y_slow):
            o = (y.float() - xin.float()) / block.gamma
            assert torch.isfinite(o).all()
            assert (o - o32).abs().max() < tolerance * o32.abs().max(), (o - o32).abs().max() / o32.abs().max()


@pytest.mark.parametrize("layout", ["split", "pad"])
def test_sdpa_layouts_equal_explicit_attention(block, layout):
    from sagan.layers.attention import sdpa_attention

    q, k, v = block.qkv(torch.randn(2, 16, 16, 16))
    torch.testing.assert_close(sdpa_attention(q, k, v, layout), explicit_attention(q, k, v)[0], atol=1e-5, rtol=1e-5)


def test_large_maps_take_the_sdpa_route_and_agree(monkeypatch):
    import sagan.layers.attention as attention

    calls = []
    real = attention.sdpa_attention
    monkeypatch.setattr(attention, "sdpa_attention", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    b = SelfAttention2d(16).eval()
    with torch.no_grad():
        b.gamma.fill_(1.0)
    x = torch.randn(2, 16, 8, 8)
    small = b(x)
    assert calls == []  # a small map on CPU is materialised
    monkeypatch.setattr(attention, "CPU_DENSE_MAP_BYTES", 0)
    large = b(x)
    assert calls == [{"layout": "pad"}]
    torch.testing.assert_close(large, small, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["split", "pad"])
@pytest.mark.parametrize("variant", ["official", "paper"])
def test_sdpa_inputs_select_a_fused_kernel(variant, layout):
    """A wider value than query would make torch fall back to the math kernel (full N x M map)."""
    from torch.nn.attention import SDPBackend

    from sagan.layers.attention import prepare_sdpa

    b = SelfAttention2d(64, variant)
    q, k, v = b.qkv(torch.randn(2, 64, 16, 16))
    if variant == "official":  # value wider than query: torch alone falls back to the math kernel
        positions_first = [t.transpose(1, 2).contiguous() for t in (q, k, v)]
        assert torch._fused_sdp_choice(*positions_first, scale=1.0) == SDPBackend.MATH.value
    q, k, v, _ = prepare_sdpa(q, k, v, layout)
    assert q.shape[-1] == k.shape[-1] == v.shape[-1]
    assert torch._fused_sdp_choice(q, k, v, scale=1.0) != SDPBackend.MATH.value


def test_fast_path_kernel_report(monkeypatch):
    import sagan.layers.attention as attention

    q, k, v = SelfAttention2d(64).qkv(torch.randn(2, 64, 16, 16))
    assert attention.fast_path_kernel(q, k, v) == "dense"
    monkeypatch.setattr(attention, "CPU_DENSE_MAP_BYTES", 0)
    assert attention.fast_path_kernel(q, k, v) not in ("dense", "MATH")


@pytest.mark.parametrize(
    "d,e,N,M,B,dtype,route",
    [
        (32, 128, 1024, 256, 8, torch.float32, "dense"),  # C = 256, official, 32 x 32, batch 8: an 8 MiB map
        (8, 32, 4096, 1024, 1, torch.float32, "sdpa"),  # C = 64, official, 64 x 64: 16 MiB
        (8, 8, 256, 256, 1, torch.float32, "dense"),  # tiny
        (32, 128, 4096, 1024, 8, torch.float32, "sdpa"),  # C = 256, 64 x 64, batch 8: 128 MiB in float32
        (32, 128, 4096, 1024, 8, torch.bfloat16, "dense"),  # the same map in bf16: 64 MiB
        (32, 128, 4096, 1024, 9, torch.bfloat16, "sdpa"),  # 72 MiB in bf16
        (32, 128, 16384, 4096, 8, torch.bfloat16, "sdpa"),  # 128 x 128, batch 8: 1 GiB in bf16
    ],
)
def test_cpu_route_follows_map_size(d, e, N, M, B, dtype, route):
    from sagan.layers.attention import _dense_on_cpu

    q, k, v = (torch.empty(B, w, n, dtype=dtype) for w, n in ((d, N), (d, M), (e, M)))
    assert _dense_on_cpu(q, k, v) == (route == "dense")


def test_dense_attention_gradients_match_autograd_and_allow_double_backward():
    """DenseAttention's hand-written backward against autograd through bmm/softmax/bmm, for o and the map."""
    from sagan.layers.attention import DenseAttention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, c, n, dtype=torch.float64, requires_grad=True) for c, n in ((3, 6), (3, 4), (5, 4)))

    def reference(q, k, v):
        attn = torch.softmax(torch.einsum("bdn,bdm->bnm", q, k), dim=-1)
        return torch.einsum("bem,bnm->ben", v, attn), attn

    w_o, w_a = torch.randn(2, 5, 6, dtype=torch.float64), torch.randn(2, 6, 4, dtype=torch.float64)
    for loss in (
        lambda o, a: (o * w_o).sum(),
        lambda o, a: (a * w_a).sum(),
        lambda o, a: (o * w_o).sum() + (a * w_a).sum(),
    ):
        ours = torch.autograd.grad(loss(*DenseAttention.apply(q, k, v)), (q, k, v), allow_unused=True)
        ref = torch.autograd.grad(loss(*reference(q, k, v)), (q, k, v), allow_unused=True)
        for a, b in zip(ours, ref, strict=True):
            assert (a is None) == (b is None)  # v gets no gradient from the map alone
            if a is not None:
                torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert torch.autograd.gradcheck(lambda *t: DenseAttention.apply(*t), (q, k, v))
    assert torch.autograd.gradgradcheck(lambda *t: DenseAttention.apply(*t), (q, k, v))


@pytest.mark.parametrize("channels_last", [False, True])
def test_qkv_products_equal_the_three_convs(channels_last):
    """q, k, v as one matrix product of the stacked weights (channels last: over all positions at once) equal
    the three 1x1 convs and the 2x2 max-pool of the textbook block, in float64, gradients included."""
    torch.manual_seed(0)
    block = SelfAttention2d(16, "official").double()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    x = (x.contiguous(memory_format=torch.channels_last) if channels_last else x).requires_grad_()
    q, k, v = block.qkv(x)
    block.eval()  # the same normalised weights, without another power iteration
    x_ref = x.detach().clone().requires_grad_()
    q_ref = F.conv2d(x_ref, block.query.weight).flatten(2)
    k_ref = F.max_pool2d(F.conv2d(x_ref, block.key.weight), 2).flatten(2)
    v_ref = F.max_pool2d(F.conv2d(x_ref, block.value.weight), 2).flatten(2)
    for ours, ref in ((q, q_ref), (k, k_ref), (v, v_ref)):
        torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-12)
    (q.sum() + (k * 2).sum() + (v * 3).sum()).backward()
    (q_ref.sum() + (k_ref * 2).sum() + (v_ref * 3).sum()).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-12, rtol=1e-12)


def test_softmax_backward_is_the_formula():
    """`softmax_backward` (torch's private fused kernel) equals attn * (grad - sum(grad * attn)) in float64, with
    its own gradient (double backward); this fails, not skips, on a torch that changed or dropped the kernel."""
    from sagan.layers.attention import softmax_backward

    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(2, 5, 7, dtype=torch.float64), -1).requires_grad_()
    grad = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    expected = attn * (grad - (grad * attn).sum(-1, keepdim=True))
    torch.testing.assert_close(softmax_backward(grad, attn), expected, atol=1e-14, rtol=1e-12)
    assert torch.autograd.gradcheck(softmax_backward, (grad, attn))
