"""The `sagan` command line: train, sample, export, info. Bad input ends in a one-line error, no traceback."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import typing
from pathlib import Path

import click

from sagan.config import MODEL_PRESETS, PRESETS, TRAIN_PRESETS, ModelConfig, TrainConfig, from_dict

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


class _Group(click.Group):
    """Turns user errors raised anywhere below a command into `Error: <message>` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from None


def _parse_value(field: dataclasses.Field, text: str):
    """Parse `text` as the type of a config field (bool, int, float, str, or a comma-separated tuple)."""
    hint = typing.get_type_hints(_owner(field))[field.name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(_scalar(args[0], p.strip(), field.name) for p in parts)
    return _scalar(hint, text, field.name)


def _owner(field: dataclasses.Field):
    return ModelConfig if field.name in {f.name for f in dataclasses.fields(ModelConfig)} else TrainConfig


def _scalar(kind, text: str, name: str):
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        raise ValueError(f"bad value {text!r} for {name} (expects {kind.__name__})") from None


def apply_sets(model: dict, train: dict, sets: tuple[str, ...]) -> None:
    """Apply KEY=VALUE overrides to the model or train config dict that has KEY."""
    fields = {f.name: f for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise ValueError(f"--set expects KEY=VALUE with KEY a config field, got {item!r}; see --dry-run")
        target = model if _owner(fields[key]) is ModelConfig else train
        target[key] = _parse_value(fields[key], value)


def _setup_logging() -> None:
    import os

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="sagan")
def main() -> None:
    """SAGAN: Self-Attention Generative Adversarial Networks in PyTorch.

    Start with `sagan train` (the demo preset: built-in shapes data, 32 px, about 8 minutes on 2 CPU cores).
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
def train(
    preset,
    data,
    data_root,
    download,
    channels,
    unconditional,
    outdir,
    steps,
    batch_size,
    seed,
    device,
    amp,
    resume,
    eval_every,
    eval_num,
    inception_path,
    sets,
    dry_run,
) -> None:
    """Train SAGAN. With no options: the demo preset on the built-in shapes dataset."""
    from sagan.data import dataset_info

    flags = dict(
        data=data,
        data_root=data_root,
        outdir=outdir,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        device=device,
        amp=amp,
        eval_every=eval_every,
        eval_num=eval_num,
        inception_path=inception_path,
    )
    flags = {k: v for k, v in flags.items() if v is not None}
    if download:
        flags["download"] = True
    run_dir, ckpt = None, None
    if resume:
        from sagan.checkpoint import load_checkpoint, resolve_checkpoint_path

        ckpt = load_checkpoint(resume)
        model, train_d = dict(ckpt["config"]["model"]), dict(ckpt["config"]["train"])
        preset = ckpt["config"].get("preset", preset)
        folder = resolve_checkpoint_path(resume).parent.parent
        run_dir = folder if (folder / "config.json").is_file() else None
        if channels or unconditional or any(k in model for k, _ in (s.partition("=")[::2] for s in sets)):
            raise ValueError("the model of a resumed run cannot change; drop --channels/--unconditional/model --set")
    else:
        model, train_d = dict(MODEL_PRESETS[preset]), dict(TRAIN_PRESETS[preset])
    train_d.update(flags)
    if not resume:
        ds = dataset_info(train_d.get("data", TrainConfig.data))
        model["num_classes"] = 0 if unconditional else ds.num_classes
        train_d["unconditional"] = unconditional
        model["img_channels"] = int(channels) if channels else (ds.channels if data else model.get("img_channels", 3))
    apply_sets(model, train_d, sets)
    model_cfg, train_cfg = from_dict(ModelConfig, model), from_dict(TrainConfig, train_d)
    if dry_run:
        click.echo(
            json.dumps(
                {"preset": preset, "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg)},
                indent=2,
            )
        )
        return
    _setup_logging()
    from sagan.train import train as run_training

    run_training(model_cfg, train_cfg, preset=preset, resume=ckpt, run_dir=run_dir)


@main.command()
@click.option("--checkpoint", required=True, help="Run folder, checkpoint .pt, or exported .safetensors.")
@click.option("--num", type=click.IntRange(min=1), default=64, help="Number of images.")
@click.option("--out", required=True, help="A .png path for one grid, else a folder of PNGs.")
@click.option("--class", "class_id", type=int, default=None, help="Class of every image.  [default: balanced]")
@click.option("--seed", type=int, default=0, help="Seed of the noise.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, help="Images per forward pass.")
def sample(checkpoint, num, out, class_id, seed, device, batch_size) -> None:
    """Draw images from a trained generator (the EMA copy when the run kept one)."""
    from sagan.checkpoint import load_generator
    from sagan.distributed import resolve_device
    from sagan.sampling import fixed_noise, generate, make_labels, save_folder, save_grid

    G = load_generator(checkpoint, resolve_device(device))
    y = make_labels(num, G.cfg.num_classes, class_id)
    images = generate(G, fixed_noise(num, G.cfg.z_dim, seed), y, batch_size)
    path = save_grid(images, out) if out.lower().endswith(".png") else save_folder(images, out, y)
    click.echo(f"wrote {num} images to {path}")


@main.command()
@click.option("--checkpoint", default=None, help="Run folder, checkpoint .pt or exported .safetensors to sample from.")
@click.option("--fake", default=None, help="A folder of generated images instead of --checkpoint.")
@click.option("--data", default=None, help="Reference dataset (as for train).  [default: the checkpoint's]")
@click.option("--data-root", default="", help="Folder of torchvision datasets.  [default: $SAGAN_DATA_ROOT]")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", help="Reference split.")
@click.option("--num", type=click.IntRange(min=2), default=10_000, help="Generated images (and real, see --num-real).")
@click.option("--num-real", type=click.IntRange(min=2), default=None, help="Real images.  [default: --num]")
@click.option("--metrics", default="fid,kid", help="Comma-separated: fid, kid, is, pr (precision/recall).")
@click.option(
    "--inception",
    "inception_path",
    default="",
    help="Inception weights: a TorchScript pool3 module (FID/KID) or torch-fidelity's .pth (all).  "
    "[default: $SAGAN_INCEPTION_PATH, else torch-fidelity's download]",
)
@click.option("--resolution", type=int, default=None, help="Real-image resolution.  [default: the model's]")
@click.option("--seed", type=int, default=0, help="Seed of the noise and of the real subset.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--out", default=None, help="Also write the JSON to this file.")
def evaluate(
    checkpoint, fake, data, data_root, split, num, num_real, metrics, inception_path, resolution, seed, device, out
) -> None:
    """FID / KID / IS (torch-fidelity, TF Inception features) of a generator or a folder of images; prints JSON."""
    from sagan.distributed import resolve_device
    from sagan.metrics.evaluate import evaluate as run_eval
    from sagan.metrics.evaluate import parse_metrics
    from sagan.metrics.inception import Inception

    if (checkpoint is None) == (fake is None):
        raise click.UsageError("give exactly one of --checkpoint and --fake")
    names = parse_metrics(metrics)
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
        source = fake
        if not data or not resolution:
            raise click.UsageError("with --fake, give --data and --resolution")
    inception = Inception(inception_path, dev, with_logits="is" in names)
    result = run_eval(source, data, names, num, resolution, channels, data_root, split, num_real, inception, seed=seed)
    text = json.dumps(result, indent=2)
    click.echo(text)
    if out:
        Path(out).expanduser().write_text(text + "\n")


def _checkpoint_data(checkpoint: str) -> tuple[str, str]:
    """The dataset and data root a checkpoint was trained on (exported generators do not record them)."""
    if str(checkpoint).endswith(".safetensors"):
        raise click.UsageError("an exported generator does not record its dataset: give --data")
    from sagan.checkpoint import load_checkpoint

    train = load_checkpoint(checkpoint)["config"]["train"]
    return train["data"], train["data_root"]


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
        raise ValueError("attention views need D too: give a run folder or training checkpoint, not an export")
    dev = resolve_device(device)
    G = load_generator(checkpoint, dev)
    if not G.attention_layers():
        raise ValueError("this generator has no attention layers")
    return G, load_discriminator(checkpoint, dev)


@main.command()
@click.option("--checkpoint", required=True, help="Run folder or training checkpoint .pt.")
@click.option("--out", required=True, help="Output PNG.")
@click.option("--num", type=click.IntRange(1, 16), default=4, help="Generated images (one row each).")
@click.option("--seed", type=int, default=0, help="Seed of the noise.")
@click.option("--class", "class_id", type=int, default=None, help="Class of every image.  [default: balanced]")
@click.option("--layer", default=None, help="G attention layer, e.g. g32.  [default: the first]")
@click.option("--d-layer", default=None, help="D attention layer shown beside it.  [default: the first]")
@click.option("--queries", default=None, help="Query points 'x,y;x,y' in image pixels.  [default: 3, spread out]")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
def attention(checkpoint, out, num, seed, class_id, layer, d_layer, queries, device) -> None:
    """Figure of where chosen query points attend, in G's and D's attention layers (the paper's Fig. 1)."""
    from sagan.sampling import fixed_noise, make_labels
    from sagan.visualize import attention_figure, generate_with_attention

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
    path = attention_figure(images.cpu(), maps, points, shown, out, title=f"{Path(checkpoint).name} | seed {seed}")
    click.echo(f"wrote {path}")


@main.command()
@click.option("--checkpoint", required=True, help="Run folder or training checkpoint .pt.")
@click.option("--out", default="attention.html", help="Output HTML file.")
@click.option("--num", type=click.IntRange(1, 256), default=16, help="Generated images embedded in the page.")
@click.option("--seed", type=int, default=0, help="Seed of the noise.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
def explore(checkpoint, out, num, seed, device) -> None:
    """Write a self-contained HTML page to explore every attention layer's maps (works offline)."""
    from sagan.explore import explore_data, write_explorer

    G, D = _models_for_attention(checkpoint, device)
    path = write_explorer(explore_data(G, D, num, seed), out)
    click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); open it in a browser")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, help="Output PNG.  [default: RUN_DIR/training.png]")
def plot(run_dir, out) -> None:
    """Plot losses, mean D outputs and every attention gamma over training from RUN_DIR/metrics.jsonl."""
    from sagan.visualize import plot_training

    click.echo(f"wrote {plot_training(run_dir, out)}")


@main.command()
@click.option("--checkpoint", required=True, help="Run folder or checkpoint .pt.")
@click.option("--out", required=True, help="Output .safetensors path; the config goes beside it as .json.")
def export(checkpoint, out) -> None:
    """Write the EMA generator as safetensors plus its config JSON (loadable with no pickle)."""
    from sagan.checkpoint import export_generator

    weights, config = export_generator(checkpoint, out)
    click.echo(f"wrote {weights} and {config}")


if __name__ == "__main__":
    main()
