"""`sagan sample`, `sagan interpolate` and `sagan export`: draw from a trained generator, or write it out."""

from __future__ import annotations

import click
from click.core import ParameterSource

from sagan.cli.options import SEED, model_source, overwrite_option, pretrained_option


@click.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@pretrained_option
@click.option(
    "--num",
    type=click.IntRange(min=1),
    default=64,
    help="Number of images.  [default: 64; a .png grid of a conditional model: 8 per class, one row each, for up "
    "to 16 classes]",
)
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
    checkpoint = model_source(checkpoint, pretrained)
    from sagan.distributed import resolve_device
    from sagan.model_files.loading import load_generator
    from sagan.safe_files import check_folder, check_output
    from sagan.sampling import GRID_COLUMNS, fixed_noise, generate, grid_size, make_labels, save_folder, save_grid

    grid = out.lower().endswith(".png")
    check_output(out, overwrite) if grid else check_folder(out)  # before any work
    G = load_generator(checkpoint, resolve_device(device))
    per_row = GRID_COLUMNS if grid and class_id is None and G.cfg.num_classes else 0
    if per_row and click.get_current_context().get_parameter_source("num") is ParameterSource.DEFAULT:
        num = grid_size(G.cfg.num_classes)  # every class shows: 10 rows for Fashion-MNIST, not classes 0-7
    y = make_labels(num, G.cfg.num_classes, class_id, per_row=per_row)
    images = generate(G, fixed_noise(num, G.cfg.z_dim, seed, truncation), y, batch_size)
    path = save_grid(images, out, overwrite=overwrite) if grid else save_folder(images, out, y)
    click.echo(f"wrote {num} images to {path}")


@click.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@pretrained_option
@click.option("--out", required=True, help="A .png grid (one interpolation per row) or an animated .gif.")
@click.option("--mode", type=click.Choice(["z", "class"]), default="z", help="Interpolate the noise or the class.")
@click.option("--steps", type=click.IntRange(min=2), default=8, help="Frames from one end to the other.")
@click.option("--rows", type=click.IntRange(min=1), default=4, help="Interpolations (rows of the grid).")
@click.option("--classes", default="0,1", help="--mode class: the two end classes, e.g. 0,9.")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise (z mode ends: seeds SEED and SEED + 1).")
@click.option("--truncation", type=click.FloatRange(min=0, min_open=True), default=None, help="As for sample.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@overwrite_option
def interpolate(checkpoint, pretrained, out, mode, steps, rows, classes, seed, truncation, device, overwrite) -> None:
    """Interpolate between two noise vectors (--mode z) or two classes (--mode class), as a grid or a GIF."""
    from sagan.distributed import resolve_device
    from sagan.model_files.loading import load_generator
    from sagan.safe_files import check_output
    from sagan.sampling import interpolate as run_interpolation
    from sagan.sampling import save_gif, save_grid

    checkpoint = model_source(checkpoint, pretrained)
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


@click.command()
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
@overwrite_option
def export(checkpoint, out, fmt, no_discriminator, overwrite) -> None:
    """Write the EMA generator (loadable with no pickle) as safetensors or as a pretrained folder."""
    if fmt == "pretrained":
        from sagan.model_files.exports import export_pretrained

        folder = export_pretrained(checkpoint, out, with_discriminator=not no_discriminator)
        click.echo(f"wrote {folder}")
        return
    from sagan.model_files.exports import export_generator

    weights, config = export_generator(checkpoint, out, overwrite)
    click.echo(f"wrote {weights} and {config}")
