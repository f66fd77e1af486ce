"""`sagan attention` and `sagan explore`: where generated images' query points attend, in G and D."""

from __future__ import annotations

from pathlib import Path

import click

from sagan.cli.options import SEED, model_source, overwrite_option, pretrained_option


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
    from sagan.distributed import resolve_device
    from sagan.model_files.loading import load_discriminator, load_generator

    if str(checkpoint).endswith(".safetensors"):
        raise ValueError(
            "attention views need D too: give a run folder, training checkpoint or pretrained folder, not an export"
        )
    dev = resolve_device(device)
    G = load_generator(checkpoint, dev)
    if not G.attention_layers():
        raise ValueError("this generator has no attention layers")
    return G, load_discriminator(checkpoint, dev)


@click.command()
@click.option("--checkpoint", default=None, help="Run folder, training checkpoint .pt or pretrained folder.")
@pretrained_option
@click.option("--out", required=True, help="Output PNG.")
@click.option("--num", type=click.IntRange(1, 16), default=4, help="Generated images (one row each).")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise.")
@click.option("--class", "class_id", type=int, default=None, help="Class of every image.  [default: balanced]")
@click.option("--layer", default=None, help="G attention layer, e.g. g32.  [default: the first]")
@click.option("--d-layer", default=None, help="D attention layer shown beside it.  [default: the first]")
@click.option("--queries", default=None, help="Query points 'x,y;x,y' in image pixels.  [default: 3, spread out]")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@overwrite_option
def attention(checkpoint, pretrained, out, num, seed, class_id, layer, d_layer, queries, device, overwrite) -> None:
    """Figure of where chosen query points attend, in G's and D's attention layers (the paper's Fig. 1)."""
    checkpoint = model_source(checkpoint, pretrained)
    from sagan.safe_files import check_output
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


@click.command()
@click.option("--checkpoint", default=None, help="Run folder, training checkpoint .pt or pretrained folder.")
@pretrained_option
@click.option("--out", default="attention.html", help="Output HTML file.")
@click.option("--num", type=click.IntRange(1, 256), default=16, help="Generated images embedded in the page.")
@click.option("--seed", type=SEED, default=0, help="Seed of the noise.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@overwrite_option
def explore(checkpoint, pretrained, out, num, seed, device, overwrite) -> None:
    """Write a self-contained HTML page to explore every attention layer's maps (works offline)."""
    checkpoint = model_source(checkpoint, pretrained)
    from sagan.explore import explore_data, write_explorer
    from sagan.safe_files import check_output

    check_output(out, overwrite)
    G, D = _models_for_attention(checkpoint, device)
    path = write_explorer(explore_data(G, D, num, seed), out, overwrite)
    click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); open it in a browser")
