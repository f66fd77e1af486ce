"""`sagan evaluate`: FID and the other Inception metrics of a generator or a folder of images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sagan.cli.options import SEED, model_source, overwrite_option, pretrained_option, setup_logging
from sagan.errors import SaganError


@click.command()
@click.option(
    "--checkpoint", default=None, help="Run folder, checkpoint .pt, exported .safetensors or pretrained folder."
)
@pretrained_option
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
    "--inception-precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    help="The Inception network's precision. bf16 is ~2x faster on CPUs with native bf16 and moves FID by the "
    "amount docs/benchmarks.md reports; figures to publish use fp32.",
)
@click.option(
    "--resolution",
    type=click.IntRange(min=1),
    default=None,
    help="Real-image resolution; a generator of another size has its images resized to it as the real images are "
    "(e.g. a 28 px model at the 32 px protocol).  [default: the model's, or with --fake the images']",
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
@overwrite_option
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
    inception_precision,
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
    from sagan.metrics.evaluate import Protocol, parse_metrics
    from sagan.metrics.evaluate import evaluate as run_eval
    from sagan.metrics.inception import Inception

    if pretrained is not None:
        checkpoint = model_source(checkpoint, pretrained)
    if (checkpoint is None) == (fake is None):
        raise click.UsageError("give exactly one of --checkpoint (or --pretrained) and --fake")
    from sagan.safe_files import check_output

    for path in (out, save_ref_stats):
        if path:
            check_output(path, overwrite)
    if ref_stats and not Path(ref_stats).expanduser().is_file():
        raise FileNotFoundError(f"no statistics file at {ref_stats}")
    names = parse_metrics(metrics)
    setup_logging()  # progress lines on stderr when it is not a terminal; the JSON alone goes to stdout
    dev = resolve_device(device)
    channels = 3
    if checkpoint:
        from sagan.model_files.loading import load_generator

        G = load_generator(checkpoint, dev)
        source, resolution, channels = G, resolution or G.cfg.resolution, G.cfg.img_channels
        if not data:
            data, trained_root = _checkpoint_data(checkpoint)
            data_root = data_root or trained_root
    else:
        from sagan.metrics.sources import folder_resolution

        source = fake
        if not data:
            raise click.UsageError("with --fake, give --data (the real images to compare with)")
        resolution = resolution or folder_resolution(fake)
    inception = Inception(inception_path, dev, with_logits="is" in names, precision=inception_precision)
    protocol = Protocol(data, resolution, channels, tuple(names), num, num_real, split, data_root, seed,
                        ref_stats=ref_stats, save_ref_stats=save_ref_stats)  # fmt: skip
    result = run_eval(source, protocol, inception)
    text = json.dumps(result, indent=2)
    click.echo(text)
    if out:
        from sagan.safe_files import write_text

        write_text(out, text + "\n", overwrite)


def _checkpoint_data(checkpoint: str) -> tuple[str, str]:
    """The dataset and data root a checkpoint was trained on (exported generators do not record them)."""
    from sagan.model_files.loading import is_pretrained

    if is_pretrained(checkpoint):
        from sagan.model_files.pretrained import read_pretrained, resolve_pretrained

        data = read_pretrained(resolve_pretrained(checkpoint), "G")[2].get("data")
        if not isinstance(data, str):
            raise click.UsageError("this pretrained folder does not record its dataset: give --data")
        return data, ""
    if str(checkpoint).endswith(".safetensors"):
        raise click.UsageError("an exported generator does not record its dataset: give --data")
    from sagan.model_files.checkpoints import load_checkpoint

    train = load_checkpoint(checkpoint)["config"].get("train")
    if not isinstance(train, dict) or not isinstance(train.get("data"), str):
        raise SaganError(f"{checkpoint} does not record its dataset (no train config): give --data")
    return train["data"], str(train.get("data_root") or "")
