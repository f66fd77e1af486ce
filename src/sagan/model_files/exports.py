"""Writing a training checkpoint's EMA generator out of the training format: as one safetensors file with its
config beside it as JSON (`sagan export`), or as a pretrained folder (`sagan export --format pretrained`).
Neither involves pickle; `sagan.model_files.loading.load_generator` reads both back.
"""

from __future__ import annotations

import json
from pathlib import Path

from sagan.errors import SaganError
from sagan.model_files.checkpoints import generator_state, load_checkpoint, resolve_checkpoint_path
from sagan.model_files.weights import check_config_fits, check_finite, save_safetensors
from sagan.safe_files import atomic_output, check_output, write_text

SIDECAR_FORMAT = "sagan-generator"


def is_sidecar(path: Path) -> bool:
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
    check_output(config_path, overwrite, may_replace=is_sidecar)
    ckpt = load_checkpoint(checkpoint)
    source = resolve_checkpoint_path(checkpoint)
    state = generator_state(ckpt)
    check_finite(state, source)
    meta = {"format": SIDECAR_FORMAT, "model": ckpt["config"]["model"], "step": ckpt["step"]}
    check_config_fits(ckpt["config"]["model"], state, source)
    with atomic_output(out, overwrite) as tmp:
        save_safetensors({k: v.contiguous() for k, v in state.items()}, tmp, {"format": SIDECAR_FORMAT})
        write_text(config_path, json.dumps(meta, indent=2), overwrite, may_replace=is_sidecar)
    return out, config_path


def export_pretrained(checkpoint: str | Path, out: str | Path, with_discriminator: bool = True) -> Path:
    """Write a checkpoint's EMA generator (and D) as a pretrained folder (`sagan.model_files.pretrained`), new or
    empty."""
    from sagan.model_files.pretrained import save_pretrained
    from sagan.models import Discriminator

    ckpt = load_checkpoint(checkpoint)
    source = resolve_checkpoint_path(checkpoint)
    state = generator_state(ckpt)
    check_finite(state, source)
    D = ckpt["D"] if with_discriminator else None
    if D is not None:
        check_finite(D, source)
    check_config_fits(ckpt["config"]["model"], state, source)
    if D is not None:
        check_config_fits(ckpt["config"]["model"], D, source, Discriminator)
    config = ckpt["config"]
    info = {"step": ckpt["step"], "preset": config.get("preset"), "data": config.get("train", {}).get("data")}
    return save_pretrained(out, config["model"], state, D, info)
