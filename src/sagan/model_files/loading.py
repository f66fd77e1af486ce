"""Loading a trained generator or discriminator from whatever a user has: a run folder or training checkpoint
(`sagan.model_files.checkpoints`), an exported .safetensors file with its JSON config, a pretrained folder, the name
of a generator shipped with sagan, or a Hugging Face Hub repo id (`sagan.model_files.pretrained`). This module
dispatches; it sits above both file formats, which know nothing of each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sagan.errors import SaganError
from sagan.model_files.checkpoints import generator_state, load_checkpoint, resolve_checkpoint_path
from sagan.model_files.weights import build_model, load_safetensors


def is_pretrained(path: str | Path) -> bool:
    """True for a shipped pretrained name, a pretrained folder (config.json + model.safetensors) or a Hugging
    Face Hub repo id (owner/name) that is not a local path."""
    from sagan.model_files.pretrained import SHIPPED, is_pretrained_folder, looks_like_repo_id

    text = str(path)
    local = Path(text).expanduser().exists()
    return text in SHIPPED or is_pretrained_folder(path) or (looks_like_repo_id(text) and not local)


def _load_pretrained(cls, path: str | Path, part: str):
    from sagan.model_files.pretrained import read_pretrained, resolve_pretrained

    folder = resolve_pretrained(path)
    model_cfg, state, _ = read_pretrained(folder, part)
    return build_model(cls, model_cfg, state, folder)


def _load_exported(path: Path):
    """A Generator from an exported .safetensors file and the config JSON beside it (same name, .json)."""
    from sagan.models import Generator

    config_path = path.with_suffix(".json")
    if not path.is_file() or not config_path.is_file():
        raise FileNotFoundError(f"need both {path} and its config {config_path}")
    try:
        meta = json.loads(config_path.read_text())
    except ValueError as e:
        raise SaganError(f"{config_path} is not valid JSON ({e})") from None
    state = load_safetensors(path)
    return build_model(Generator, meta.get("model") if isinstance(meta, dict) else None, state, path)


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """A Generator in eval mode from a checkpoint / run folder (its G_ema), an exported .safetensors file, a
    pretrained folder, or the name of a generator shipped with sagan ("fashion-mnist", "fashion-mnist-uncond",
    "fashion-mnist-28", "fashion-mnist-28-uncond").

    Safetensors files need their config JSON beside them (same name, .json); no pickle is involved.
    """
    from sagan.models import Generator

    p = Path(path).expanduser()
    if is_pretrained(path):
        G = _load_pretrained(Generator, path, "G")
    elif p.suffix == ".safetensors":
        G = _load_exported(p)
    else:
        ckpt = load_checkpoint(p)
        G = build_model(Generator, ckpt["config"]["model"], generator_state(ckpt), resolve_checkpoint_path(p))
        G.set_class_signal(_class_signal(ckpt))
    return G.to(device).eval()


def load_discriminator(path: str | Path, device: str | torch.device = "cpu"):
    """The Discriminator of a training checkpoint, run folder or pretrained folder (or shipped name), in eval mode."""
    from sagan.models import Discriminator

    if is_pretrained(path):
        return _load_pretrained(Discriminator, path, "D").to(device).eval()
    ckpt = load_checkpoint(path)
    D = build_model(Discriminator, ckpt["config"]["model"], ckpt["D"], resolve_checkpoint_path(path))
    D.set_class_signal(_class_signal(ckpt))
    return D.to(device).eval()


def _class_signal(ckpt: dict) -> float:
    """The class signal of the checkpoint's last G update, step - 1 (below 1 only within a transitional-
    conditioning ramp, `sagan.training.trainer.class_signal_at`): the one its G_ema was sampled with during
    training. 1 for checkpoints without a ramp."""
    from sagan.config import TrainConfig, from_dict
    from sagan.training.trainer import class_signal_at

    train = ckpt["config"].get("train")
    if not isinstance(train, dict) or not train.get("class_ramp_end"):
        return 1.0
    return class_signal_at(max(int(ckpt["step"]) - 1, 0), from_dict(TrainConfig, train))
