"""What several commands share: option types and decorators, the model source, logging set-up."""

from __future__ import annotations

import logging
import os
import sys

import click

SEED = click.IntRange(0, 2**63 - 1)  # what torch.Generator.manual_seed takes
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace --out if it exists (never a folder).")
pretrained_option = click.option(
    "--pretrained",
    default=None,
    help="A generator shipped with sagan (fashion-mnist, fashion-mnist-uncond, fashion-mnist-28, "
    "fashion-mnist-28-uncond) or a pretrained folder, instead of --checkpoint.",
)


def model_source(checkpoint: str | None, pretrained: str | None) -> str:
    """The one model source given: --checkpoint or --pretrained (a shipped name or a pretrained folder)."""
    if (checkpoint is None) == (pretrained is None):
        raise click.UsageError("give exactly one of --checkpoint and --pretrained")
    if pretrained is not None:
        from sagan.model_files.pretrained import resolve_pretrained

        return str(resolve_pretrained(pretrained))
    return checkpoint


def setup_logging() -> None:
    """INFO lines on stderr from rank 0 (WARNING from the other ranks of a torchrun launch)."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr
    )
