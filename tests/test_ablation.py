"""The ablation runner on a tiny grid: run folders, evaluation, tables, skipping, resuming, divergence."""

import csv
import json
import math

import pytest
import torch

import sagan.training.loop
from sagan.ablation import GRIDS, Grid, run_grid, welch_significant, welch_test
from sagan.ablation.runner import _resolve
from sagan.ablation.stats import student_t_two_sided_p
from sagan.errors import SaganError
from sagan.model_files.checkpoints import load_checkpoint
from tests.conftest import TINY_SETS

TINY = Grid(
    "tiny",
    "a test grid",
    "demo",
    (*TINY_SETS, "steps=2", "batch_size=4"),
    {"attn": (), "none": ("g_attn_resolutions=", "d_attn_resolutions=")},
    reference="none",
)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_grid_trains_evaluates_writes_tables_and_skips_finished_runs(tmp_path, monkeypatch):
    out = tmp_path / "grid"
    rows = run_grid(TINY, out, seeds=[0], device="cpu", sym_num=8, fid_num=0)
    assert [(r["config"], r["status"]) for r in rows] == [("attn", "finished"), ("none", "finished")]
    for name in ("attn-seed0", "none-seed0"):
        assert load_checkpoint(out / name)["step"] == 2
        assert (out / name / "config.json").is_file() and (out / f"{name}.json").is_file()
    table = read_csv(out / "results.csv")
    assert [r["config"] for r in table] == ["attn", "none"]
    for key in ("symmetry_fake8", "mirror_iou8", "colour_gap8", "sample_std8", "train_minutes"):
        assert all(0 <= float(r[key]) < 10 for r in table), key
    summary = (out / "summary.md").read_text()
    assert "| attn | 1/1 |" in summary and "| none | 1/1 |" in summary
    assert (out / "summary.png").stat().st_size > 1000
    assert (out / "samples.png").stat().st_size > 1000
    # A rerun trains nothing and evaluates nothing: it reads the stored results.
    monkeypatch.setattr(sagan.training.loop, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    monkeypatch.setattr("sagan.ablation.runner.evaluate_run", lambda *a, **k: pytest.fail("evaluated again"))
    assert run_grid(TINY, out, seeds=[0], device="cpu", sym_num=8, fid_num=0) == rows


def test_a_rerun_with_other_settings_is_refused_not_mixed_in(tmp_path):
    """Runs and results of other settings in the same folder are an error, not rows of the new table."""
    out = tmp_path / "grid"
    run_grid(TINY, out, seeds=[0], device="cpu", sym_num=8, fid_num=0)
    with pytest.raises(SaganError, match=r"lr_g 0.0002 \(asked: 0.001\)"):
        run_grid(TINY, out, seeds=[0], extra_sets=("lr_g=1e-3",), device="cpu", sym_num=8, fid_num=0)
    with pytest.raises(SaganError, match="steps 2 \\(asked: 4\\)"):  # finished at 2: its result is of 2 steps
        run_grid(TINY, out, seeds=[0], extra_sets=("steps=4",), device="cpu", sym_num=8, fid_num=0)
    with pytest.raises(SaganError, match="other sample counts than sample_std16"):
        run_grid(TINY, out, seeds=[0], device="cpu", sym_num=16, fid_num=0)


def test_an_interrupted_run_is_resumed(tmp_path):
    out = tmp_path / "grid"
    partial = _resolve(TINY, "attn", 0, ("steps=2",), "cpu")
    sagan.training.loop.train(partial, run_dir=out / "attn-seed0")  # as if the grid had stopped after 2 of 4 steps
    grid = Grid(TINY.name, TINY.description, TINY.preset, TINY.sets, {"attn": ()}, "attn")
    rows = run_grid(grid, out, seeds=[0], extra_sets=("steps=4",), device="cpu", sym_num=8, fid_num=0)
    assert rows[0]["status"] == "finished" and load_checkpoint(out / "attn-seed0")["step"] == 4
    steps = [json.loads(line)["step"] for line in (out / "attn-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # one continuous run


def test_a_diverged_run_is_recorded_not_dropped(tmp_path):
    grid = Grid("d", "divergence", "demo", TINY.sets, {"ok": (), "bad": ("lr_g=1e38",)}, reference="ok")
    rows = run_grid(grid, tmp_path, seeds=[0], device="cpu", sym_num=8, fid_num=0)
    assert rows[0]["status"] == "finished"
    assert rows[1]["status"].startswith("diverged (non-finite weights at step 1")
    assert "seed 0: diverged" in (tmp_path / "summary.md").read_text()
    assert run_grid(grid, tmp_path, seeds=[0], device="cpu", sym_num=8, fid_num=0) == rows  # not retried


def test_grid_fid_with_the_offline_inception(tmp_path, monkeypatch, inception_torchscript):
    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    grid = Grid(TINY.name, TINY.description, TINY.preset, TINY.sets, {"attn": ()}, "attn")
    (row,) = run_grid(
        grid, tmp_path / "g", [0], device="cpu", sym_num=8, fid_num=10, inception_path=str(inception_torchscript)
    )
    assert 0 < row["fid10"] < 1000
    # The grid's FID is `sagan evaluate`'s: the same run scored from the command line gives the same number.
    from tests.conftest import run_cli

    args = ["evaluate", "--checkpoint", str(tmp_path / "g" / "attn-seed0"), "--num", "10", "--inception"]
    result = run_cli([*args, str(inception_torchscript), "--device", "cpu"])
    assert json.loads(result.output)["metrics"]["fid10"] == pytest.approx(row["fid10"])


def test_the_named_grids_match_the_issue():
    att = GRIDS["attention"]
    assert set(att.configs) == {"none", "g16-d16", "g8-d8", "g32-d16"} and att.reference == "none"
    for config in att.configs:  # every configuration resolves to a valid model
        _resolve(att, config, 0, (), "cpu")
    sn = GRIDS["sn-ttur"]
    models = {c: _resolve(sn, c, 0, (), "cpu") for c in sn.configs}
    assert not models["sn-d-equal"].model.g_spectral_norm and models["sn-gd-equal"].model.g_spectral_norm
    assert (models["sn-gd-equal"].train.lr_g, models["sn-gd-equal"].train.lr_d) == (1e-4, 1e-4)
    assert (models["sn-gd-ttur"].train.lr_g, models["sn-gd-ttur"].train.lr_d) == (1e-4, 4e-4)
    assert all(m.train.beta2 == 0.9 and m.train.steps == models["sn-d-equal"].train.steps for m in models.values())
    aug = GRIDS["diffaugment"]
    runs = {c: _resolve(aug, c, 0, (), "cpu").train for c in aug.configs}
    assert runs["off"].augment == "" and runs["translation-cutout-color"].augment == "translation,cutout,color"
    assert runs["off"].data_limit == runs["translation-cutout-color"].data_limit == 500 and aug.reference == "off"
    assert runs["off"].steps == runs["translation-cutout-color"].steps == 1000


def test_the_cli_offers_every_named_grid():
    from sagan.cli import main

    (grid_arg,) = [p for p in main.commands["ablate"].params if p.name == "grid"]
    assert list(grid_arg.type.choices) == list(GRIDS)


def test_welch_significance():
    assert welch_significant([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])
    assert not welch_significant([1.0, 1.5, 0.5], [1.2, 1.7, 0.7])
    assert welch_significant([1.0], [2.0, 2.1]) is None
    # df = 4 here: t = 2.5 is below the 5% critical value 2.776, t = 3 above it.
    a = [0.0, 1.0, 2.0]
    assert not welch_significant(a, [x + 2.5 * (2 / 3) ** 0.5 for x in a])
    assert welch_significant(a, [x + 3.0 * (2 / 3) ** 0.5 for x in a])
    assert welch_significant([1.0, 1.0], [2.0, 2.0]) and not welch_significant([1.0, 1.0], [1.0, 1.0])


def test_student_t_p_value_against_closed_forms():
    """Two-sided tail of Student's t where it has a closed form: df = 1 (Cauchy), 1 - 2 atan(t) / pi; df = 2,
    1 - t / sqrt(2 + t^2); and the critical values of a t table (p = 0.05 at 12.706, 2.776, 2.228 for df 1, 4,
    10)."""
    for t in (0.0, 0.3, 1.0, 2.5, 12.0, 300.0):
        assert student_t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-12, abs=1e-15)
        assert student_t_two_sided_p(-t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12, abs=1e-15)
    for df, t_crit in ((1, 12.706), (4, 2.7764), (10, 2.2281)):
        assert student_t_two_sided_p(t_crit, df) == pytest.approx(0.05, abs=2e-5)
    assert student_t_two_sided_p(math.inf, 3) == 0.0
    with pytest.raises(ValueError):
        student_t_two_sided_p(1.0, 0)


def test_welch_test_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    for n_a, n_b, shift in ((3, 3, 0.0), (3, 3, 1.5), (3, 5, 0.7), (10, 4, -2.0), (30, 30, 0.2)):
        a = (torch.randn(n_a, generator=gen, dtype=torch.float64) * 1.3).tolist()
        b = (torch.randn(n_b, generator=gen, dtype=torch.float64) * 0.6 + shift).tolist()
        mine, ref = welch_test(a, b), scipy_stats.ttest_ind(a, b, equal_var=False)
        assert mine.t == pytest.approx(ref.statistic, rel=1e-10)
        assert mine.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)
    assert welch_test([1.0, 2.0], [3.0]) is None


def test_a_stopped_run_is_not_recorded_as_finished(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM make train() save and return early: the grid must not record that run as finished
    (nor evaluate it), but stop, and a rerun resumes it to its target step."""
    import dataclasses

    out = tmp_path / "grid"
    real_train = sagan.training.loop.train

    def stopped_after_one_step(resolved, resume=None, run_dir=None):  # what a stop request at step 1 leaves
        cut = dataclasses.replace(resolved, train=dataclasses.replace(resolved.train, steps=1))
        return real_train(cut, resume=resume, run_dir=run_dir)

    monkeypatch.setattr(sagan.training.loop, "train", stopped_after_one_step)
    monkeypatch.setattr(
        "sagan.ablation.runner.evaluate_run", lambda *a, **k: pytest.fail("an unfinished run was evaluated")
    )
    assert run_grid(TINY, out, seeds=[0], device="cpu", sym_num=8, fid_num=0) == []
    assert not (out / "attn-seed0.json").exists() and not (out / "none-seed0").exists()
    assert load_checkpoint(out / "attn-seed0")["step"] == 1
    monkeypatch.undo()
    rows = run_grid(TINY, out, seeds=[0], device="cpu", sym_num=8, fid_num=0)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert load_checkpoint(out / "attn-seed0")["step"] == 2


def test_real_data_grid_scores_fid_and_kid_against_its_split(
    tmp_path, monkeypatch, fashion_mnist_root, inception_torchscript
):
    """A grid on Fashion-MNIST (as fm-attention, tiny): no shape measures; FID and KID of the final EMA generator
    against `fid_real` images of the grid's split, equal to what `sagan evaluate` gives for the same counts."""
    from sagan.metrics.evaluate import Protocol, evaluate
    from sagan.metrics.inception import Inception
    from sagan.model_files.loading import load_generator

    monkeypatch.setenv("SAGAN_DATA_ROOT", str(fashion_mnist_root))
    grid = Grid(
        "tiny-fm",
        "a real-data test grid",
        "fashion-mnist-cpu",
        (*TINY_SETS, "steps=2", "batch_size=4", "eval_every=0"),
        {"none": ("g_attn_resolutions=", "d_attn_resolutions=")},
        reference="none",
        eval_split="test",
        fid_real=30,
    )
    out = tmp_path / "grid"
    (row,) = run_grid(
        grid, out, seeds=[0], device="cpu", sym_num=8, fid_num=20, inception_path=str(inception_torchscript)
    )
    assert row["status"] == "finished" and "symmetry_fake8" not in row and row["sample_std8"] > 0
    G = load_generator(out / "none-seed0")
    protocol = Protocol("fashion-mnist", 32, 1, ("fid", "kid"), 20, num_real=30, split="test")
    expected = evaluate(G, protocol, Inception(str(inception_torchscript)))["metrics"]
    assert row["fid20"] == pytest.approx(expected["fid20"]) and row["kid20"] == pytest.approx(expected["kid20"])
    assert expected["fid20"] > 0


def test_cli_offers_every_grid():
    from sagan.cli import main

    assert set(main.commands["ablate"].params[0].type.choices) == set(GRIDS)
