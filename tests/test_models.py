"""Shapes, ranges, spectral norm coverage and the projection head of G and D."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan import ConditionalBatchNorm2d, Discriminator, Generator, ModelConfig
from sagan.layers.spectral import spectrally_normalised, weighted_layers


def small(resolution, num_classes, **kw):
    attn = {32: (16,), 64: (32,), 128: (32,)}[resolution]
    return ModelConfig(
        resolution=resolution,
        num_classes=num_classes,
        z_dim=16,
        g_channels=8,
        d_channels=8,
        g_attn_resolutions=attn,
        d_attn_resolutions=attn,
        **kw,
    )


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
@pytest.mark.parametrize("resolution", [32, 64, 128])
@pytest.mark.parametrize("num_classes", [0, 5])
def test_shapes_and_ranges(resolution, num_classes, arch):
    torch.manual_seed(0)
    cfg = small(resolution, num_classes, img_channels=3 if resolution > 32 else 1, arch=arch)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(3, cfg.z_dim)
    y = torch.randint(0, num_classes, (3,)) if num_classes else None
    x = G(z, y)
    assert x.shape == (3, cfg.img_channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    logits = D(x, y)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    assert len(G.attention_layers()) == 1 and len(D.attention_layers()) == 1


def test_conditional_models_require_labels():
    cfg = small(32, 5)
    with pytest.raises(ValueError, match="conditional"):
        Generator(cfg)(torch.randn(2, 16))
    with pytest.raises(ValueError, match="conditional"):
        Discriminator(cfg)(torch.randn(2, 3, 32, 32))


def sn_targets(model, include_cbn):
    skip = (
        []
        if include_cbn
        else [e for m in model.modules() if isinstance(m, ConditionalBatchNorm2d) for e in m.embeddings()]
    )
    return weighted_layers(model, skip)


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
@pytest.mark.parametrize("cbn_sn", [False, True])
def test_every_weight_layer_is_spectrally_normalised(cbn_sn, arch):
    cfg = small(32, 5, cbn_spectral_norm=cbn_sn, arch=arch)
    for model in (Generator(cfg), Discriminator(cfg)):
        expected = sn_targets(model, include_cbn=cbn_sn or isinstance(model, Discriminator))
        got = spectrally_normalised(model)
        assert len(expected) >= 9
        assert {id(m) for m in got} == {id(m) for m in expected}
    # The attention convs and the projection embedding are among them.
    D = Discriminator(cfg)
    attn = next(iter(D.attention_layers().values()))
    assert {id(attn.query), id(attn.key), id(attn.value), id(attn.out), id(D.embed)} <= {
        id(m) for m in spectrally_normalised(D)
    }


def test_sn_switch_off_in_generator_only():
    cfg = small(32, 5, g_spectral_norm=False)
    assert spectrally_normalised(Generator(cfg)) == []
    assert len(spectrally_normalised(Discriminator(cfg))) == len(weighted_layers(Discriminator(cfg)))


@pytest.mark.parametrize("init", ["normal", "xavier", "orthogonal"])
def test_normalised_weights_have_unit_spectral_norm(init):
    torch.manual_seed(0)
    cfg = small(32, 5, init=init, cbn_spectral_norm=True)
    G, D = Generator(cfg), Discriminator(cfg)
    z, y = torch.randn(4, 16), torch.randint(0, 5, (4,))
    # Each training-mode forward runs one more power iteration. Near-degenerate spectra (xavier-uniform on
    # thin matrices) converge slowly, so give it 50; in training the weights move slowly between steps.
    with torch.no_grad():
        for _ in range(50):
            D(G(z, y), y)
    for model in (G, D):
        model.eval()
        for m in spectrally_normalised(model):
            w = m.weight.detach()
            sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
            assert abs(sigma.item() - 1.0) < 0.02, (type(m).__name__, tuple(w.shape), sigma.item())


@pytest.mark.parametrize("shape", [(6, 5), (7, 3, 3, 3)])
def test_our_spectral_norm_equals_torchs(shape):
    """`SpectralNorm` (fewer operations per call) against torch's parametrisation from the same state, in float64:
    the same vectors and normalised weights over several training-mode calls, the same gradients, eval mode
    without power iteration, double backward."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from sagan.layers.spectral import spectral_norm

    make = nn.Linear if len(shape) == 2 else (lambda i, o: nn.Conv2d(i, o, 3))
    torch.manual_seed(0)
    ours = spectral_norm(make(*shape[1::-1]).double(), n_power_iterations=2, eps=1e-9)
    theirs = torch_spectral_norm(make(*shape[1::-1]).double(), n_power_iterations=2, eps=1e-9)
    theirs.load_state_dict(ours.state_dict())  # the same keys, weights and vectors
    for _ in range(3):
        grad = torch.randn(shape, dtype=torch.float64)
        for m in (ours, theirs):
            m.zero_grad()
            (m.weight * grad).sum().backward()
        sn_ours, sn_theirs = ours.parametrizations.weight, theirs.parametrizations.weight
        torch.testing.assert_close(sn_ours[0]._u, sn_theirs[0]._u, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(sn_ours[0]._v, sn_theirs[0]._v, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(ours.weight, theirs.weight, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(sn_ours.original.grad, sn_theirs.original.grad, atol=1e-12, rtol=1e-12)
    u = ours.parametrizations.weight[0]._u.clone()
    ours.eval()
    ours.weight  # noqa: B018 (the property runs the parametrisation)
    assert torch.equal(ours.parametrizations.weight[0]._u, u)  # no power iteration outside training
    original = ours.parametrizations.weight.original
    w = original.detach().clone().requires_grad_()
    sn = ours.parametrizations.weight[0]
    assert torch.autograd.gradgradcheck(lambda t: sn(t).sin(), (w,))


@pytest.mark.parametrize("make", [lambda: nn.Linear(5, 6), lambda: nn.Conv2d(3, 7, 3), lambda: nn.Embedding(4, 9)])
def test_registering_our_spectral_norm_draws_what_torch_draws(make):
    """Registered from the same RNG state, `SpectralNorm` (our code, public APIs only) holds bit for bit the
    vectors torch's parametrisation holds (N(0, 1) draws, normalised, 15 power iterations) and the same state-dict
    keys: checkpoints and runs do not depend on which one made them."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from sagan.layers.spectral import spectral_norm

    torch.manual_seed(3)
    ours = spectral_norm(make())
    torch.manual_seed(3)
    theirs = torch_spectral_norm(make())
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(ours.weight, theirs.weight)


def test_stacked_spectral_norm_equals_torchs_per_layer():
    """The attention block's batched spectral norm of query, key and value (`stacked_spectral_norm`) against
    torch's own parametrisation on each layer from the same state, in float64: the vectors each power iteration
    leaves, the stacked normalised weights, and the gradients, over several training-mode calls; eval mode and
    `power_iteration_frozen` iterate nothing; double backward; layers without spectral norm are stacked as they are."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from sagan.layers.spectral import power_iteration_frozen, spectral_norm, stacked_spectral_norm

    torch.manual_seed(0)
    shapes = [(2, 16), (2, 16), (8, 16)]  # query and key C/8, value C/2 of C = 16, as 1x1 convs
    ours = [spectral_norm(nn.Conv2d(i, o, 1, bias=False).double(), 2, eps=1e-9) for o, i in shapes]
    theirs = [
        torch_spectral_norm(nn.Conv2d(i, o, 1, bias=False).double(), n_power_iterations=2, eps=1e-9) for o, i in shapes
    ]
    for a, b in zip(ours, theirs, strict=True):
        b.load_state_dict(a.state_dict())
    for _ in range(3):
        grad = torch.randn(12, 16, dtype=torch.float64)
        for m in ours + theirs:
            m.zero_grad()
        (stacked_spectral_norm(ours) * grad).sum().backward()
        (torch.cat([m.weight.flatten(1) for m in theirs]) * grad).sum().backward()
        for a, b in zip(ours, theirs, strict=True):
            sa, sb = a.parametrizations.weight, b.parametrizations.weight
            torch.testing.assert_close(sa[0]._u, sb[0]._u, atol=1e-12, rtol=1e-12)
            torch.testing.assert_close(sa[0]._v, sb[0]._v, atol=1e-12, rtol=1e-12)
            torch.testing.assert_close(sa.original.grad, sb.original.grad, atol=1e-12, rtol=1e-12)
    for m in theirs:
        m.eval()  # the normalised weights of the current vectors, no further iteration
    expected = torch.cat([m.weight.flatten(1) for m in theirs]).detach()
    with power_iteration_frozen(*ours):
        frozen = stacked_spectral_norm(ours)
    torch.testing.assert_close(frozen, expected, atol=1e-12, rtol=1e-12)
    for m in ours:
        m.eval()
    u = ours[0].parametrizations.weight[0]._u.clone()
    torch.testing.assert_close(stacked_spectral_norm(ours), expected, atol=1e-12, rtol=1e-12)
    assert torch.equal(ours[0].parametrizations.weight[0]._u, u)
    inputs = [m.parametrizations.weight.original for m in ours]
    from sagan.layers.spectral import _DivideBySigmas

    norms = [m.parametrizations.weight[0] for m in ours]
    u, V = torch.cat([n._u for n in norms]), torch.stack([n._v for n in norms])
    rows = torch.tensor([0, 0, 1, 1] + [2] * 8)
    w = torch.cat([x.flatten(1) for x in inputs]).detach().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda t: _DivideBySigmas.apply(t, u, V, rows).sin(), (w,))
    plain = [nn.Conv2d(16, o, 1, bias=False).double() for o, _ in shapes]
    assert torch.equal(stacked_spectral_norm(plain), torch.cat([m.weight.flatten(1) for m in plain]))


def test_sn_settings_are_passed_through():
    cfg = small(32, 0, sn_eps=1e-3, sn_power_iterations=3)
    sn = Discriminator(cfg).linear.parametrizations.weight[0]
    assert sn.eps == 1e-3 and sn.n_power_iterations == 3


def test_class_changes_d_only_through_projection():
    torch.manual_seed(0)
    cfg = small(32, 5)
    D = Discriminator(cfg).eval()
    x = torch.randn(4, 3, 32, 32)
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 0, 1])
    h = D.features(x).double()
    E = D.embed.weight.detach().double()
    expected = ((E[y1] - E[y2]) * h).sum(1)
    torch.testing.assert_close((D(x, y1) - D(x, y2)).double(), expected, atol=1e-3, rtol=1e-4)
    assert expected.abs().min() > 1e-4  # the class matters at all
    # Without the projection term, D is the linear head alone.
    lin = D.linear(D.features(x)).squeeze(1)
    torch.testing.assert_close(D(x, y1) - (D.embed(y1) * D.features(x)).sum(1), lin, atol=1e-4, rtol=1e-5)


def test_conditional_bn_starts_as_plain_bn_and_depends_on_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(6, num_classes=3)
    x = torch.randn(4, 6, 5, 5)
    plain = nn.BatchNorm2d(6, affine=False)
    torch.testing.assert_close(cbn(x, torch.tensor([0, 1, 2, 0])), plain(x))
    with torch.no_grad():
        cbn.embed_gain.weight[1] = 1.0  # class 1: gain 2
        cbn.embed_bias.weight[2] = 0.5  # class 2: bias 0.5
    out = cbn(x, torch.tensor([0, 1, 2, 0]))
    ref = plain(x)
    torch.testing.assert_close(out[1], 2 * ref[1])
    torch.testing.assert_close(out[2], ref[2] + 0.5)
    torch.testing.assert_close(out[0], ref[0])


def test_class_signal_scales_the_class_terms_of_g_and_d():
    """Transitional conditioning's class signal: at 0 G's output is the same for every class and D is its linear
    head alone; at s the class gains and biases, and the projection term, are s times their full size; at 1 the
    models are what they were (exactly), and the signal is not in the state dict (checkpoints keep their keys)."""
    torch.manual_seed(0)
    cfg = small(32, 5, img_channels=1)
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    with torch.no_grad():  # classes that matter: random gains and biases (they start at zero)
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                for e in m.embeddings():
                    e.weight.normal_(0, 0.3)
    z, x = torch.randn(4, cfg.z_dim), torch.rand(4, 1, 32, 32) * 2 - 1
    y1, y2 = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 0, 1])
    g_full, d_full = G(z, y1), D(x, y1)
    assert (G(z, y2) - g_full).abs().max() > 1e-3 and (D(x, y2) - d_full).abs().min() > 1e-4
    head = D.linear(D.features(x)).squeeze(1)
    projection = (D.embed(y1) * D.features(x)).sum(1)

    G.set_class_signal(0.0), D.set_class_signal(0.0)
    torch.testing.assert_close(G(z, y1), G(z, y2))
    torch.testing.assert_close(D(x, y1), head)

    G.set_class_signal(0.25), D.set_class_signal(0.25)
    g_quarter = G(z, y1)
    torch.testing.assert_close(D(x, y1), head + 0.25 * projection)
    G.set_class_signal(1.0), D.set_class_signal(1.0)
    assert torch.equal(G(z, y1), g_full) and torch.equal(D(x, y1), d_full)
    with torch.no_grad():  # signal 0.25 = the embeddings scaled by 0.25 at full signal
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                for e in m.embeddings():
                    e.weight.mul_(0.25)
    torch.testing.assert_close(G(z, y1), g_quarter)
    assert not any("class_signal" in k for k in [*G.state_dict(), *D.state_dict()])


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_28_px_models_start_at_7_and_keep_their_attention(arch):
    """resolution 28 (MNIST's native size): G's stages are 7, 14, 28 (linear -> 7 x 7, two up-samplings), D goes
    28 -> 14 -> 7, attention at 14 in both, and the images are 28 x 28."""
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=28, arch=arch, num_classes=3, img_channels=1, z_dim=8, g_channels=8, d_channels=8,
                      g_attn_resolutions=(14,), d_attn_resolutions=(14,))  # fmt: skip
    assert cfg.start_resolution == 7 and cfg.g_feature_resolutions() == [7, 14, 28]
    assert cfg.d_feature_resolutions()[:2] == [14, 7] and min(cfg.d_feature_resolutions()) == 7
    G, D = Generator(cfg), Discriminator(cfg)
    maps = []
    G.attention_layers()["g14"].register_forward_hook(lambda m, i, o: maps.append(o.shape[-2:]))
    D.attention_layers()["d14"].register_forward_hook(lambda m, i, o: maps.append(o.shape[-2:]))
    y = torch.tensor([0, 1, 2])
    x = G(torch.randn(3, 8), y)
    assert x.shape == (3, 1, 28, 28) and D(x, y).shape == (3,)
    assert maps == [(14, 14), (14, 14)]


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_g_start_makes_g_start_later_with_the_last_default_multipliers(arch):
    """g_start=8 at 32 px: G's stages are 8, 16, 32 (linear -> 8 x 8, two up-samplings), its default channel
    multipliers the last three of the 32 px table; D is the 32 px D; a start that does not reach the resolution by
    doublings is refused."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, num_classes=3, img_channels=1, z_dim=8, g_channels=8, d_channels=8, g_start=8,
                      g_attn_resolutions=(16,), d_attn_resolutions=(16,))  # fmt: skip
    plain = ModelConfig(arch=arch, num_classes=3, img_channels=1, z_dim=8, g_channels=8, d_channels=8,
                        g_attn_resolutions=(16,), d_attn_resolutions=(16,))  # fmt: skip
    assert cfg.start_resolution == 8 and cfg.g_feature_resolutions() == [8, 16, 32]
    assert (
        cfg.g_channel_mult == plain.g_channel_mult[1:] and cfg.d_feature_resolutions() == plain.d_feature_resolutions()
    )
    G = Generator(cfg)
    assert G.linear.out_features == 8 * cfg.g_channel_mult[0] * 8 * 8
    shapes = []
    G.blocks[0].register_forward_hook(lambda m, i, o: shapes.append(i[0].shape[-2:]))
    y = torch.tensor([0, 1, 2])
    x = G(torch.randn(3, 8), y)
    assert shapes == [(8, 8)] and x.shape == (3, 1, 32, 32) and Discriminator(cfg)(x, y).shape == (3,)
    for bad in (17, 32, 64, -8):
        with pytest.raises(ValueError, match="g_start must be from 1 to half the resolution"):
            ModelConfig(arch=arch, g_start=bad)


def test_a_g_start_that_does_not_double_up_to_the_resolution_resizes_g_images():
    """g_start=7 at 32 px: G's stages are 7, 14, 28 (the 28 px G), and its 28 px images are resized to 32 x 32
    bilinearly (as 28 px data is resized for 32 px training), differentiably; D is the 32 px D."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="dcgan", num_classes=3, img_channels=1, z_dim=8, g_channels=8, d_channels=8, g_start=7,
                      g_attn_resolutions=(14,), d_attn_resolutions=(16,))  # fmt: skip
    assert cfg.g_feature_resolutions() == [7, 14, 28] and cfg.g_output_resolution() == 28
    G = Generator(cfg)
    made = []
    G.out_conv.register_forward_hook(lambda m, i, o: made.append(o))
    y = torch.tensor([0, 1, 2])
    x = G(torch.randn(3, 8), y)
    assert made[0].shape == (3, 1, 28, 28) and x.shape == (3, 1, 32, 32)
    expected = F.interpolate(torch.tanh(made[0]), size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x, expected)
    Discriminator(cfg)(x, y).sum().backward()
    assert G.out_conv.parametrizations.weight.original.grad.abs().sum() > 0


def test_unconditional_bn_is_affine_bn():
    cbn = ConditionalBatchNorm2d(6)
    assert cbn.bn.affine and cbn.embeddings() == []


@pytest.mark.parametrize(
    "resolution,expected", [(32, [16, 8, 8, 8]), (64, [32, 16, 8, 4, 4]), (128, [64, 32, 16, 8, 4, 4])]
)
def test_d_feature_resolutions(resolution, expected):
    assert small(resolution, 0).d_feature_resolutions() == expected


def test_attention_at_several_resolutions():
    cfg = ModelConfig(
        resolution=64, g_channels=8, d_channels=8, g_attn_resolutions=(16, 32, 64), d_attn_resolutions=(8, 32)
    )
    assert list(Generator(cfg).attention_layers()) == ["g16", "g32", "g64"]
    assert list(Discriminator(cfg).attention_layers()) == ["d32", "d8"]


@pytest.mark.parametrize(
    "bad",
    [
        dict(resolution=48),  # 6 * 2**3: a valid size without default channel multipliers
        dict(resolution=36),  # 36 = 4.5 * 2**3: not s * 2**k with s in 4..7
        dict(resolution=30),
        dict(resolution=28, arch="dcgan", g_attn_resolutions=(7,), d_attn_resolutions=(14,)),  # 2x2 pooling of 7 x 7
        dict(g_attn_resolutions=(7,)),
        dict(attn_variant="x"),
        dict(init="kaiming"),
        dict(img_channels=2),
        dict(g_channel_mult=(1, 2)),
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_default_config_is_a_valid_model():
    """`ModelConfig()` with no arguments is the first line a Python user writes: it must build G and D."""
    cfg = ModelConfig()
    G, D = Generator(cfg), Discriminator(cfg)
    x = G(torch.randn(2, cfg.z_dim))
    assert x.shape == (2, 3, 32, 32) and D(x).shape == (2,)
    assert list(G.attention_layers()) == ["g32"] and list(D.attention_layers()) == ["d16"]
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="vgg")


def test_dcgan_stages_equal_their_plain_formulation():
    """The DCGAN G stage is cBN-ReLU-upsample-conv3 and the D stage conv4 stride 2 then LeakyReLU(0.1), in
    float64; D's stages double the channels down to 4 x 4 and G's halve them, as in SNGAN's standard CNN."""
    import torch.nn.functional as F

    from sagan.layers.blocks import DCDBlock, DCGBlock

    torch.manual_seed(0)
    g = DCGBlock(6, 4, num_classes=3).double().train()
    with torch.no_grad():
        g.bn.embed_gain.weight.normal_()
    x, y = torch.randn(5, 6, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    expected = g.conv(F.interpolate(F.relu(g.bn(x, y)), scale_factor=2, mode="nearest"))
    torch.testing.assert_close(g(x, y), expected, atol=1e-12, rtol=1e-12)
    d = DCDBlock(6, 4).double()
    x = torch.randn(3, 6, 8, 8, dtype=torch.float64)
    manual = F.conv2d(x, d.conv.weight, d.conv.bias, stride=2, padding=1)
    torch.testing.assert_close(d(x), torch.where(manual > 0, manual, 0.1 * manual), atol=1e-12, rtol=1e-12)
    assert DCDBlock(6, 4, downsample=False).double()(x).shape == (3, 4, 8, 8)
    cfg = ModelConfig(arch="dcgan", g_channels=8, d_channels=8, g_attn_resolutions=(16,), d_attn_resolutions=(8,))
    assert cfg.d_feature_resolutions() == [16, 8, 4]
    assert [b.conv.out_channels for b in Discriminator(cfg).blocks if isinstance(b, DCDBlock)] == [8, 16, 32]
    assert [b.conv.out_channels for b in Generator(cfg).blocks if isinstance(b, DCGBlock)] == [32, 16, 8]


def test_paper_variant_in_models():
    cfg = small(32, 0, attn_variant="paper")
    attn = next(iter(Generator(cfg).attention_layers().values()))
    assert attn.variant == "paper" and attn.value.out_channels == attn.query.out_channels


def test_resampling_folds_equal_the_textbook_order():
    """The folded up-conv, conv-pool and shortcut add compute the same linear maps as the plain compositions."""
    import torch.nn.functional as F

    from sagan.layers.blocks import add_upsampled, conv3x3_avgpool, upsample_conv3x3

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 6, 3, padding=1).double()
    for H, W in ((4, 4), (3, 6), (8, 5)):
        x = torch.randn(2, 5, H, W, dtype=torch.float64)
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        torch.testing.assert_close(upsample_conv3x3(x, conv), conv(up), atol=1e-12, rtol=1e-12)
        if H % 2 == 0 and W % 2 == 0:
            torch.testing.assert_close(conv3x3_avgpool(x, conv), F.avg_pool2d(conv(x), 2), atol=1e-12, rtol=1e-12)
        h = torch.randn(2, 5, 2 * H, 2 * W, dtype=torch.float64)
        torch.testing.assert_close(add_upsampled(h, x), h + up, atol=0, rtol=0)
    # Gradients flow to the weight and the input as through the plain composition.
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    g_fold = torch.autograd.grad(upsample_conv3x3(x, conv).square().sum(), (x, conv.weight))
    g_ref = torch.autograd.grad(conv(F.interpolate(x, scale_factor=2)).square().sum(), (x, conv.weight))
    for a, b in zip(g_fold, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_blocks_equal_the_plain_formulation():
    """GBlock and DBlock against their definition written out with upsample and pool, in float64."""
    import torch.nn.functional as F

    from sagan.layers.blocks import DBlock, GBlock

    torch.manual_seed(0)
    g = GBlock(6, 4, num_classes=3).double().train()
    x, y = torch.randn(5, 6, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        for e in (g.bn1.embed_gain, g.bn2.embed_bias):
            e.weight.normal_()
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    h = g.conv2(F.relu(g.bn2(g.conv1(up(F.relu(g.bn1(x, y)))), y)))
    torch.testing.assert_close(g(x, y), h + up(g.shortcut(x)), atol=1e-12, rtol=1e-12)
    for down, pre in ((True, False), (True, True), (False, True)):
        d = DBlock(6, 4, downsample=down, preactivation=pre).double()
        x = torch.randn(3, 6, 8, 8, dtype=torch.float64)
        h = d.conv2(F.relu(d.conv1(F.relu(x) if pre else x)))
        s = d.shortcut(x)
        expected = (F.avg_pool2d(h, 2) + F.avg_pool2d(s, 2)) if down else h + s
        torch.testing.assert_close(d(x), expected, atol=1e-12, rtol=1e-12)
