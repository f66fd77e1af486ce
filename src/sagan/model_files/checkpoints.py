"""Training checkpoints: one dict per file, written atomically and fsync'd, loaded with `weights_only=True`.

A checkpoint holds G, D, G_ema (unwrapped, uncompiled state dicts), both optimizers, both grad scalers, the
step, the data position and RNG states of every rank, the resolved config and a format version. Anything
loaded is checked before use: a file that is not a sagan checkpoint, weights that do not fit their config, and
non-finite weights (a diverged run) are refused with a one-line `SaganError` (`sagan.model_files.weights`).
Exporting a checkpoint's generator is `sagan.model_files.exports`; loading a model from any kind of file is
`sagan.model_files.loading`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from sagan.errors import TORCH_LOAD_ERRORS, SaganError, first_line
from sagan.safe_files import atomic_output

FORMAT_VERSION = 1


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, rename over `path`, fsync the folder.

    A failed write (a full disk: torch raises RuntimeError "[enforce fail at inline_container.cc] ... file write
    failed") becomes an OSError naming the file; the old file stays as it was.
    """
    with atomic_output(path, overwrite=True) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:
            raise OSError(f"could not write {path} (disk full?): {first_line(e)}") from None


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its checkpoints/latest.pt; a file is taken as it is."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "checkpoints" / "latest.pt"
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}")
    return p


def load_checkpoint(path: str | Path) -> dict:
    """Load a training checkpoint (or a run folder's latest) on the CPU, without unpickling code."""
    p = resolve_checkpoint_path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as e:  # empty, truncated, or not a torch file; code in a pickle is refused here too
        raise SaganError(f"cannot read checkpoint {p}: {first_line(e)}") from None
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or not all(k in ckpt for k in ("G", "D", "step")) or "model" not in config:
        raise SaganError(f"{p} is not a sagan training checkpoint")
    if not isinstance(ckpt.get("version", 0), int) or ckpt.get("version", 0) > FORMAT_VERSION:
        raise SaganError(f"{p} was written by a newer sagan (format {ckpt['version']!r} > {FORMAT_VERSION})")
    bad = [k for k in ("G", "D") if not isinstance(ckpt[k], dict)]
    bad += [] if isinstance(config["model"], dict) else ["config.model"]
    bad += [] if isinstance(ckpt["step"], int) and ckpt["step"] >= 0 else ["step"]
    if bad:
        raise SaganError(f"{p} is a damaged sagan checkpoint: {', '.join(bad)} missing or of the wrong type")
    return ckpt


# What resuming needs beyond what sampling needs: the optimisers, grad scalers, RNG states and train config.
RESUME_PARTS = ("opt_G", "opt_D", "scaler_G", "scaler_D", "rng")


def check_resumable(ckpt: dict, path: str | Path) -> None:
    """SaganError unless a loaded checkpoint holds everything `sagan train --resume` restores."""
    missing = [k for k in RESUME_PARTS if k not in ckpt]
    missing += [] if isinstance(ckpt["config"].get("train"), dict) else ["config.train"]
    opts = [k for k in ("opt_G", "opt_D") if k in ckpt and not _is_optimizer_state(ckpt[k])]
    rng = ckpt.get("rng")
    rng_ok = (
        isinstance(rng, list) and rng and all(isinstance(r, dict) and torch.is_tensor(r.get("generator")) for r in rng)
    )
    broken = opts + ([] if "rng" not in ckpt or rng_ok else ["rng"])
    if missing or broken:
        what = ", ".join(missing + broken)
        raise SaganError(f"{path} cannot be resumed: {what} missing or damaged (sample or export it instead)")
    if ckpt["config"]["model"] and ckpt.get("G_ema") is None and ckpt["config"]["train"].get("use_ema", True):
        raise SaganError(f"{path} cannot be resumed: its run keeps an EMA generator but G_ema is missing")


def weights_config_error(ckpt: dict, source) -> SaganError:
    """The one-line error for a checkpoint whose G or D do not load into the model its config describes (a
    checkpoint of one run with another run's config): naming the config fields the weights were trained with,
    where their shapes tell (`sagan.model_files.weights.differing_fields`), else what does not fit."""
    from sagan.model_files.weights import check_config_fits, differing_fields
    from sagan.models import Discriminator, Generator

    model = ckpt["config"]["model"]
    fields = differing_fields(model, {Generator: ckpt["G"], Discriminator: ckpt["D"]})
    if fields:
        return SaganError(
            f"{source} cannot be resumed: its weights were trained with another model config than the one it "
            f"records: {'; '.join(fields)}"
        )
    try:
        check_config_fits(model, ckpt["G"], source)
        check_config_fits(model, ckpt["D"], source, Discriminator)
    except SaganError as e:
        return e
    return SaganError(f"{source} cannot be resumed: its weights do not load into the model its config describes")


def _is_optimizer_state(state) -> bool:
    return (
        isinstance(state, dict) and isinstance(state.get("state"), dict) and isinstance(state.get("param_groups"), list)
    )


def run_folder_of(path: str | Path, ckpt: dict) -> Path | None:
    """The run folder holding checkpoint `path`, or None when it is not inside one.

    A run folder is RUN/checkpoints/<file>.pt beside a RUN/config.json that records the same preset and model
    as the checkpoint: only such a folder may be written to on resume.
    """
    p = resolve_checkpoint_path(path).resolve()
    folder = p.parent.parent
    if p.parent.name != "checkpoints" or not (folder / "config.json").is_file():
        return None
    try:
        recorded = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    same = isinstance(recorded, dict) and all(recorded.get(k) == ckpt["config"].get(k) for k in ("preset", "model"))
    return folder if same else None


def rng_state(generator: torch.Generator) -> dict:
    """The RNG states this process uses, in types that `weights_only` loading accepts."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
        "generator": generator.get_state(),
    }


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    generator.set_state(state["generator"])


def prune_snapshots(folder: Path, keep: int) -> None:
    """Delete all but the newest `keep` step-*.pt snapshots in `folder`."""
    snapshots = sorted(folder.glob("step-*.pt"))
    for old in snapshots[: max(len(snapshots) - keep, 0)]:
        old.unlink()


def generator_state(ckpt: dict) -> dict:
    """The state dict to sample from: G_ema's, or G's when the run kept no EMA."""
    return ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"]
