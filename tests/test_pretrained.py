"""The generator shipped with the package: it loads offline, matches its recorded hash, and draws every class."""

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import sagan
from sagan.cli import main
from sagan.data.datasets import load_dataset
from sagan.model_files.pretrained import SHIPPED, SHIPPED_ROOT, verify_shipped
from sagan.safe_files import file_sha256


def test_shipped_files_match_their_recorded_hash():
    assert "fashion-mnist" in SHIPPED
    for name, digest in SHIPPED.items():
        weights = SHIPPED_ROOT / name / "model.safetensors"
        assert weights.is_file(), f"{weights} is missing from the package"
        assert file_sha256(weights) == digest
        assert verify_shipped(name) == SHIPPED_ROOT / name


@pytest.mark.parametrize(("name", "size"), [("fashion-mnist", 32), ("fashion-mnist-28", 28)])
def test_shipped_conditional_generators_draw_each_class_recognisably(fashion_mnist_root, name, size):
    """For every class k, the mean of 100 samples of class k is nearer (L2) to the mean real test image of class
    k (at the generator's size) than to that of any other class: the generator draws what its labels ask for."""
    G = sagan.load_generator(name)
    assert G.cfg.num_classes == 10 and G.cfg.img_channels == 1 and G.attention_layers()
    assert G.cfg.resolution == size
    test = load_dataset("fashion-mnist", size, 1, str(fashion_mnist_root), train=False)
    real_means = torch.stack([test.images[test.labels == k].float().mean(0) / 127.5 - 1 for k in range(10)])
    for k in range(10):
        fake_mean = G.sample(100, classes=k, seed=k).mean(0)
        distances = (real_means - fake_mean).flatten(1).norm(dim=1)
        assert distances.argmin().item() == k, (k, distances.tolist())


def test_sample_pretrained_from_the_command_line(tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["sample", "--pretrained", "fashion-mnist", "--out", str(out), "--num", "20"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size == (8 * 34 + 2, 3 * 34 + 2)
    result = CliRunner().invoke(main, ["attention", "--pretrained", "fashion-mnist", "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output


def test_a_damaged_shipped_file_is_detected(tmp_path, monkeypatch):
    import sagan.model_files.pretrained as pretrained

    copy = tmp_path / "fashion-mnist"
    copy.mkdir()
    for f in ("config.json", "model.safetensors"):
        (copy / f).write_bytes((SHIPPED_ROOT / "fashion-mnist" / f).read_bytes())
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    monkeypatch.setattr(pretrained, "SHIPPED_ROOT", tmp_path)
    with pytest.raises(sagan.errors.SaganError, match="SHA-256"):
        verify_shipped("fashion-mnist")


@pytest.mark.parametrize(("name", "size"), [("fashion-mnist-uncond", 32), ("fashion-mnist-28-uncond", 28)])
def test_shipped_unconditional_generators_spread_over_every_class(fashion_mnist_root, name, size):
    """An unconditional generator takes no labels, yet its samples should cover all ten garments: each of 500
    samples goes to the class whose mean real test image (at the generator's size) is nearest (L2), and every class
    must get at least 2% of them (500 real test images split 5-15% per class this way; a generator collapsed onto a
    few garments leaves classes empty)."""
    G = sagan.load_generator(name)
    assert G.cfg.num_classes == 0 and G.cfg.img_channels == 1 and G.attention_layers()
    test = load_dataset("fashion-mnist", size, 1, str(fashion_mnist_root), train=False)
    real_means = torch.stack([test.images[test.labels == k].float().mean(0) / 127.5 - 1 for k in range(10)])
    fakes = G.sample(500, seed=0)
    assert fakes.shape == (500, 1, size, size) and torch.isfinite(fakes).all()
    nearest = torch.cdist(fakes.flatten(1), real_means.flatten(1)).argmin(1)
    counts = torch.bincount(nearest, minlength=10)
    assert (counts >= 10).all(), counts.tolist()
