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
from sagan.model_files.checkpoints import load_checkpoint
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
        # Configs that would allocate 100+ GB if the model were built before the shapes are checked.
        "g_huge_classes": {**meta, "model": {**meta["model"], "num_classes": 10**9}},
        "g_huge_channels": {**meta, "model": {**meta["model"], "g_channels": 10**6}},
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
    # Checkpoints that are valid pickles but lack parts (each in a folder of its own, outside any run folder).
    parts = {
        "ck_no_train": lambda c: c["config"].pop("train"),
        "ck_no_rng": lambda c: c.pop("rng"),
        "ck_no_opt": lambda c: c.pop("opt_D"),
        "ck_bad_opt": lambda c: c.__setitem__("opt_G", {"state": 3}),
        "ck_model_null": lambda c: c["config"].__setitem__("model", None),
        "ck_g_null": lambda c: c.__setitem__("G", None),
    }
    for name, damage in parts.items():
        c = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
        damage(c)
        (base / name).mkdir()
        torch.save(c, base / name / "c.pt")
        p[name] = base / name / "c.pt"
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
    "checkpoint without train config: resume": (["train", "--resume", "{ck_no_train}"], "config.train missing"),
    "checkpoint without train config: evaluate": (
        ["evaluate", "--checkpoint", "{ck_no_train}", "--num", "4"],
        "does not record its dataset",
    ),
    "checkpoint without rng: resume": (["train", "--resume", "{ck_no_rng}"], "rng missing"),
    "checkpoint without optimiser: resume": (["train", "--resume", "{ck_no_opt}"], "opt_D missing"),
    "checkpoint with a broken optimiser: resume": (["train", "--resume", "{ck_bad_opt}"], "opt_G missing or damaged"),
    "checkpoint with model null: resume": (["train", "--resume", "{ck_model_null}"], "damaged sagan checkpoint"),
    "checkpoint with model null: evaluate": (
        ["evaluate", "--checkpoint", "{ck_model_null}", "--num", "4"],
        "damaged sagan checkpoint",
    ),
    "checkpoint with G null: sample": (
        ["sample", "--checkpoint", "{ck_g_null}", "--out", "{base}/o.png"],
        "damaged sagan checkpoint",
    ),
    "export json asks for 10^9 classes": (
        ["sample", "--checkpoint", "{g_huge_classes}", "--out", "{base}/o.png"],
        "do not fit",
    ),
    "export json asks for 10^6 channels": (
        ["sample", "--checkpoint", "{g_huge_channels}", "--out", "{base}/o.png"],
        "do not fit",
    ),
    "seed 2**70": (["train", "--outdir", "{base}/new", "--seed", str(2**70), "--dry-run"], "seed (--seed) must be"),
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


def test_planted_weights_in_torch_hub_cache_never_run(env, monkeypatch, tmp_path):
    """Without --inception, torch-fidelity's weights come from torch's hub cache; torch-fidelity itself would
    unpickle that file with weights_only=False. A pickle planted there must be refused, not run."""
    monkeypatch.delenv("SAGAN_INCEPTION_PATH", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    marker = tmp_path / "PWNED"
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"fc.weight": _WritesMarker(marker)}, cached)
    for args in (
        ["evaluate", "--fake", str(env["fakes"]), "--data", "shapes"],
        ["train", "--outdir", str(tmp_path / "new"), "--eval-every", "1", *TINY],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: ")
        assert "weights-inception-2015-12-05-6726825d.pth" in result.output
        assert not marker.exists(), "a cached weights file ran code"
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_second_resume_of_a_running_run_fails_naming_the_holder(tmp_path):
    """A run folder is locked for the life of its run: a second `train --resume` of it gives one line naming
    the PID that holds it, and touches nothing in the folder."""
    from sagan.training.run_folder import RunLock

    runner = CliRunner()
    assert runner.invoke(main, tiny_args(tmp_path / "runs", steps=2), catch_exceptions=False).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    lock = RunLock(run).acquire()  # as a running `sagan train --resume` holds it
    try:
        before = _listing(run)
        result = runner.invoke(main, ["train", "--resume", str(run), "--steps", "4"])
        assert result.exit_code == 1 and f"in use by another sagan process (PID {os.getpid()})" in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: ")
        assert _listing(run) == before
    finally:
        lock.release()
    assert runner.invoke(main, ["train", "--resume", str(run), "--steps", "4"]).exit_code == 0  # free again


def test_out_of_memory_on_the_cpu_is_one_line(env, monkeypatch):
    """torch's CPU allocator raises RuntimeError ("DefaultCPUAllocator: can't allocate memory"), Python a
    MemoryError: both end as one line that says what to lower."""
    import sagan.sampling

    for error in (
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried "
            "to allocate 51200000000 bytes. Error code 12 (Cannot allocate memory)"
        ),
        MemoryError(),
    ):

        def boom(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(sagan.sampling, "fixed_noise", boom)
        result = CliRunner().invoke(main, ["sample", "--checkpoint", str(env["run"]), "--out", str(env["base"] / "x")])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: out of memory"), lines


def test_full_disk_while_saving_is_one_line_keeps_the_old_checkpoint_and_resumes(tmp_path, monkeypatch):
    """torch.save on a full disk raises RuntimeError from its zip writer; the run ends with one line naming the
    file, latest.pt keeps its previous content, and no temporary file is left."""
    import sagan.model_files.checkpoints

    runner = CliRunner()
    assert runner.invoke(main, tiny_args(tmp_path / "runs", steps=2), catch_exceptions=False).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a partial file, then the writer's failure
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4096 vs 2048")

    monkeypatch.setattr(sagan.model_files.checkpoints.torch, "save", full_disk)
    result = runner.invoke(main, ["train", "--resume", str(run), "--steps", "4"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[-1].startswith("Error: could not write") and "disk full" in lines[-1]
    monkeypatch.setattr(sagan.model_files.checkpoints.torch, "save", real_save)
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert not [p for p in (run / "checkpoints").iterdir() if "tmp" in p.name]
    # Space freed, the same resume continues from the kept checkpoint and ends where an uninterrupted run does.
    assert runner.invoke(main, ["train", "--resume", str(run), "--steps", "4"], catch_exceptions=False).exit_code == 0
    assert runner.invoke(main, tiny_args(tmp_path / "whole", steps=4), catch_exceptions=False).exit_code == 0
    resumed, whole = (load_checkpoint(r) for r in (run, next((tmp_path / "whole").iterdir())))
    assert resumed["step"] == whole["step"] == 4
    for key in ("G", "D", "G_ema"):
        assert all(torch.equal(resumed[key][k], whole[key][k]) for k in whole[key]), key
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the failed attempt's rows after step 2 are not kept twice


def test_export_write_failure_is_one_line(env, tmp_path, monkeypatch):
    """safetensors raises its own error type on a full disk or a folder without write permission."""
    import safetensors.torch
    from safetensors import SafetensorError

    def fail(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    for fmt, out in (("safetensors", tmp_path / "g.safetensors"), ("pretrained", tmp_path / "pre")):
        result = CliRunner().invoke(
            main, ["export", "--checkpoint", str(env["run"]), "--format", fmt, "--out", str(out)]
        )
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: could not write"), lines
        assert not out.exists() and not out.with_suffix(".json").exists()
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_checkpoint_whose_config_does_not_fit_is_refused(env, tmp_path):
    """A checkpoint whose embedded model config does not describe its tensors would export a file that cannot be
    loaded: export refuses it before writing anything."""
    ckpt = torch.load(env["run"] / "checkpoints" / "latest.pt", weights_only=True)
    ckpt["config"]["model"]["g_channels"] = 8
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    for fmt, out in (("safetensors", tmp_path / "g.safetensors"), ("pretrained", tmp_path / "pre")):
        result = CliRunner().invoke(main, ["export", "--checkpoint", str(bad), "--format", fmt, "--out", str(out)])
        assert result.exit_code == 1 and "do not fit" in result.output, result.output
        assert not out.exists()


def test_sampling_seeds_out_of_range_name_the_flag(env):
    """`--seed` of sample/evaluate/attention/explore is checked by click against what torch takes."""
    result = CliRunner().invoke(
        main, ["sample", "--checkpoint", str(env["run"]), "--out", "x.png", "--seed", str(2**70)]
    )
    assert (
        result.exit_code == 2
        and "Invalid value for '--seed'" in result.output
        and "9223372036854775807" in result.output
    )


def test_plot_of_rows_without_some_losses(tmp_path, caplog):
    """Rows that lack a series (written by another version, or edited) are plotted as gaps; a series no row has
    is named in a warning and in its panel, and the rest is plotted (no empty legend, no matplotlib warning)."""
    import warnings

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 1, "loss_d": 1.0, "d_real": 0.5}, {"step": 2, "loss_d": 0.9, "d_real": 0.4, "gamma/g16": 0.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found" would fail here
        result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "training.png").stat().st_size > 1000
    assert "has no loss_g, d_fake: plotted the rest" in caplog.text


def test_ablate_checks_the_inception_before_training(env, tmp_path, monkeypatch):
    """A bad --inception fails at once, before the grid's first run trains."""
    import sagan.training.loop

    monkeypatch.setattr(
        sagan.training.loop, "train", lambda *a, **k: pytest.fail("trained before checking --inception")
    )
    args = ["ablate", "attention", "--outdir", str(tmp_path / "g"), "--inception", str(env["not_ts"])]
    result = CliRunner().invoke(main, [*args, "--set", "steps=1"])
    assert result.exit_code == 1 and "neither a TorchScript module" in result.output
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())
