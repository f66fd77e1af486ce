"""Checkpoints, exports and pretrained folders: what is written, what loads, and one-line errors."""

import sys

import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from sagan.config import ModelConfig
from sagan.model_files.checkpoints import load_checkpoint
from sagan.model_files.loading import load_generator
from sagan.models import Generator
from tests.conftest import only_run, run_cli, tiny_args


def test_sample_and_export(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    run_cli(["sample", "--checkpoint", str(run), "--num", "6", "--out", str(tmp_path / "grid.png"), "--seed", "1"])
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (6 * 34 + 2, 34 + 2)
    run_cli(["sample", "--checkpoint", str(run), "--num", "5", "--out", str(tmp_path / "pngs"), "--class", "2"])
    files = sorted((tmp_path / "pngs").iterdir())
    assert len(files) == 5 and all(f.name.endswith("_c2.png") for f in files)
    run_cli(["export", "--checkpoint", str(run), "--out", str(tmp_path / "g.safetensors")])
    assert (tmp_path / "g.json").is_file()
    z = torch.randn(3, 8)
    y = torch.tensor([0, 1, 2])
    from_ckpt = load_generator(run)(z, y)
    from_st = load_generator(tmp_path / "g.safetensors")(z, y)
    assert torch.equal(from_ckpt, from_st)
    ckpt = load_checkpoint(run)
    G = Generator(ModelConfig(**ckpt["config"]["model"]))
    G.load_state_dict(ckpt["G_ema"])
    assert torch.equal(G.eval()(z, y), from_ckpt)  # the EMA generator is what gets exported


def test_pretrained_folder_round_trip(tmp_path):
    """export --format pretrained writes config.json + model.safetensors (the Hub layout) holding the EMA
    generator and D; every command and the Python API load it by path, with the same weights as the run."""
    import json

    import sagan
    from sagan.model_files.loading import load_discriminator

    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    out = tmp_path / "pre"
    run_cli(["export", "--checkpoint", str(run), "--format", "pretrained", "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "sagan-pretrained" and config["step"] == 2 and config["data"] == "shapes"
    assert config["parts"] == ["G", "D"]
    ckpt = load_checkpoint(run)
    G, D = sagan.load_generator(out), load_discriminator(out)
    for model, state in ((G, ckpt["G_ema"]), (D, ckpt["D"])):
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
    z, y = torch.randn(3, 8), torch.tensor([0, 1, 2])
    assert torch.equal(G(z, y), load_generator(run)(z, y))
    run_cli(["sample", "--pretrained", str(out), "--num", "16", "--out", str(tmp_path / "grid.png")])
    run_cli(["attention", "--pretrained", str(out), "--out", str(tmp_path / "attn.png"), "--num", "1"])
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(run), "--pretrained", str(out), "--out", "x.png"])
    assert result.exit_code == 2 and "exactly one of --checkpoint and --pretrained" in result.output
    result = CliRunner().invoke(main, ["sample", "--pretrained", str(tmp_path / "nope"), "--out", "x.png"])
    assert result.exit_code == 1 and "neither a shipped pretrained name" in result.output
    run_cli(
        ["export", "--checkpoint", str(run), "--format", "pretrained", "--no-discriminator", "--out", str(out / "g")]
    )
    result = CliRunner().invoke(main, ["attention", "--pretrained", str(out / "g"), "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 1 and "holds no discriminator" in result.output


def test_hub_repo_ids_fail_in_one_line_offline_or_without_the_package(tmp_path, monkeypatch):
    """A Hub repo id (owner/name) needs the optional huggingface_hub; without it, or offline, one line says so."""
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(builtins, "__import__", no_hub)
    result = CliRunner().invoke(main, ["sample", "--pretrained", "someone/sagan-model", "--out", "x.png"])
    assert result.exit_code == 1 and "pip install 'sagan[hub]'" in result.output
    monkeypatch.setattr(builtins, "__import__", real_import)
    fake_hub = type(sys)("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    fake_hub.snapshot_download = offline
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake_hub)
    result = CliRunner().invoke(main, ["sample", "--pretrained", "someone/sagan-model", "--out", "x.png"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "could not download 'someone/sagan-model'" in lines[0]
    assert not (tmp_path / "x.png").exists()


# Weights (sagan.model_files.weights): the checks every loaded state dict passes.


def test_state_checks_name_what_does_not_fit():
    """check_state_fits counts missing, unexpected and reshaped tensors; check_finite names a NaN tensor; both in
    one line naming the source."""
    import pytest

    from sagan.errors import SaganError
    from sagan.model_files.weights import check_finite, check_state_fits

    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    check_state_fits(expected, {"a": torch.ones(2, 3), "b": torch.ones(4)}, "f.pt")  # fits: no error
    with pytest.raises(SaganError, match=r"f.pt: .*\(1 missing, 1 unexpected, 0 of another shape, e.g. b\)"):
        check_state_fits(expected, {"a": torch.ones(2, 3), "c": torch.ones(4)}, "f.pt")
    with pytest.raises(SaganError, match=r"0 missing, 0 unexpected, 1 of another shape, e.g. a"):
        check_state_fits(expected, {"a": torch.ones(3, 2), "b": torch.ones(4)}, "f.pt")
    with pytest.raises(SaganError, match="non-finite weights .* e.g. b"):
        check_finite({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])}, "f.pt")


def test_differing_fields_are_read_off_the_weights():
    """The config fields under which weights were trained, read off their shapes and checked by building that
    model: one field, two fields, and none where a difference cannot be told (attention placement)."""
    from sagan.model_files.weights import differing_fields
    from sagan.models import Discriminator

    cfg = ModelConfig(g_channels=8, d_channels=8, z_dim=8, num_classes=4, g_attn_resolutions=(16,))
    states = {Generator: Generator(cfg).state_dict(), Discriminator: Discriminator(cfg).state_dict()}
    recorded = {**cfg.__dict__, "g_channel_mult": [], "d_channel_mult": [], "d_downsample": []}
    assert differing_fields({**recorded, "g_channels": 16}, states) == ["g_channels 8 (the config says 16)"]
    both = differing_fields({**recorded, "z_dim": 32, "num_classes": 10}, states)
    assert sorted(both) == ["num_classes 4 (the config says 10)", "z_dim 8 (the config says 32)"]
    assert differing_fields({**recorded, "g_attn_resolutions": [8]}, states) == []


# Loading (sagan.model_files.loading): every kind of model file gives the same generator.


def test_load_generator_takes_every_kind_of_model_file(tmp_path):
    """A run folder, its checkpoint file, an exported .safetensors and a pretrained folder of the same run load
    into generators with the same weights (the EMA generator's) that draw the same images."""
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    run_cli(["export", "--checkpoint", str(run), "--out", str(tmp_path / "g.safetensors")])
    run_cli(["export", "--checkpoint", str(run), "--format", "pretrained", "--out", str(tmp_path / "pre")])
    sources = [run, run / "checkpoints" / "latest.pt", tmp_path / "g.safetensors", tmp_path / "pre"]
    generators = [load_generator(s) for s in sources]
    reference = generators[0].state_dict()
    ema = load_checkpoint(run)["G_ema"]
    assert all(torch.equal(reference[k], ema[k]) for k in ema)
    images = [G.sample(4, seed=0) for G in generators]
    for G, x in zip(generators[1:], images[1:], strict=True):
        assert all(torch.equal(reference[k], v) for k, v in G.state_dict().items())
        assert torch.equal(x, images[0])
