"""Run folders: created exclusively, with config.json, metrics.jsonl, TensorBoard events and log.txt.

runs/00012-cifar10/
    config.json            resolved config (written before training starts, updated on resume)
    checkpoints/           latest.pt, step-NNNNNNN.pt snapshots, best.pt
    samples/               step-NNNNNNN.png grids of the EMA generator
    metrics.jsonl          one JSON row per log step and per evaluation
    tensorboard/           the same scalars for `tensorboard --logdir runs`
    log.txt                the log
    .lock                  held (flock) by the process training in the folder; holds its PID
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from sagan.errors import SaganError
from sagan.safe_files import fsync_dir, write_text

try:
    import fcntl
except ImportError:  # not on Windows: runs there are not locked
    fcntl = None

log = logging.getLogger(__name__)


def create_run_dir(outdir: str | Path, name: str) -> Path:
    """Create outdir/NNNNN-name with the next free number. Exclusive: two processes never get the same folder."""
    outdir = Path(outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    while True:
        ids = [int(p.name.split("-")[0]) for p in outdir.iterdir() if p.name.split("-")[0].isdigit()]
        run_dir = outdir / f"{max(ids, default=-1) + 1:05d}-{name}"
        try:
            run_dir.mkdir()  # atomic: fails if another process took this number first
        except FileExistsError:
            continue
        fsync_dir(outdir)
        return run_dir


# What a run folder holds (module docstring): a folder of only these names is one of ours.
RUN_FOLDER_ENTRIES = {"config.json", "checkpoints", "samples", "metrics.jsonl", "tensorboard", "log.txt", ".lock"}


def named_run_state(path: str | Path) -> str:
    """What `sagan train --run-dir PATH` does with PATH: "new" (absent or empty: a run starts in it), "restart" (a
    run folder of ours that never saved a checkpoint, e.g. killed before its first: it starts again from step 0),
    or "resume" (it has checkpoints/latest.pt). SaganError for a file, or a folder with files that are not ours."""
    path = Path(path).expanduser()
    if not path.exists():
        return "new"
    if not path.is_dir():
        raise SaganError(f"--run-dir {path} is a file, not a folder")
    if (path / "checkpoints" / "latest.pt").is_file():
        return "resume"
    names = {p.name for p in path.iterdir()}
    if not names:
        return "new"
    foreign = sorted(names - RUN_FOLDER_ENTRIES)
    if foreign or "config.json" not in names:
        raise SaganError(
            f"--run-dir {path} is a folder that holds files of its own ({', '.join(foreign[:3]) or 'no config.json'}), "
            "not a sagan run folder; give a new or empty folder"
        )
    return "restart"


def write_config(run_dir: Path, config: dict) -> None:
    write_text(run_dir / "config.json", json.dumps(config, indent=2) + "\n", overwrite=True)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics.jsonl file. Lines that are not complete JSON rows (the last one may be cut short by
    a crash or a full disk) are skipped with a warning."""
    rows, bad = [], 0
    for line in Path(path).read_text(errors="replace").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
        elif line.strip():
            bad += 1
    if bad:
        log.warning("%s: skipped %d line(s) that are not complete metric rows", path, bad)
    return rows


def trim_metrics(path: Path, step: int) -> None:
    """On resume, keep the metric rows up to `step` (later ones are recomputed) and drop broken lines."""
    if path.exists():
        rows = [r for r in read_metrics(path) if r["step"] <= step]
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows), overwrite=True)


class MetricsLog:
    """Appends rows to metrics.jsonl and the same scalars to TensorBoard (events past `start_step` are purged)."""

    def __init__(self, run_dir: Path, start_step: int = 0) -> None:
        self.path, self.run_dir, self.start_step = run_dir / "metrics.jsonl", run_dir, start_step
        trim_metrics(self.path, start_step)
        self.writer = None  # opened with the first row: a run that fails before it leaves no events file

    def write(self, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a crashed run logged past the checkpoint it resumes from.
            purge = self.start_step + 1 if self.start_step else None
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in row.items():
            if k != "step":
                self.writer.add_scalar(k if "/" in k else f"train/{k}", v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class FileLog:
    """A context that copies the `sagan` log to run_dir/log.txt, and removes its handler on exit."""

    def __init__(self, run_dir: Path) -> None:
        self.handler = logging.FileHandler(run_dir / "log.txt")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self) -> FileLog:
        logging.getLogger("sagan").addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("sagan").removeHandler(self.handler)
        self.handler.close()


class RunLock:
    """An exclusive lock on a run folder for the life of a run: a second `sagan train --resume` of the same folder
    fails at once, naming the PID of the process that holds it. The lock is an flock on RUN/.lock, so it goes
    away with its process however that ends (a crash leaves no stale lock)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.file = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        f = open(self.path, "a+")  # noqa: SIM115  (held open until release)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise SaganError(
                f"{self.path.parent} is in use by another sagan process (PID {holder}); wait for it to end or stop it"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self.file = f
        return self

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


class RunFolder:
    """A training run's folder on rank 0, for the life of the run: the next free OUTDIR/NNNNN-PRESET, a new folder
    the caller names, or the resumed run's; locked (`RunLock`), with checkpoints/, config.json, log.txt,
    metrics.jsonl and a progress bar. `close` removes a folder this run created if the run failed before its
    first checkpoint, so a failed start leaves nothing behind."""

    def __init__(self, path: Path | None, outdir: str, preset: str, config: dict, start_step: int, resumed: bool):
        self.path, self.created = (Path(path) if path else None), False
        self.metrics = self.file_log = self.bar = self.lock = None
        self._contexts = contextlib.ExitStack()  # the log file's handler, removed at close
        restart = False
        if self.path is None:
            self.path, self.created = create_run_dir(outdir, preset), True
        elif not resumed:  # a new run in a folder the caller names: absent, empty, or a run of ours never saved
            state = named_run_state(self.path)
            if state == "resume":
                raise SaganError(f"{self.path} holds a run with a checkpoint; resume it instead of starting over")
            self.created, restart = not self.path.exists(), state == "restart"  # remove on failure only what we made
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir(exist_ok=True)
        try:
            self.lock = RunLock(self.path).acquire()  # before anything in the folder is touched
            if restart:  # the events and grids of the start that never saved; metrics.jsonl is trimmed below
                for name in ("tensorboard", "samples"):
                    shutil.rmtree(self.path / name, ignore_errors=True)
                log.warning("%s: a run that never saved a checkpoint; starting it again from step 0", self.path)
            (self.path / "checkpoints").mkdir(exist_ok=True)
            write_config(self.path, config)
            self.file_log = self._contexts.enter_context(FileLog(self.path))
            self.metrics = MetricsLog(self.path, start_step)
        except BaseException:
            self.close(failed=True, saved=False)
            raise

    def open_progress_bar(self, start_step: int, total_steps: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # few lines in log files
        )

    def close(self, failed: bool, saved: bool) -> None:
        """Close the logs and the lock; `failed` before anything was `saved`: remove a folder this run created."""
        for closing in (self.bar, self.metrics):
            if closing is not None:
                closing.close()
        self._contexts.close()
        if failed and self.created and not saved:
            shutil.rmtree(self.path, ignore_errors=True)
            log.warning("removed %s: the run failed before its first checkpoint", self.path)
        if self.lock is not None:
            self.lock.release()
