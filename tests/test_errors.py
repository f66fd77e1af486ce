"""Bad inputs and faults through the CLI: each ends in one line `Error: ...`, a non-zero exit, no traceback, and
nothing written or changed on disk; files that would run code are refused unread."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from tests.conftest import tiny_args


class _WritesMarker:
    """Unpickling this runs code: it creates the file `path` (what a malicious weights file could do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny trained run, its export, and a collection of broken, hostile or occupied paths."""
    base = tmp_path_factory.mktemp("errors")
    runner = CliRunner()
    assert runner.invoke(main, tiny_args(base / "runs", steps=2), catch_exceptions=False).exit_code == 0
    run = next((base / "runs").iterdir())
    assert (
        runner.invoke(main, ["export", "--checkpoint", str(run), "--out", str(base / "g.safetensors")]).exit_code == 0
    )
    p = {"base": base, "run": run, "g": base / "g.safetensors"}
    (base / "empty.pt").touch()
    p["empty"] = base / "empty.pt"
    (base / "exists.png").write_bytes(b"the user's file")
    p["exists"] = base / "exists.png"
    (base / "adir.png").mkdir()
    p["adir"] = base / "adir.png"
    (base / "afile").write_text("a file")
    p["afile"] = base / "afile"
    # Exported generators whose config is broken or does not match the tensors.
    meta = json.loads((base / "g.json").read_text())
    variants = {
        "g_missing": {**meta, "model": {k: v for k, v in meta["model"].items() if k != "g_channels"}},
        "g_null": {**meta, "model": {**meta["model"], "resolution": None}},
        "g_other": {**meta, "model": {**meta["model"], "g_channels": 8}},
    }
    for name, content in variants.items():
        (base / f"{name}.safetensors").write_bytes(p["g"].read_bytes())
        (base / f"{name}.json").write_text(json.dumps(content))
        p[name] = base / f"{name}.safetensors"
    (base / "g_badjson.safetensors").write_bytes(p["g"].read_bytes())
    (base / "g_badjson.json").write_text('{"model": {"resolution": 32,')
    p["g_badjson"] = base / "g_badjson.safetensors"
    # A checkpoint whose generator holds NaN (a diverged run saved by an older version).
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    key = next(k for k, v in ckpt["G_ema"].items() if v.is_floating_point())
    ckpt["G_ema"][key] = torch.full_like(ckpt["G_ema"][key], float("nan"))
    (base / "nan").mkdir()
    torch.save(ckpt, base / "nan" / "nan.pt")
    p["nan"] = base / "nan" / "nan.pt"
    # Inception "weights": not a TorchScript file, a pickle that runs code, a state dict of something else.
    (base / "not_ts.pt").write_bytes(os.urandom(2048))
    p["not_ts"] = base / "not_ts.pt"
    p["marker"] = base / "PWNED"
    torch.save({"fc.weight": _WritesMarker(p["marker"])}, base / "evil.pth")
    p["evil"] = base / "evil.pth"
    torch.save({"conv.weight": torch.zeros(3)}, base / "other.pth")
    p["other"] = base / "other.pth"
    # Generated images: one good PNG, and a folder with a truncated JPEG.
    (base / "fakes").mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(base / "fakes" / "a.png")
    (base / "fakes_trunc").mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(base / "fakes_trunc" / "a.png")
    Image.effect_noise((32, 32), 50).convert("RGB").save(base / "full.jpg", quality=95)
    (base / "fakes_trunc" / "b.jpg").write_bytes((base / "full.jpg").read_bytes()[:300])
    (base / "no_images").mkdir()
    (base / "adir.safetensors").mkdir()
    p.update(fakes=base / "fakes", fakes_trunc=base / "fakes_trunc", adir_st=base / "adir.safetensors")
    return p


def _listing(folder: Path) -> dict:
    """Every file under `folder` with a digest of its bytes, and every folder."""
    out = {}
    for f in sorted(folder.rglob("*")):
        out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "dir"
    return out


TINY = ["--steps", "1", "--batch-size", "4", "--device", "cpu", "--set", "g_channels=4", "--set", "d_channels=4"]

# case -> (arguments, with {name} filled from the env fixture, and a part of the expected message)
CASES = {
    "empty checkpoint: sample": (["sample", "--checkpoint", "{empty}", "--out", "{base}/o.png"], "cannot read"),
    "empty checkpoint: export": (["export", "--checkpoint", "{empty}", "--out", "{base}/o.safetensors"], "cannot read"),
    "empty checkpoint: attention": (["attention", "--checkpoint", "{empty}", "--out", "{base}/o.png"], "cannot read"),
    "empty checkpoint: explore": (["explore", "--checkpoint", "{empty}", "--out", "{base}/o.html"], "cannot read"),
    "empty checkpoint: evaluate": (["evaluate", "--checkpoint", "{empty}", "--num", "4"], "cannot read"),
    "empty checkpoint: resume": (["train", "--resume", "{empty}", "--outdir", "{base}/new"], "cannot read"),
    "out exists: sample": (["sample", "--checkpoint", "{run}", "--out", "{exists}"], "already exists"),
    "out exists: attention": (["attention", "--checkpoint", "{run}", "--out", "{exists}"], "already exists"),
    "out exists: explore": (["explore", "--checkpoint", "{run}", "--out", "{exists}"], "already exists"),
    "out exists: plot": (["plot", "{run}", "--out", "{exists}"], "already exists"),
    "out exists: evaluate": (
        ["evaluate", "--fake", "{fakes}", "--data", "shapes", "--out", "{exists}"],
        "already exists",
    ),
    "out exists: export": (["export", "--checkpoint", "{run}", "--out", "{g}"], "already exists"),
    "out is a folder: sample grid": (["sample", "--checkpoint", "{run}", "--out", "{adir}"], "is a folder"),
    "out is a file: sample folder": (["sample", "--checkpoint", "{run}", "--out", "{afile}"], "not a folder"),
    "out is a folder: export": (["export", "--checkpoint", "{run}", "--out", "{adir_st}"], "is a folder"),
    "out without .safetensors: export": (
        ["export", "--checkpoint", "{run}", "--out", "{base}/g.pt"],
        "must end in .safetensors",
    ),
    "out under a file": (["sample", "--checkpoint", "{run}", "--out", "{afile}/x.png"], "Not a directory"),
    "out not writable": (["sample", "--checkpoint", "{run}", "--out", "/proc/sagan-test/x.png"], "/proc/sagan-test"),
    "outdir not writable": (["train", "--outdir", "/proc/sagan-test", *TINY], "/proc/sagan-test"),
    "export sidecar over config.json": (
        ["export", "--checkpoint", "{run}", "--out", "{run}/config.safetensors"],
        "config.json already exists",
    ),
    "export sidecar over config.json, --overwrite": (
        ["export", "--checkpoint", "{run}", "--out", "{run}/config.safetensors", "--overwrite"],
        "was not written by sagan",
    ),
    "export json lacks keys": (["sample", "--checkpoint", "{g_missing}", "--out", "{base}/o.png"], "do not fit"),
    "export json nulls a key": (["sample", "--checkpoint", "{g_null}", "--out", "{base}/o.png"], "resolution"),
    "export json of another model": (["sample", "--checkpoint", "{g_other}", "--out", "{base}/o.png"], "do not fit"),
    "export json broken": (["sample", "--checkpoint", "{g_badjson}", "--out", "{base}/o.png"], "not valid JSON"),
    "non-finite weights: sample": (["sample", "--checkpoint", "{nan}", "--out", "{base}/o.png"], "non-finite"),
    "non-finite weights: export": (["export", "--checkpoint", "{nan}", "--out", "{base}/o.safetensors"], "non-finite"),
    "non-finite weights: evaluate": (["evaluate", "--checkpoint", "{nan}", "--num", "4"], "non-finite"),
    "inception not TorchScript": (
        ["evaluate", "--fake", "{fakes}", "--data", "shapes", "--inception", "{not_ts}"],
        "neither a TorchScript",
    ),
    "inception runs code: evaluate --fake": (
        ["evaluate", "--fake", "{fakes}", "--data", "shapes", "--inception", "{evil}"],
        "need code to load are refused",
    ),
    "inception runs code: evaluate --checkpoint": (
        ["evaluate", "--checkpoint", "{run}", "--num", "4", "--inception", "{evil}"],
        "need code to load are refused",
    ),
    "inception runs code: train": (
        ["train", "--outdir", "{base}/new", "--eval-every", "1", "--inception", "{evil}", *TINY],
        "need code to load are refused",
    ),
    "inception of another network": (
        ["evaluate", "--fake", "{fakes}", "--data", "shapes", "--inception", "{other}"],
        "not torch-fidelity's Inception",
    ),
    "device tpu": (["sample", "--checkpoint", "{run}", "--out", "{base}/o.png", "--device", "tpu"], "unknown device"),
    "device banana": (["train", "--outdir", "{base}/new", "--device", "banana"], "unknown device"),
    "nan learning rate": (["train", "--outdir", "{base}/new", "--set", "lr_g=nan"], "finite"),
    "folder without images": (["train", "--outdir", "{base}/new", "--data", "{base}/no_images", *TINY], "no images"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_writes_nothing(env, case, monkeypatch, tmp_path):
    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    args, expected = CASES[case]
    args = [a.format(**env) for a in args]
    before = _listing(env["base"])
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected in lines[0]
    assert _listing(env["base"]) == before, "the command changed files"
    assert not env["marker"].exists(), "a weights file ran code"
    assert not (tmp_path / "cache").exists()


def test_inception_from_the_environment_variable_is_checked_too(env, monkeypatch):
    monkeypatch.setenv("SAGAN_INCEPTION_PATH", str(env["evil"]))
    result = CliRunner().invoke(main, ["evaluate", "--fake", str(env["fakes"]), "--data", "shapes"])
    assert result.exit_code == 1 and "need code to load are refused" in result.output
    assert not env["marker"].exists()


def test_truncated_generated_image(env, inception_torchscript):
    args = [
        "evaluate",
        "--fake",
        str(env["fakes_trunc"]),
        "--data",
        "shapes",
        "--inception",
        str(inception_torchscript),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "cannot read generated image" in result.output and "b.jpg" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_full_disk_leaves_no_partial_file(env, monkeypatch, tmp_path):
    """A write that fails half-way (ENOSPC) leaves neither the partial file nor the folders made for it."""
    import errno

    import sagan.sampling

    def half_write(images, path, **kw):
        Path(path).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sagan.sampling.vutils, "save_image", half_write)
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(env["run"]), "--out", str(tmp_path / "a/b.png")])
    assert result.exit_code == 1 and result.output == "Error: [Errno 28] No space left on device\n"
    assert list(tmp_path.iterdir()) == []
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(env["run"]), "--out", str(tmp_path / "pngs")])
    assert result.exit_code == 1 and list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback_and_stderr_gets_one_line(env):
    cmd = [sys.executable, "-m", "sagan.cli", "sample", "--checkpoint", str(env["empty"]), "--out", "x.png"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=env["base"], timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"Error: cannot read checkpoint {env['empty']}: EOFError"]
    debug = subprocess.run(
        cmd, capture_output=True, text=True, cwd=env["base"], timeout=120, env={**os.environ, "SAGAN_DEBUG": "1"}
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "SaganError" in debug.stderr


def test_export_replaces_only_its_own_files(env, tmp_path):
    out = tmp_path / "g.safetensors"
    args = ["export", "--checkpoint", str(env["run"]), "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 1  # exists
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0  # its own sidecar may be replaced
    assert json.loads((tmp_path / "g.json").read_text())["format"] == "sagan-generator"


def test_malicious_pickle_would_have_run(env, tmp_path):
    """The hostile file in these tests is real: loading it the unsafe way does create the marker."""
    marker = tmp_path / "ran"
    torch.save({"x": _WritesMarker(marker)}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.pth", weights_only=True)
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()
