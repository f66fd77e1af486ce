"""Saving a training run: checkpoints/latest.pt, step-NNNNNNN.pt snapshots (the newest `keep_snapshots` kept)
and best.pt by FID, each one dict (`sagan.model_files.checkpoints`) of the trainer's state, the data position,
every rank's RNG states and the run's config. Saving is a collective: every rank calls it, rank 0 writes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from sagan import distributed as dist_utils
from sagan.model_files.checkpoints import FORMAT_VERSION, prune_snapshots, rng_state, save_atomic
from sagan.run_config import Resolved

log = logging.getLogger("sagan")


class CheckpointSaver:
    """Writes a run's checkpoints and remembers the last one written and the best FID so far."""

    def __init__(self, run_dir: Path | None, resolved: Resolved, dist, resume: dict | None) -> None:
        self.run_dir, self.resolved, self.dist = run_dir, resolved, dist
        self.best_fid = float(resume.get("best_fid", math.inf)) if resume else math.inf
        self.saved_step = int(resume["step"]) if resume else None  # None: nothing saved (or resumed) yet

    def save(self, trainer, step: int, snapshot: bool, metrics: dict | None, consumed: int, train_seconds: float):
        """Write latest.pt (and a snapshot, best.pt); a collective on every rank. The guard has passed."""
        dist = self.dist
        rngs = dist_utils.all_gather_objects(rng_state(trainer.gen), dist)
        digests = dist_utils.all_gather_objects(dist_utils.parameter_digest(trainer.G), dist)
        if len(set(digests)) > 1:  # DDP keeps replicas equal; anything else is a bug
            raise RuntimeError(f"generator weights differ across ranks at step {step}: {digests}")
        if not dist.is_main:
            return
        fid = None
        if metrics:  # an evaluation ran, so the metrics module is loaded already
            from sagan.metrics.evaluate import main_fid

            found = main_fid(metrics)
            fid = found[1] if found else None
        is_best = fid is not None and fid < self.best_fid
        self.best_fid = fid if is_best else self.best_fid
        ckpt = {
            **trainer.state_dict(),
            "step": step,
            "data_consumed": consumed,
            "rng": rngs,
            "G_digests": digests,
            "config": self.resolved.as_dict(),
            "world_size": dist.world_size,
            "best_fid": self.best_fid,
            "train_seconds": train_seconds,
            "version": FORMAT_VERSION,
        }
        folder = self.run_dir / "checkpoints"
        save_atomic(ckpt, folder / "latest.pt")
        self.saved_step = step
        if snapshot:
            save_atomic(ckpt, folder / f"step-{step:07d}.pt")
            prune_snapshots(folder, self.resolved.train.keep_snapshots)
        if is_best:
            save_atomic(ckpt, folder / "best.pt")
            log.info("step %d: best FID so far (%.3f), saved checkpoints/best.pt", step, fid)

    def where_saved(self) -> str:
        """Where the last good checkpoint is, for a message: this run's latest.pt, or the resumed file."""
        if self.saved_step is None:
            return "no checkpoint was written"
        latest = self.run_dir / "checkpoints" / "latest.pt" if self.run_dir is not None else None
        if latest is None or not latest.is_file():  # resumed from a file outside this run folder, nothing saved yet
            return f"the last good checkpoint is the one this run resumed from (step {self.saved_step})"
        return f"the last good checkpoint is {latest} (step {self.saved_step})"
