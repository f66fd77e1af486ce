"""Sampling tools: truncated noise, the Python sample helper, z and class interpolation, GIFs."""

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from sagan.config import ModelConfig
from sagan.models import Generator
from sagan.sampling import fixed_noise, generate, grid_size, interpolate, make_labels, sample


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="dcgan", img_channels=1, num_classes=4, z_dim=16, g_channels=4, d_channels=8, g_attn_resolutions=(16,)
    )
    return Generator(cfg).eval()


def test_truncated_noise_never_exceeds_the_threshold():
    plain = fixed_noise(500, 32, seed=3)
    assert plain.abs().max() > 2.5  # 16,000 normal draws reach beyond 2.5
    for T in (0.5, 1.0, 2.0):
        z = fixed_noise(500, 32, seed=3, truncation=T)
        assert z.abs().max() <= T and torch.equal(z, fixed_noise(500, 32, seed=3, truncation=T))
        kept = plain.abs() <= T
        assert torch.equal(z[kept], plain[kept])  # entries within the threshold are the plain draws
        assert 0.3 < z.std() / T < 0.6  # spread out over [-T, T], not piled at the edge
    with pytest.raises(ValueError, match="truncation"):
        fixed_noise(2, 4, 0, truncation=0.0)


def test_sample_helper_classes_and_truncation(G):
    x = G.sample(8, classes=2, truncation=0.5, seed=1)
    assert x.shape == (8, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    direct = generate(G, fixed_noise(8, 16, 1, 0.5), torch.full((8,), 2))
    assert torch.equal(x, direct)
    balanced = sample(G, 8, seed=1)
    assert torch.equal(balanced, generate(G, fixed_noise(8, 16, 1), make_labels(8, 4)))
    assert torch.equal(
        sample(G, 3, classes=[3, 0, 1], seed=1), generate(G, fixed_noise(3, 16, 1), torch.tensor([3, 0, 1]))
    )
    with pytest.raises(ValueError, match="labels in"):
        sample(G, 2, classes=[0, 9])


def test_interpolation_ends_are_direct_samples(G):
    frames = interpolate(G, rows=3, steps=5, mode="z", seed=7)
    assert frames.shape == (5, 3, 1, 32, 32)
    y = make_labels(3, 4)
    assert torch.equal(frames[0], generate(G, fixed_noise(3, 16, 7), y))
    assert torch.equal(frames[-1], generate(G, fixed_noise(3, 16, 8), y))
    assert not torch.equal(frames[2], frames[0]) and not torch.equal(frames[2], frames[-1])
    by_class = interpolate(G, rows=2, steps=4, mode="class", classes=(1, 3), seed=7)
    z = fixed_noise(2, 16, 7)
    torch.testing.assert_close(by_class[0], generate(G, z, torch.tensor([1, 1])), atol=1e-6, rtol=0)
    torch.testing.assert_close(by_class[-1], generate(G, z, torch.tensor([3, 3])), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="classes must be in"):
        interpolate(G, 1, 2, mode="class", classes=(0, 4))


def test_interpolate_command_writes_a_grid_and_a_gif(tmp_path):
    runner = CliRunner()
    args = ["train", "--outdir", str(tmp_path / "runs"), "--steps", "1", "--batch-size", "4", "--device", "cpu"]
    assert runner.invoke(main, [*args, "--set", "g_channels=4", "--set", "d_channels=4"]).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    grid = runner.invoke(main, ["interpolate", "--checkpoint", str(run), "--out", str(tmp_path / "i.png")])
    assert grid.exit_code == 0, grid.output
    with Image.open(tmp_path / "i.png") as im:
        assert im.size == (8 * 34 + 2, 4 * 34 + 2)  # 8 steps across, 4 rows
    args = ["interpolate", "--checkpoint", str(run), "--out", str(tmp_path / "c.gif"), "--mode", "class"]
    gif = runner.invoke(main, [*args, "--classes", "0,3", "--steps", "5", "--rows", "2"])
    assert gif.exit_code == 0, gif.output
    with Image.open(tmp_path / "c.gif") as im:
        assert im.n_frames == 5
    bad = runner.invoke(main, ["interpolate", "--checkpoint", str(run), "--out", str(tmp_path / "x.jpg")])
    assert bad.exit_code == 2 and "give a .png or .gif" in bad.output


@pytest.mark.parametrize("classes,rows", [(0, 8), (4, 8), (3, 9), (10, 10), (16, 16), (1000, 8)])
def test_sample_grids_show_every_class(classes, rows):
    """A grid has 8 images per row, one class per row, and enough rows that every class shows (up to 16 classes):
    a 10-class model's grid has 10 rows, classes 0 to 9 in order."""
    n = grid_size(classes)
    assert n == 8 * rows
    labels = make_labels(n, classes, per_row=8)
    if classes:
        assert labels.view(rows, 8).eq(labels.view(rows, 8)[:, :1]).all()  # one class per row
        assert labels.view(rows, 8)[:, 0].tolist() == [r % classes for r in range(rows)]


def test_sample_command_grid_has_a_row_per_class(tmp_path):
    """`sagan sample --out grid.png` on the shipped 10-class generator draws 80 images in 10 rows; an explicit
    --num keeps its number (8 per row)."""
    runner = CliRunner()
    result = runner.invoke(main, ["sample", "--pretrained", "fashion-mnist", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    assert "wrote 80 images" in result.output
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (8 * 34 + 2, 10 * 34 + 2)
    args = ["sample", "--pretrained", "fashion-mnist", "--num", "16", "--out", str(tmp_path / "h.png")]
    assert runner.invoke(main, args).exit_code == 0
    with Image.open(tmp_path / "h.png") as im:
        assert im.size == (8 * 34 + 2, 2 * 34 + 2)
