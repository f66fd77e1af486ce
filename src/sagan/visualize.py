"""Looking at attention: per-query maps of G's and D's attention layers (the paper's Fig. 1 and Fig. 5), and the
training curves of every attention gamma.

A query point (px, py) in image pixels lies in one cell of the layer's feature grid (H, W); its map is that
row of the layer's explicit attention, a distribution over the key grid (H/2, W/2 when keys are pooled), which
is upsampled back to image size for display: each key cell covers the image region it was pooled from.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from sagan.layers.attention import SelfAttention2d

log = logging.getLogger("sagan")

QUERY_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]


@contextlib.contextmanager
def capture_inputs(blocks: dict[str, SelfAttention2d]):
    """Record the input feature map of each attention block during forward passes: yields {name: tensor}."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        b.register_forward_pre_hook(lambda mod, args, n=name: seen.__setitem__(n, args[0].detach()))
        for name, b in blocks.items()
    ]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def attention_of(block: SelfAttention2d, features: torch.Tensor) -> torch.Tensor:
    """The block's attention map for its input features (B, C, H, W): (B, N_queries, Hk, Wk)."""
    _, attn = block(features, return_attn=True)
    hk, wk = block.key_grid(*features.shape[-2:])
    return attn.unflatten(-1, (hk, wk))


@torch.no_grad()
def generate_with_attention(G, D, z: torch.Tensor, y: torch.Tensor | None):
    """Images of G and the attention maps of every G and D attention layer on them.

    Returns images (B, C, R, R) in [-1, 1] and {layer: (maps (B, H, W, Hk, Wk), gamma)}, query grid (H, W).
    """
    with capture_inputs(G.attention_layers()) as g_in:
        x = G(z, y)
    with capture_inputs(D.attention_layers()) as d_in:
        D(x, y)
    maps = {}
    for name, block in {**G.attention_layers(), **D.attention_layers()}.items():
        feats = {**g_in, **d_in}[name]
        a = attention_of(block, feats)  # (B, N, Hk, Wk)
        maps[name] = (a.unflatten(1, feats.shape[-2:]), float(block.gamma))
    return x, maps


def query_cell(px: float, py: float, resolution: int, grid: tuple[int, int]) -> tuple[int, int]:
    """Feature-grid cell (row, col) holding image pixel (px, py) (x to the right, y down)."""
    if not (0 <= px < resolution and 0 <= py < resolution):
        raise ValueError(f"query ({px}, {py}) lies outside the {resolution} x {resolution} image")
    return int(py * grid[0] // resolution), int(px * grid[1] // resolution)


def auto_queries(resolution: int, count: int = 3) -> list[tuple[int, int]]:
    """`count` query points spread over the image (centre first, then around it)."""
    r = resolution
    spots = [(0.5, 0.5), (0.25, 0.3), (0.75, 0.7), (0.3, 0.75), (0.7, 0.25), (0.5, 0.15), (0.15, 0.5), (0.85, 0.5)]
    return [(int(fx * r), int(fy * r)) for fx, fy in spots[:count]]


def upsample_map(m: torch.Tensor, resolution: int) -> torch.Tensor:
    """Key-grid map (Hk, Wk) -> (resolution, resolution), each key cell covering its image region (nearest)."""
    return F.interpolate(m[None, None].float(), size=(resolution, resolution), mode="nearest")[0, 0]


def attention_figure(images, maps, queries, layers, out: str | Path, title: str = "", overwrite: bool = False) -> Path:
    """One row per image: the image with coloured query points, then each layer's map for each query."""
    from sagan.figures import new_figure, save_png

    B, R = images.shape[0], images.shape[-1]
    cols = 1 + len(layers) * len(queries)
    fig, axes = new_figure(B, cols, figsize=(2.1 * cols, 2.3 * B), squeeze=False)
    for b in range(B):
        img = images[b].add(1).div(2).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
        ax = axes[b, 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        for q, (px, py) in enumerate(queries):
            ax.scatter([px], [py], s=60, c=QUERY_COLOURS[q % 8], edgecolors="white", linewidths=1.2)
        ax.set_title(f"sample {b}", fontsize=8)
        col = 1
        for layer in layers:
            m, gamma = maps[layer]
            for q, (px, py) in enumerate(queries):
                i, j = query_cell(px, py, R, m.shape[1:3])
                ax = axes[b, col]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
                ax.imshow(upsample_map(m[b, i, j], R).numpy(), cmap="inferno", alpha=0.75)
                ax.scatter([px], [py], s=40, c=QUERY_COLOURS[q % 8], edgecolors="white", linewidths=1)
                ax.set_title(f"{layer} γ={gamma:.3f}\nquery ({px},{py})", fontsize=7, color=QUERY_COLOURS[q % 8])
                col += 1
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, out, overwrite)


# The training panels: title, then the series each plots (gamma/* series are found in the rows).
TRAINING_PANELS = (("losses", ("loss_d", "loss_g")), ("mean D output", ("d_real", "d_fake")), ("attention gamma", ()))


def plot_training(run_dir: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Losses, mean D outputs and every attention gamma over training, from the run's metrics.jsonl; evaluations
    in a fourth panel where there are any. Written to `out`, by default RUN/training.png, which replaces an earlier
    training.png of sagan's but a file of another origin only with `overwrite`.

    A last line cut short by a crash is skipped (see `read_metrics`). Series no row has (rows written by another
    version, or edited) are left out, named in a warning and in their panel.
    """
    from sagan.figures import new_figure, save_png
    from sagan.training.run_folder import read_metrics

    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}")
    all_rows = read_metrics(path)
    rows = [r for r in all_rows if any(k in r for _, keys in TRAINING_PANELS for k in keys)]
    if not rows:
        raise ValueError(f"{path} has no training rows yet")
    evals = _eval_curves(all_rows)
    fig, axes = new_figure(1, 4 if evals else 3, figsize=(20 if evals else 15, 4))
    gammas = tuple(sorted({k for r in rows for k in r if k.startswith("gamma/")}))
    missing = []
    for ax, (title, keys) in zip(axes, TRAINING_PANELS, strict=False):
        keys = keys or gammas
        drawn = 0
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
            if not points:
                missing.append(key)
                continue
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key.split("/", 1)[-1])
            drawn += 1
        ax.set_title(title), ax.set_xlabel("step")
        if drawn:
            ax.legend(fontsize=8)
        else:
            what = ", ".join(keys) if keys else "no attention layers"
            ax.text(0.5, 0.5, f"not in metrics.jsonl: {what}", ha="center", va="center", transform=ax.transAxes)
        if title == "attention gamma":
            ax.axhline(0, color="grey", lw=0.5)
    if missing:
        log.warning("%s has no %s: plotted the rest", path, ", ".join(missing))
    if evals:
        for name, points in evals.items():
            axes[3].plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        axes[3].set_title("evaluation"), axes[3].set_xlabel("step"), axes[3].legend(fontsize=8)
    fig.suptitle(str(run_dir.name))
    fig.tight_layout()
    if out is None:
        return save_png(fig, run_dir / "training.png", overwrite=True, only_our_own=not overwrite)
    return save_png(fig, out, overwrite)


# Evaluation entries that qualify another (kid1k_std, fid1k_mean_term): in the JSON and metrics.jsonl, not in plots.
_QUALIFIERS = ("_std", "_mean_term", "_cov_term")


def _eval_curves(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} of the evaluation rows ("eval/fid1k", ...), standard deviations and FID's
    terms left out."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("eval/") and not k.endswith(_QUALIFIERS) and isinstance(v, int | float):
                curves.setdefault(k.split("/", 1)[1], []).append((r["step"], float(v)))
    return curves


def eval_table(run_dir: str | Path) -> list[dict]:
    """One row per evaluation of a run: step, kimg, training minutes (of the log row at or before it) and every
    evaluation metric; for tables of FID against training time."""
    from sagan.training.run_folder import read_metrics

    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    logs = [r for r in rows if "kimg" in r]
    out = []
    for r in rows:
        metrics = {k.split("/", 1)[1]: v for k, v in r.items() if k.startswith("eval/")}
        if not metrics:
            continue
        before = [row for row in logs if row["step"] <= r["step"]]
        kimg = before[-1]["kimg"] * r["step"] / before[-1]["step"] if before else float("nan")
        minutes = before[-1].get("train_minutes", float("nan")) if before else float("nan")
        out.append({"step": r["step"], "kimg": kimg, "train_minutes": minutes, **metrics})
    return out


def plot_evaluations(run_dirs: list[str | Path], out: str | Path, metric: str = "fid", overwrite: bool = False) -> Path:
    """Compare runs: each run's first evaluation metric starting with `metric` (e.g. fid1k) against kimg and
    against training minutes, one line per run (labelled by its folder name)."""
    from sagan.figures import new_figure, save_png

    fig, (ax_kimg, ax_min) = new_figure(1, 2, figsize=(11, 4))
    name = None
    for run_dir in run_dirs:
        table = eval_table(run_dir)
        keys = sorted({k for row in table for k in row if k.startswith(metric) and not k.endswith(_QUALIFIERS)})
        if not keys:
            raise ValueError(f"{run_dir} has no evaluation rows with a {metric} metric")
        name = keys[0]
        rows = [row for row in table if name in row]
        for ax, x in ((ax_kimg, "kimg"), (ax_min, "train_minutes")):
            ax.plot([row[x] for row in rows], [row[name] for row in rows], marker="o", label=Path(run_dir).name)
    for ax, xlabel in ((ax_kimg, "kimg (thousands of real images seen)"), (ax_min, "training minutes")):
        ax.set_xlabel(xlabel), ax.set_ylabel(name), ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out, overwrite)
