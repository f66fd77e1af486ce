"""`sagan train`: resolve a run's config (preset, flags, --set, a resumed checkpoint) and train it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from sagan.cli.options import setup_logging
from sagan.config import PRESETS
from sagan.errors import SaganError


@click.command()
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
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Global batch size, split over torchrun's processes.  [default: the preset's]",
)
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 0]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.  [default: auto]")
@click.option(
    "--amp",
    type=click.Choice(["none", "bf16", "fp16", "auto"]),
    default=None,
    help="Mixed precision; auto: bf16 autocast for CPU training where the CPU has native bf16 (AMX, AVX512-BF16, "
    "Arm BF16) and a timing of the model's step shows it >= 1.1x faster, else none.  [default: auto]",
)
@click.option("--resume", default=None, help="Run folder or checkpoint to continue from (its config is used).")
@click.option(
    "--run-dir",
    default=None,
    help="Train in this run folder: start the run there if it is absent or empty, else continue it from its latest "
    "checkpoint (as --resume), and exit 0 if it has finished. The same command starts or continues a run: for "
    "torchrun --max-restarts and requeued jobs.",
)
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
def train(preset, channels, download, unconditional, resume, run_dir, force, sets, dry_run, **flags) -> None:
    """Train SAGAN. With no options: the demo preset on the built-in shapes dataset."""
    from sagan.run_config import resolve

    flags["img_channels"] = int(channels) if channels else None
    flags["download"] = True if download else None
    flags["unconditional"] = True if unconditional else None
    ckpt = None
    if run_dir:
        if resume:
            raise click.UsageError("give --run-dir or --resume, not both")
        ckpt, run_dir = _named_run(run_dir, preset, flags, sets)
        if ckpt is not None and ckpt.get("finished"):
            click.echo(f"{run_dir} has finished ({ckpt['step']} steps); nothing to do")
            return
    elif resume:
        from sagan.model_files.checkpoints import check_resumable, load_checkpoint, run_folder_of

        ckpt = load_checkpoint(resume)
        check_resumable(ckpt, resume)
        run_dir = run_folder_of(resume, ckpt)
    resolved = resolve(preset, flags, sets, resume=ckpt, force=force)
    if dry_run:
        click.echo(json.dumps(resolved.as_dict(), indent=2))
        resolved.remember_amp_timing()
        return
    setup_logging()
    if resume and run_dir is None:
        logging.getLogger("sagan").warning(
            "%s is not inside a run folder: continuing in a new run folder under %s", resume, resolved.train.outdir
        )
    from sagan.training.loop import train as run_training

    run_training(resolved, resume=ckpt, run_dir=run_dir)


def _named_run(path: str, preset: str, flags: dict, sets) -> tuple[dict | None, Path]:
    """For --run-dir: (the checkpoint to continue, or None to start the run; the folder). A checkpoint whose run has
    reached its steps (this command's --steps or --set steps, else its own) comes back marked "finished"."""
    from sagan.model_files.checkpoints import check_resumable, load_checkpoint
    from sagan.run_config import parse_set
    from sagan.training.run_folder import named_run_state

    folder = Path(path).expanduser()
    if named_run_state(folder) != "resume":
        return None, folder
    ckpt = load_checkpoint(folder)
    check_resumable(ckpt, folder)
    recorded = ckpt["config"].get("preset")
    source = click.get_current_context().get_parameter_source("preset")
    if source is click.core.ParameterSource.COMMANDLINE and recorded not in (None, preset):
        raise SaganError(f"--run-dir {folder} holds a run of preset {recorded!r}, not {preset!r}")
    steps = ckpt["config"]["train"].get("steps")
    steps = flags.get("steps") or steps
    for item in sets:
        key, value = parse_set(item)
        steps = value if key == "steps" else steps
    if isinstance(steps, int) and ckpt["step"] >= steps:
        ckpt["finished"] = True
    return ckpt, folder
