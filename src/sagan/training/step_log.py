"""What a training run logs after its steps, and the guard against divergence.

`StepLog` sums the step statistics on the device (no host sync between log rows), counts training time without
maintenance, and turns them into the rows of metrics.jsonl. `DivergenceGuard` checks them: at every log step (and
before every checkpoint) the losses and mean D outputs since the last check and all weights of G, D and G_ema must
be finite, else the run stops with `DivergedError` naming the step, so a non-finite state is never saved and
the last good checkpoint is never overwritten or pruned. Finite values above EXPLODING_LOSS in magnitude give a
warning in the log and the progress bar; while they last no checkpoint is written (the last healthy one stays),
and after `explode_patience` such log rows in a row the run stops with `DivergedError` too (explode_patience 0:
warn and save as usual).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch

from sagan import distributed as dist_utils
from sagan.errors import DivergedError

log = logging.getLogger("sagan")
# |mean loss| or |mean D output| above this is reported as exploding: in healthy hinge-loss training D's outputs
# stay within about +-10 and its loss within [0, 4].
EXPLODING_LOSS = 100.0
STAT_NAMES = ("loss_d", "d_real", "d_fake", "loss_g")


class StepLog:
    """Sums of the step statistics since the last log row, on the device, and the run's training time."""

    def __init__(self, device: torch.device, train_seconds: float = 0.0) -> None:
        self.sums = torch.zeros(len(STAT_NAMES), device=device)
        self.count = 0
        self.train_seconds = train_seconds  # the run's training time so far (maintenance excluded)
        self.t_last, self.excluded = time.perf_counter(), 0.0  # maintenance since the last row: not training

    def add(self, d_stats: torch.Tensor, loss_g: torch.Tensor) -> None:
        """A step's (loss_d, mean D(real), mean D(fake)) of its last D update, and G's loss."""
        self.sums += torch.cat([d_stats, loss_g[None]])
        self.count += 1

    def exclude(self, seconds: float) -> None:
        self.excluded += seconds

    def means(self) -> dict[str, float]:
        """The means since the last row, on the host (the only sync of a log interval)."""
        return dict(zip(STAT_NAMES, (self.sums / self.count).tolist(), strict=True))

    def close_interval(self) -> tuple[float, int]:
        """(training seconds, steps) of the interval since the last row; the run's total grows by them."""
        now = time.perf_counter()
        seconds = now - self.t_last - self.excluded
        self.train_seconds += seconds
        steps = self.count
        self.sums.zero_()
        self.count, self.t_last, self.excluded = 0, now, 0.0
        return seconds, steps

    def finite(self) -> bool:
        return bool(self.sums.isfinite().all())


class DivergenceGuard:
    """Stops a run whose statistics or weights are non-finite, or whose losses keep exploding (module docstring).

    `where_saved()` says where the last good checkpoint is, for the error message.
    """

    def __init__(self, trainer, dist, device, explode_patience: int, log_every: int, start_step: int, where_saved):
        self.trainer, self.dist, self.device = trainer, dist, device
        self.patience, self.log_every = explode_patience, log_every
        self.where_saved: Callable[[], str] = where_saved
        self.checked_step = start_step
        self.exploding_since: int | None = None  # first log step of the current run of exploding log rows

    @property
    def holds_saves(self) -> bool:
        """True while losses explode and the patience is on: no checkpoint is written then."""
        return self.exploding_since is not None and bool(self.patience)

    def check(self, done: int, stats_ok: bool) -> None:
        """Raise DivergedError unless the statistics since the last check (`stats_ok`) and all weights are finite."""
        weights_ok = self.trainer.parameters_finite()
        bad = not (stats_ok and weights_ok)
        if self.dist.enabled:
            bad = dist_utils.any_rank(bad, self.dist, self.device)
        if bad:
            what = "losses" if not stats_ok else "weights" if not weights_ok else "values on another rank"
            raise DivergedError(
                f"training diverged: non-finite {what} at step {done} (finite at step {self.checked_step}); "
                f"stopped, {self.where_saved()}"
            )
        self.checked_step = done

    def watch(self, done: int, means: dict[str, float]) -> list[str]:
        """Note which means explode at log step `done` (warned in the log); returns their names."""
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
        return exploding

    def check_patience(self, done: int) -> None:
        """DivergedError after `explode_patience` exploding log rows in a row."""
        rows = (done - self.exploding_since) // self.log_every + 1 if self.exploding_since else 0
        if self.patience and rows >= self.patience:
            raise DivergedError(
                f"training diverged: losses or D outputs above {EXPLODING_LOSS:g} in magnitude for {rows} log rows in "
                f"a row (steps {self.exploding_since}-{done}; explode_patience {self.patience}); stopped, "
                f"{self.where_saved()}"
            )


def all_finite(means: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in means.values())
