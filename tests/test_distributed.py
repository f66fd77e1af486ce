"""Distributed training and evaluation on CPU (gloo, 2 processes under torchrun) against one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("distributed_worker.py")


def _run(mode: str, out: Path, processes: int, cache: Path) -> object:
    env = dict(os.environ, PYTHONUNBUFFERED="1", SAGAN_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    root = Path(__file__).parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root), env.get("PYTHONPATH", "")])
    if processes == 1:
        cmd = [sys.executable, str(WORKER), mode, str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        cmd += [str(WORKER), mode, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def _assert_same_states(a: dict, b: dict, atol: float) -> None:
    for model in a:
        assert a[model].keys() == b[model].keys()
        for k, v in a[model].items():
            if v.is_floating_point():
                torch.testing.assert_close(v, b[model][k], atol=atol, rtol=atol, msg=f"{model}.{k}")
            else:
                assert torch.equal(v, b[model][k]), f"{model}.{k}"


@pytest.mark.parametrize("mode", ["train-syncbn", "d-steps"])
def test_two_processes_train_as_one_with_the_global_batch(tmp_path, mode):
    """2 processes x batch 4 give the G, D and G_ema of 1 process x batch 8 after 3 steps: the batch is global,
    weights come from the seed alone, each rank takes its share of one noise stream, DDP averages gradients,
    and SyncBN normalises G over the global batch ("train-syncbn"); without SyncBN, D's updates alone agree
    ("d-steps", G's BatchNorm in eval mode). The optimiser is plain SGD here (distributed_worker.PlainSGD: Adam
    would blow rounding differences on zero-gradient parameters up to whole steps)."""
    one = _run(mode, tmp_path / "one.pt", 1, tmp_path / "c1")
    two = _run(mode, tmp_path / "two.pt", 2, tmp_path / "c2")
    _assert_same_states(one, two, atol=2e-5)
    if mode == "d-steps":  # and the D steps did change D (the comparison is not of two untouched models)
        from tests.distributed_worker import MODEL, TrainConfig, Trainer

        fresh = Trainer(MODEL, TrainConfig(batch_size=8, seed=3), torch.device("cpu")).D.state_dict()
        assert not torch.equal(fresh["linear.bias"], one["D"]["linear.bias"])


def test_distributed_fid_equals_the_single_process_fid(tmp_path):
    """Every rank generates and extracts its share of the samples (and of the real images, on a cache miss);
    the features gathered in batch order give the single-process FID and KID."""
    one = _run("fid", tmp_path / "one.pt", 1, tmp_path / "c1")
    two = _run("fid", tmp_path / "two.pt", 2, tmp_path / "c2")
    assert two["protocol"]["processes"] == 2 and one["protocol"]["num_fake"] == two["protocol"]["num_fake"] == 70
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, abs=1e-6), k
    assert one["metrics"]["fid70"] > 0
    assert len(list((tmp_path / "c2" / "metrics").iterdir())) == 1  # rank 0 cached the gathered real features
