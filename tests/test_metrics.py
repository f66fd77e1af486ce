"""Metric maths against closed forms and scipy, and `sagan evaluate` end to end with the real Inception weights
(the extractor itself: tests/test_inception.py)."""

import io
import json
import pickle

import numpy as np
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from sagan.data.shapes import ShapesDataset
from sagan.errors import SaganError
from sagan.metrics.evaluate import count_tag, main_fid, parse_metrics
from sagan.metrics.scores import (
    fid_from_features,
    fid_from_statistics,
    fid_statistics,
    fid_terms,
    inception_score,
    kid_from_features,
    symmetry_error,
)
from tests.conftest import tiny_args


def test_fid_of_identical_statistics_is_zero():
    f = torch.randn(200, 8, dtype=torch.float64)
    assert abs(fid_from_features(f, f)) < 1e-8


def test_fid_with_equal_covariances_is_squared_mean_difference():
    torch.manual_seed(0)
    f = torch.randn(300, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.5], dtype=torch.float64)
    assert fid_from_features(f, f + shift) == pytest.approx(shift.square().sum().item(), rel=1e-6, abs=1e-6)


def test_fid_matches_an_independent_scipy_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(loc=0.3, size=(350, 16)) @ rng.normal(size=(16, 16))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-6)
    assert fid_from_statistics(
        fid_statistics(torch.from_numpy(a)), fid_statistics(torch.from_numpy(b))
    ) == pytest.approx(expected, rel=1e-6)


def test_fid_terms_split_fid_into_the_mean_and_the_covariance_parts():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(loc=0.5, size=(450, 8)) @ rng.normal(size=(8, 8))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    terms = fid_terms(fid_statistics(torch.from_numpy(a)), fid_statistics(torch.from_numpy(b)))
    assert terms["mean_term"] == pytest.approx(((a.mean(0) - b.mean(0)) ** 2).sum(), rel=1e-9)
    assert terms["cov_term"] == pytest.approx(np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real), rel=1e-6)
    assert terms["fid"] == pytest.approx(terms["mean_term"] + terms["cov_term"], rel=1e-12)
    # A shifted copy differs only in its mean; a rescaled copy about its mean only in its covariance.
    shifted = fid_terms(fid_statistics(torch.from_numpy(a)), fid_statistics(torch.from_numpy(a + 0.7)))
    assert shifted["cov_term"] == pytest.approx(0.0, abs=1e-6) and shifted["mean_term"] == pytest.approx(8 * 0.49)
    centre = a.mean(0)
    spread = fid_terms(
        fid_statistics(torch.from_numpy(a)), fid_statistics(torch.from_numpy(centre + 0.5 * (a - centre)))
    )
    assert spread["mean_term"] == pytest.approx(0.0, abs=1e-9) and spread["cov_term"] > 1.0


def test_main_fid_finds_the_fid_entry_not_its_terms_or_intra_fid():
    metrics = {"intra_fid1k": 9.0, "fid1k_mean_term": 1.0, "fid1k_cov_term": 2.0, "fid1k": 3.0, "kid1k": 0.1}
    assert main_fid(metrics) == ("fid1k", 3.0)
    assert main_fid({"fid200": 5.0}) == ("fid200", 5.0) and main_fid({"kid1k": 0.1}) is None


def test_inception_score_closed_forms():
    assert inception_score(torch.zeros(100, 7), splits=1)[0] == pytest.approx(1.0)
    K = 5
    one_hot = torch.full((10 * K, K), -1e4, dtype=torch.float64)
    one_hot[torch.arange(10 * K), torch.arange(10 * K) % K] = 0.0
    assert inception_score(one_hot, splits=1)[0] == pytest.approx(K, rel=1e-6)


def test_kid_is_near_zero_for_same_distribution_and_positive_for_different():
    torch.manual_seed(0)
    a, b = torch.randn(300, 32), torch.randn(300, 32)
    same, _ = kid_from_features(a, b, subsets=20, subset_size=100)
    diff, _ = kid_from_features(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.01 and diff > 10 * abs(same) and diff > 0.05


def test_symmetry_error():
    real = torch.stack([ShapesDataset(32)[i][0] for i in range(8)])
    assert symmetry_error(real) == 0.0
    x = torch.zeros(1, 1, 2, 2)
    x[..., 0] = 1.0  # left column +1, right column 0: |1 - 0| / 2 on every pixel
    assert symmetry_error(x) == pytest.approx(0.5)


def test_metric_names_and_parsing():
    assert count_tag(50_000) == "50k" and count_tag(200) == "200" and count_tag(1500) == "1500"
    assert parse_metrics("FID, kid") == ["fid", "kid"]
    with pytest.raises(ValueError, match="unknown metrics"):
        parse_metrics("fid,lpips")


def test_evaluate_end_to_end(tmp_path, monkeypatch, inception_torchscript, caplog):
    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    assert runner.invoke(main, tiny_args(tmp_path / "runs", steps=2), catch_exceptions=False).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    args = [
        "evaluate",
        "--checkpoint",
        str(run),
        "--num",
        "20",
        "--metrics",
        "fid,kid",
        "--inception",
        str(inception_torchscript),
        "--out",
        str(tmp_path / "m.json"),
    ]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    m, protocol = report["metrics"], report["protocol"]
    assert m["fid20"] > 0 and np.isfinite(m["kid20"]) and m["symmetry_real"] == 0.0 and m["symmetry_fake"] > 0
    assert m["fid20_mean_term"] > 0 and m["fid20_mean_term"] + m["fid20_cov_term"] == pytest.approx(m["fid20"])
    assert protocol["num_fake"] == 20 and protocol["num_real"] == 20 and protocol["data"] == "shapes"
    assert protocol["feature_extractor"].startswith("ts-")
    assert len(list((tmp_path / "cache" / "metrics").iterdir())) == 1  # reference features cached
    refused = runner.invoke(main, args)  # --out exists: never replaced unless asked
    assert refused.exit_code == 1 and "already exists" in refused.output
    again = json.loads(runner.invoke(main, [*args, "--overwrite"], catch_exceptions=False).stdout)
    assert again["metrics"]["fid20"] == pytest.approx(m["fid20"], rel=1e-9)  # deterministic, from the cache
    assert json.loads((tmp_path / "m.json").read_text()) == again
    # A folder of generated PNGs gives the same FID as the generator itself.
    runner.invoke(
        main,
        ["sample", "--checkpoint", str(run), "--num", "20", "--out", str(tmp_path / "fakes")],
        catch_exceptions=False,
    )
    folder = runner.invoke(
        main,
        [
            "evaluate",
            "--fake",
            str(tmp_path / "fakes"),
            "--data",
            "shapes",
            "--num",
            "20",
            "--inception",
            str(inception_torchscript),
        ],
        catch_exceptions=False,
    )
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.stdout)["protocol"]["resolution"] == 32  # taken from the images
    fid_folder = json.loads(folder.stdout)["metrics"]["fid20"]
    assert fid_folder == pytest.approx(m["fid20"], rel=0.02)
    # A broken or hostile cache entry is recomputed with a warning, never fatal, never run.
    (entry,) = (tmp_path / "cache" / "metrics").iterdir()
    good = entry.read_bytes()
    marker = tmp_path / "PWNED"

    class WritesMarker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for broken in (good[: len(good) // 3], b"", pickle.dumps({"2048": WritesMarker()}), _saved({"2048": 1})):
        entry.write_bytes(broken)
        caplog.clear()
        result = runner.invoke(main, [*args, "--overwrite"], catch_exceptions=False)
        assert result.exit_code == 0 and "are unusable" in caplog.text and not marker.exists()
        report = json.loads((tmp_path / "m.json").read_text())
        assert report["metrics"]["fid20"] == pytest.approx(m["fid20"], rel=1e-9)
        assert entry.read_bytes() != broken  # replaced by good features


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_inception_score_without_logits_is_a_clear_error(tmp_path, inception_torchscript):
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--fake",
            str(tmp_path),
            "--data",
            "shapes",
            "--resolution",
            "32",
            "--metrics",
            "fid,is",
            "--inception",
            str(inception_torchscript),
        ],
    )
    assert result.exit_code == 1
    assert "Inception Score needs the Inception network's logits layer" in result.output
    assert "Traceback" not in result.output


def test_training_tracks_fid_and_keeps_best(tmp_path, monkeypatch, inception_torchscript):
    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    extra = ["--eval-every", "2", "--eval-num", "10", "--inception", str(inception_torchscript)]
    extra += ["--set", "eval_metrics=fid,kid"]
    result = CliRunner().invoke(main, tiny_args(tmp_path / "runs", steps=4, extra=extra), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid10" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all("eval/kid10" in r and "eval/symmetry_fake" in r for r in evals)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["best_fid"] == min(r["eval/fid10"] for r in evals)
    assert best["step"] == min(evals, key=lambda r: r["eval/fid10"])["step"]


def test_mirror_metrics():
    from sagan.metrics.scores import mirror_colour_gap, mirror_iou

    real = torch.stack([ShapesDataset(32)[i][0] for i in range(16)])
    assert mirror_iou(real) == 1.0 and mirror_colour_gap(real) == 0.0
    # Right halves from other images: other shapes at other places, in other colours.
    mixed = real.clone()
    mixed[..., 16:] = real.roll(1, 0)[..., 16:]
    assert mirror_iou(mixed) < 0.5 and mirror_colour_gap(mixed) > 0.05
    # Closed forms: a 2 x 2 shape on the left and the same shape mirrored but 2 pixels taller on the right.
    x = -torch.ones(1, 3, 8, 8)
    x[..., 2:4, 1:3] = 1.0  # left: rows 2-3, columns 1-2 (4 pixels)
    x[..., 2:6, 5:7] = 0.5  # right: its mirror image spans rows 2-5 (8 pixels), in another colour (0.75 vs 1.0)
    assert mirror_iou(x) == pytest.approx(4 / 8)
    assert mirror_colour_gap(x) == pytest.approx(0.25)
    blank = -torch.ones(2, 3, 8, 8)
    assert mirror_iou(blank) == 0.0 and mirror_colour_gap(blank) == 1.0


def test_reference_cache_key_follows_files_extractor_and_protocol(tmp_path, monkeypatch):
    """The key of cached real features changes when the folder's files change (a new, removed, replaced or
    touched file), when the extractor changes, and when the protocol version is bumped."""
    import os

    from sagan.metrics import evaluate as ev

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(folder / f"{i}.png")

    def key(extractor="ts-abc-v2"):
        return ev.reference_key(str(folder), "train", 32, 3, 100, 0, extractor)

    first = key()
    assert key() == first and "p1-folder-" in first
    assert key("ts-def-v2") != first
    Image.new("RGB", (8, 8), (0, 0, 200)).save(folder / "2.png")
    second = key()
    assert second != first
    stat = (folder / "2.png").stat()
    os.utime(folder / "2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = key()
    assert third != second
    (folder / "2.png").unlink()
    assert key() == first  # the same files as at first
    monkeypatch.setattr(ev, "PROTOCOL_VERSION", 2)
    assert key() != first
    assert (
        ev.reference_key("fashion-mnist", "test", 32, 1, 10000, 0, "x")
        == "p2-fashion-mnist-test-32px-1ch-n10000-seed0-x"
    )


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def test_intra_fid_is_the_mean_of_per_class_fids():
    from sagan.metrics.evaluate import METRIC_FNS

    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 6))
    fake = rng.normal(loc=0.2, size=(240, 6))
    real_y, fake_y = np.arange(300) % 3, np.arange(240) % 3
    real[real_y == 2] += 1.0  # classes differ, so per-class FIDs differ from the pooled FID
    expected = np.mean([_scipy_fid(fake[fake_y == k], real[real_y == k]) for k in range(3)])
    got = METRIC_FNS["intra_fid"](
        {"2048": torch.from_numpy(fake), "labels": torch.from_numpy(fake_y)},
        {"2048": torch.from_numpy(real), "labels": torch.from_numpy(real_y)},
        "240",
    )
    assert got == {"intra_fid240": pytest.approx(expected, rel=1e-6)}


def test_density_and_coverage_against_their_definition():
    from scipy.spatial.distance import cdist

    from sagan.metrics.scores import density_coverage

    rng = np.random.default_rng(2)
    real, fake, k = rng.normal(size=(60, 4)), rng.normal(loc=0.5, size=(50, 4)), 5
    radii = np.sort(cdist(real, real), axis=1)[:, k]  # column 0 is the point itself
    inside = cdist(fake, real) <= radii[None, :]
    density = sum(inside[j, i] for j in range(50) for i in range(60)) / (k * 50)
    coverage = np.mean([inside[:, i].any() for i in range(60)])
    got = density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k)
    assert got == (pytest.approx(density, rel=1e-12), pytest.approx(coverage, rel=1e-12))
    assert density_coverage(torch.from_numpy(real), torch.from_numpy(real + 100.0), k) == (0.0, 0.0)


def test_npz_statistics_round_trip_and_pytorch_fid_files(tmp_path):
    """Statistics written here read back to the same FID, and a file in pytorch-fid's format (np.savez_compressed
    of mu and sigma, as its --save-stats writes) is scored as the features it came from."""
    from sagan.metrics.sources import read_npz_statistics, write_npz_statistics

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 8)), rng.normal(loc=0.4, size=(150, 8))
    expected = _scipy_fid(a, b)
    ours = write_npz_statistics(tmp_path / "ours.npz", torch.from_numpy(b))
    stats_a = fid_statistics(torch.from_numpy(a))
    assert fid_from_statistics(stats_a, read_npz_statistics(ours)) == pytest.approx(expected, rel=1e-6)
    np.savez_compressed(tmp_path / "theirs.npz", mu=b.mean(0), sigma=np.cov(b, rowvar=False))
    assert fid_from_statistics(stats_a, read_npz_statistics(tmp_path / "theirs.npz")) == pytest.approx(
        expected, rel=1e-6
    )
    np.savez(tmp_path / "bad.npz", mean=b.mean(0))
    with pytest.raises(SaganError, match="not a statistics file"):
        read_npz_statistics(tmp_path / "bad.npz")


def test_evaluate_against_saved_statistics_and_intra_fid_end_to_end(tmp_path, monkeypatch):
    """evaluate() with a cheap stand-in extractor: --save-ref-stats then --ref-stats gives the FID of the real
    features; intra_fid, density and coverage come out for a conditional generator."""
    from sagan.metrics.evaluate import Protocol, evaluate
    from sagan.models import Generator
    from tests.distributed_worker import MODEL, PixelFeatures

    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    G = Generator(MODEL).eval()
    metrics = ("fid", "intra_fid", "density", "coverage")
    saving = Protocol("shapes", 32, 3, metrics, 60, batch_size=20, save_ref_stats=tmp_path / "ref.npz")
    first = evaluate(G, saving, PixelFeatures())
    m = first["metrics"]
    assert m["intra_fid60"] > 0 and 0 <= m["coverage60"] <= 1 and m["density60"] >= 0
    again = evaluate(G, Protocol("shapes", 32, 3, ("fid",), 60, ref_stats=tmp_path / "ref.npz"), PixelFeatures())
    assert again["metrics"]["fid60"] == pytest.approx(m["fid60"], rel=1e-9)
    for part in ("fid60_mean_term", "fid60_cov_term"):  # the statistics file gives the same terms as the features
        assert again["metrics"][part] == pytest.approx(m[part], rel=1e-9, abs=1e-9)
    assert again["protocol"]["fid_reference"].endswith("ref.npz")


def test_a_generator_of_another_size_is_scored_on_images_resized_as_the_real_ones(tmp_path, monkeypatch):
    """A 28 px generator evaluated at 32 px: Inception sees its images resized 28 -> 32 by the real images'
    transform (PIL bilinear, as the 32 px data is made), not 28 px images beside 32 px ones, and the JSON says so;
    at its own size nothing is resized."""
    from PIL import Image

    from sagan.config import ModelConfig
    from sagan.metrics.evaluate import Protocol, evaluate
    from sagan.metrics.sources import generated_batches
    from sagan.models import Generator
    from tests.distributed_worker import PixelFeatures

    class Recording(PixelFeatures):
        seen: list = []

        def features(self, batches):
            batches = list(batches)
            self.seen.extend(batches)  # the generated images first, then the real ones
            return super().features(batches)

    monkeypatch.setenv("SAGAN_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=28, num_classes=4, z_dim=8, g_channels=4, d_channels=4,
                      g_attn_resolutions=(14,), d_attn_resolutions=(14,), attn_variant="paper")  # fmt: skip
    G = Generator(cfg).eval()
    features = Recording()
    out = evaluate(G, Protocol("shapes", 32, 3, ("fid",), 20, batch_size=10), features)
    fakes = torch.cat(features.seen)[:20]
    native = torch.cat([x for _, x in generated_batches(G, 20, 10)])
    assert native.shape == (20, 3, 28, 28) and fakes.shape == (20, 3, 32, 32)
    for got, im in zip(fakes, native, strict=True):
        pil = Image.fromarray(im.permute(1, 2, 0).numpy()).resize((32, 32), Image.BILINEAR)
        assert torch.equal(got, torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    assert out["protocol"]["fake_resized"].startswith("28 -> 32 px")
    features.seen.clear()
    same = evaluate(G, Protocol("shapes", 28, 3, ("fid",), 20, batch_size=10), features)
    assert torch.equal(torch.cat(features.seen)[:20], native) and "fake_resized" not in same["protocol"]


def test_an_evaluation_outside_a_terminal_logs_its_progress(monkeypatch, caplog):
    """Where stderr is no terminal (nohup, a log file) tqdm draws nothing, so a half-hour evaluation would be
    silent: it logs how far it is instead, every PROGRESS_EVERY_S seconds."""
    import logging

    import sagan.metrics.evaluate as ev

    class Features:  # what Inception.features gives, without the network
        def features(self, batches):
            (x,) = batches
            return {"2048": torch.zeros(len(x), 2048)}

    monkeypatch.setattr(ev, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # no terminal, even under pytest -s
    batches = ((b, torch.zeros(5, 3, 8, 8, dtype=torch.uint8)) for b in range(4))
    with caplog.at_level(logging.INFO, logger="sagan"):
        feats, _ = ev._collect(batches, Features(), 20, "real images", keep_images=False)
    assert feats["2048"].shape == (20, 2048)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("real images: ")]
    assert [line.split(",")[0] for line in lines] == [f"real images: {n} of 20" for n in (5, 10, 15, 20)]


def test_precision_and_recall_against_a_hand_computed_case():
    """Precision/recall (Kynkaanniemi et al. 2019, k = 3) on points of a line, worked out by hand: a sample is
    covered by a set when it lies within some member's distance to that member's 3rd nearest other member.
    Reals 0..4 have radii 3, 2, 2, 2, 3. Fakes 0, 0.1, 0.2, 0.3 all lie in real 0's ball (precision 1); their
    radii are 0.3, 0.2, 0.2, 0.3, so of the reals only 0 is covered (recall 1/5). Fakes 0.5, 6.5 (in real 4's ball,
    4 + 3 = 7), 8, 30: precision 2/4; fake 0.5's radius is 29.5 and covers every real (recall 1)."""
    from sagan.metrics.evaluate import _pr

    def features(values):
        f = torch.zeros(len(values), 2048, dtype=torch.float64)
        f[:, 0] = torch.tensor(values, dtype=torch.float64)
        return {"2048": f}

    real = features([0.0, 1.0, 2.0, 3.0, 4.0])
    first = _pr(features([0.0, 0.1, 0.2, 0.3]), real, "5")
    assert first["precision_inception5"] == pytest.approx(1.0) and first["recall_inception5"] == pytest.approx(0.2)
    second = _pr(features([0.5, 6.5, 8.0, 30.0]), real, "5")
    assert second["precision_inception5"] == pytest.approx(0.5) and second["recall_inception5"] == pytest.approx(1.0)
