"""The tables and figures of an ablation grid: results.csv (one row per run), summary.md (mean +- std over seeds
per configuration, Welch's two-sided t-test of each against the grid's reference), summary.png (every seed and
the mean of each metric) and samples.png (each configuration's samples side by side)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import torch

from sagan.ablation.grids import Grid
from sagan.ablation.stats import welch_test
from sagan.safe_files import write_text

COLLAPSED_STD = 0.05  # sample_std below this: the samples hardly vary (mode collapse)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def metric_names(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in ("grid", "config", "seed", "status") and k not in names]
    return names


def write_tables(grid: Grid, rows: list[dict], outdir: Path, fid_num: int) -> None:
    """results.csv (one row per run), summary.md (per configuration), summary.png and samples.png."""
    metrics = metric_names(rows)
    fields = ["grid", "config", "seed", "status", *metrics]
    lines = [",".join(fields)]
    for r in rows:
        lines.append(",".join(_csv_cell(r.get(f, "")) for f in fields))
    write_text(outdir / "results.csv", "\n".join(lines) + "\n", overwrite=True)
    write_text(outdir / "summary.md", summary_markdown(grid, rows, metrics), overwrite=True)
    if any(r["status"] == "finished" for r in rows):
        plot_summary(grid, rows, [m for m in metrics if m != "train_minutes"], outdir / "summary.png")
        plot_samples(grid, rows, outdir, outdir / "samples.png")


def _csv_cell(value) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerow([value])
    return buf.getvalue().strip()


def summary_markdown(grid: Grid, rows: list[dict], metrics: list[str]) -> str:
    """Mean +- std over seeds per configuration, with the p-value of Welch's test against the reference (* below
    0.05)."""
    out = [
        f"| config | runs | {' | '.join(metrics)} |",
        "| --- | --- |" + " --- |" * len(metrics),
    ]
    ref = [r for r in rows if r["config"] == grid.reference and r["status"] == "finished"]
    for config in grid.configs:
        mine = [r for r in rows if r["config"] == config]
        done = [r for r in mine if r["status"] == "finished"]
        cells = []
        for m in metrics:
            values = [r[m] for r in done if m in r]
            mark = ""
            if config != grid.reference and m != "train_minutes":
                test = welch_test(values, [r[m] for r in ref if m in r])
                mark = "" if test is None else f" (p {test.p:.2g}{' *' if test.p < 0.05 else ''})"
            cells.append(_mean_std(values) + mark)
        problems = [f"seed {r['seed']}: {r['status']}" for r in mine if r["status"] != "finished"]
        collapsed = [r for r in done if any(k.startswith("sample_std") and v < COLLAPSED_STD for k, v in r.items())]
        problems += [f"seed {r['seed']}: collapsed (sample_std < {COLLAPSED_STD})" for r in collapsed]
        runs = f"{len(done)}/{len(mine)}" + (" (" + "; ".join(problems) + ")" if problems else "")
        out.append(f"| {config} | {runs} | {' | '.join(cells)} |")
    settings = "; ".join(f"`{c}`: {' '.join(s) or '(preset)'}" for c, s in grid.configs.items())
    footer = (
        f"\n{grid.description}. Common settings: preset `{grid.preset}`, {' '.join(grid.sets)}. {settings}. "
        f"Mean ± standard deviation over seeds; p: Welch's two-sided t-test against `{grid.reference}`, * : "
        "p < 0.05. train_minutes: training time from the run's own log (startup and evaluation excluded)."
    )
    return "\n".join(out) + "\n" + footer + "\n"


def plot_summary(grid: Grid, rows: list[dict], metrics: list[str], path: Path) -> None:
    """One panel per metric: each configuration's seeds as points and their mean as a bar."""
    from sagan.figures import new_figure

    configs = list(grid.configs)
    fig, axes = new_figure(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for x, config in enumerate(configs):
            values = [r[m] for r in rows if r["config"] == config and r["status"] == "finished" and m in r]
            if values:
                ax.bar(x, statistics.fmean(values), color="#9ecae1", width=0.6)
                ax.scatter([x] * len(values), values, color="#08519c", s=14, zorder=3)
        ax.set_xticks(range(len(configs)), configs, rotation=30, ha="right", fontsize=8)
        ax.set_title(m, fontsize=9)
    fig.suptitle(f"{grid.name}: {grid.description}", fontsize=9)
    _save_figure(fig, path, dpi=100)


@torch.no_grad()
def plot_samples(grid: Grid, rows: list[dict], outdir: Path, path: Path, num: int = 32) -> None:
    """Side by side, per configuration: `num` samples of the EMA generator of its finished run with the lowest
    seed (noise seed 0, as evaluated), grouped by class (8 per row)."""
    from torchvision.utils import make_grid

    from sagan.figures import new_figure
    from sagan.metrics.sources import generated_batches
    from sagan.model_files.loading import load_generator

    panels = []
    for config in grid.configs:
        done = sorted(r["seed"] for r in rows if r["config"] == config and r["status"] == "finished")
        if done:
            G = load_generator(outdir / grid.run_name(config, done[0]))
            images = torch.cat([x for _, x in generated_batches(G, num, seed=0)])
            k = max(G.cfg.num_classes, 1)
            order = sorted(range(num), key=lambda i: (i % k, i))  # classes cycle; group them
            panels.append((f"{config} (seed {done[0]})", make_grid(images[order], nrow=8, padding=2)))
    fig, axes = new_figure(1, len(panels), figsize=(3.2 * len(panels), 2.0), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels, strict=True):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    _save_figure(fig, path, dpi=150)


def _save_figure(fig, path: Path, dpi: int) -> None:
    """Write `fig` to `path` as PNG, replacing it atomically (the grid's own folder)."""
    from sagan.figures import save_png

    fig.tight_layout()
    save_png(fig, path, overwrite=True, dpi=dpi)
