"""The parts of a run's maintenance on their own (`sagan.training.step_log`): step statistics and training time, and the
divergence guard's three ways to stop a run."""

import math

import pytest
import torch

from sagan.distributed import DistInfo
from sagan.errors import DivergedError
from sagan.training.step_log import EXPLODING_LOSS, DivergenceGuard, StepLog, all_finite


class FakeTrainer:
    def __init__(self, finite=True):
        self.finite = finite

    def parameters_finite(self):
        return self.finite


def guard(trainer=None, patience=3, log_every=10, where="the last good checkpoint is X (step 5)"):
    return DivergenceGuard(
        trainer or FakeTrainer(), DistInfo(), torch.device("cpu"), patience, log_every, 0, lambda: where
    )


def test_step_log_means_and_training_time_without_maintenance(monkeypatch):
    clock = iter([100.0, 130.0])
    monkeypatch.setattr("sagan.training.step_log.time.perf_counter", lambda: next(clock))
    log = StepLog(torch.device("cpu"), train_seconds=60.0)
    log.add(torch.tensor([1.0, 2.0, -2.0]), torch.tensor(0.5))
    log.add(torch.tensor([3.0, 4.0, -4.0]), torch.tensor(1.5))
    assert log.means() == {"loss_d": 2.0, "d_real": 3.0, "d_fake": -3.0, "loss_g": 1.0}
    log.exclude(10.0)  # maintenance inside the interval is not training
    assert log.close_interval() == (20.0, 2)
    assert log.train_seconds == 80.0 and log.count == 0 and torch.equal(log.sums, torch.zeros(4))
    log.add(torch.tensor([math.nan, 0.0, 0.0]), torch.tensor(0.0))
    assert not log.finite() and not all_finite(log.means())


def test_guard_stops_on_non_finite_values_and_names_the_last_checkpoint():
    g = guard()
    g.check(10, stats_ok=True)
    assert g.checked_step == 10
    with pytest.raises(DivergedError, match=r"non-finite losses at step 20 \(finite at step 10\).*step 5"):
        g.check(20, stats_ok=False)
    with pytest.raises(DivergedError, match="non-finite weights at step 30"):
        guard(FakeTrainer(finite=False)).check(30, stats_ok=True)


def test_guard_holds_saves_while_exploding_and_stops_after_its_patience():
    g = guard(patience=3, log_every=10)
    big = {"loss_d": 2 * EXPLODING_LOSS, "loss_g": 0.0}
    assert g.watch(10, big) == ["loss_d"] and g.holds_saves
    g.check_patience(10)
    assert g.watch(20, {"loss_d": 1.0, "loss_g": 0.0}) == [] and not g.holds_saves  # a calm row resets it
    for step in (30, 40):
        g.watch(step, big)
        g.check_patience(step)
    g.watch(50, big)
    with pytest.raises(DivergedError, match=r"for 3 log rows in a row \(steps 30-50; explode_patience 3\)"):
        g.check_patience(50)
    warn_only = guard(patience=0)
    for step in (10, 20, 30, 40):
        warn_only.watch(step, big)
        warn_only.check_patience(step)
    assert not warn_only.holds_saves  # patience 0: warn, and save as usual
