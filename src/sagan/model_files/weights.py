"""Model weights as files and their checks, below both kinds of model file (training checkpoints in
`sagan.model_files.checkpoints`, pretrained folders in `sagan.model_files.pretrained`): safetensors reading and
writing with one-line errors, and the checks every loaded state dict passes before use (keys and shapes fit the
config's model, every
tensor finite), then the model built from it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sagan.errors import SaganError, first_line


def save_safetensors(tensors: dict, path: Path, metadata: dict) -> None:
    """safetensors' save_file, with its write errors (full disk, no permission) as an OSError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except (SafetensorError, RuntimeError) as e:
        raise OSError(f"could not write {path}: {first_line(e)}") from None


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """safetensors' load_file on the CPU, with a damaged or foreign file as a one-line SaganError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise SaganError(f"cannot read {path}: {first_line(e)}") from None


def nonfinite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or inf."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not v.isfinite().all()]


def check_finite(state: dict, source) -> None:
    """SaganError naming `source` if any tensor of `state` holds NaN or inf (the run that wrote it diverged)."""
    bad = nonfinite(state)
    if bad:
        raise SaganError(
            f"{source} has non-finite weights (NaN or inf, e.g. {bad[0]}): the run diverged; use an earlier checkpoint"
        )


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


def _expected_state(cls, model_cfg, source):
    """(ModelConfig, the state dict `cls` of it has) on the meta device: shapes only, so a config that asks for
    100 GB allocates nothing; a bad config is a SaganError naming `source`."""
    from sagan.config import ModelConfig, from_dict

    if not isinstance(model_cfg, dict):
        raise SaganError(f"{source}: the model config is missing or not a JSON object")
    try:
        cfg = from_dict(ModelConfig, model_cfg)
        with torch.device("meta"):
            return cfg, cls(cfg).state_dict()
    except (ValueError, TypeError) as e:
        raise SaganError(f"{source}: bad model config: {e}") from None


def check_config_fits(model_cfg, state: dict, source, cls=None) -> None:
    """SaganError unless `state` loads into the model (`cls`, default Generator) that `model_cfg` describes;
    checked before anything is written, since an export whose config and tensors disagree could never be loaded."""
    from sagan.models import Generator

    check_state_fits(_expected_state(cls or Generator, model_cfg, source)[1], state, source)


def build_model(cls, model_cfg, state: dict, source):
    """cls(ModelConfig) with `state` loaded, after checking that the weights fit the config and are finite."""
    cfg, expected = _expected_state(cls, model_cfg, source)
    check_state_fits(expected, state, source)
    check_finite(state, source)
    model = cls(cfg)
    model.load_state_dict(state)
    return model


def differing_fields(model_cfg: dict, states: dict) -> list[str]:
    """The ModelConfig fields under which `states` ({Generator or Discriminator: state dict}) were trained, where
    they differ from `model_cfg`: e.g. ["g_channels 4 (the config says 8)"]; [] when that cannot be told. The
    widths, noise size, image channels and classes are read off the weights' shapes (G's first linear layer and
    output conv, its conditional-BN embeddings, D's first conv), and the backbone is tried both ways; the
    candidate is kept only if the weights fit it (checked once on the meta device). For error messages."""
    from sagan.config import ModelConfig, from_dict
    from sagan.models import Discriminator, Generator

    try:
        cfg = from_dict(ModelConfig, model_cfg)
    except (ValueError, TypeError):
        return []
    G, D = states.get(Generator, {}), states.get(Discriminator, {})
    seen = {}
    if (linear := _weight(G, "linear")) is not None:
        seen["z_dim"] = linear.shape[1]
    if (out := _weight(G, "out_conv")) is not None:
        seen["img_channels"], seen["g_channels"] = out.shape[0], out.shape[1] // cfg.g_channel_mult[-1]
    if G:
        embeddings = [v for k, v in G.items() if k.endswith("embed_gain.weight")]
        seen["num_classes"] = embeddings[0].shape[0] if embeddings else 0
    first_conv = next((v for v in D.values() if v.dim() == 4), None)  # in module order: D's first conv
    if first_conv is not None:
        seen["d_channels"] = first_conv.shape[0] // cfg.d_channel_mult[0]
    changed = {k: int(v) for k, v in seen.items() if int(v) != model_cfg.get(k)}
    for arch in (cfg.arch, "dcgan" if cfg.arch == "resnet" else "resnet"):
        trial = dict(changed, **({"arch": arch} if arch != cfg.arch else {}))
        if trial and _fits({**model_cfg, **trial}, states):
            return [f"{k} {v!r} (the config says {model_cfg.get(k)!r})" for k, v in trial.items()]
    return []


def _weight(state: dict, name: str):
    return state.get(f"{name}.parametrizations.weight.original", state.get(f"{name}.weight"))


def _fits(model_cfg: dict, states: dict) -> bool:
    from sagan.config import ModelConfig, from_dict

    try:
        cfg = from_dict(ModelConfig, model_cfg)
        with torch.device("meta"):
            for cls, state in states.items():
                expected = cls(cfg).state_dict()
                if set(expected) != set(state) or any(expected[k].shape != state[k].shape for k in expected):
                    return False
    except (ValueError, TypeError, RuntimeError):
        return False
    return True
