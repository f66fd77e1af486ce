"""Resolving a run's config: a preset (or a resumed checkpoint's config), CLI flags and --set items, and the
fields that follow the data, into one `Resolved` (the model and training configs), by one pure function
(`resolve`) that the CLI only calls."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sagan.config import ModelConfig, TrainConfig, _field_types, from_dict
from sagan.presets import MODEL_PRESETS, PRESETS, TRAIN_PRESETS

# Resolving a run's config. Train fields fall in three groups when a run is resumed:
# - the model cannot change (its weights are restored), and `unconditional` decides the model;
# - RESUME_BREAKING fields decide the data stream or the restored state: changing them means the continuation is
#   not what an uninterrupted run would have done, so resume refuses unless forced;
# - RESUME_APPLIED hyper-parameters are applied to the restored optimisers and EMA (and logged);
# the rest (steps, intervals, evaluation, device, workers, paths) are bookkeeping and change freely.
RESUME_BREAKING = (
    "data", "data_limit", "batch_size", "d_steps", "seed", "hflip", "loss", "use_ema", "amp", "sync_bn",
    "grad_accumulation", "augment", "lecam_weight", "lecam_decay", "class_ramp_start", "class_ramp_end",
)  # fmt: skip
RESUME_APPLIED = ("lr_g", "lr_d", "beta1", "beta2", "ema_decay", "ema_start_step", "ema_rampup")
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
DERIVED_FIELDS = ("num_classes",)  # follows the data and `unconditional`


@dataclass
class Resolved:
    """A run's config: the preset it came from, the model and training configs, and on resume what changed."""

    preset: str
    model: ModelConfig
    train: TrainConfig
    changes: dict[str, tuple] = field(default_factory=dict)  # train field -> (checkpoint's value, new value)
    amp_reason: str = ""  # why the run trains in its precision (what amp "auto" decided from), for log and config
    amp_speedup: float | None = None  # the bf16 timing amp "auto" decided from (sagan.training.precision), if it timed

    def remember_amp_timing(self) -> None:
        """Store the bf16 timing that amp "auto" measured (once the run has started: bad input writes nothing)."""
        if self.amp_speedup is not None:
            from sagan.training.precision import remember_bf16_speedup

            remember_bf16_speedup(self.model, self.train, self.amp_speedup)

    def as_dict(self) -> dict:
        """JSON-ready {"preset", "model", "train", "amp_reason"} (lists, not tuples): config.json and every
        checkpoint."""
        import json

        d = {"preset": self.preset, "model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}
        d["amp_reason"] = self.amp_reason
        return json.loads(json.dumps(d))


def parse_set(item: str) -> tuple[str, typing.Any]:
    """ "KEY=VALUE" -> (field name, value typed as that ModelConfig/TrainConfig field); tuples comma-separated."""
    key, sep, text = item.partition("=")
    key = key.strip().replace("-", "_")
    owner = ModelConfig if key in MODEL_FIELDS else TrainConfig if key in TRAIN_FIELDS else None
    if not sep or owner is None:
        raise ValueError(f"--set expects KEY=VALUE with KEY a config field, got {item!r}; see --dry-run")
    kind = _field_types(owner)[key]
    if typing.get_origin(kind) is tuple:
        return key, tuple(_parse_scalar(typing.get_args(kind)[0], p.strip(), key) for p in text.split(",") if p.strip())
    return key, _parse_scalar(kind, text.strip(), key)


def _parse_scalar(kind, text: str, name: str):
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        value = kind(text)
    except ValueError:
        raise ValueError(f"bad value {text!r} for {name} (expects {kind.__name__})") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"bad value {text!r} for {name} (expects a finite number)")
    return value


def _overrides(flags: dict, sets: Sequence[str]) -> dict:
    """Flags and --set items as one dict of field -> value; --set wins over a flag, a later --set over an earlier."""
    out = {k: v for k, v in flags.items() if v is not None}
    for item in sets:
        key, value = parse_set(item)
        out[key] = value
    unknown = set(out) - set(MODEL_FIELDS) - set(TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"unknown config fields: {sorted(unknown)}")
    return out


def resolve(
    preset: str,
    flags: dict | None = None,
    sets: Sequence[str] = (),
    resume: dict | None = None,
    force: bool = False,
    data_info: Callable | None = None,
    amp_choice: Callable | None = None,
) -> Resolved:
    """A run's config from a preset (or a resumed checkpoint's config), CLI flags and --set items.

    `flags` maps config field names to values (None: not given). Order: preset, flags, --set items (so --set
    `data`/`unconditional` count as much as the flags do), then the fields that follow the data:
    `num_classes` (0 when unconditional) and `img_channels` (unless given), from `data_info(data)` (default:
    `sagan.data.datasets.dataset_info`). On resume (`resume`: the loaded checkpoint) the model is the checkpoint's and
    cannot change; see RESUME_BREAKING and RESUME_APPLIED for train fields (`force` accepts breaking changes).
    `amp` "auto" becomes "bf16" or "none" as `amp_choice(device type, model, train)` decides (default
    `sagan.training.precision.choose_amp`: bf16 for CPU training where the CPU has native bf16 and the model's step ran
    faster in it), so the run's config records the precision it runs in, and `amp_reason` why.
    """
    from sagan.data.datasets import may_train_gray

    if data_info is None:
        from sagan.data.datasets import dataset_info as data_info
    given = _overrides(flags or {}, sets)
    derived = [k for k in DERIVED_FIELDS if k in given]
    if derived:
        raise ValueError(f"{derived[0]} follows the data; use --unconditional (or --set unconditional=true)")
    if resume is not None:
        return _resolve_resume(resume, given, force, data_info, amp_choice)
    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    model, train = dict(MODEL_PRESETS[preset]), dict(TRAIN_PRESETS[preset])
    train.update({k: v for k, v in given.items() if k in TRAIN_FIELDS})
    info = data_info(train.get("data", TrainConfig.data))
    model["num_classes"] = 0 if train.get("unconditional", False) else info.num_classes
    model["img_channels"] = given.get("img_channels", info.channels)
    if model["img_channels"] == 1 and not may_train_gray(train.get("data", TrainConfig.data)):
        raise ValueError(f"{train.get('data', TrainConfig.data)} has colour images; train it with 3 image channels")
    model.update({k: v for k, v in given.items() if k in MODEL_FIELDS})
    model_cfg, train_cfg = from_dict(ModelConfig, model), from_dict(TrainConfig, train)
    train_cfg, why, speedup = concrete_amp(model_cfg, train_cfg, amp_choice)
    return Resolved(preset, model_cfg, train_cfg, amp_reason=why, amp_speedup=speedup)


def concrete_amp(model: ModelConfig, train: TrainConfig, amp_choice: Callable | None = None):
    """(train with amp "auto" replaced by what it means for this model on train.device, why, the bf16 timing it
    used or None); other values unchanged."""
    if train.amp != "auto":
        return train, f"amp {train.amp} as configured", None
    from sagan.distributed import device_type

    if amp_choice is None:
        from sagan.training.precision import choose_amp
        from sagan.training.trainer import time_bf16_speedup

        def amp_choice(device, model, train):
            return choose_amp(device, model, train, measure=time_bf16_speedup)

    choice = amp_choice(device_type(train.device), model, train)
    return dataclasses.replace(train, amp=choice.amp), f"amp auto: {choice.why}", choice.speedup


def _resolve_resume(ckpt: dict, given: dict, force: bool, data_info: Callable, amp_choice=None) -> Resolved:
    old = ckpt["config"]
    model, old_train = dict(old["model"]), dict(old["train"])
    changed_model = [k for k in given if k in MODEL_FIELDS and _json(given[k]) != _json(model.get(k))]
    if "unconditional" in given and given["unconditional"] != old_train.get("unconditional", False):
        changed_model.append("unconditional")
    if changed_model:
        raise ValueError(f"the model of a resumed run cannot change ({', '.join(changed_model)}); start a new run")
    train = {**old_train, **{k: v for k, v in given.items() if k in TRAIN_FIELDS}}
    train_cfg, why, speedup = concrete_amp(from_dict(ModelConfig, model), from_dict(TrainConfig, train), amp_choice)
    if "amp" not in given:
        why = f"amp {train_cfg.amp}: the resumed run's own precision"
    new = dataclasses.asdict(train_cfg)
    changes = {k: (old_train.get(k), new[k]) for k in new if _json(new[k]) != _json(old_train.get(k))}
    breaking = [k for k in RESUME_BREAKING if k in changes]
    if breaking and not force:
        what = ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in breaking)
        raise ValueError(f"resuming with changed {what} would not continue the run exactly; pass --force to accept")
    if "data" in changes:
        info = data_info(train_cfg.data)
        if (0 if train_cfg.unconditional else info.num_classes) != model["num_classes"]:
            raise ValueError(f"{train_cfg.data} has {info.num_classes} classes; the resumed model has another number")
    step = int(ckpt["step"])
    if train_cfg.steps <= step:
        raise ValueError(f"the run is already at step {step} of {train_cfg.steps}; pass --steps N with N > {step}")
    return Resolved(old.get("preset", "custom"), from_dict(ModelConfig, model), train_cfg, changes, why, speedup)


def _json(value):
    """Tuples and lists compare equal, as they do after a JSON round trip."""
    return list(value) if isinstance(value, tuple) else value
