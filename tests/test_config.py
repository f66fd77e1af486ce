"""`sagan.run_config.resolve`: the order of presets, flags, --set and data-derived fields; resume rules; type checks."""

import math

import pytest
import torch

from sagan.config import TRAIN_PRESETS, ModelConfig, TrainConfig, from_dict
from sagan.data.datasets import DatasetInfo
from sagan.run_config import parse_set, resolve
from sagan.training.precision import choose_amp


def fake_data(name):
    """A data_info stand-in: a 7-class colour folder, and the real answers for known names."""
    from sagan.data.datasets import dataset_info

    return DatasetInfo(7, 3) if name == "/photos" else dataset_info(name)


def test_preset_alone_takes_classes_and_channels_from_its_data():
    r = resolve("demo")
    assert r.train.data == "shapes" and r.model.num_classes == 4 and r.model.img_channels == 3
    r = resolve("fashion-mnist")
    assert r.model.num_classes == 10 and r.model.img_channels == 1


def test_set_data_applies_before_the_data_derived_fields():
    r = resolve("demo", {}, ["data=mnist"])  # was: a 4-class, 3-channel model that crashed on label 4
    assert r.train.data == "mnist" and r.model.num_classes == 10 and r.model.img_channels == 1
    r = resolve("demo", {}, ["data=/photos"], data_info=fake_data)
    assert r.model.num_classes == 7 and r.model.img_channels == 3


def test_unconditional_by_flag_or_set():
    assert resolve("demo", {}, ["unconditional=true"]).model.num_classes == 0  # was ignored
    assert resolve("demo", {"unconditional": True}).model.num_classes == 0
    assert resolve("demo", {"unconditional": None}).model.num_classes == 4  # None: flag not given


def test_set_wins_over_flag_and_later_set_over_earlier():
    r = resolve("demo", {"steps": 10, "batch_size": 8}, ["steps=20", "lr_d=1e-3", "lr_d=2e-3"])
    assert r.train.steps == 20 and r.train.batch_size == 8 and r.train.lr_d == 2e-3


def test_channels_flag_and_colour_data():
    assert resolve("fashion-mnist", {"img_channels": 3}).model.img_channels == 3  # grayscale repeated
    with pytest.raises(ValueError, match="colour images"):
        resolve("demo", {"img_channels": 1})
    with pytest.raises(ValueError, match="colour images"):
        resolve("cifar10", {"img_channels": 1})
    # An image folder trains in colour by default; --channels 1 converts its images to grayscale.
    assert resolve("demo", {"data": "/photos"}, data_info=fake_data).model.img_channels == 3
    assert resolve("demo", {"data": "/photos", "img_channels": 1}, data_info=fake_data).model.img_channels == 1


def test_num_classes_cannot_be_set_directly():
    with pytest.raises(ValueError, match="follows the data"):
        resolve("demo", {}, ["num_classes=3"])


@pytest.mark.parametrize("item", ["lr_g=nan", "lr_d=inf", "beta2=-inf", "ema_decay=NaN"])
def test_non_finite_values_are_rejected(item):
    with pytest.raises(ValueError, match="finite"):
        resolve("demo", {}, [item])


def test_from_dict_checks_types_and_nulls():
    with pytest.raises(ValueError, match="lr_g must be a finite number"):
        from_dict(TrainConfig, {"lr_g": math.nan})
    with pytest.raises(ValueError, match="resolution must be int, got None"):
        from_dict(ModelConfig, {"resolution": None})
    with pytest.raises(ValueError, match="g_attn_resolutions must be a list"):
        from_dict(ModelConfig, {"g_attn_resolutions": 16})
    with pytest.raises(ValueError, match="use_ema must be bool"):
        from_dict(TrainConfig, {"use_ema": 1})
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        from_dict(ModelConfig, {"width": 3})
    assert from_dict(ModelConfig, {"g_attn_resolutions": [8, 16], "d_attn_resolutions": []}).g_attn_resolutions == (
        8,
        16,
    )


def test_parse_set():
    assert parse_set("g_attn_resolutions=8,16") == ("g_attn_resolutions", (8, 16))
    assert parse_set("g-attn-resolutions=") == ("g_attn_resolutions", ())
    assert parse_set("hflip=yes") == ("hflip", True)
    with pytest.raises(ValueError, match="bad value 'fast' for lr_d"):
        parse_set("lr_d=fast")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set("nonsense=1")


def checkpoint_of(resolved, step=10):
    return {"config": resolved.as_dict(), "step": step}


def test_resume_keeps_the_checkpoint_config_and_records_changes():
    ckpt = checkpoint_of(resolve("demo", {"batch_size": 8}))
    r = resolve("cifar10", {"steps": 50}, ["lr_g=3e-4"], resume=ckpt)  # the preset argument is ignored
    assert r.preset == "demo" and r.model.g_channels == 8 and r.train.batch_size == 8
    assert r.changes == {"steps": (1300, 50), "lr_g": (2e-4, 3e-4)}


@pytest.mark.parametrize(
    "flags,sets", [({"batch_size": 4}, []), ({"data": "mnist"}, []), ({}, ["d_steps=2"]), ({}, ["seed=1"])]
)
def test_resume_refuses_changes_that_break_exactness_unless_forced(flags, sets):
    ckpt = checkpoint_of(resolve("demo", {"batch_size": 8}))
    with pytest.raises(ValueError, match="would not continue the run exactly; pass --force"):
        resolve("demo", flags, sets, resume=ckpt)
    if "data" in flags:  # mnist has 10 classes: the resumed 4-class model cannot take it, forced or not
        with pytest.raises(ValueError, match="classes"):
            resolve("demo", flags, sets, resume=ckpt, force=True)
    else:
        assert resolve("demo", flags, sets, resume=ckpt, force=True).changes


def test_resume_refuses_model_changes_and_finished_runs():
    ckpt = checkpoint_of(resolve("demo"))
    with pytest.raises(ValueError, match="model of a resumed run cannot change"):
        resolve("demo", {}, ["g_channels=16"], resume=ckpt)
    with pytest.raises(ValueError, match="model of a resumed run cannot change"):
        resolve("demo", {"unconditional": True}, resume=ckpt)
    resolve("demo", {}, ["g_channels=8"], resume=ckpt)  # the same value is no change
    with pytest.raises(ValueError, match="already at step 1300 of 1300"):
        resolve("demo", resume=checkpoint_of(resolve("demo"), step=1300))


def _choice(bf16: bool):
    """An amp_choice stand-in: what sagan.training.precision.choose_amp would answer on a CPU where bf16 wins (or
    not)."""
    kind = (lambda: "avx512_bf16") if bf16 else (lambda: None)
    return lambda device, model, train, **timer: choose_amp(
        device, model, train, bf16_kind=kind, speedup=lambda m, t, may_measure: 1.5
    )


def test_amp_auto_is_bf16_where_the_cpu_runs_it_faster_and_none_elsewhere():
    """--amp auto (the default) resolves to the precision the run will use, so config.json records it and why:
    bf16 for CPU training where the CPU has native bf16 and the model's step ran faster in it, none elsewhere and on
    other devices; a resumed run keeps its checkpoint's precision unless asked, and resolves an asked auto the
    same way."""
    flags = {"amp": "auto", "device": "cpu"}
    assert resolve("demo", flags, amp_choice=_choice(True)).train.amp == "bf16"
    assert resolve("demo", flags, amp_choice=_choice(False)).train.amp == "none"
    assert resolve("demo", {"amp": "auto", "device": "cuda:0"}, amp_choice=_choice(True)).train.amp == "none"
    assert resolve("demo", {"device": "cpu"}, ["amp=auto"], amp_choice=_choice(True)).train.amp == "bf16"
    # No --amp: the default is auto, for every preset (none of them names a precision).
    assert TrainConfig.amp == "auto" and not any("amp" in p for p in TRAIN_PRESETS.values())
    r = resolve("demo", {"device": "cpu"}, amp_choice=_choice(True))
    assert r.train.amp == "bf16" and "1.50x" in r.amp_reason and "avx512_bf16" in r.as_dict()["amp_reason"]
    assert resolve("fashion-mnist-cpu", {"device": "cpu"}, amp_choice=_choice(False)).train.amp == "none"
    assert resolve("cifar10", {"device": "cuda"}, amp_choice=_choice(True)).train.amp == "none"
    r = resolve("demo", {"device": "cpu", "amp": "none"}, amp_choice=_choice(True))
    assert r.train.amp == "none" and r.amp_reason == "amp none as configured"
    ckpt = {"config": resolve("demo", {"device": "cpu", "amp": "none"}).as_dict(), "step": 1}
    kept = resolve("", {}, resume=ckpt, amp_choice=_choice(True))
    assert kept.train.amp == "none" and "resumed run's own" in kept.amp_reason  # the run's own precision
    assert resolve("", {"amp": "auto"}, resume=ckpt, force=True, amp_choice=_choice(False)).changes == {}
    again = resolve("", {"amp": "auto"}, resume=ckpt, force=True, amp_choice=_choice(True))
    assert again.train.amp == "bf16" and again.changes["amp"] == ("none", "bf16")
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve("demo", {"amp": "fp8"})


def test_the_trainer_resolves_amp_auto_itself(monkeypatch):
    """A library caller may hand the Trainer amp "auto" without `resolve`: it trains in what auto means on its
    device (bf16 where the CPU runs the step faster in it, else fp32), never in fp16, and an unresolved value is
    refused."""
    import sagan.training.precision
    from sagan.training.trainer import Trainer, _autocast

    model = ModelConfig(resolution=32, g_channels=4, d_channels=4, z_dim=8, num_classes=0)
    for bf16, expected in ((True, "bf16"), (False, "none")):
        monkeypatch.setattr(sagan.training.precision, "choose_amp", _choice(bf16))
        trainer = Trainer(model, TrainConfig(amp="auto", batch_size=2), torch.device("cpu"))
        assert trainer.cfg.amp == expected and not trainer.scaler_G.is_enabled()
    with pytest.raises(ValueError, match="must be resolved"):
        _autocast(torch.device("cpu"), "auto")
