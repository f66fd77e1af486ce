"""benchmarks/gpu_check.py's plumbing on the CPU: it names each missing input in one line before doing anything,
and its dry run (--device cpu --tiny) runs every part, within its time limit, into one folder of Markdown and JSON
with the trained generator's FID."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, missing_data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)  # fmt: skip


def test_missing_inputs_are_named_one_line_each(tmp_path):
    proc = _run(["--device", "cpu", "--tiny", "--out", str(tmp_path / "out"), "--fashion-mnist",
                 str(tmp_path / "nothing"), "--inception", str(tmp_path / "none.pt")])  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MISSING: ")]
    assert proc.returncode == 1 and len(lines) == 2, proc.stdout + proc.stderr
    assert "train-images-idx3-ubyte.gz" in lines[0] and "none.pt" in lines[1]
    assert not any((tmp_path / "out").iterdir())  # nothing run


def test_the_dry_run_runs_every_part(tmp_path):
    fm, inception = SHARED_DATA / "fashion-mnist", SHARED_DATA / "inception" / "default_1.pt"
    if not (fm.is_dir() and inception.is_file()):
        missing_data(f"the dry run needs Fashion-MNIST and the Inception module in {SHARED_DATA}")
    out = tmp_path / "dry"
    proc = _run(["--device", "cpu", "--tiny", "--out", str(out), "--fashion-mnist", str(fm), "--inception",
                 str(inception)], timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr + "".join(p.read_text() for p in out.glob("*.log"))
    summary = json.loads((out / "summary.json").read_text())
    parts = {p["part"]: p for p in summary["parts"]}
    assert set(parts) == {"pytest", "attention", "train_step-batch8", "train", "fid"}
    assert all(p["status"] == "ok" for p in parts.values())
    assert summary["fid"]["fid200"] > 0 and summary["device"]["device"] == "cpu"
    text = (out / "summary.md").read_text()
    assert "| attention | ok |" in text and "## train_step-batch8" in text and "fid200" in text
    assert "skipped" in (out / "pytest.log").read_text()  # the cuda cases, skipped with their reason
    print(f"dry run: {summary['seconds']:.0f} s")


@pytest.mark.parametrize("part", ["fid"])
def test_one_part_can_be_rerun_alone(tmp_path, part):
    """--only reruns named parts into an existing folder (after a failed part on the GPU); here into an empty one,
    where the fid part fails cleanly for want of a trained run instead of hanging or crashing the script."""
    fm, inception = SHARED_DATA / "fashion-mnist", SHARED_DATA / "inception" / "default_1.pt"
    if not (fm.is_dir() and inception.is_file()):
        missing_data(f"needs Fashion-MNIST and the Inception module in {SHARED_DATA}")
    out = tmp_path / "again"
    proc = _run(["--device", "cpu", "--tiny", "--out", str(out), "--only", part, "--fashion-mnist", str(fm),
                 "--inception", str(inception)], timeout=120)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert [p["part"] for p in summary["parts"]] == [part]
    assert proc.returncode == 1 and summary["parts"][0]["status"].startswith("exit ")
