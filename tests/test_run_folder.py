"""`sagan.training.run_folder`: exclusive numbering, what --run-dir makes of a folder, the lock, metrics rows."""

import json
import os

import pytest

from sagan.errors import SaganError
from sagan.training.run_folder import RunLock, create_run_dir, named_run_state, read_metrics


def test_run_folders_are_numbered_after_the_highest(tmp_path):
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "notes").mkdir()
    assert create_run_dir(tmp_path, "demo").name == "00008-demo"
    assert create_run_dir(tmp_path, "demo").name == "00009-demo"


def test_named_run_state_tells_new_restart_and_resume_apart(tmp_path):
    run = tmp_path / "run"
    assert named_run_state(run) == "new"  # absent
    run.mkdir()
    assert named_run_state(run) == "new"  # empty
    (run / "config.json").write_text("{}")
    (run / "log.txt").write_text("")
    assert named_run_state(run) == "restart"  # ours, never saved
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.pt").write_bytes(b"")
    assert named_run_state(run) == "resume"
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"")
    with pytest.raises(SaganError, match="holds files of its own"):
        named_run_state(tmp_path / "photos")
    (tmp_path / "file").write_text("")
    with pytest.raises(SaganError, match="is a file"):
        named_run_state(tmp_path / "file")


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path):
    first = RunLock(tmp_path).acquire()
    try:
        with pytest.raises(SaganError, match=f"in use by another sagan process \\(PID {os.getpid()}\\)"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    RunLock(tmp_path).acquire().release()  # free again


def test_read_metrics_skips_a_cut_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "loss_d": 1.0}) + "\n" + '{"step": 2, "loss')
    assert read_metrics(path) == [{"step": 1, "loss_d": 1.0}]
