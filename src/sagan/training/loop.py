"""The SAGAN training loop: `train` reads top to bottom (fetch data, D step, G step, EMA, maintenance); `Run` holds
the run's state around the `Trainer` (which does the model maths) and decides what each step's maintenance does.
Each concern of that maintenance lives in its own module:

- the run folder, its lock, config and logs: `sagan.training.run_folder.RunFolder` (rank 0 only writes files);
- the real-image stream: `sagan.training.real_images.make_loader`;
- log rows and the divergence guard: `sagan.training.step_log.StepLog`, `sagan.training.step_log.DivergenceGuard`;
- evaluation of G_ema during training: `sagan.metrics.evaluate.Evaluator`;
- checkpoints: `sagan.training.checkpoint_saver.CheckpointSaver`.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sagan import distributed as dist_utils
from sagan.errors import DivergedError, SaganError
from sagan.run_config import RESUME_APPLIED, RESUME_BREAKING, Resolved
from sagan.sampling import GRID_COLUMNS, fixed_noise, generate, grid_size, make_labels, save_grid
from sagan.training.checkpoint_saver import CheckpointSaver
from sagan.training.real_images import make_loader
from sagan.training.run_folder import RunFolder
from sagan.training.step_log import EXPLODING_LOSS, DivergenceGuard, StepLog, all_finite
from sagan.training.trainer import Trainer

log = logging.getLogger("sagan")


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
            trainer = run.trainer  # the models, optimisers and the two update steps (sagan.training.trainer)
            while run.step < cfg.steps:
                # Fetch data: d_steps batches of this rank's real images.
                real_batches = [run.next_real_batch() for _ in range(cfg.d_steps)]
                trainer.set_class_signal(run.step)  # transitional conditioning's ramp (1 when it is off)

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
    """One training run's state around the Trainer: its data stream, folder, log, guard, evaluator and saver."""

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
        self.consumed = self._data_position(resume, dist.world_size) if resume else 0
        self.batches = iter(make_loader(resolved, dist, device, self.consumed))
        self.evaluator = None
        if self.cfg.eval_every:  # every rank evaluates its share of the images
            from sagan.metrics.evaluate import Evaluator

            self.evaluator = Evaluator(self.cfg, resolved.model, device, dist)
        # Training time excludes maintenance (samples, evaluation, checkpoints).
        self.step_log = StepLog(device, float(resume.get("train_seconds", 0.0)) if resume else 0.0)
        num_samples = grid_size(resolved.model.num_classes)  # a conditional model's grid: one row per class
        self.sample_z = fixed_noise(num_samples, resolved.model.z_dim, self.cfg.seed)
        self.sample_y = make_labels(num_samples, resolved.model.num_classes, per_row=GRID_COLUMNS)
        self.folder = None
        if dist.is_main:
            self.folder = RunFolder(
                run_dir, self.cfg.outdir, resolved.preset, {**resolved.as_dict(), "world_size": dist.world_size},
                self.start_step, resumed=resume is not None,
            )  # fmt: skip
            resolved.remember_amp_timing()  # the run has started: bad input can no longer stop it
            self._announce(resume)
            self.folder.open_progress_bar(self.start_step, self.cfg.steps)
        self.saver = CheckpointSaver(self.folder.path if self.folder else None, resolved, dist, resume)
        self.guard = DivergenceGuard(
            self.trainer, dist, device, self.cfg.explode_patience, self.cfg.log_every, self.start_step,
            self.saver.where_saved,
        )  # fmt: skip

    def _data_position(self, resume: dict, world_size: int) -> int:
        """Images of the data stream this rank has consumed: the checkpoint's count per rank, converted when the
        number of processes changed (ranks are dealt the global stream round-robin, so global position
        count * old world size is position count * old / new of each new rank's share)."""
        old_world = int(resume.get("world_size", 1))
        per_step = self.cfg.batch_size // old_world * self.cfg.d_steps  # images of one old rank per step
        saved = int(resume.get("data_consumed", self.start_step * per_step))
        return saved * old_world // world_size

    @property
    def run_dir(self) -> Path | None:
        return self.folder.path if self.folder else None

    def _announce(self, resume: dict | None) -> None:
        what = f"resumed from step {self.start_step}" if resume else "new run"
        log.info("run folder %s: %s (%d process(es), device %s)", self.run_dir, what, self.dist.world_size, self.device)
        precision = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast with grad scaling"}
        why = self.resolved.amp_reason or f"amp {self.cfg.amp}"  # what amp "auto" (the default) decided from
        log.info("precision: %s (amp %s in config.json; %s)", precision[self.cfg.amp], self.cfg.amp, why)
        for k, (old, new) in self.resolved.changes.items():
            important = k in RESUME_APPLIED or k in RESUME_BREAKING  # applied to the state, or forced
            log.log(logging.WARNING if important else logging.INFO, "changed on resume: %s %r -> %r", k, old, new)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.folder is not None:
            self.folder.close(failed=exc_type is not None, saved=self.saver.saved_step is not None)

    def next_real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's next real batch on the device: images (local_batch, C, R, R), labels or None."""
        x_real, y_real = next(self.batches)
        self.consumed += self.trainer.local_batch
        x_real = x_real.to(self.device, non_blocking=True)
        y_real = y_real.to(self.device, non_blocking=True) if self.resolved.model.num_classes else None
        return x_real, y_real

    def finish_step(self, d_stats: torch.Tensor, loss_g: torch.Tensor) -> None:
        """Count the step and add its statistics (last D update's, and G's) to the sums since the last log row."""
        self.step_log.add(d_stats, loss_g)
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
        step, trainer = self.step, self.trainer
        if self.folder is not None:
            self.folder.bar.update(1)
        due = self.due(stop)
        if due.log:
            self._log(step)
        t_work = time.perf_counter()
        if due.sample or due.evaluate or due.save:  # G_ema is about to be used: its own BatchNorm statistics first
            trainer.refresh_ema_statistics()
        if due.sample and self.folder is not None:
            self._sample_grid(step)
        save, evaluate = due.save, due.evaluate
        if save and self.guard.holds_saves:
            log.warning("step %d: no checkpoint written while losses explode; the last healthy one stays", step)
            save = evaluate = False
        if save and self.guard.checked_step != step:
            self.guard.check(step, self.step_log.finite())  # never evaluate, keep as best, or save a diverged state
        metrics = self._evaluate(step) if evaluate else None  # a collective: all ranks
        if save:
            self.saver.save(trainer, step, due.snapshot, metrics, self.consumed, self.step_log.train_seconds)
        self.step_log.exclude(time.perf_counter() - t_work)
        return due.stop

    def _log(self, done: int) -> None:
        """Bring the step statistics to the host, check them, write a metrics row (rank 0)."""
        cfg = self.cfg
        means = self.step_log.means()  # waits for the device
        seconds, steps = self.step_log.close_interval()
        self.guard.check(done, all_finite(means))
        images = steps * cfg.batch_size * cfg.d_steps  # the global batch: all processes
        row = {
            "step": done,
            "kimg": done * cfg.batch_size * cfg.d_steps / 1000,
            **{k: means[k] for k in ("loss_d", "loss_g", "d_real", "d_fake")},
            **{f"gamma/{k}": a.gamma.item() for k, a in self.trainer.attn_layers.items()},
            "lr_g": self.trainer.opt_G.param_groups[0]["lr"],
            "lr_d": self.trainer.opt_D.param_groups[0]["lr"],
            "images_per_s": images / seconds,
            "train_minutes": self.step_log.train_seconds / 60,
        }
        exploding = self.guard.watch(done, means)
        if self.folder is not None:
            self.folder.metrics.write(row)
            postfix = {"loss_d": f"{row['loss_d']:.3f}", "loss_g": f"{row['loss_g']:.3f}"}
            postfix["img_s"] = f"{row['images_per_s']:.0f}"
            self.folder.bar.set_postfix(**postfix, **({"warning": "EXPLODING"} if exploding else {}))
        self.guard.check_patience(done)

    def _sample_grid(self, step: int) -> None:
        trainer = self.trainer
        G = trainer.G_ema if trainer.G_ema is not None else trainer.G.eval()
        path = self.run_dir / "samples" / f"step-{step:07d}.png"
        save_grid(generate(G, self.sample_z, self.sample_y), path, overwrite=True)
        trainer.G.train()

    def _evaluate(self, done: int) -> dict:
        metrics = self.evaluator(self.trainer.G_ema if self.trainer.G_ema is not None else self.trainer.G, done)
        if self.folder is not None:
            self.folder.metrics.write({"step": done, **{f"eval/{k}": v for k, v in metrics.items()}})
        self.trainer.G.train()
        return metrics

    def finish(self, stop: StopRequest) -> Path | None:
        """The run folder (rank 0); DivergedError when the run ends (its last step or a stop) while its losses
        explode, so that no checkpoint holds the final state: a script's `sagan train && sagan evaluate` must not
        evaluate an older model believing it is the final one."""
        saved = self.saver.saved_step
        if self.guard.holds_saves and saved != self.step:
            raise DivergedError(
                f"training ended at step {self.step} while losses or D outputs were above {EXPLODING_LOSS:g} in "
                f"magnitude (since step {self.guard.exploding_since}): steps after {saved or 0} were not saved; "
                f"{self.saver.where_saved()}"
            )
        if self.dist.is_main:
            if stop.requested and (self.saver.saved_step or 0) < self.cfg.steps:
                log.warning(
                    "stopped at step %d; checkpoint written. Resume with: sagan train --resume %s",
                    self.saver.saved_step,
                    self.run_dir,
                )
            else:
                log.info("finished %d steps; run folder %s", self.cfg.steps, self.run_dir)
        return self.run_dir if self.dist.is_main else None
