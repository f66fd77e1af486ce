"""Attention views: maps against the block's explicit attention, the figure, the training plot, the HTML page
in a real headless Chromium."""

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.cli import main
from sagan.config import ModelConfig
from sagan.model_files.loading import load_discriminator, load_generator
from sagan.models import Discriminator, Generator
from sagan.sampling import fixed_noise, make_labels
from sagan.visualize import auto_queries, capture_inputs, generate_with_attention, query_cell
from tests.conftest import tiny_args
from tests.test_attention import reference


def test_maps_are_rows_of_the_explicit_attention():
    torch.manual_seed(0)
    cfg = ModelConfig(
        resolution=32,
        num_classes=3,
        g_channels=8,
        d_channels=8,
        z_dim=8,
        g_attn_resolutions=(8, 16),
        d_attn_resolutions=(16,),
    )
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    z, y = torch.randn(2, 8), torch.tensor([0, 2])
    images, maps = generate_with_attention(G, D, z, y)
    with capture_inputs({**G.attention_layers(), **D.attention_layers()}) as feats:
        D(G(z, y), y)
    assert set(maps) == {"g8", "g16", "d16"}
    for name, block in {**G.attention_layers(), **D.attention_layers()}.items():
        m, gamma = maps[name]
        x = feats[name]
        H, W = x.shape[-2:]
        _, attn = reference(block, x)  # (B, N, M): the float64 formula of tests/test_attention.py, not the block's
        assert m.shape == (2, H, W, H // 2, W // 2) and gamma == block.gamma.item()
        for b, i, j in [(0, 0, 0), (1, H - 1, 2), (1, 3, W - 1)]:
            torch.testing.assert_close(m[b, i, j].flatten().double(), attn[b, i * W + j], atol=1e-5, rtol=1e-4)


def test_query_pixels_map_to_their_cells():
    assert query_cell(0, 0, 32, (16, 16)) == (0, 0)
    assert query_cell(31, 0, 32, (16, 16)) == (0, 15)  # x is the column
    assert query_cell(5, 20, 32, (8, 8)) == (5, 1)
    with pytest.raises(ValueError):
        query_cell(32, 0, 32, (8, 8))
    assert len(set(auto_queries(32, 3))) == 3


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(main, tiny_args(out, steps=3), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    return run


def test_attention_figure_command(demo_run, tmp_path):
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(
        main,
        ["attention", "--checkpoint", str(demo_run), "--out", str(out), "--num", "2", "--queries", "4,4;20,10;30,30"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:  # 1 image + (G layer + D layer) x 3 queries = 7 columns, 2 rows, 100 dpi
        assert im.size == (round(2.1 * 7 * 100), round(2.3 * 2 * 100))
    other = str(tmp_path / "other.png")
    bad = CliRunner().invoke(main, ["attention", "--checkpoint", str(demo_run), "--out", other, "--layer", "g99"])
    assert bad.exit_code == 1 and "no G attention layer 'g99'" in bad.output
    bad = CliRunner().invoke(main, ["attention", "--checkpoint", str(demo_run), "--out", other, "--queries", "99,1"])
    assert bad.exit_code == 1 and "--queries" in bad.output
    assert not Path(other).exists()


def test_plot_command(demo_run, tmp_path):
    result = CliRunner().invoke(main, ["plot", str(demo_run), "--out", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "t.png") as im:
        assert im.size == (1500, 400)


def test_evaluation_curves_leave_out_standard_deviations_and_fid_terms():
    from sagan.visualize import _eval_curves

    rows = [
        {"step": 2, "eval/fid1k": 9.0, "eval/fid1k_mean_term": 2.0, "eval/fid1k_cov_term": 7.0, "eval/kid1k": 0.1,
         "eval/kid1k_std": 0.01, "loss_d": 1.0},
        {"step": 4, "eval/fid1k": 8.0, "eval/kid1k": 0.09},
    ]  # fmt: skip
    assert _eval_curves(rows) == {"fid1k": [(2, 9.0), (4, 8.0)], "kid1k": [(2, 0.1), (4, 0.09)]}


def test_plot_replaces_its_own_training_png_and_no_other(tmp_path):
    """`sagan plot RUN` writes RUN/training.png and replaces it on the next call, but a training.png it did not
    make is kept (one-line error) unless --overwrite is given."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss_d": 1.0, "loss_g": 0.5}) + "\n")
    assert CliRunner().invoke(main, ["plot", str(run)]).exit_code == 0
    assert CliRunner().invoke(main, ["plot", str(run)]).exit_code == 0  # its own: replaced
    Image.new("RGB", (8, 8), "red").save(run / "training.png")  # the user's own file of that name
    mine = (run / "training.png").read_bytes()
    result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == 1 and "was not written by sagan" in result.output
    assert (run / "training.png").read_bytes() == mine
    assert CliRunner().invoke(main, ["plot", str(run), "--overwrite"]).exit_code == 0
    with Image.open(run / "training.png") as im:
        assert im.size == (1500, 400) and im.info.get("Software") == "sagan"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian package chromium)")
def test_explorer_page_in_headless_chromium(demo_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="python package playwright is not installed")
    page_path = tmp_path / "explore.html"
    result = CliRunner().invoke(
        main,
        ["explore", "--checkpoint", str(demo_run), "--out", str(page_path), "--num", "4", "--seed", "3"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "http" not in page_path.read_text().split("<script>")[1]  # nothing fetched from a network
    # The model's own maps for the same images.
    G, D = load_generator(demo_run), load_discriminator(demo_run)
    z, y = fixed_noise(4, G.cfg.z_dim, 3), make_labels(4, G.cfg.num_classes)
    _, maps = generate_with_attention(G, D, z, y)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        for sample, layer, (cx, cy) in [(0, 0, (100, 250)), (2, 1, (300, 40))]:
            page.click(f"#thumbs img >> nth={sample}")
            page.select_option("#layer", str(layer))
            page.click("#image", position={"x": cx, "y": cy})  # pins the query under the pointer
            shown = page.evaluate("window.sagan.state()")
            assert shown["sample"] == sample and shown["pinned"]
            assert (shown["px"], shown["py"]) == (cx * 32 // 384, cy * 32 // 384)
            m = maps[shown["layerName"]][0][sample]
            i, j = query_cell(shown["px"], shown["py"], 32, m.shape[:2])
            assert shown["cell"] == [i, j]
            torch.testing.assert_close(torch.tensor(shown["map"]), m[i, j].flatten(), atol=2e-3, rtol=2e-3)
            page.click("#image", position={"x": cx, "y": cy})  # release the pin
            # The map canvas is drawn: its brightest key cell is near inferno's top (a bright yellow-white).
            brightest = page.evaluate("""() => { const d = document.getElementById('map').getContext('2d')
                .getImageData(0, 0, 384, 384).data; let hi = 0;
                for (let k = 0; k < d.length; k += 4) hi = Math.max(hi, d[k] + d[k + 1]);
                return hi; }""")
            assert brightest > 300
        browser.close()
    assert errors == []
