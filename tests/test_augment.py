"""DiffAugment, the LeCam regulariser and gradient accumulation, against formulas written here."""

import pytest
import torch

from sagan.augment import color, cutout, diff_augment, parse_policy, translation
from sagan.config import ModelConfig, TrainConfig
from sagan.losses import lecam
from sagan.training.trainer import Trainer


def test_off_is_the_identity_and_policies_parse():
    x = torch.randn(2, 3, 8, 8)
    assert diff_augment(x, ()) is x and parse_policy("") == ()
    assert parse_policy("translation, cutout,color") == ("translation", "cutout", "color")
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        parse_policy("flip")
    with pytest.raises(ValueError, match="unknown augmentation"):
        TrainConfig(augment="zoom")


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ("translation", "cutout", "color")])
def test_augmentation_is_differentiable(policy):
    """gradcheck in float64, with the same random draws at every evaluation (a generator seeded per call)."""
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: diff_augment(t, policy, torch.Generator().manual_seed(1)), (x,))


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zeros_shifted_in():
    torch.manual_seed(0)
    x = torch.rand(16, 2, 32, 32) + 1  # no zeros inside the images
    out = translation(x, torch.Generator().manual_seed(2))
    shifts = set()
    for i in range(16):
        matches = []
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                shifted = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy) : 32 - max(0, dy), max(0, -dx) : 32 - max(0, dx)]
                shifted[:, max(0, dy) : 32 - max(0, -dy), max(0, dx) : 32 - max(0, -dx)] = src
                if torch.equal(out[i], shifted):
                    matches.append((dy, dx))
        assert len(matches) == 1, i
        shifts.add(matches[0])
    assert len(shifts) > 4  # each image its own shift


def test_cutout_zeroes_one_half_size_square_and_keeps_the_rest():
    x = torch.rand(32, 1, 16, 16) + 1
    out = cutout(x, torch.Generator().manual_seed(3))
    for i in range(32):
        zero = out[i, 0] == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert len(rows) <= 8 and len(cols) <= 8 and zero.sum() == len(rows) * len(cols)  # a (clipped) square
        assert torch.equal(out[i, 0][~zero], x[i, 0][~zero])
    assert (out == 0).float().mean() > 0.15  # about a quarter of the pixels, less where clipped


def test_color_is_brightness_saturation_contrast_with_its_draws():
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    out = color(x, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    b, s, c = (torch.rand(4, 1, 1, 1, generator=g) for _ in range(3))
    y = x + (b - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (2 * s) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (c + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, y)


def test_lecam_matches_its_formula():
    torch.manual_seed(0)
    d_real, d_fake = torch.randn(7), torch.randn(5)
    a_real, a_fake = torch.tensor(0.3), torch.tensor(-0.2)
    expected = sum(max(r - a_fake.item(), 0.0) ** 2 for r in d_real.tolist()) / 7
    expected += sum(max(a_real.item() - f, 0.0) ** 2 for f in d_fake.tolist()) / 5
    assert lecam(d_real, d_fake, a_real, a_fake).item() == pytest.approx(expected, rel=1e-6)


def _trainer(**train):
    cfg = ModelConfig(num_classes=3, z_dim=8, g_channels=4, d_channels=4, g_attn_resolutions=(16,))
    train.setdefault("amp", "none")  # fp32: the equivalences below are to float rounding, not bf16's
    t = Trainer(cfg, TrainConfig(batch_size=8, seed=1, **train), torch.device("cpu"))
    t.wrap()
    t.G.eval()  # G's BatchNorm from running statistics: fakes do not depend on the micro-batch size
    return t


def test_accumulated_d_steps_equal_one_step_of_the_whole_batch(monkeypatch):
    """K micro-batches of B/K give D the update of one batch of B (D has no batch norm; spectral norm's power
    iteration runs once per update), to float rounding. Plain SGD stands in for Adam, which would turn rounding
    noise on zero-gradient weights into whole learning-rate steps (see tests/distributed_worker.PlainSGD)."""
    from tests.distributed_worker import PlainSGD

    monkeypatch.setattr(torch.optim, "Adam", PlainSGD)
    x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randint(0, 3, (8,))
    whole, parts = _trainer(), _trainer(grad_accumulation=4)
    for t in (whole, parts):
        for _ in range(2):
            stats = t.d_step(x, y)
        t.stats = stats
    for k, v in whole.D.state_dict().items():
        torch.testing.assert_close(parts.D.state_dict()[k], v, atol=1e-6, rtol=1e-5, msg=k)
    torch.testing.assert_close(parts.stats, whole.stats, atol=1e-6, rtol=1e-5)
    assert not torch.equal(_trainer().D.state_dict()["linear.bias"], whole.D.state_dict()["linear.bias"])
    with pytest.raises(ValueError, match="does not divide into grad_accumulation 3"):
        _trainer(grad_accumulation=3)


def test_real_and_fake_get_independent_augmentations_and_lecam_tracks_d(monkeypatch):
    import sagan.training.trainer

    calls = []
    real_augment = sagan.training.trainer.diff_augment

    def recording(x, policy, generator):
        out = real_augment(x, policy, generator)
        calls.append((x.detach().clone(), out.detach().clone()))
        return out

    monkeypatch.setattr(sagan.training.trainer, "diff_augment", recording)
    t = _trainer(augment="cutout", lecam_weight=0.5)
    x, y = torch.rand(8, 3, 32, 32) + 0.5, torch.randint(0, 3, (8,))  # no zeros in real images
    stats = t.d_step(x, y)
    (xr_in, xr_out), (xf_in, xf_out) = calls
    assert torch.equal(xr_in, x)
    cut_real = (xr_out == 0) & (xr_in != 0)
    cut_fake = (xf_out == 0) & (xf_in != 0)
    assert cut_real.any() and cut_fake.any() and not torch.equal(cut_real, cut_fake)
    # The first step starts the averages at its own means (the first micro-batch's), then decays towards them.
    torch.testing.assert_close(t.lecam_ema, stats[1:])
    before = t.lecam_ema.clone()
    stats = t.d_step(x, y)
    torch.testing.assert_close(t.lecam_ema, 0.99 * before + 0.01 * stats[1:])
    assert t.lecam_steps == 2 and t.state_dict()["lecam"]["steps"] == 2
