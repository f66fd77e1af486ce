"""The Inception feature extractor behind FID/KID (`sagan.metrics.inception`, `sagan.metrics.inception_fused`):
the fused network against the TorchScript module and torch-fidelity's network, TF1's resize, bf16, devices and
batching, on real weights and real data (no mocks)."""

import pytest
import torch

from sagan.data.datasets import load_dataset
from sagan.data.shapes import ShapesDataset
from sagan.metrics.inception import Inception, to_uint8
from sagan.metrics.scores import fid_from_features

# Real weights, real data. Inception runs at a few images/s on 2 CPU cores, so the sets are small and
# shared across tests; FID from 100 samples is strongly biased upward, which the thresholds allow for.
N = 100


@pytest.fixture(scope="module")
def real_features(inception_torchscript, fashion_mnist_root):
    inc = Inception(str(inception_torchscript))
    fm = load_dataset("fashion-mnist", 32, 1, str(fashion_mnist_root))
    fm_a = to_uint8(torch.stack([fm[i][0] for i in range(N)]))
    fm_b = to_uint8(torch.stack([fm[i][0] for i in range(N, 2 * N)]))
    shapes = to_uint8(torch.stack([ShapesDataset(32)[i][0] for i in range(N)]))
    feats = {
        name: inc.features(x.split(25))["2048"] for name, x in (("fm_a", fm_a), ("fm_b", fm_b), ("shapes", shapes))
    }
    return inc, fm_a, feats


def test_fid_on_real_data_with_real_weights(real_features):
    _, _, f = real_features
    same = fid_from_features(f["fm_a"], f["fm_b"])
    different = fid_from_features(f["fm_a"], f["shapes"])
    print(f"FID fashion-mnist halves ({N} vs {N}): {same:.1f}; fashion-mnist vs shapes: {different:.1f}")
    assert 0 < same < 0.4 * different
    assert different > 150


def test_fast_network_equals_the_torchscript_module_run_as_is(real_features, inception_torchscript):
    """Our network (the TorchScript file's tensors mapped onto torch-fidelity's blocks, then fused for inference)
    gives the features of the TorchScript module itself, on real images."""
    from sagan.metrics.inception import TorchScriptPool3, _load_torchscript
    from sagan.metrics.inception_fused import FusedInceptionV3

    inc, fm_a, f = real_features
    assert isinstance(inc.net, FusedInceptionV3) and inc.id.endswith("-v3") and inc.precision == "fp32"
    as_is = TorchScriptPool3(_load_torchscript(inception_torchscript))
    with torch.no_grad():
        reference = torch.cat([as_is(x.expand(-1, 3, -1, -1))["2048"] for x in fm_a[:40].split(20)]).double()
    torch.testing.assert_close(f["fm_a"][:40], reference, atol=1e-4, rtol=1e-4)
    assert reference.abs().max() > 1  # real activations, not zeros


@pytest.mark.parametrize("size", [(40, 40), (28, 28), (311, 305)])
def test_fused_network_keeps_the_network_function(size):
    """The fused network (batch norm folded, input scaling folded, 1x1 convolutions stacked, average pools moved
    after their convolution, the resize as matrices) equals torch-fidelity's network with batch norm, blocks
    as torch-fidelity writes them: random weights and statistics, eval mode, up- and downsampled inputs. The
    weights keep the signal's scale through the 94 layers (He init), so that the features depend on the input."""
    import copy

    from sagan.metrics.inception import InceptionV3
    from sagan.metrics.inception_fused import FusedInceptionV3

    torch.manual_seed(0)
    net = InceptionV3(with_logits=True).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        x = (torch.rand(2, 3, *size) * 255).to(torch.uint8)
        plain = net(x)
        fused_net = FusedInceptionV3(copy.deepcopy(net))
        fused = fused_net(x)
        assert (net(x.flip(-1))["2048"] - plain["2048"]).abs().max() > 0.05  # the input matters
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused_net.modules())
    for k in ("2048", "logits_unbiased"):
        torch.testing.assert_close(fused[k], plain[k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size_in,size_out", [((32, 32), (299, 299)), ((28, 41), (299, 299)), ((320, 7), (299, 13))])
def test_resize_matrices_equal_tensorflow_bilinear(size_in, size_out):
    """TF1's bilinear resize as two matrix products equals torch-fidelity's gather-and-lerp implementation."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    from sagan.metrics.inception_fused import tf1_resize_matrix

    torch.manual_seed(0)
    x = torch.rand(2, 3, *size_in) * 255
    expected = interpolate_bilinear_2d_like_tensorflow1x(x, size=size_out, align_corners=False)
    rows, cols = tf1_resize_matrix(size_in[0], size_out[0]), tf1_resize_matrix(size_in[1], size_out[1])
    torch.testing.assert_close(rows @ x @ cols.t(), expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(rows.sum(1), torch.ones(size_out[0]))  # interpolation weights sum to 1


def test_bf16_features_run_in_bf16_and_stay_close(real_features, inception_torchscript):
    """precision="bf16" runs the convolutions in bf16 (a hook sees bf16 activations), keeps its own cache key,
    and its features stay close to fp32's: the FID between the two feature sets of the same 100 images is
    small next to the FID between two halves of the real data."""
    inc, fm_a, f = real_features
    low = Inception(str(inception_torchscript), precision="bf16")
    assert low.id != inc.id and low.id.endswith("-bf16") and low.precision == "bf16"
    seen = []
    hook = low.net.stages[3].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    feats = low.features(fm_a.split(25))["2048"]
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert feats.dtype == torch.float64 and feats.shape == f["fm_a"].shape
    rel = ((feats - f["fm_a"]).abs().mean() / f["fm_a"].abs().mean()).item()
    shift = fid_from_features(feats, f["fm_a"])
    halves = fid_from_features(f["fm_a"], f["fm_b"])
    print(f"bf16 vs fp32 features: relative deviation {rel:.4f}, FID between them {shift:.3f}, halves {halves:.1f}")
    assert 0 < rel < 0.15  # measured 0.070 (2026-12-06, AMD EPYC with AVX512-BF16): bf16 through 94 layers
    assert shift < 0.05 * halves  # measured 1.8 against 99.8


def test_extractor_lives_on_the_device_asked_for(inception_torchscript):
    from sagan.metrics.inception import Inception

    inc = Inception(str(inception_torchscript), device="cpu")
    assert inc.device == torch.device("cpu")
    assert {p.device for p in inc.net.parameters()} == {torch.device("cpu")}


def test_batch_size_does_not_change_features(real_features):
    inc, fm_a, f = real_features
    other = inc.features(fm_a[:30].split(7))["2048"]
    torch.testing.assert_close(other, f["fm_a"][:30], atol=1e-4, rtol=1e-4)
