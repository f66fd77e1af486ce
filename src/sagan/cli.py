"""The `sagan` command line: `sagan info`, ... Bad input ends in a one-line error and exit status 2."""

from __future__ import annotations

import dataclasses
import json

import click

from sagan.config import MODEL_PRESETS, ModelConfig


def _model_config(preset: str) -> ModelConfig:
    if preset not in MODEL_PRESETS:
        raise click.BadParameter(
            f"unknown preset {preset!r}; choose from {', '.join(MODEL_PRESETS)}", param_hint="--preset"
        )
    return ModelConfig(**MODEL_PRESETS[preset])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="sagan")
def main() -> None:
    """SAGAN: Self-Attention Generative Adversarial Networks in PyTorch."""


@main.command()
@click.option("--preset", default="demo", help=f"Named preset: {', '.join(MODEL_PRESETS)}.")
def info(preset: str) -> None:
    """Print a preset's resolved model config and the parameter counts of G and D."""
    from sagan.models import Discriminator, Generator

    cfg = _model_config(preset)
    G, D = Generator(cfg), Discriminator(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    click.echo(json.dumps({"preset": preset, "model": dataclasses.asdict(cfg)}, indent=2))
    click.echo(f"G: {count(G):,} parameters; attention at {', '.join(G.attention_layers()) or 'none'}")
    click.echo(f"D: {count(D):,} parameters; attention at {', '.join(D.attention_layers()) or 'none'}")


if __name__ == "__main__":
    main()
