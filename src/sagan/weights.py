"""Model weights as files and their checks, below both kinds of model file (training checkpoints in
`sagan.checkpoint`, pretrained folders in `sagan.pretrained`): safetensors reading and writing with one-line
errors, and the checks every loaded state dict passes before use (keys and shapes fit the config's model, every
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
