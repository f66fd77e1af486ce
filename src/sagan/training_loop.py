"""The SAGAN training loop: setup, one step, maintenance (logs, samples, evaluation, checkpoints), and a guard
against divergence. The model maths lives in `sagan.trainer.Trainer`; only rank 0 writes files.

Divergence guard: at every log step (and before every checkpoint) the losses and mean D outputs since the last
check and all weights of G, D and G_ema must be finite, else the run stops with `DivergedError` naming the step;
a non-finite state is never saved, so the last good checkpoint is never overwritten or pruned. Finite values
above EXPLODING_LOSS in magnitude give a warning in the log and the progress bar; while they last no checkpoint
is written (the last healthy one stays), and after `explode_patience` such log rows in a row the run stops with
`DivergedError` too (explode_patience 0: warn and save as usual).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sagan import distributed as dist_utils
from sagan.checkpoint import FORMAT_VERSION, prune_snapshots, rng_state, save_atomic
from sagan.config import RESUME_APPLIED, RESUME_BREAKING, Resolved
from sagan.data import (
    TORCHVISION,
    InfiniteSampler,
    TensorImages,
    first_images,
    load_dataset,
    scan_image_folder,
)
from sagan.errors import DivergedError, SaganError
from sagan.rundir import FileLog, MetricsLog, RunLock, create_run_dir, write_config
from sagan.sampling import fixed_noise, generate, make_labels, save_grid
from sagan.trainer import Trainer

log = logging.getLogger("sagan")
NUM_SAMPLES = 64  # images in each sample grid
# |mean loss| or |mean D output| above this is reported as exploding: in healthy hinge-loss training D's outputs
# stay within about +-10 and its loss within [0, 4].
EXPLODING_LOSS = 100.0
STAT_NAMES = ("loss_d", "d_real", "d_fake", "loss_g")


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits. A second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: finishing this step, then saving a checkpoint", signal.Signals(signum).name)


def _ignore_sigint(_worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business


def make_loader(resolved: Resolved, dist, device: torch.device, consumed: int):
    """Endless (x, y) batches for this rank, starting after the `consumed` images it has already used.

    A dataset held in memory (`TensorImages`: the torchvision sets) moves to `device` and is batched by indexing;
    others go through a DataLoader. Both follow the same `InfiniteSampler` stream, so they give the same batches.
    """
    cfg, mc = resolved.train, resolved.model
    scan = None
    if dist.enabled and cfg.data not in TORCHVISION and cfg.data != "shapes":  # rank 0 decodes the folder once
        scan = dist_utils.all_gather_objects(scan_image_folder(cfg.data) if dist.is_main else None, dist)[0]
    dataset = load_dataset(
        cfg.data, mc.resolution, mc.img_channels, cfg.data_root, cfg.download, seed=cfg.seed, scan=scan
    )
    if cfg.data_limit:
        dataset = first_images(dataset, cfg.data_limit)
    if len(dataset) < cfg.batch_size:
        raise ValueError(f"dataset has {len(dataset)} images, fewer than one (global) batch")
    if cfg.batch_size % dist.world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} (the global batch) does not divide over {dist.world_size} processes"
        )
    local = cfg.batch_size // dist.world_size
    sampler = InfiniteSampler(len(dataset), dist.rank, dist.world_size, cfg.seed, start=consumed)
    if isinstance(dataset, TensorImages):
        return memory_batches(dataset.to(device), sampler, local)
    workers = cfg.num_workers if cfg.num_workers >= 0 else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
    return DataLoader(
        dataset,
        batch_size=local,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_sigint,
        prefetch_factor=4 if workers > 0 else None,
    )


def memory_batches(dataset: TensorImages, sampler: InfiniteSampler, batch_size: int):
    """Endless batches of an in-memory dataset: `batch_size` consecutive indices of `sampler` each."""
    indices = iter(sampler)
    while True:
        yield dataset.batch(list(itertools.islice(indices, batch_size)))


def train(resolved: Resolved, resume: dict | None = None, run_dir: Path | None = None) -> Path | None:
    """Train to `resolved.train.steps` G updates; return the run folder (on rank 0).

    `resume` is a loaded checkpoint and `run_dir` the run folder it belongs to; without `resume`, `run_dir` names a
    new run folder to create (None: the next free OUTDIR/NNNNN-PRESET).
    Raises DivergedError when the guard trips; a run that fails before its first checkpoint leaves no folder.
    """
    dist, device = dist_utils.init(resolved.train.device)
    cfg = resolved.train
    try:
        with StopRequest() as stop, Run(resolved, resume, run_dir, dist, device) as run:
            trainer = run.trainer  # the models, optimisers and the two update steps (sagan.trainer)
            while run.step < cfg.steps:
                # Fetch data: d_steps batches of this rank's real images.
                real_batches = [run.next_real_batch() for _ in range(cfg.d_steps)]

                # D step: one update per real batch, on cat([real, G(z)]).
                for x_real, y_real in real_batches:
                    d_stats = trainer.d_step(x_real, y_real)

                # G step: one update through D, D's weights frozen.
                loss_g = trainer.g_step()

                # EMA: G_ema follows G (decay 0 before ema_start_step).
                trainer.update_ema(run.step)
                run.finish_step(d_stats, loss_g)

                # Maintenance: logs and guard, sample grids, evaluation, checkpoints; a stop request.
                if run.maintenance(stop):
                    break
            return run.finish(stop)
    finally:
        dist_utils.shutdown()


@dataclass
class Due:
    """What the maintenance after a step does (every rank computes the same, so collectives match up)."""

    log: bool  # a metrics row, and the divergence guard
    sample: bool  # a sample grid of G_ema
    evaluate: bool  # FID etc. of G_ema (keeps best.pt)
    snapshot: bool  # checkpoints/step-NNNNNNN.pt
    save: bool  # checkpoints/latest.pt (also for a snapshot, an evaluation, the last step and a stop)
    stop: bool  # a stop request (Ctrl-C / SIGTERM) that all ranks agree on


class Run:
    """One training run's state around the Trainer: data, run folder, logs, progress, guard, checkpoints."""

    def __init__(self, resolved: Resolved, resume: dict | None, run_dir: Path | None, dist, device) -> None:
        # Everything that can fail on bad input (data, evaluator) comes before the run folder is created.
        self.resolved, self.cfg, self.dist, self.device = resolved, resolved.train, dist, device
        self.start_step = self.step = int(resume["step"]) if resume else 0
        self.trainer = Trainer(resolved.model, self.cfg, device, dist)
        if resume:
            self.trainer.load_state_dict(resume)
            if not self.trainer.parameters_finite():  # a diverged state saved by an older version, or edited by hand
                raise SaganError(
                    f"the checkpoint to resume (step {self.start_step}) has non-finite weights: the run had "
                    "diverged; resume from an earlier snapshot (checkpoints/step-*.pt)"
                )
        self.trainer.wrap()
        per_step = self.trainer.local_batch * self.cfg.d_steps  # images of this rank per step
        self.consumed = int(resume.get("data_consumed", self.start_step * per_step)) if resume else 0
        self.batches = iter(make_loader(resolved, dist, device, self.consumed))
        self.evaluator = None
        if self.cfg.eval_every:  # every rank evaluates its share of the images
            from sagan.metrics.evaluate import Evaluator

            self.evaluator = Evaluator(self.cfg, resolved.model, device, dist)
        self.best_fid = float(resume.get("best_fid", math.inf)) if resume else math.inf
        self.stats = torch.zeros(len(STAT_NAMES), device=device)  # sums since the last log step, on the device
        # Training time excludes maintenance (samples, evaluation, checkpoints): `excluded` collects it per interval.
        self.stats_n, self.t_log, self.excluded = 0, time.perf_counter(), 0.0
        self.train_seconds = float(resume.get("train_seconds", 0.0)) if resume else 0.0
        self.checked_step, self.saved_step = self.start_step, self.start_step if resume else None
        self.exploding_since = None  # first log step of the current run of exploding log rows
        self.sample_z = fixed_noise(NUM_SAMPLES, resolved.model.z_dim, self.cfg.seed)
        self.sample_y = make_labels(NUM_SAMPLES, resolved.model.num_classes, per_row=8)
        self.run_dir, self.created = (Path(run_dir) if run_dir else None), False
        self.metrics = self.file_log = self.bar = self.lock = None
        if dist.is_main:
            self._open_run_dir(resume)

    def _open_run_dir(self, resume: dict | None) -> None:
        from tqdm.auto import tqdm

        if self.run_dir is None:
            self.run_dir, self.created = create_run_dir(self.cfg.outdir, self.resolved.preset), True
        elif resume is None:  # a new run in a folder the caller names: it must not exist yet
            self.run_dir.parent.mkdir(parents=True, exist_ok=True)
            self.run_dir.mkdir()  # FileExistsError (an OSError: one line in the CLI) if it does
            self.created = True
        try:
            self.lock = RunLock(self.run_dir).acquire()  # before anything in the folder is touched
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        try:
            (self.run_dir / "checkpoints").mkdir(exist_ok=True)
            write_config(self.run_dir, {**self.resolved.as_dict(), "world_size": self.dist.world_size})
            self.file_log = FileLog(self.run_dir).__enter__()
            self.metrics = MetricsLog(self.run_dir, self.start_step)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        what = f"resumed from step {self.start_step}" if resume else "new run"
        log.info("run folder %s: %s (%d process(es), device %s)", self.run_dir, what, self.dist.world_size, self.device)
        for k, (old, new) in self.resolved.changes.items():
            important = k in RESUME_APPLIED or k in RESUME_BREAKING  # applied to the state, or forced
            log.log(logging.WARNING if important else logging.INFO, "changed on resume: %s %r -> %r", k, old, new)
        self.bar = tqdm(
            total=self.cfg.steps,
            initial=self.start_step,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # few lines in log files
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for closing in (self.bar, self.metrics):
            if closing is not None:
                closing.close()
        if self.file_log is not None:
            self.file_log.__exit__()
        if exc_type is not None and self.created and self.saved_step is None:  # a failed start leaves nothing
            shutil.rmtree(self.run_dir, ignore_errors=True)
            log.warning("removed %s: the run failed before its first checkpoint", self.run_dir)
        if self.lock is not None:
            self.lock.release()

    def next_real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's next real batch on the device: images (local_batch, C, R, R), labels or None."""
        x_real, y_real = next(self.batches)
        self.consumed += self.trainer.local_batch
        x_real = x_real.to(self.device, non_blocking=True)
        y_real = y_real.to(self.device, non_blocking=True) if self.resolved.model.num_classes else None
        return x_real, y_real

    def finish_step(self, d_stats: torch.Tensor, loss_g: torch.Tensor) -> None:
        """Count the step and add its statistics (last D update's, and G's) to the sums since the last log row."""
        self.stats += torch.cat([d_stats, loss_g[None]])
        self.stats_n += 1
        self.step += 1

    def due(self, stop: StopRequest) -> Due:
        cfg, step = self.cfg, self.step
        last = step == cfg.steps
        log_row = step % cfg.log_every == 0 or last
        stopping = stop.requested
        if self.dist.enabled:  # ranks agree on stopping at log steps, where all of them check
            stopping = log_row and dist_utils.any_rank(stop.requested, self.dist, self.device)
        evaluate = bool(cfg.eval_every) and (step % cfg.eval_every == 0 or last)
        snapshot = cfg.snapshot_every > 0 and step % cfg.snapshot_every == 0
        save = step % cfg.checkpoint_every == 0 or snapshot or last or stopping or evaluate
        return Due(log_row, step % cfg.sample_every == 0 or last, evaluate, snapshot, save, stopping)

    def maintenance(self, stop: StopRequest) -> bool:
        """Logs, guard, samples, evaluation and checkpoints after a step (see `Due`); True when the run should stop.

        Every rank takes the same branches, so the collectives inside (guard, evaluation, checkpoint) match up.
        """
        step, dist, trainer = self.step, self.dist, self.trainer
        if self.bar is not None:
            self.bar.update(1)
        due = self.due(stop)
        if due.log:
            self._log(step)
        t_work = time.perf_counter()
        if due.sample or due.evaluate or due.save:  # G_ema is about to be used: its own BatchNorm statistics first
            trainer.refresh_ema_statistics()
        if dist.is_main and due.sample:
            G = trainer.G_ema if trainer.G_ema is not None else trainer.G.eval()
            path = self.run_dir / "samples" / f"step-{step:07d}.png"
            save_grid(generate(G, self.sample_z, self.sample_y), path, overwrite=True)
            trainer.G.train()
        save, evaluate = due.save, due.evaluate
        if save and self.exploding_since is not None and self.cfg.explode_patience:
            log.warning("step %d: no checkpoint written while losses explode; the last healthy one stays", step)
            save = evaluate = False
        if save and self.checked_step != step:
            self._guard(step)  # never evaluate, keep as best, or save a diverged state
        metrics = self._evaluate(step) if evaluate else None  # a collective: all ranks
        if save:
            self._save(step, due.snapshot, metrics)
        self.excluded += time.perf_counter() - t_work
        return due.stop

    def _log(self, done: int) -> None:
        """Bring the step statistics to the host (the only sync of a log interval), check them, write a row."""
        cfg, dist = self.cfg, self.dist
        means = dict(zip(STAT_NAMES, (self.stats / self.stats_n).tolist(), strict=True))  # waits for the device
        now = time.perf_counter()
        seconds = now - self.t_log - self.excluded  # training only: maintenance since the last row left out
        self.train_seconds += seconds
        self._guard(done, means)
        images = self.stats_n * cfg.batch_size * cfg.d_steps  # the global batch: all processes
        row = {
            "step": done,
            "kimg": done * cfg.batch_size * cfg.d_steps / 1000,
            "loss_d": means["loss_d"],
            "loss_g": means["loss_g"],
            "d_real": means["d_real"],
            "d_fake": means["d_fake"],
            **{f"gamma/{k}": a.gamma.item() for k, a in self.trainer.attn_layers.items()},
            "lr_g": self.trainer.opt_G.param_groups[0]["lr"],
            "lr_d": self.trainer.opt_D.param_groups[0]["lr"],
            "images_per_s": images / seconds,
            "train_minutes": self.train_seconds / 60,
        }
        exploding = [k for k, v in means.items() if abs(v) > EXPLODING_LOSS]
        if exploding:
            log.warning(
                "step %d: %s above %g in magnitude: training may be diverging (lower lr_d / lr_g?)",
                done,
                ", ".join(f"{k} {means[k]:.3g}" for k in exploding),
                EXPLODING_LOSS,
            )
            self.exploding_since = self.exploding_since or done
        else:
            self.exploding_since = None
        if dist.is_main:
            self.metrics.write(row)
            postfix = {"loss_d": f"{row['loss_d']:.3f}", "loss_g": f"{row['loss_g']:.3f}"}
            postfix["img_s"] = f"{row['images_per_s']:.0f}"
            self.bar.set_postfix(**postfix, **({"warning": "EXPLODING"} if exploding else {}))
        self.stats.zero_()
        self.stats_n, self.t_log, self.excluded = 0, now, 0.0
        rows = (done - self.exploding_since) // cfg.log_every + 1 if self.exploding_since else 0
        if cfg.explode_patience and rows >= cfg.explode_patience:
            raise DivergedError(
                f"training diverged: losses or D outputs above {EXPLODING_LOSS:g} in magnitude for {rows} log rows in "
                f"a row (steps {self.exploding_since}-{done}; explode_patience {cfg.explode_patience}); stopped, "
                f"{self._last_checkpoint()}"
            )

    def _guard(self, done: int, means: dict | None = None) -> None:
        """Raise DivergedError unless the statistics since the last check and all weights are finite."""
        if means is None:
            stats_ok = bool(self.stats.isfinite().all())
        else:
            stats_ok = all(math.isfinite(v) for v in means.values())
        weights_ok = self.trainer.parameters_finite()
        bad = not (stats_ok and weights_ok)
        if self.dist.enabled:
            bad = dist_utils.any_rank(bad, self.dist, self.device)
        if bad:
            what = "losses" if not stats_ok else "weights" if not weights_ok else "values on another rank"
            raise DivergedError(
                f"training diverged: non-finite {what} at step {done} (finite at step {self.checked_step}); "
                f"stopped, {self._last_checkpoint()}"
            )
        self.checked_step = done

    def _last_checkpoint(self) -> str:
        """Where the last good checkpoint is, for a message: this run's latest.pt, or the resumed file."""
        if self.saved_step is None:
            return "no checkpoint was written"
        latest = self.run_dir / "checkpoints" / "latest.pt" if self.run_dir is not None else None
        if latest is None or not latest.is_file():  # resumed from a file outside this run folder, nothing saved yet
            return f"the last good checkpoint is the one this run resumed from (step {self.saved_step})"
        return f"the last good checkpoint is {latest} (step {self.saved_step})"

    def _evaluate(self, done: int) -> dict:
        metrics = self.evaluator(self.trainer.G_ema if self.trainer.G_ema is not None else self.trainer.G, done)
        if self.dist.is_main:
            self.metrics.write({"step": done, **{f"eval/{k}": v for k, v in metrics.items()}})
        self.trainer.G.train()
        return metrics

    def _save(self, step: int, snapshot: bool, metrics: dict | None) -> None:
        """Write latest.pt (and a snapshot, best.pt); a collective on every rank. The guard has passed."""
        dist = self.dist
        rngs = dist_utils.all_gather_objects(rng_state(self.trainer.gen), dist)
        digests = dist_utils.all_gather_objects(dist_utils.parameter_digest(self.trainer.G), dist)
        if len(set(digests)) > 1:  # DDP keeps replicas equal; anything else is a bug
            raise RuntimeError(f"generator weights differ across ranks at step {step}: {digests}")
        if not dist.is_main:
            return
        fid = next((v for k, v in (metrics or {}).items() if k.startswith("fid")), None)
        is_best = fid is not None and fid < self.best_fid
        self.best_fid = fid if is_best else self.best_fid
        ckpt = {
            **self.trainer.state_dict(),
            "step": step,
            "data_consumed": self.consumed,
            "rng": rngs,
            "G_digests": digests,
            "config": self.resolved.as_dict(),
            "world_size": dist.world_size,
            "best_fid": self.best_fid,
            "train_seconds": self.train_seconds,
            "version": FORMAT_VERSION,
        }
        folder = self.run_dir / "checkpoints"
        save_atomic(ckpt, folder / "latest.pt")
        self.saved_step = step
        if snapshot:
            save_atomic(ckpt, folder / f"step-{step:07d}.pt")
            prune_snapshots(folder, self.cfg.keep_snapshots)
        if is_best:
            save_atomic(ckpt, folder / "best.pt")
            log.info("step %d: best FID so far (%.3f), saved checkpoints/best.pt", step, fid)

    def finish(self, stop: StopRequest) -> Path | None:
        if self.dist.is_main:
            if stop.requested and (self.saved_step or 0) < self.cfg.steps:
                log.warning(
                    "stopped at step %d; checkpoint written. Resume with: sagan train --resume %s",
                    self.saved_step,
                    self.run_dir,
                )
            else:
                log.info("finished %d steps; run folder %s", self.cfg.steps, self.run_dir)
        return self.run_dir if self.dist.is_main else None
