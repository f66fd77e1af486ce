"""`sagan.training.checkpoint_saver.CheckpointSaver` on its own: latest.pt, snapshots pruned to keep_snapshots,
best.pt by FID, and where the last good checkpoint is."""

import torch

from sagan.distributed import DistInfo
from sagan.model_files.checkpoints import load_checkpoint
from sagan.run_config import resolve
from sagan.training.checkpoint_saver import CheckpointSaver
from sagan.training.trainer import Trainer
from tests.conftest import TINY_SETS


def test_saver_writes_latest_snapshots_and_best(tmp_path):
    resolved = resolve("demo", {"device": "cpu", "batch_size": 4}, [*TINY_SETS, "keep_snapshots=2"])
    trainer = Trainer(resolved.model, resolved.train, torch.device("cpu"))
    trainer.wrap()
    (tmp_path / "checkpoints").mkdir()
    saver = CheckpointSaver(tmp_path, resolved, DistInfo(), resume=None)
    assert saver.where_saved() == "no checkpoint was written"
    for step, fid in ((2, 50.0), (4, 40.0), (6, 45.0)):
        saver.save(trainer, step, snapshot=True, metrics={"fid10": fid}, consumed=4 * step, train_seconds=step)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("step-*.pt")) == ["step-0000004.pt", "step-0000006.pt"]
    latest, best = load_checkpoint(folder / "latest.pt"), load_checkpoint(folder / "best.pt")
    assert latest["step"] == 6 and latest["data_consumed"] == 24 and latest["train_seconds"] == 6
    assert best["step"] == 4 and best["best_fid"] == 40.0 and latest["best_fid"] == 40.0
    assert saver.where_saved() == f"the last good checkpoint is {folder / 'latest.pt'} (step 6)"
    resumed = CheckpointSaver(tmp_path / "elsewhere", resolved, DistInfo(), resume=latest)
    assert resumed.best_fid == 40.0 and "the one this run resumed from (step 6)" in resumed.where_saved()
