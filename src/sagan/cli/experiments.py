"""`sagan info`, `sagan plot` and `sagan ablate`: presets, run curves, and ablation grids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from sagan.cli.options import overwrite_option, setup_logging
from sagan.config import MODEL_PRESETS, PRESETS, ModelConfig


@click.command()
@click.option("--preset", type=click.Choice(PRESETS), default="demo", help="Named preset.")
def info(preset: str) -> None:
    """Print a preset's resolved model config and the parameter counts of G and D."""
    from sagan.models import Discriminator, Generator

    cfg = ModelConfig(**MODEL_PRESETS[preset])
    G, D = Generator(cfg), Discriminator(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    click.echo(json.dumps({"preset": preset, "model": dataclasses.asdict(cfg)}, indent=2))
    click.echo(f"G: {count(G):,} parameters; attention at {', '.join(G.attention_layers()) or 'none'}")
    click.echo(f"D: {count(D):,} parameters; attention at {', '.join(D.attention_layers()) or 'none'}")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", default=None, help="Output PNG.  [default: RUN_DIR/training.png (replaced each time); needed for several]"
)
@click.option("--metric", default="fid", help="Several runs: the evaluation metric to compare (prefix, e.g. fid, kid).")
@overwrite_option
def plot(run_dirs, out, metric, overwrite) -> None:
    """Plot one run's losses, mean D outputs, attention gammas and evaluations from RUN_DIR/metrics.jsonl, or, for
    several runs, their evaluation metric against kimg and training minutes side by side."""
    from sagan.visualize import plot_evaluations, plot_training

    if len(run_dirs) == 1:
        setup_logging()  # the warning naming series that metrics.jsonl lacks
        click.echo(f"wrote {plot_training(run_dirs[0], out, overwrite=overwrite)}")
        return
    if out is None:
        raise click.UsageError("with several runs, give --out")
    click.echo(f"wrote {plot_evaluations(list(run_dirs), out, metric, overwrite)}")


@click.command()
@click.argument("grid", type=click.Choice(["attention", "sn-ttur", "diffaugment", "fm-attention"]))
@click.option("--outdir", default=None, help="Folder of the grid's runs and tables.  [default: runs/ablation-GRID]")
@click.option("--seeds", default="0,1,2", help="Comma-separated seeds; every configuration runs with each.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--sym-num", type=click.IntRange(min=2), default=1000, help="Samples for the symmetry metrics.")
@click.option("--fid-num", type=click.IntRange(min=0), default=500, help="Samples (and real images) for FID; 0: none.")
@click.option(
    "--inception",
    "inception_path",
    default="",
    help="Inception weights for FID (see `sagan evaluate --help`).  [default: $SAGAN_INCEPTION_PATH]",
)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting of every run, e.g. --set steps=500."
)
def ablate(grid, outdir, seeds, device, sym_num, fid_num, inception_path, sets) -> None:
    """Train and evaluate an ablation grid: configurations x seeds, then tables.

    On the built-in shapes data: attention: no attention / G+D at 16 / G+D at 8 / G at 32 (D at 16). sn-ttur: SN
    in D only, equal learning rates / SN in G and D, equal rates / SN in G and D with TTUR. diffaugment:
    DiffAugment off / on, each run training on a fixed set of 500 images. On Fashion-MNIST: fm-attention: no
    attention / G+D at 16 / G at 32 (D at 16), FID against the test split (e.g. --fid-num 5000). Rerunning
    skips finished runs and resumes interrupted ones. Writes OUTDIR/results.csv, summary.md, summary.png and
    samples.png.
    """
    from sagan.ablation import GRIDS, run_grid

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expects integers like 0,1,2, got {seeds!r}", param_hint="--seeds") from None
    if not seed_list:
        raise click.BadParameter("give at least one seed", param_hint="--seeds")
    setup_logging()
    outdir = Path(outdir or f"runs/ablation-{grid}")
    run_grid(GRIDS[grid], outdir, seed_list, tuple(sets), device, sym_num, fid_num, inception_path)
    click.echo(f"wrote results.csv, summary.md, summary.png and samples.png in {outdir}")
    click.echo((outdir / "summary.md").read_text())
