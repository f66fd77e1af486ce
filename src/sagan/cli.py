"""The `sagan` command line: train, sample, export, evaluate, views, info.

Errors meant for users (the project's `SaganError`, `ValueError` from config checks, any `OSError`: a file that
cannot be read or written, and running out of memory) end as one line `Error: ...` on stderr and exit status 1,
wherever they are raised; `--debug` or SAGAN_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import click

from sagan.config import MODEL_PRESETS, PRESETS, ModelConfig
from sagan.errors import SaganError

USER_ERRORS = (SaganError, ValueError, OSError)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug")) or os.environ.get("SAGAN_DEBUG", "") not in ("", "0")


class _Group(click.Group):
    """Turns user errors raised anywhere below a command into one line `Error: <message>` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            if _debug(ctx) or not (isinstance(e, USER_ERRORS) or _out_of_memory(e)):
                raise  # a bug: the traceback is what a report needs
            message = " ".join(str(e).split()) or type(e).__name__  # one line
            if _out_of_memory(e):
                message = f"out of memory; lower --batch-size or --num (or use --amp bf16 on a GPU): {message[:200]}"
            filename = getattr(e, "filename", None)
            if filename and str(filename) not in message:
                message += f": {filename}"
            raise click.ClickException(message) from None


def _out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, and the CPU allocator's RuntimeError (torch raises that
    for a tensor it cannot allocate: "DefaultCPUAllocator: can't allocate memory")."""
    if type(e).__name__ == "OutOfMemoryError" or isinstance(e, MemoryError):  # without importing torch here
        return True
    return isinstance(e, RuntimeError) and any(
        s in str(e) for s in ("DefaultCPUAllocator: can't allocate memory", "not enough memory")
    )


def _setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr
    )


SEED = click.IntRange(0, 2**63 - 1)  # what torch.Generator.manual_seed takes
_overwrite = click.option("--overwrite", is_flag=True, help="Replace --out if it exists (never a folder).")
_pretrained = click.option(
    "--pretrained",
    default=None,
    help="A generator shipped with sagan (fashion-mnist) or a pretrained folder, instead of --checkpoint.",
)


def _source(checkpoint: str | None, pretrained: str | None) -> str:
    """The one model source given: --checkpoint or --pretrained (a shipped name or a pretrained folder)."""
    if (checkpoint is None) == (pretrained is None):
        raise click.UsageError("give exactly one of --checkpoint and --pretrained")
    if pretrained is not None:
        from sagan.pretrained import resolve_pretrained

        return str(resolve_pretrained(pretrained))
    return checkpoint


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="sagan")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors (also: SAGAN_DEBUG=1).")
def main(debug: bool) -> None:
    """SAGAN: Self-Attention Generative Adversarial Networks in PyTorch.

    Start with `sagan train` (the demo preset: built-in shapes data, 32 px, about 5 minutes on 2 CPU cores).
    """


@main.command()
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


@main.command()
@click.option("--preset", type=click.Choice(PRESETS), default="demo", help="Named preset of model and training.")
@click.option(
    "--data",
    default=None,
    help="shapes, mnist, fashion-mnist, cifar10, cifar100, or a folder of images "
    "(class sub-folders give labels).  [default: the preset's]",
)
@click.option(
    "--data-root",
    default=None,
    help="Folder of torchvision datasets.  [default: $SAGAN_DATA_ROOT, else ~/.cache/sagan/data]",
)
@click.option("--download", is_flag=True, help="Download a torchvision dataset if it is missing.")
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Image channels; grayscale data is repeated to 3.  [default: the data's]",
)
@click.option("--unconditional", is_flag=True, help="Ignore class labels (no cBN, no projection).")
@click.option("--outdir", default=None, help="Parent folder of run folders.  [default: runs]")
@click.option("--steps", type=int, default=None, help="Total G updates.  [default: the preset's]")
@click.option("--batch-size", type=int, default=None, help="Batch size per process.  [default: the preset's]")
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 0]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.  [default: auto]")
@click.option("--amp", type=click.Choice(["none", "bf16", "fp16"]), default=None, help="Mixed precision.")
@click.option("--resume", default=None, help="Run folder or checkpoint to continue from (its config is used).")
@click.option(
    "--force",
    is_flag=True,
    help="On resume, accept changes that break exact continuation (data, batch size, D steps, seed, loss, ...).",
)
@click.option(
    "--eval-every", type=int, default=None, help="Evaluate G_ema every N steps (FID; keeps best.pt).  [default: 0, off]"
)
@click.option("--eval-num", type=int, default=None, help="Images per evaluation.  [default: 5000]")
@click.option(
    "--inception",
    "inception_path",
    default=None,
    help="Inception weights for evaluation (see `sagan evaluate --help`).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any ModelConfig/TrainConfig field, e.g. --set lr_d=2e-4 --set g_attn_resolutions=16,32.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train(preset, channels, download, unconditional, resume, force, sets, dry_run, **flags) -> None:
    """Train SAGAN. With no options: the demo preset on the built-in shapes dataset."""
    from sagan.config import resolve

    flags["img_channels"] = int(channels) if channels else None
    flags["download"] = True if download else None
    flags["unconditional"] = True if unconditional else None
    ckpt, run_dir = None, None
    if resume:
        from sagan.checkpoint import check_resumable, load_checkpoint, run_folder_of

        ckpt = load_checkpoint(resume)
        check_resumable(ckpt, resume)
        run_dir = run_folder_of(resume, ckpt)
    resolved = resolve(preset, flags, sets, resume=ckpt, force=force)
    if dry_run:
        click.echo(json.dumps(resolved.as_dict(), indent=2))
        return
    _setup_logging()
    if resume and run_dir is None:
        logging.getLogger("sagan").warning(
            "%s is not inside a run folder: continuing in a new run folder under %s", resume, resolved.train.outdir
        )
    from sagan.training_loop import train as run_training

    run_training(resolved, resume=ckpt, run_dir=run_dir)


@main.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@_pretrained
@click.option("--num", type=click.IntRange(min=1), default=64, help="Number of images.")
@click.option("--out", required=True, help="A .png path for one grid, else a folder of PNGs.")
@click.option("--class", "class_id", type=int, default=None, help="Class of every image.  [default: balanced]")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, help="Images per forward pass.")
@click.option(
    "--truncation",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Truncation trick: redraw noise entries beyond this magnitude (BigGAN; lower: less variety, more "
    "typical images).  [default: none]",
)
@click.option("--overwrite", is_flag=True, help="Replace a grid PNG at --out (a folder must be new or empty).")
def sample(checkpoint, pretrained, num, out, class_id, seed, device, batch_size, truncation, overwrite) -> None:
    """Draw images from a trained generator (the EMA copy when the run kept one).

    A .png --out gets one grid (one class per row for a conditional model); any other --out is a new folder of
    numbered PNGs. `sagan sample --pretrained fashion-mnist --out grid.png` needs no training and no network.
    """
    checkpoint = _source(checkpoint, pretrained)
    from sagan.checkpoint import load_generator
    from sagan.distributed import resolve_device
    from sagan.files import check_folder, check_output
    from sagan.sampling import fixed_noise, generate, make_labels, save_folder, save_grid

    grid = out.lower().endswith(".png")
    check_output(out, overwrite) if grid else check_folder(out)  # before any work
    G = load_generator(checkpoint, resolve_device(device))
    per_row = 8 if grid and class_id is None and G.cfg.num_classes else 0
    y = make_labels(num, G.cfg.num_classes, class_id, per_row=per_row)
    images = generate(G, fixed_noise(num, G.cfg.z_dim, seed, truncation), y, batch_size)
    path = save_grid(images, out, overwrite=overwrite) if grid else save_folder(images, out, y)
    click.echo(f"wrote {num} images to {path}")


@main.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@_pretrained
@click.option("--out", required=True, help="A .png grid (one interpolation per row) or an animated .gif.")
@click.option("--mode", type=click.Choice(["z", "class"]), default="z", help="Interpolate the noise or the class.")
@click.option("--steps", type=click.IntRange(min=2), default=8, help="Frames from one end to the other.")
@click.option("--rows", type=click.IntRange(min=1), default=4, help="Interpolations (rows of the grid).")
@click.option("--classes", default="0,1", help="--mode class: the two end classes, e.g. 0,9.")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise (z mode ends: seeds SEED and SEED + 1).")
@click.option("--truncation", type=click.FloatRange(min=0, min_open=True), default=None, help="As for sample.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@_overwrite
def interpolate(checkpoint, pretrained, out, mode, steps, rows, classes, seed, truncation, device, overwrite) -> None:
    """Interpolate between two noise vectors (--mode z) or two classes (--mode class), as a grid or a GIF."""
    from sagan.checkpoint import load_generator
    from sagan.distributed import resolve_device
    from sagan.files import check_output
    from sagan.sampling import interpolate as run_interpolation
    from sagan.sampling import save_gif, save_grid

    checkpoint = _source(checkpoint, pretrained)
    if not out.lower().endswith((".png", ".gif")):
        raise click.BadParameter("give a .png or .gif path", param_hint="--out")
    check_output(out, overwrite)
    try:
        ends = tuple(int(c) for c in classes.split(","))
    except ValueError:
        ends = ()
    if len(ends) != 2:
        raise click.BadParameter(f"expects two classes like 0,9, got {classes!r}", param_hint="--classes")
    G = load_generator(checkpoint, resolve_device(device))
    frames = run_interpolation(G, rows, steps, mode, ends, truncation, seed)  # (steps, rows, C, R, R)
    if out.lower().endswith(".gif"):
        path = save_gif(frames, out, nrow=rows, overwrite=overwrite)
    else:
        path = save_grid(frames.transpose(0, 1).flatten(0, 1), out, nrow=steps, overwrite=overwrite)
    click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@_pretrained
@click.option("--fake", default=None, help="A folder of generated images instead of --checkpoint.")
@click.option("--data", default=None, help="Reference dataset (as for train).  [default: the checkpoint's]")
@click.option("--data-root", default="", help="Folder of torchvision datasets.  [default: $SAGAN_DATA_ROOT]")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", help="Reference split.")
@click.option("--num", type=click.IntRange(min=2), default=10_000, help="Generated images (and real, see --num-real).")
@click.option("--num-real", type=click.IntRange(min=2), default=None, help="Real images.  [default: --num]")
@click.option(
    "--metrics",
    default="fid,kid",
    help="Comma-separated: fid, kid, is, pr (precision/recall on Inception features, k = 3), intra_fid (mean of "
    "per-class FIDs), density, coverage (Naeem et al. 2020, k = 5).",
)
@click.option(
    "--inception",
    "inception_path",
    default="",
    help="Inception weights: a TorchScript pool3 module (FID/KID) or torch-fidelity's .pth (all).  "
    "[default: $SAGAN_INCEPTION_PATH, else torch-fidelity's download]",
)
@click.option(
    "--resolution",
    type=click.IntRange(min=1),
    default=None,
    help="Real-image resolution.  [default: the model's, or with --fake the images']",
)
@click.option("--seed", type=SEED, default=0, help="Seed of the noise and of the real subset.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--out", default=None, help="Also write the JSON to this file.")
@click.option(
    "--ref-stats",
    default=None,
    help="FID against a pytorch-fid .npz (mu, sigma) of reference statistics instead of --data's features.",
)
@click.option("--save-ref-stats", default=None, help="Write the real images' FID statistics to this .npz.")
@_overwrite
def evaluate(
    checkpoint,
    pretrained,
    fake,
    data,
    data_root,
    split,
    num,
    num_real,
    metrics,
    inception_path,
    resolution,
    seed,
    device,
    out,
    ref_stats,
    save_ref_stats,
    overwrite,
) -> None:
    """FID / KID / IS / intra-FID / density / coverage (TF Inception features) of a generator or a folder of
    images; prints JSON."""
    from sagan.distributed import resolve_device
    from sagan.metrics.evaluate import evaluate as run_eval
    from sagan.metrics.evaluate import parse_metrics
    from sagan.metrics.inception import Inception

    if pretrained is not None:
        checkpoint = _source(checkpoint, pretrained)
    if (checkpoint is None) == (fake is None):
        raise click.UsageError("give exactly one of --checkpoint (or --pretrained) and --fake")
    from sagan.files import check_output

    for path in (out, save_ref_stats):
        if path:
            check_output(path, overwrite)
    if ref_stats and not Path(ref_stats).expanduser().is_file():
        raise FileNotFoundError(f"no statistics file at {ref_stats}")
    names = parse_metrics(metrics)
    _setup_logging()  # progress lines on stderr when it is not a terminal; the JSON alone goes to stdout
    dev = resolve_device(device)
    channels = 3
    if checkpoint:
        from sagan.checkpoint import load_generator

        G = load_generator(checkpoint, dev)
        source, resolution, channels = G, resolution or G.cfg.resolution, G.cfg.img_channels
        if not data:
            data, trained_root = _checkpoint_data(checkpoint)
            data_root = data_root or trained_root
    else:
        from sagan.metrics.evaluate import folder_resolution

        source = fake
        if not data:
            raise click.UsageError("with --fake, give --data (the real images to compare with)")
        resolution = resolution or folder_resolution(fake)
    inception = Inception(inception_path, dev, with_logits="is" in names)
    result = run_eval(
        source, data, names, num, resolution, channels, data_root, split, num_real, inception, seed=seed,
        ref_stats=ref_stats, save_ref_stats=save_ref_stats,
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    click.echo(text)
    if out:
        from sagan.files import write_text

        write_text(out, text + "\n", overwrite)


def _checkpoint_data(checkpoint: str) -> tuple[str, str]:
    """The dataset and data root a checkpoint was trained on (exported generators do not record them)."""
    from sagan.checkpoint import is_pretrained

    if is_pretrained(checkpoint):
        from sagan.pretrained import read_pretrained, resolve_pretrained

        data = read_pretrained(resolve_pretrained(checkpoint), "G")[2].get("data")
        if not isinstance(data, str):
            raise click.UsageError("this pretrained folder does not record its dataset: give --data")
        return data, ""
    if str(checkpoint).endswith(".safetensors"):
        raise click.UsageError("an exported generator does not record its dataset: give --data")
    from sagan.checkpoint import load_checkpoint

    train = load_checkpoint(checkpoint)["config"].get("train")
    if not isinstance(train, dict) or not isinstance(train.get("data"), str):
        raise SaganError(f"{checkpoint} does not record its dataset (no train config): give --data")
    return train["data"], str(train.get("data_root") or "")


def _parse_queries(text: str | None, resolution: int, count: int) -> list[tuple[int, int]]:
    from sagan.visualize import auto_queries

    if not text:
        return auto_queries(resolution, count)
    try:
        points = [tuple(int(v) for v in p.split(",")) for p in text.split(";") if p.strip()]
    except ValueError:
        raise ValueError(f"--queries expects 'x,y;x,y' in image pixels, got {text!r}") from None
    if not points or any(len(p) != 2 or not (0 <= p[0] < resolution and 0 <= p[1] < resolution) for p in points):
        raise ValueError(f"--queries: each point is x,y with 0 <= x, y < {resolution}, got {text!r}")
    return points


def _models_for_attention(checkpoint: str, device: str):
    from sagan.checkpoint import load_discriminator, load_generator
    from sagan.distributed import resolve_device

    if str(checkpoint).endswith(".safetensors"):
        raise ValueError(
            "attention views need D too: give a run folder, training checkpoint or pretrained folder, not an export"
        )
    dev = resolve_device(device)
    G = load_generator(checkpoint, dev)
    if not G.attention_layers():
        raise ValueError("this generator has no attention layers")
    return G, load_discriminator(checkpoint, dev)


@main.command()
@click.option("--checkpoint", default=None, help="Run folder, training checkpoint .pt or pretrained folder.")
@_pretrained
@click.option("--out", required=True, help="Output PNG.")
@click.option("--num", type=click.IntRange(1, 16), default=4, help="Generated images (one row each).")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise.")
@click.option("--class", "class_id", type=int, default=None, help="Class of every image.  [default: balanced]")
@click.option("--layer", default=None, help="G attention layer, e.g. g32.  [default: the first]")
@click.option("--d-layer", default=None, help="D attention layer shown beside it.  [default: the first]")
@click.option("--queries", default=None, help="Query points 'x,y;x,y' in image pixels.  [default: 3, spread out]")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@_overwrite
def attention(checkpoint, pretrained, out, num, seed, class_id, layer, d_layer, queries, device, overwrite) -> None:
    """Figure of where chosen query points attend, in G's and D's attention layers (the paper's Fig. 1)."""
    checkpoint = _source(checkpoint, pretrained)
    from sagan.files import check_output
    from sagan.sampling import fixed_noise, make_labels
    from sagan.visualize import attention_figure, generate_with_attention

    check_output(out, overwrite)
    G, D = _models_for_attention(checkpoint, device)
    g_layers, d_layers = list(G.attention_layers()), list(D.attention_layers())
    layer = layer or g_layers[0]
    if layer not in g_layers:
        raise ValueError(f"no G attention layer {layer!r}; G has {', '.join(g_layers)}")
    if d_layer and d_layer not in d_layers:
        raise ValueError(f"no D attention layer {d_layer!r}; D has {', '.join(d_layers) or 'none'}")
    shown = [layer] + ([d_layer or d_layers[0]] if d_layers else [])
    points = _parse_queries(queries, G.cfg.resolution, 3)
    z = fixed_noise(num, G.cfg.z_dim, seed).to(next(G.parameters()).device)
    y = make_labels(num, G.cfg.num_classes, class_id)
    images, maps = generate_with_attention(G, D, z, None if y is None else y.to(z.device))
    maps = {k: (v[0].cpu(), v[1]) for k, v in maps.items()}
    title = f"{Path(checkpoint).name} | seed {seed}"
    path = attention_figure(images.cpu(), maps, points, shown, out, title=title, overwrite=overwrite)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--checkpoint", default=None, help="Run folder, training checkpoint .pt or pretrained folder.")
@_pretrained
@click.option("--out", default="attention.html", help="Output HTML file.")
@click.option("--num", type=click.IntRange(1, 256), default=16, help="Generated images embedded in the page.")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@_overwrite
def explore(checkpoint, pretrained, out, num, seed, device, overwrite) -> None:
    """Write a self-contained HTML page to explore every attention layer's maps (works offline)."""
    checkpoint = _source(checkpoint, pretrained)
    from sagan.explore import explore_data, write_explorer
    from sagan.files import check_output

    check_output(out, overwrite)
    G, D = _models_for_attention(checkpoint, device)
    path = write_explorer(explore_data(G, D, num, seed), out, overwrite)
    click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); open it in a browser")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", default=None, help="Output PNG.  [default: RUN_DIR/training.png (replaced each time); needed for several]"
)
@click.option("--metric", default="fid", help="Several runs: the evaluation metric to compare (prefix, e.g. fid, kid).")
@_overwrite
def plot(run_dirs, out, metric, overwrite) -> None:
    """Plot one run's losses, mean D outputs, attention gammas and evaluations from RUN_DIR/metrics.jsonl, or, for
    several runs, their evaluation metric against kimg and training minutes side by side."""
    from sagan.visualize import plot_evaluations, plot_training

    if len(run_dirs) == 1:
        click.echo(f"wrote {plot_training(run_dirs[0], out, overwrite=overwrite or out is None)}")
        return
    if out is None:
        raise click.UsageError("with several runs, give --out")
    click.echo(f"wrote {plot_evaluations(list(run_dirs), out, metric, overwrite)}")


@main.command()
@click.argument("grid", type=click.Choice(["attention", "sn-ttur", "diffaugment"]))
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
    """Train and evaluate an ablation grid on the built-in shapes data: configurations x seeds, then tables.

    attention: no attention / G+D at 16 / G+D at 8 / G at 32 (D at 16). sn-ttur: SN in D only, equal learning
    rates / SN in G and D, equal rates / SN in G and D with TTUR. diffaugment: DiffAugment off / on, each run
    training on a fixed set of 500 images. Rerunning skips finished runs and resumes interrupted ones. Writes
    OUTDIR/results.csv, summary.md, summary.png and samples.png.
    """
    from sagan.ablation import GRIDS, run_grid

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expects integers like 0,1,2, got {seeds!r}", param_hint="--seeds") from None
    if not seed_list:
        raise click.BadParameter("give at least one seed", param_hint="--seeds")
    _setup_logging()
    outdir = Path(outdir or f"runs/ablation-{grid}")
    run_grid(GRIDS[grid], outdir, seed_list, tuple(sets), device, sym_num, fid_num, inception_path)
    click.echo(f"wrote results.csv, summary.md, summary.png and samples.png in {outdir}")
    click.echo((outdir / "summary.md").read_text())


@main.command()
@click.option("--checkpoint", required=True, help="Run folder or checkpoint .pt.")
@click.option(
    "--out",
    required=True,
    help="safetensors: a .safetensors path (the config goes beside it as .json); pretrained: a new or empty folder.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["safetensors", "pretrained"]),
    default="safetensors",
    help="safetensors: the EMA generator and a .json sidecar; pretrained: a folder with config.json and "
    "model.safetensors (EMA generator and D), the Hugging Face Hub layout.",
)
@click.option("--no-discriminator", is_flag=True, help="pretrained: leave D out (attention views then need D).")
@_overwrite
def export(checkpoint, out, fmt, no_discriminator, overwrite) -> None:
    """Write the EMA generator (loadable with no pickle) as safetensors or as a pretrained folder."""
    if fmt == "pretrained":
        from sagan.checkpoint import export_pretrained

        folder = export_pretrained(checkpoint, out, with_discriminator=not no_discriminator)
        click.echo(f"wrote {folder}")
        return
    from sagan.checkpoint import export_generator

    weights, config = export_generator(checkpoint, out, overwrite)
    click.echo(f"wrote {weights} and {config}")


if __name__ == "__main__":
    main()
