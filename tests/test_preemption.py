"""Runs that pick themselves up: `sagan train --run-dir`, restarted by torchrun (--max-restarts) after a worker is
killed, or rerun by a scheduler after the whole job was stopped; and the faults around it (a kill during a
checkpoint write, a run that ends while exploding, a checkpoint with another run's config)."""

import hashlib
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

from sagan.cli import main
from sagan.model_files.checkpoints import load_checkpoint
from tests.conftest import TINY_SETS, run_cli

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def named_args(run_dir: Path, steps: int, extra=()) -> list[str]:
    """A tiny run in `run_dir` (fp32 pinned: the runs compared here must not differ in precision)."""
    args = ["train", "--run-dir", str(run_dir), "--steps", str(steps), "--batch-size", "4", "--device", "cpu"]
    args += ["--amp", "none"]
    for s in [*TINY_SETS, "checkpoint_every=1", "snapshot_every=0", *extra]:
        args += ["--set", s]
    return args


def _listing(folder: Path) -> dict:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "dir" for f in folder.rglob("*")}


def assert_same_state(a: dict, b: dict) -> None:
    """G, D, G_ema and both optimisers bit-identical, at the same step."""
    assert a["step"] == b["step"]
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        for i, state in a[key]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(tensor, b[key]["state"][i][name]), f"{key} state {i}.{name} differs"


def test_run_dir_starts_continues_and_then_does_nothing(tmp_path):
    """The same command starts the run, continues it from its latest checkpoint, and once finished exits 0 at once
    without touching the folder; the continued run equals one trained straight through."""
    run = tmp_path / "run"
    run_cli(named_args(run, 2))
    assert load_checkpoint(run)["step"] == 2
    run_cli(named_args(run, 4))  # --steps grew: it continues
    straight = tmp_path / "straight"
    run_cli(named_args(straight, 4))
    assert_same_state(load_checkpoint(run), load_checkpoint(straight))
    before = _listing(run)
    result = run_cli(named_args(run, 4))
    assert "has finished (4 steps); nothing to do" in result.output and _listing(run) == before


def test_run_dir_refuses_what_is_not_its_run(tmp_path):
    """A folder of other files is never written into; a run of another preset is not continued under this one;
    --run-dir and --resume do not mix."""
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"not a run")
    result = CliRunner().invoke(main, named_args(foreign, 2))
    assert result.exit_code == 1 and "holds files of its own (cat.jpg)" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["cat.jpg"]
    run = tmp_path / "run"
    run_cli(named_args(run, 2))
    result = CliRunner().invoke(main, [*named_args(run, 4), "--preset", "cifar10"])
    assert result.exit_code == 1 and "holds a run of preset 'demo', not 'cifar10'" in result.output
    result = CliRunner().invoke(main, [*named_args(run, 4), "--resume", str(run)])
    assert result.exit_code == 2 and "not both" in result.output


def test_run_dir_killed_before_its_first_checkpoint_starts_again(tmp_path):
    """A run folder with config.json and logs but no checkpoint (its process was killed before the first save,
    so nothing removed it): the same command starts the run again from step 0 in it."""
    run = tmp_path / "run"
    run_cli(named_args(run, 2))
    (run / "checkpoints" / "latest.pt").unlink()
    run_cli(named_args(run, 2))
    again = load_checkpoint(run)
    fresh = tmp_path / "fresh"
    run_cli(named_args(fresh, 2))
    assert_same_state(again, load_checkpoint(fresh))


def _torchrun(run_dir: Path, steps: int, restarts: int) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["--max-restarts", str(restarts), "-m", "sagan.cli", *named_args(run_dir, steps)]
    return cmd


def _workers(parent: int) -> dict[int, int]:
    """{LOCAL_RANK: pid} of the processes whose parent is `parent` (torchrun's agent)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        rank = [e for e in env if e.startswith(b"LOCAL_RANK=")]
        if ppid == parent and rank:
            found[int(rank[0].split(b"=")[1])] = int(entry.name)
    return found


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the job ended before reaching the step"
        latest = run_dir / "checkpoints" / "latest.pt"
        if latest.is_file():
            try:
                if load_checkpoint(latest)["step"] >= step:
                    return
            except Exception:  # noqa: BLE001  (replaced while read: try again)
                pass
        time.sleep(0.2)
    pytest.fail(f"no checkpoint of step {step} within {timeout} s")


STEPS = 40


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> dict:
    """The reference: the 2-process job trained straight through."""
    run = tmp_path_factory.mktemp("straight") / "run"
    proc = subprocess.run(_torchrun(run, STEPS, 0), capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return load_checkpoint(run)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds torchrun's workers through /proc")
def test_torchrun_restarts_a_killed_worker_and_the_run_continues_exactly(tmp_path, straight_run):
    """torchrun --max-restarts 2 runs 2 gloo workers; one is SIGKILLed after a checkpoint exists. torchrun
    restarts both with the same command line, which continues from the latest checkpoint: the job exits 0 and G,
    D, G_ema and both optimisers equal the uninterrupted job's, bit for bit."""
    run = tmp_path / "run"
    proc = subprocess.Popen(_torchrun(run, STEPS, 2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env())  # fmt: skip
    _wait_for_step(run, 5, proc)
    workers = _workers(proc.pid)
    assert set(workers) == {0, 1}, workers
    os.kill(workers[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resumed from step" in (run / "log.txt").read_text()
    assert_same_state(load_checkpoint(run), straight_run)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="signals a process group")
def test_sigterm_to_the_whole_job_saves_and_the_same_command_continues_exactly(tmp_path, straight_run):
    """SIGTERM to the whole torchrun job (as a scheduler preempting it): the workers finish their step and write a
    checkpoint; the same command, run again (a requeue), continues from that checkpoint to the same final state
    as the uninterrupted job."""
    run = tmp_path / "run"
    proc = subprocess.Popen(_torchrun(run, STEPS, 0), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)  # fmt: skip
    _wait_for_step(run, 5, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    stopped = load_checkpoint(run)["step"]
    assert 5 <= stopped < STEPS, out
    log_text = (run / "log.txt").read_text()
    assert f"stopped at step {stopped}; checkpoint written" in log_text
    again = subprocess.run(_torchrun(run, STEPS, 0), capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed from step {stopped}" in (run / "log.txt").read_text()
    assert_same_state(load_checkpoint(run), straight_run)


def test_kill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    """A process killed (SIGKILL) halfway through writing latest.pt leaves the previous latest.pt whole and
    loadable (the write goes to a temporary file that is renamed only when complete), and the run resumes from it."""
    run = tmp_path / "run"
    run_cli(named_args(run, 2))
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    script = (
        "import os, signal, sys, torch\n"
        "import sagan.model_files.checkpoints as c\n"
        "real = torch.save\n"
        "def dying(obj, f, *a, **k):\n"
        "    real(obj, f, *a, **k)\n"
        "    with open(f, 'r+b') as h: h.truncate(os.path.getsize(f) // 2)\n"  # half written when the kill comes
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "c.torch.save = dying\n"
        "from sagan.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *named_args(run, 4)], env=_env(), capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert load_checkpoint(run)["step"] == 2
    assert [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name]  # the half-written file, aside
    run_cli(named_args(run, 4))  # the same command continues from step 2
    assert load_checkpoint(run)["step"] == 4


def test_a_run_that_ends_while_exploding_fails_naming_the_last_healthy_checkpoint(tmp_path):
    """Losses still exploding when --steps is reached (before explode_patience ran out): no checkpoint holds the
    final state, so the run exits 1, saying which step's checkpoint is the last healthy one, instead of 0 and
    "finished" (a script's `sagan train && sagan evaluate` would evaluate an older model)."""
    run = tmp_path / "run"
    run_cli(named_args(run, 3))
    result = CliRunner().invoke(main, named_args(run, 6, ["lr_d=1e3", "explode_patience=100"]))
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    saved = load_checkpoint(run)["step"]
    assert line.startswith("Error: training ended at step 6 while losses") and f"latest.pt (step {saved})" in line
    assert saved < 6 and "finished 6 steps" not in result.output


def test_resuming_weights_trained_with_another_config_names_the_field(tmp_path):
    """A checkpoint whose weights belong to another model config than the one it records (a checkpoint of one run
    with another's config) is refused in one line naming the field, not with a state-dict traceback."""
    run = tmp_path / "run"
    run_cli(named_args(run, 2))
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    ckpt["config"]["model"]["g_channels"] = 8  # trained with 4
    torch.save(ckpt, tmp_path / "other.pt")
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "other.pt"), "--steps", "4"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "trained with another model config" in line and "g_channels 4 (the config says 8)" in line


def test_the_probe_case_config_json_is_still_json(tmp_path):
    """config.json of a --run-dir run records the precision and why (amp_reason)."""
    run = tmp_path / "run"
    run_cli(named_args(run, 1))
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["amp"] == "none" and config["amp_reason"] == "amp none as configured"
