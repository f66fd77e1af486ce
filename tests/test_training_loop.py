"""Training end to end through the CLI: run folder contents, resume exactness, EMA, SIGTERM, DDP, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from sagan.config import ModelConfig
from sagan.layers.spectral import spectrally_normalised
from sagan.model_files.checkpoints import load_checkpoint
from sagan.models import Generator
from sagan.training.ema import ema_update
from tests.conftest import only_run, run_cli, tiny_args


def test_cli_trains_and_writes_the_run_folder(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=4))
    run = only_run(tmp_path / "runs")
    assert run.name == "00000-demo"
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "demo" and config["train"]["steps"] == 4 and config["model"]["g_channels"] == 4
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["latest.pt", "step-0000004.pt"]  # keep_snapshots=1 pruned step 2
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "gamma/g16", "gamma/d16", "lr_g", "lr_d", "images_per_s"):
        assert key in rows[-1]
    assert rows[-1]["gamma/g16"] != 0.0  # gamma learns from step 1
    assert any((run / "tensorboard").iterdir())
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 4 and ckpt["config"]["model"] == config["model"]
    with Image.open(run / "samples" / "step-0000004.png") as im:
        assert im.size == (8 * 34 + 2, 8 * 34 + 2)  # 8 x 8 grid of 32 px images with 2 px padding


def _state(run):
    ckpt = load_checkpoint(run)
    return ckpt, {k: ckpt[k] for k in ("G", "D", "G_ema")}


@pytest.mark.parametrize(
    "extra",
    [
        ["--set", "hflip=true"],
        ["--set", "d_steps=2", "--set", "loss=ns"],
        # The tiny untrained D's outputs are in the tens: LeCam's squares look "exploding" to the guard.
        ["--set", "augment=translation,cutout,color", "--set", "lecam_weight=0.3", "--set", "grad_accumulation=2"]
        + ["--set", "explode_patience=0"],
        ["--set", "arch=dcgan", "--set", "d_channels=8"],
        ["--set", "class_ramp_start=1", "--set", "class_ramp_end=4"],  # resumed within the ramp
    ],
    ids=["hflip", "d_steps2-ns", "diffaugment-lecam-accumulation", "dcgan", "class-ramp"],
)
def test_resume_is_exact(tmp_path, extra):
    run_cli(tiny_args(tmp_path / "a", steps=4, extra=extra))
    run_cli(tiny_args(tmp_path / "b", steps=2, extra=extra))
    run_b = only_run(tmp_path / "b")
    run_cli(["train", "--resume", str(run_b), "--steps", "4"])
    assert len(list((tmp_path / "b").iterdir())) == 1  # resumed into the same run folder
    ckpt_a, a = _state(only_run(tmp_path / "a"))
    ckpt_b, b = _state(run_b)
    assert ckpt_b["step"] == 4
    for model in a:
        assert a[model].keys() == b[model].keys()
        for k in a[model]:
            assert torch.equal(a[model][k], b[model][k]), (model, k)
    for k, v in ckpt_a["opt_D"]["state"].items():
        assert torch.equal(v["exp_avg"], ckpt_b["opt_D"]["state"][k]["exp_avg"])
    rows = [json.loads(line)["step"] for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]


def _worst_sigma_error(model):
    model.eval()
    errors = []
    for m in spectrally_normalised(model):
        w = m.weight.detach()
        errors.append(abs(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item() - 1))
    model.train()
    return max(errors)


def _ema_after_random_training(monkeypatch=None):
    torch.manual_seed(0)
    cfg = ModelConfig(
        resolution=32, num_classes=3, g_channels=8, z_dim=8, g_attn_resolutions=(16,), d_attn_resolutions=(16,)
    )
    G, G_ema = Generator(cfg), Generator(cfg)
    G_ema.load_state_dict(G.state_dict())
    z, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    for _ in range(60):  # random weight updates stand in for training; G's forward refreshes G's own SN
        with torch.no_grad():
            for p in G.parameters():
                p.add_(0.005 * torch.randn_like(p))
        G(z, y)
        ema_update(G_ema, G, 0.9)
    return G, G_ema, z, y


def test_ema_generator_keeps_unit_spectral_norm(monkeypatch):
    G, G_ema, z, y = _ema_after_random_training()
    assert _worst_sigma_error(G_ema) < 0.05
    assert _worst_sigma_error(G_ema) < _worst_sigma_error(G) + 0.01  # as well tracked as G's own
    x = G_ema.eval()(z, y)
    assert x.std() > 0.05 and (x[0] - x[1]).abs().mean() > 1e-3  # not degenerate
    # The check has teeth: with G_ema's singular vectors left stale, sigma drifts far from 1.
    monkeypatch.setattr("sagan.training.ema.refresh_spectral_norm", lambda module: None)
    _, stale, _, _ = _ema_after_random_training()
    assert _worst_sigma_error(stale) > 0.1


def test_ema_update_averages_parameters_and_copies_bn_stats():
    cfg = ModelConfig(resolution=32, g_channels=4, z_dim=8, g_attn_resolutions=(16,), d_attn_resolutions=(16,))
    torch.manual_seed(0)
    G, G_ema = Generator(cfg), Generator(cfg)
    before = {k: v.clone() for k, v in G_ema.named_parameters()}
    G(torch.randn(4, 8))  # updates BN running stats
    ema_update(G_ema, G, 0.75)
    for k, p in G.named_parameters():
        torch.testing.assert_close(dict(G_ema.named_parameters())[k], 0.75 * before[k] + 0.25 * p)
    torch.testing.assert_close(G_ema.out_bn.running_mean, G.out_bn.running_mean)


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    return env


def test_sigterm_writes_checkpoint_and_exits_zero(tmp_path):
    args = tiny_args(
        tmp_path / "runs", steps=100_000, extra=["--set", "checkpoint_every=100000", "--set", "snapshot_every=0"]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagan.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*/metrics.jsonl")) if (tmp_path / "runs").exists() else []
        if runs and runs[0].read_text().count("\n") >= 2:
            metrics = runs[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "training did not start"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Resume with: sagan train --resume" in out
    ckpt = load_checkpoint(metrics.parent)
    assert ckpt["step"] >= 2


def test_torchrun_two_processes_gloo(tmp_path):
    args = tiny_args(tmp_path / "runs", steps=3, extra=["--set", "log_every=1"])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "sagan.cli",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = only_run(tmp_path / "runs")
    ckpt = load_checkpoint(run)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    digests = ckpt["G_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # bit-identical G on both ranks
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    # Both ranks draw the same global stream of noise and each takes its share of it.
    assert torch.equal(ckpt["rng"][0]["generator"], ckpt["rng"][1]["generator"])


def test_resume_with_another_number_of_processes(tmp_path):
    """A run trained by one process continues under torchrun with two: the global batch and the position in the
    data stream carry over (2 steps of 4 images, then each of the 2 ranks starts at 4 of its share, so that after
    step 4 each has consumed 8: 16 images in all, as one process would have), and the per-process RNG states,
    which cannot, are reseeded from the step with a warning (the continuation is then not bit-exact, and says so)."""
    run_cli(tiny_args(tmp_path / "runs", steps=2, extra=["--amp", "none"]))
    run = only_run(tmp_path / "runs")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sagan.cli"]
    cmd += ["train", "--resume", str(run), "--steps", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 4 and ckpt["world_size"] == 2 and ckpt["data_consumed"] == 8
    assert "reseeding from the step (the continuation is not bit-exact)" in proc.stdout + proc.stderr
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--preset", "nope"], "Invalid value for '--preset'"),
        (["train", "--set", "lr_d=fast"], "bad value 'fast' for lr_d"),
        (["train", "--set", "nonsense=1"], "--set expects KEY=VALUE"),
        (["train", "--steps", "0", "--dry-run"], "steps must be >= 1"),
        (["train", "--data", "/no/such/folder"], "unknown dataset"),
        (["train", "--set", "g_attn_resolutions=7", "--dry-run"], "no feature map of resolution 7"),
    ],
)
def test_bad_arguments_give_one_line_errors(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_missing_dataset_and_unreadable_checkpoint(tmp_path):
    result = CliRunner().invoke(
        main,
        ["train", "--data", "mnist", "--data-root", str(tmp_path), "--steps", "1", "--outdir", str(tmp_path / "runs")],
    )
    assert result.exit_code == 1 and "--download" in result.output and str(tmp_path) in result.output
    assert not (tmp_path / "runs").exists()  # a failed start leaves nothing
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    for args in (["train", "--resume", str(bad)], ["sample", "--checkpoint", str(bad), "--out", "x.png"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "cannot read checkpoint" in result.output, result.output
    result = CliRunner().invoke(main, ["sample", "--checkpoint", str(tmp_path / "none"), "--out", "x.png"])
    assert result.exit_code == 1 and "no checkpoint" in result.output


def test_dry_run_reflects_data_and_overrides(tmp_path):
    result = run_cli(["train", "--data", "fashion-mnist", "--set", "lr_d=1e-3", "--dry-run"])
    cfg = json.loads(result.output)
    assert cfg["model"]["img_channels"] == 1 and cfg["model"]["num_classes"] == 10 and cfg["train"]["lr_d"] == 1e-3
    cfg = json.loads(
        run_cli(["train", "--data", "fashion-mnist", "--channels", "3", "--unconditional", "--dry-run"]).output
    )
    assert cfg["model"]["img_channels"] == 3 and cfg["model"]["num_classes"] == 0


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=4))
    run = only_run(tmp_path / "runs")
    good = {p.name: _digest(p) for p in (run / "checkpoints").iterdir()}
    events = sorted(p.name for p in (run / "tensorboard").iterdir())
    # lr_g 1e38 (a change applied on resume) makes G's weights non-finite within a step.
    args = ["train", "--resume", str(run), "--steps", "8", "--set", "lr_g=1e38", "--set", "checkpoint_every=1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "training diverged: non-finite weights at step 5 (finite at step 4)" in line
    assert "latest.pt (step 4)" in line
    assert {p.name: _digest(p) for p in (run / "checkpoints").iterdir()} == good  # nothing overwritten or pruned
    assert load_checkpoint(run)["step"] == 4
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == events  # the failed resume left no events file


def test_divergence_before_the_first_checkpoint_leaves_no_run_folder(tmp_path):
    result = CliRunner().invoke(main, tiny_args(tmp_path / "runs", steps=4, extra=["--set", "lr_g=1e38"]))
    assert result.exit_code == 1 and "non-finite weights at step 1" in result.output
    assert "no checkpoint was written" in result.output
    assert list((tmp_path / "runs").iterdir()) == []


def test_exploding_losses_are_reported(tmp_path, caplog):
    """Exploding losses are warned about at each log row; a run that reaches its last step while they explode has
    no checkpoint of its final state and ends with exit status 1 (here: none at all, so no run folder is left)."""
    result = CliRunner().invoke(main, tiny_args(tmp_path / "runs", steps=3, extra=["--set", "lr_d=1e3"]))
    assert "above 100 in magnitude: training may be diverging" in caplog.text
    assert result.exit_code == 1 and "training ended at step 3 while losses" in result.output
    assert "no checkpoint was written" in result.output.strip().splitlines()[-1]


def test_exploding_losses_stop_the_run_and_keep_the_last_healthy_checkpoint(tmp_path):
    """Finite but exploding losses (lr_d 1e3) write no checkpoint while they last, and after explode_patience
    log rows in a row the run stops as diverged, naming the last healthy checkpoint, which is what is on disk."""
    run_cli(tiny_args(tmp_path / "runs", steps=4))
    run = only_run(tmp_path / "runs")
    args = ["train", "--resume", str(run), "--steps", "30", "--set", "lr_d=1e3", "--set", "checkpoint_every=1"]
    result = CliRunner().invoke(main, [*args, "--set", "explode_patience=3"])
    assert result.exit_code == 1
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "above 100 in magnitude for 3 log rows in a row" in line and "explode_patience 3" in line
    saved = load_checkpoint(run)["step"]
    assert f"latest.pt (step {saved})" in line
    rows = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert all(abs(rows[saved][k]) <= 100 for k in ("loss_d", "loss_g", "d_real", "d_fake"))  # a healthy state
    assert saved < max(rows)  # the exploding steps after it were not saved


def test_resuming_a_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    key = next(k for k, v in ckpt["G"].items() if v.is_floating_point())
    ckpt["G"][key] = torch.full_like(ckpt["G"][key], float("nan"))
    torch.save(ckpt, run / "checkpoints" / "latest.pt")
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "4"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "has non-finite weights: the run had diverged" in lines[-1]
    assert "last good checkpoint" not in result.output


@pytest.mark.parametrize(
    "extra",
    [["--amp", "bf16"], ["--set", "loss=ns"], ["--set", "num_workers=2"], ["--set", "d_steps=2"]],
    ids=["amp-bf16", "loss-ns", "workers", "d_steps2"],
)
def test_training_variants_run(tmp_path, extra):
    run_cli(tiny_args(tmp_path / "runs", steps=2, extra=extra))
    ckpt = load_checkpoint(only_run(tmp_path / "runs"))
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())
    per_step = 4 * (2 if "d_steps=2" in extra else 1)
    assert ckpt["data_consumed"] == 2 * per_step


@pytest.mark.parametrize("channels", [None, "1"])
def test_training_on_a_labelled_image_folder_end_to_end(tmp_path, channels):
    """A folder with one sub-folder per class trains a conditional model on its images (colour by default,
    grayscale with --channels 1), and the run's generator draws images of that many channels for every class."""
    from sagan.model_files.loading import load_generator

    for k, colour in enumerate(["red", "blue", "green"]):
        (tmp_path / "photos" / f"class{k}").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40 + i, 36), colour).save(tmp_path / "photos" / f"class{k}" / f"{i}.png")
    extra = ["--data", str(tmp_path / "photos"), *(["--channels", channels] if channels else [])]
    run_cli(tiny_args(tmp_path / "runs", steps=2, extra=extra))
    run = only_run(tmp_path / "runs")
    G = load_generator(run)
    assert G.cfg.num_classes == 3 and G.cfg.img_channels == (1 if channels else 3)
    images = G.sample(6, classes=2)
    assert images.shape == (6, G.cfg.img_channels, 32, 32) and torch.isfinite(images).all()


def test_resume_applies_changed_hyperparameters(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    run_cli(["train", "--resume", str(run), "--steps", "3", "--set", "lr_g=5e-4", "--set", "beta2=0.99"])
    ckpt = load_checkpoint(run)
    assert ckpt["opt_G"]["param_groups"][0]["lr"] == 5e-4 and ckpt["opt_G"]["param_groups"][0]["betas"][1] == 0.99
    assert json.loads((run / "config.json").read_text())["train"]["lr_g"] == 5e-4
    assert "changed on resume: lr_g 0.0002 -> 0.0005" in (run / "log.txt").read_text()


def test_adam_runs_multi_tensor_also_after_resuming_a_checkpoint_that_stored_none(tmp_path):
    """foreach is how the update is computed, not state: a checkpoint saved with torch's default (None, a loop over
    the parameters on CPU) resumes with the multi-tensor update."""
    from sagan.config import TrainConfig
    from sagan.training.trainer import Trainer

    t = Trainer(ModelConfig(g_channels=4, d_channels=4, num_classes=2), TrainConfig(batch_size=4), torch.device("cpu"))
    assert all(g["foreach"] is True for opt in (t.opt_G, t.opt_D) for g in opt.param_groups)
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    ckpt = load_checkpoint(run)
    for name in ("opt_G", "opt_D"):
        for group in ckpt[name]["param_groups"]:
            group["foreach"] = None
    torch.save(ckpt, run / "checkpoints" / "latest.pt")
    run_cli(["train", "--resume", str(run), "--steps", "3"])
    assert all(g["foreach"] is True for g in load_checkpoint(run)["opt_G"]["param_groups"])


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc")
def test_the_cpu_malloc_cache_applies_on_glibc():
    from sagan.training.trainer import keep_freed_memory

    assert keep_freed_memory()


def test_resume_refuses_a_changed_batch_size_unless_forced(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "3", "--batch-size", "2"])
    assert result.exit_code == 1 and "batch_size 4 -> 2 would not continue the run exactly" in result.output
    assert load_checkpoint(run)["step"] == 2
    run_cli(["train", "--resume", str(run), "--steps", "3", "--batch-size", "2", "--force"])
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 3 and ckpt["data_consumed"] == 2 * 4 + 2  # the data position carries over


def test_resume_outside_a_run_folder_writes_a_new_one(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    ckpt_dir = tmp_path / "mine" / "models"
    ckpt_dir.mkdir(parents=True)
    (tmp_path / "mine" / "config.json").write_text('{"the user": "file"}')  # was overwritten
    (ckpt_dir / "model.pt").write_bytes((only_run(tmp_path / "runs") / "checkpoints" / "latest.pt").read_bytes())
    run_cli(["train", "--resume", str(ckpt_dir / "model.pt"), "--steps", "3", "--outdir", str(tmp_path / "new")])
    assert (tmp_path / "mine" / "config.json").read_text() == '{"the user": "file"}'
    assert sorted(p.name for p in (tmp_path / "mine").rglob("*")) == ["config.json", "model.pt", "models"]
    assert load_checkpoint(only_run(tmp_path / "new"))["step"] == 3


def test_a_cut_metrics_line_does_not_stop_resume_or_plot(tmp_path):
    run_cli(tiny_args(tmp_path / "runs", steps=2))
    run = only_run(tmp_path / "runs")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "kimg": 0.01, "loss_')  # a crash mid-write
    assert CliRunner().invoke(main, ["plot", str(run)]).exit_code == 0
    run_cli(["train", "--resume", str(run), "--steps", "4"])
    rows = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]


def _make_run_dir(outdir, barrier, queue):
    from sagan.training.run_folder import create_run_dir

    barrier.wait()
    queue.put(create_run_dir(outdir, "demo").name)


def test_concurrent_starts_get_distinct_run_folders(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_make_run_dir, args=(tmp_path, barrier, queue)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    names = [queue.get(timeout=5) for _ in procs]
    assert sorted(names) == [f"{i:05d}-demo" for i in range(8)]


def test_in_process_runs_do_not_pile_up_log_handlers(tmp_path):
    import logging

    for i in range(2):
        run_cli(tiny_args(tmp_path / f"runs{i}", steps=1))
    assert not [h for h in logging.getLogger("sagan").handlers if isinstance(h, logging.FileHandler)]


def test_resume_purges_tensorboard_events_past_the_checkpoint(tmp_path):
    """Events a crashed run logged after its last checkpoint are dropped on resume (SummaryWriter purge_step)."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_cli(tiny_args(tmp_path / "runs", steps=4, extra=["--set", "keep_snapshots=2"]))
    run = only_run(tmp_path / "runs")
    shutil.copy(run / "checkpoints" / "step-0000002.pt", run / "checkpoints" / "latest.pt")  # as if it died at 4
    run_cli(["train", "--resume", str(run), "--steps", "4"])
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss_d")]
    assert steps == [1, 2, 3, 4]  # without the purge: 1, 2, 3, 4, 3, 4


def test_a_checkpoint_within_the_class_ramp_loads_with_its_class_signal(tmp_path):
    """Transitional conditioning: G and D loaded from a checkpoint at step 2 of a ramp over steps 0-4 carry the
    signal of their last update (step 1: 0.25), the one training sampled G_ema with, not full conditioning."""
    from sagan.model_files.loading import load_discriminator, load_generator

    run_cli(tiny_args(tmp_path, steps=2, extra=["--set", "class_ramp_end=4"]))
    run = only_run(tmp_path)
    assert load_checkpoint(run)["config"]["model"]["num_classes"] > 0
    for model in (load_generator(run), load_discriminator(run)):
        signals = {b.item() for name, b in model.named_buffers() if name.endswith("class_signal")}
        assert signals == {0.25}


def test_training_before_the_class_ramp_leaves_the_class_terms_untrained(tmp_path):
    """Before class_ramp_start the class signal is 0: the loop's G and D get no gradient for their class terms, so
    G's conditional-BN embeddings keep their zero start (2 steps of Adam at lr 1e-4 move them otherwise)."""
    for name, extra in (("ramp", ["--set", "class_ramp_start=2", "--set", "class_ramp_end=4"]), ("off", [])):
        run_cli(tiny_args(tmp_path / name, steps=2, extra=extra))
    embeddings = {
        name: [v for k, v in load_checkpoint(only_run(tmp_path / name))["G"].items() if ".embed_" in k]
        for name in ("ramp", "off")
    }
    assert embeddings["ramp"] and all(not e.any() for e in embeddings["ramp"])
    assert all(e.abs().max() > 1e-6 for e in embeddings["off"])
