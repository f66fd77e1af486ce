"""Checkpoints: one dict per file, written atomically and fsync'd, loaded with `weights_only=True`; export.

A checkpoint holds G, D, G_ema (unwrapped, uncompiled state dicts), both optimizers, both grad scalers, the
step, the data position and RNG states of every rank, the resolved config and a format version. Anything
loaded is checked before use: a file that is not a sagan checkpoint, weights that do not fit their config, and
non-finite weights (a diverged run) are refused with a one-line `SaganError`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from sagan.errors import SaganError
from sagan.files import atomic_output, check_output, write_text

FORMAT_VERSION = 1
SIDECAR_FORMAT = "sagan-generator"


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, rename over `path`, fsync the folder.

    A failed write (a full disk: torch raises RuntimeError "[enforce fail at inline_container.cc] ... file write
    failed") becomes an OSError naming the file; the old file stays as it was.
    """
    with atomic_output(path, overwrite=True) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:
            raise OSError(f"could not write {path} (disk full?): {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


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
    except Exception as e:  # empty, truncated, or not a torch file; code in a pickle is refused here too
        raise SaganError(f"cannot read checkpoint {p}: {_first_line(e)}") from None
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


def nonfinite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or inf."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not v.isfinite().all()]


def _generator_state(ckpt: dict) -> dict:
    return ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"]


def _check_finite(state: dict, source: Path) -> None:
    bad = nonfinite(state)
    if bad:
        raise SaganError(
            f"{source} has non-finite weights (NaN or inf, e.g. {bad[0]}): the run diverged; use an earlier checkpoint"
        )


def _is_sidecar(path: Path) -> bool:
    """True for a config JSON written by `export_generator` (which it may replace with --overwrite)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("format") == SIDECAR_FORMAT or set(data) == {"model", "step"})


def export_generator(checkpoint: str | Path, out: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the EMA generator (or G if the run had no EMA) as safetensors, and its config beside it as JSON.

    Existing files are replaced only with `overwrite`, and the JSON only if it is itself an export's config.
    """
    out = Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise SaganError(f"export path must end in .safetensors, got {out}")
    config_path = out.with_suffix(".json")
    check_output(out, overwrite)
    check_output(config_path, overwrite, may_replace=_is_sidecar)
    ckpt = load_checkpoint(checkpoint)
    state = _generator_state(ckpt)
    _check_finite(state, resolve_checkpoint_path(checkpoint))
    meta = {"format": SIDECAR_FORMAT, "model": ckpt["config"]["model"], "step": ckpt["step"]}
    _check_config_fits(ckpt["config"]["model"], state, resolve_checkpoint_path(checkpoint))
    with atomic_output(out, overwrite) as tmp:
        save_safetensors({k: v.contiguous() for k, v in state.items()}, tmp, {"format": SIDECAR_FORMAT})
        write_text(config_path, json.dumps(meta, indent=2), overwrite, may_replace=_is_sidecar)
    return out, config_path


def save_safetensors(tensors: dict, path: Path, metadata: dict) -> None:
    """safetensors' save_file, with its write errors (full disk, no permission) as an OSError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except (SafetensorError, RuntimeError) as e:
        raise OSError(f"could not write {path}: {_first_line(e)}") from None


def _check_config_fits(model_cfg, state: dict, source: Path, cls=None) -> None:
    """SaganError unless `state` loads into the model `model_cfg` describes (checked on the meta device, before
    anything is written: an export of a checkpoint whose config and tensors disagree could never be loaded)."""
    from sagan.config import ModelConfig, from_dict
    from sagan.models import Generator

    try:
        with torch.device("meta"):
            expected = (cls or Generator)(from_dict(ModelConfig, model_cfg)).state_dict()
    except (ValueError, TypeError) as e:
        raise SaganError(f"{source}: bad model config: {e}") from None
    check_state_fits(expected, state, source)


def _build(cls, model_cfg, state: dict, source: Path):
    """cls(ModelConfig) with `state` loaded, after checking that the weights fit the config and are finite."""
    from sagan.config import ModelConfig, from_dict

    if not isinstance(model_cfg, dict):
        raise SaganError(f"{source}: the model config is missing or not a JSON object")
    try:
        cfg = from_dict(ModelConfig, model_cfg)
        with torch.device("meta"):  # shapes only: a config that asks for 100 GB allocates nothing here
            expected = cls(cfg).state_dict()
    except ValueError as e:
        raise SaganError(f"{source}: bad model config: {e}") from None
    check_state_fits(expected, state, source)
    _check_finite(state, source)
    model = cls(cfg)
    model.load_state_dict(state)
    return model


def check_state_fits(expected: dict, state: dict, source) -> None:
    """SaganError unless `state` has exactly the keys of `expected`, each tensor of the same shape."""
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SaganError(f"{source}: the weights are not a dict of tensors")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise SaganError(
            f"{source}: the weights do not fit the model config ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong)} of another shape, e.g. {example})"
        )


def export_pretrained(checkpoint: str | Path, out: str | Path, with_discriminator: bool = True) -> Path:
    """Write a checkpoint's EMA generator (and D) as a pretrained folder (`sagan.pretrained`), new or empty."""
    from sagan.pretrained import save_pretrained

    ckpt = load_checkpoint(checkpoint)
    source = resolve_checkpoint_path(checkpoint)
    state = _generator_state(ckpt)
    _check_finite(state, source)
    D = ckpt["D"] if with_discriminator else None
    if D is not None:
        _check_finite(D, source)
    from sagan.models import Discriminator

    _check_config_fits(ckpt["config"]["model"], state, source)
    if D is not None:
        _check_config_fits(ckpt["config"]["model"], D, source, Discriminator)
    config = ckpt["config"]
    info = {"step": ckpt["step"], "preset": config.get("preset"), "data": config.get("train", {}).get("data")}
    return save_pretrained(out, config["model"], state, D, info)


def is_pretrained(path: str | Path) -> bool:
    """True for a shipped pretrained name, a pretrained folder (config.json + model.safetensors) or a Hugging
    Face Hub repo id (owner/name) that is not a local path."""
    from sagan.pretrained import SHIPPED, is_pretrained_folder, looks_like_repo_id

    text = str(path)
    local = Path(text).expanduser().exists()
    return text in SHIPPED or is_pretrained_folder(path) or (looks_like_repo_id(text) and not local)


def _load_pretrained(cls, path: str | Path, part: str):
    from sagan.pretrained import read_pretrained, resolve_pretrained

    folder = resolve_pretrained(path)
    model_cfg, state, _ = read_pretrained(folder, part)
    return _build(cls, model_cfg, state, folder)


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """A Generator in eval mode from a checkpoint / run folder (its G_ema), an exported .safetensors file, a
    pretrained folder, or the name of a generator shipped with sagan (e.g. "fashion-mnist").

    Safetensors files need their config JSON beside them (same name, .json); no pickle is involved.
    """
    from sagan.models import Generator

    p = Path(path).expanduser()
    if is_pretrained(path):
        G = _load_pretrained(Generator, path, "G")
    elif p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config_path = p.with_suffix(".json")
        if not p.is_file() or not config_path.is_file():
            raise FileNotFoundError(f"need both {p} and its config {config_path}")
        try:
            meta = json.loads(config_path.read_text())
        except ValueError as e:
            raise SaganError(f"{config_path} is not valid JSON ({e})") from None
        try:
            state = load_file(str(p))
        except SafetensorError as e:
            raise SaganError(f"cannot read {p}: {_first_line(e)}") from None
        G = _build(Generator, meta.get("model") if isinstance(meta, dict) else None, state, p)
    else:
        ckpt = load_checkpoint(p)
        G = _build(Generator, ckpt["config"]["model"], _generator_state(ckpt), resolve_checkpoint_path(p))
    return G.to(device).eval()


def load_discriminator(path: str | Path, device: str | torch.device = "cpu"):
    """The Discriminator of a training checkpoint, run folder or pretrained folder (or shipped name), in eval mode."""
    from sagan.models import Discriminator

    if is_pretrained(path):
        return _load_pretrained(Discriminator, path, "D").to(device).eval()
    ckpt = load_checkpoint(path)
    return _build(Discriminator, ckpt["config"]["model"], ckpt["D"], resolve_checkpoint_path(path)).to(device).eval()
