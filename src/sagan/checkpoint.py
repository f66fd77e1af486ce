"""Checkpoints: one dict per file, written atomically, loaded with `weights_only=True`; safetensors export.

A checkpoint holds G, D, G_ema (unwrapped, uncompiled state dicts), both optimizers, both grad scalers, the
step, every rank's RNG states, the resolved config and a format version.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 1


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
    except Exception as e:  # corrupt, truncated or not a torch file at all
        raise ValueError(f"cannot read checkpoint {p}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or "G" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{p} is not a sagan training checkpoint")
    if ckpt.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{p} was written by a newer sagan (format {ckpt['version']} > {FORMAT_VERSION})")
    return ckpt


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


def export_generator(checkpoint: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write the EMA generator (or G if the run had no EMA) as safetensors, and its config beside it as JSON."""
    from safetensors.torch import save_file

    ckpt = load_checkpoint(checkpoint)
    state = ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"]
    out = Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise ValueError(f"export path must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata={"format": "sagan-generator"})
    config_path = out.with_suffix(".json")
    config_path.write_text(json.dumps({"model": ckpt["config"]["model"], "step": ckpt["step"]}, indent=2))
    return out, config_path


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """A Generator in eval mode from a checkpoint / run folder (its G_ema) or an exported .safetensors file.

    Safetensors files need their config JSON beside them (same name, .json); no pickle is involved.
    """
    from sagan.config import ModelConfig, from_dict
    from sagan.models import Generator

    p = Path(path).expanduser()
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        config_path = p.with_suffix(".json")
        if not p.is_file() or not config_path.is_file():
            raise FileNotFoundError(f"need both {p} and its config {config_path}")
        model_cfg = json.loads(config_path.read_text())["model"]
        state = load_file(str(p))
    else:
        ckpt = load_checkpoint(p)
        model_cfg = ckpt["config"]["model"]
        state = ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"]
    G = Generator(from_dict(ModelConfig, model_cfg))
    G.load_state_dict(state)
    return G.to(device).eval()


def load_discriminator(path: str | Path, device: str | torch.device = "cpu"):
    """The Discriminator of a training checkpoint (or run folder), in eval mode."""
    from sagan.config import ModelConfig, from_dict
    from sagan.models import Discriminator

    ckpt = load_checkpoint(path)
    D = Discriminator(from_dict(ModelConfig, ckpt["config"]["model"]))
    D.load_state_dict(ckpt["D"])
    return D.to(device).eval()
