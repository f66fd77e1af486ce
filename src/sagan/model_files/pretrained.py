"""Pretrained folders (the Hugging Face Hub layout) and the generators shipped inside the package.

A pretrained folder holds two files:

    config.json        {"format": "sagan-pretrained", "version": 1, "model": {ModelConfig fields}, "step": N, ...}
    model.safetensors  the EMA generator's tensors under "G.", and the discriminator's under "D." if included

No pickle is involved in writing or reading one. `sagan export --format pretrained` writes it from a training
checkpoint; `load_generator` / `load_discriminator` in `sagan.model_files.loading` read it, by path or, for the folders
shipped in `sagan/model_files/shipped/`, by name (`SHIPPED`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sagan.errors import SaganError, first_line
from sagan.model_files.weights import load_safetensors, save_safetensors
from sagan.safe_files import atomic_folder, file_sha256

FORMAT = "sagan-pretrained"
VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
SHIPPED_ROOT = Path(__file__).parent / "shipped"
# name -> SHA-256 of its model.safetensors, checked whenever it is loaded (`verify_shipped`).
SHIPPED: dict[str, str] = {
    # The fashion-mnist-g28 recipe (fashion-mnist-cpu with a 28 px G whose images are resized to 32), EMA generator
    # and D at step 14,000 (43.7 training minutes on 2 CPU cores in bf16, FID10k 10.16 on the test split at 32 px);
    # until 2026-12-06 this name held fashion-mnist-cpu's generator (FID10k 17.42). docs/results.md, round seven.
    "fashion-mnist": "2cca584cf0603b2fc035c51dbe6c6ad32d92f5e80956afae477d2a214d9b9982",
    # The same preset trained unconditionally (--unconditional), EMA generator and D at step 14,000 (78.7 training
    # minutes on 2 CPU cores, FID10k 13.7 on the test split); docs/results.md.
    "fashion-mnist-uncond": "08b6e85eabc76d04e093c5b5fdf26bc945569c52c39fa12110b238048648f0df",
    # The fashion-mnist-28 preset (28 x 28 images, no resize), EMA generator and D at step 14,000 (35.7 training
    # minutes on 2 CPU cores in bf16, FID10k 9.99 at 28 px against the native test images).
    "fashion-mnist-28": "dfd5058da2b6f84bf4c2082ce77d0166778c97f325166698516fb7565a9458a6",
    # The same preset trained unconditionally, EMA generator and D at step 14,000 (41.5 training minutes on 2 CPU
    # cores in bf16, FID10k 13.15 at 28 px against the native test images).
    "fashion-mnist-28-uncond": "5cbf46b381f51e20adb82245250797e8ca6d91e41664f485cd0e35b5e4883870",
}


def shipped_names() -> list[str]:
    """Names of the pretrained folders in this installation."""
    return sorted(name for name in SHIPPED if (SHIPPED_ROOT / name / WEIGHTS_NAME).is_file())


def resolve_pretrained(name_or_path: str | Path) -> Path:
    """The folder of a shipped name (e.g. "fashion-mnist") or a path to a pretrained folder; SaganError if none."""
    text = str(name_or_path)
    if text in SHIPPED:
        return verify_shipped(text)
    folder = Path(text).expanduser()
    if is_pretrained_folder(folder):
        return folder
    if looks_like_repo_id(text) and not folder.exists():
        return download_from_hub(text)
    names = ", ".join(shipped_names()) or "none"
    raise SaganError(
        f"{text!r} is neither a shipped pretrained name ({names}), a pretrained folder, nor a Hub repo id (owner/name)"
    )


def looks_like_repo_id(text: str) -> bool:
    """owner/name, as Hugging Face Hub model repositories are named."""
    parts = text.split("/")
    if text.endswith((".pt", ".pth", ".ckpt", ".safetensors", ".json")):  # a checkpoint path, not a repository
        return False
    return len(parts) == 2 and all(p and p not in (".", "..") and " " not in p for p in parts)


def download_from_hub(repo_id: str) -> Path:
    """A pretrained folder from the Hugging Face Hub (config.json and model.safetensors only), via the optional
    `huggingface_hub` package (pip install 'sagan[hub]'); one-line errors offline or without the package."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SaganError(
            f"{repo_id!r} looks like a Hub repo id; loading one needs huggingface_hub: pip install 'sagan[hub]'"
        ) from None
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as e:  # noqa: BLE001  (offline, no such repo, no access: all one line for the user)
        raise SaganError(f"could not download {repo_id!r} from the Hugging Face Hub ({first_line(e)})") from None
    if not is_pretrained_folder(folder):
        raise SaganError(
            f"the Hub repo {repo_id!r} has no {CONFIG_NAME} and {WEIGHTS_NAME} of a sagan pretrained folder"
        )
    return folder


def is_pretrained_folder(path: str | Path) -> bool:
    """True for a folder holding config.json and model.safetensors (its config is checked when loading)."""
    p = Path(path).expanduser()
    return p.is_dir() and (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def read_pretrained(folder: str | Path, part: str) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(model config dict, state dict of `part` ("G" or "D"), whole config) of a pretrained folder."""
    folder = Path(folder).expanduser()
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    try:
        config = json.loads(config_path.read_text())
    except ValueError as e:
        raise SaganError(f"{config_path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise SaganError(f"{config_path} is not a sagan pretrained config (format {FORMAT!r})")
    if not isinstance(config.get("version"), int) or config["version"] > VERSION:
        raise SaganError(f"{config_path} has format version {config.get('version')!r}; this sagan reads {VERSION}")
    tensors = load_safetensors(weights_path)
    prefix = f"{part}."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        what = "generator" if part == "G" else "discriminator"
        raise SaganError(f"{weights_path} holds no {what} (no {prefix}* tensors)")
    return config.get("model"), state, config


def save_pretrained(
    out: str | Path, model: dict, generator: dict, discriminator: dict | None, info: dict | None = None
) -> Path:
    """Write a pretrained folder `out` (new or empty) with the generator's and optionally D's state dicts."""
    tensors = {f"G.{k}": v.contiguous() for k, v in generator.items()}
    tensors.update({f"D.{k}": v.contiguous() for k, v in (discriminator or {}).items()})
    config = {"format": FORMAT, "version": VERSION, "model": model, **(info or {})}
    config["parts"] = ["G", "D"] if discriminator else ["G"]
    with atomic_folder(out) as tmp:
        save_safetensors(tensors, tmp / WEIGHTS_NAME, {"format": FORMAT})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return Path(out).expanduser()


def verify_shipped(name: str) -> Path:
    """The shipped folder of `name` after checking its weights' SHA-256 against `SHIPPED`; SaganError if not."""
    folder = SHIPPED_ROOT / name
    if not (folder / WEIGHTS_NAME).is_file():
        raise SaganError(f"the pretrained {name!r} is not in this installation ({folder}); reinstall sagan")
    digest = file_sha256(folder / WEIGHTS_NAME)
    if digest != SHIPPED[name]:
        raise SaganError(f"{folder / WEIGHTS_NAME} has SHA-256 {digest}, expected {SHIPPED[name]}: reinstall sagan")
    return folder
