"""Shared fixtures. Real data for tests comes from $SAGAN_SHARED_DATA (default ~/.cache/sagan-shared-data),
which `../shared/data/fetch.sh` fills; tests that need it skip, saying so, only when it is absent, and fail
instead when SAGAN_REQUIRE_SHARED_DATA=1 (as CI sets it: there, missing data is a broken setup)."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

SHARED_DATA = Path(os.environ.get("SAGAN_SHARED_DATA") or Path.home() / ".cache" / "sagan-shared-data")
REQUIRE_SHARED_DATA = os.environ.get("SAGAN_REQUIRE_SHARED_DATA", "") not in ("", "0")


def missing_data(reason: str):
    """Skip the test, or fail it where the shared data is required."""
    if REQUIRE_SHARED_DATA:
        pytest.fail(f"{reason} (SAGAN_REQUIRE_SHARED_DATA is set)", pytrace=False)
    pytest.skip(reason)


# A tiny model and run, fast on CPU: attention in G and D at 16 px.
TINY_SETS = [
    "g_channels=4",
    "d_channels=4",
    "z_dim=8",
    "log_every=1",
    "sample_every=2",
    "checkpoint_every=2",
    "snapshot_every=2",
    "keep_snapshots=1",
    "ema_start_step=1",
    "ema_decay=0.9",
]


def tiny_args(outdir, steps=4, extra=()):
    args = ["train", "--outdir", str(outdir), "--steps", str(steps), "--batch-size", "4", "--device", "cpu"]
    for s in TINY_SETS:
        args += ["--set", s]
    return args + list(extra)


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory):
    """A torchvision data root holding the real Fashion-MNIST archives (links to the shared files)."""
    src = SHARED_DATA / "fashion-mnist"
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    if not all((src / n).is_file() for n in names):
        missing_data(f"Fashion-MNIST not found in {src}; run ../shared/data/fetch.sh or set SAGAN_SHARED_DATA")
    root = tmp_path_factory.mktemp("data")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for n in names:
        (raw / n).symlink_to(src / n)
    return root


@pytest.fixture(scope="session")
def inception_torchscript():
    """Path of the offline FID Inception (TorchScript pool3) module from the shared data."""
    path = SHARED_DATA / "inception" / "default_1.pt"
    if not path.is_file():
        missing_data(f"FID Inception weights not found at {path}; run ../shared/data/fetch.sh or set SAGAN_SHARED_DATA")
    return path


def run_cli(args):
    """Invoke the CLI in-process and require exit status 0."""
    from sagan.cli import main

    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def only_run(outdir) -> Path:
    (run,) = Path(outdir).iterdir()
    return run
