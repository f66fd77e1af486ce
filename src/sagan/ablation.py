"""Ablation grids on the built-in shapes data: the paper's two claims, measurable on a CPU with one command.

- "attention" (the paper's Table 2 on shapes): no attention; G and D at 16 x 16; G and D at 8 x 8; G at 32 x 32
  and D at its largest map (16 x 16). Same model otherwise, same step budget.
- "sn-ttur" (the paper's Table 1 / Fig. 3): spectral norm in D only with equal learning rates (1e-4 / 1e-4);
  in G and D with equal rates; in G and D with TTUR (1e-4 / 4e-4). Adam betas (0, 0.9), as in the paper.
- "diffaugment" (small data): DiffAugment off against on (translation, cutout, colour; Zhao et al. 2020), each run
  training on a fixed set of only SMALL_DATA shapes images (the first of its seed's stream), so that D can
  overfit them; FID is against images of seed 0's whole stream, almost all unseen in training.

`run_grid` trains every configuration x seed as a normal run folder OUTDIR/CONFIG-seedK, one after the other (a
finished run is skipped, an interrupted one resumed, a diverged one recorded and not retried), evaluates each
final EMA generator once (OUTDIR/CONFIG-seedK.json), and writes OUTDIR/results.csv (one row per run),
OUTDIR/summary.md (mean +- std over seeds, and Welch's t-test of each configuration against the grid's
reference), OUTDIR/summary.png and OUTDIR/samples.png (each configuration's samples side by side).

Metrics (shapes images are exact mirror images, so each is 0, or 1 for the IoU, on real data): symmetry_fake
(mean |x - mirror(x)|), mirror_iou (does the right half hold the same shape, at the mirrored place, as the
left?), colour_gap (do the two shapes have one colour?), FID against real shapes on a stated number of images
(offline Inception), sample_std (spread of the samples: a collapsed generator scores near 0).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sagan.errors import DivergedError, SaganError
from sagan.files import write_text

log = logging.getLogger("sagan")

# Ablation runs: the demo model, a step budget that fits a CPU, fewer files than the demo writes.
_INTERVALS = ("log_every=50", "sample_every=500", "checkpoint_every=250", "snapshot_every=0")
_COMMON = ("steps=2000", *_INTERVALS)
_PAPER_ADAM = ("beta1=0.0", "beta2=0.9")
SMALL_DATA = 500  # images of the "diffaugment" grid's fixed training set
COLLAPSED_STD = 0.05  # sample_std below this: the samples hardly vary (mode collapse)


@dataclass(frozen=True)
class Grid:
    """A named set of configurations of one preset; each configuration is a list of --set items."""

    name: str
    description: str
    preset: str
    sets: tuple[str, ...]
    configs: dict[str, tuple[str, ...]]
    reference: str  # the configuration the others are compared with

    def run_name(self, config: str, seed: int) -> str:
        return f"{config}-seed{seed}"


GRIDS = {
    "attention": Grid(
        "attention",
        "attention placement (paper Table 2), demo model on shapes",
        "demo",
        _COMMON,
        {
            "none": ("g_attn_resolutions=", "d_attn_resolutions="),
            "g16-d16": ("g_attn_resolutions=16", "d_attn_resolutions=16"),
            "g8-d8": ("g_attn_resolutions=8", "d_attn_resolutions=8"),
            "g32-d16": ("g_attn_resolutions=32", "d_attn_resolutions=16"),
        },
        reference="none",
    ),
    "sn-ttur": Grid(
        "sn-ttur",
        "spectral norm and TTUR (paper Table 1), demo model on shapes",
        "demo",
        _COMMON + _PAPER_ADAM,
        {
            "sn-d-equal": ("g_spectral_norm=false", "lr_g=1e-4", "lr_d=1e-4"),
            "sn-gd-equal": ("lr_g=1e-4", "lr_d=1e-4"),
            "sn-gd-ttur": ("lr_g=1e-4", "lr_d=4e-4"),
        },
        reference="sn-d-equal",
    ),
    "diffaugment": Grid(
        "diffaugment",
        f"DiffAugment off / on, {SMALL_DATA} training images, demo model on shapes",
        "demo",
        ("steps=1000", *_INTERVALS, f"data_limit={SMALL_DATA}"),  # 64 passes over the data; ~6 min a run here
        {"off": (), "translation-cutout-color": ("augment=translation,cutout,color",)},
        reference="off",
    ),
}


def run_grid(
    grid: Grid,
    outdir: str | Path,
    seeds: list[int],
    extra_sets: tuple[str, ...] = (),
    device: str = "auto",
    sym_num: int = 1000,
    fid_num: int = 500,
    inception_path: str = "",
) -> list[dict]:
    """Train (or resume, or skip) and evaluate every configuration x seed; write the tables; return the rows."""
    outdir = Path(outdir).expanduser()
    runs = [(config, seed) for config in grid.configs for seed in seeds]
    inception = None
    if fid_num:  # a bad --inception fails now, not after the first run has trained
        from sagan.metrics.inception import Inception

        inception = Inception(inception_path, device if device != "auto" else "cpu")
    timing = {"steps": 0, "seconds": 0.0}  # trained here, and the seconds it took with evaluation: the ETA
    rows = []
    for i, (config, seed) in enumerate(runs, 1):
        name = grid.run_name(config, seed)
        result_path = outdir / f"{name}.json"
        resolved = _resolve(grid, config, seed, extra_sets, device)
        asked = (*grid.sets, *grid.configs[config], *extra_sets, "seed=")
        _check_settings(outdir / name, resolved, asked, steps_may_grow=not result_path.is_file())
        if result_path.is_file():
            row = json.loads(result_path.read_text())
            wanted = [f"symmetry_fake{sym_num}"] + ([f"fid{fid_num}"] if fid_num else [])
            if row["status"] == "finished" and any(k not in row for k in wanted):
                raise SaganError(
                    f"{result_path} was evaluated with other sample counts than {', '.join(wanted)}; "
                    "use the same --sym-num/--fid-num, another --outdir, or remove the .json files to re-evaluate"
                )
            rows.append(row)
            log.info("[%d/%d] %s: done before, skipped", i, len(runs), name)
            continue
        left = sum(_steps_left(outdir / grid.run_name(c, s), resolved.train.steps) for c, s in runs[i - 1 :])
        eta = f", grid ETA {_duration(left * timing['seconds'] / timing['steps'])}" if timing["steps"] else ""
        log.info("[%d/%d] %s: %s%s", i, len(runs), name, grid.configs[config], eta)
        t0 = time.perf_counter()
        status, trained = _train(resolved, outdir / name)
        if status == "interrupted":  # Ctrl-C / SIGTERM: the run saved its checkpoint; a rerun resumes it
            log.warning("[%d/%d] %s: interrupted; run the same command again to resume", i, len(runs), name)
            break
        row = {"grid": grid.name, "config": config, "seed": seed, "status": status}
        if status == "finished":
            row.update(evaluate_run(outdir / name, sym_num, fid_num, inception))
        write_text(result_path, json.dumps(row, indent=2) + "\n", overwrite=True)
        if trained:
            timing["steps"] += trained
            timing["seconds"] += time.perf_counter() - t0
        rows.append(row)
    write_tables(grid, rows, outdir, fid_num)
    return rows


def _resolve(grid: Grid, config: str, seed: int, extra_sets: tuple[str, ...], device: str):
    from sagan.config import resolve

    return resolve(grid.preset, {"seed": seed, "device": device}, grid.sets + grid.configs[config] + extra_sets)


def _check_settings(run_dir: Path, resolved, asked: tuple[str, ...], steps_may_grow: bool) -> None:
    """Refuse to reuse a run folder trained with other values of the settings this grid asks for (the keys of
    `asked`, KEY=VALUE items): a rerun with another --set must not mix old runs into new tables. `steps` may
    grow for a run that is still to be trained or resumed (it then trains on)."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    want = json.loads(json.dumps(resolved.as_dict()))  # tuples as lists, as in the file
    differ = []
    for key in dict.fromkeys(item.split("=", 1)[0].strip() for item in asked):
        section = "model" if key in want["model"] else "train"
        mine, theirs = want[section].get(key), recorded.get(section, {}).get(key)
        if key == "steps" and steps_may_grow and isinstance(theirs, int) and theirs <= mine:
            continue
        if mine != theirs:
            differ.append(f"{key} {theirs!r} (asked: {mine!r})")
    if differ:
        raise SaganError(
            f"{run_dir} was trained with other settings: {'; '.join(differ)}; use another --outdir or remove it"
        )


def _steps_left(run_dir: Path, steps: int) -> int:
    latest = run_dir / "checkpoints" / "latest.pt"
    if not latest.is_file():
        return steps
    from sagan.checkpoint import load_checkpoint

    return max(steps - int(load_checkpoint(latest)["step"]), 0)


def _train(resolved, run_dir: Path) -> tuple[str, int]:
    """Train, resume or skip the run in `run_dir`: (status, steps trained now)."""
    from sagan.checkpoint import load_checkpoint
    from sagan.config import resolve
    from sagan.training_loop import train

    ckpt, start = None, 0
    if (run_dir / "checkpoints" / "latest.pt").is_file():
        ckpt = load_checkpoint(run_dir)
        start = int(ckpt["step"])
        if ckpt["config"]["model"] != resolved.as_dict()["model"]:
            raise SaganError(f"{run_dir} holds a run of another model; remove it or use another --outdir")
        if start >= resolved.train.steps:
            return "finished", 0
        resolved = resolve("", {"steps": resolved.train.steps, "device": resolved.train.device}, resume=ckpt)
    elif run_dir.exists():  # a start that failed before its first checkpoint, from an older version
        raise SaganError(f"{run_dir} exists but holds no checkpoint; remove it to train this run")
    try:
        train(resolved, resume=ckpt, run_dir=run_dir)
    except DivergedError as e:
        log.warning("%s: %s", run_dir.name, e)
        return f"diverged ({str(e).split(';')[0].replace('training diverged: ', '')})", 0
    reached = _reached_step(run_dir)
    # A run is finished only at its target step: train() also returns after a stop request, at the step it saved.
    return ("finished" if reached >= resolved.train.steps else "interrupted"), reached - start


def _reached_step(run_dir: Path) -> int:
    """The step of the run's latest checkpoint (0 when there is none)."""
    from sagan.checkpoint import load_checkpoint

    latest = run_dir / "checkpoints" / "latest.pt"
    return int(load_checkpoint(latest)["step"]) if latest.is_file() else 0


def train_minutes(run_dir: Path) -> float:
    """Training time of a run from its metrics: every log row covers log_every steps at its images/s."""
    from sagan.rundir import read_metrics

    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "images_per_s" in r]
    seconds, kimg = 0.0, 0.0
    for r in rows:
        seconds += (r["kimg"] - kimg) * 1000 / r["images_per_s"]
        kimg = r["kimg"]
    return seconds / 60


@torch.no_grad()
def evaluate_run(run_dir: Path, sym_num: int, fid_num: int, inception=None) -> dict:
    """Metrics of a run's final EMA generator (class-balanced samples, noise seed 0) and its training time."""
    from sagan.loading import load_generator
    from sagan.metrics.evaluate import generated_batches
    from sagan.metrics.math import mirror_colour_gap, mirror_iou, symmetry_error

    G = load_generator(run_dir)
    images = torch.cat([x.float() / 127.5 - 1 for _, x in generated_batches(G, max(sym_num, fid_num), seed=0)])
    shown = images[:sym_num]
    out = {
        "train_minutes": round(train_minutes(run_dir), 2),
        f"symmetry_fake{sym_num}": symmetry_error(shown),
        f"mirror_iou{sym_num}": mirror_iou(shown),
        f"colour_gap{sym_num}": mirror_colour_gap(shown),
        f"sample_std{sym_num}": shown.std(0).mean().item(),
    }
    if fid_num:
        out[f"fid{fid_num}"] = _fid(images[:fid_num], G.cfg.resolution, inception)
    return out


def _fid(images: torch.Tensor, resolution: int, inception) -> float:
    from sagan.metrics.evaluate import real_batches, reference_key
    from sagan.metrics.inception import cached_features, to_uint8
    from sagan.metrics.math import fid_from_features

    n = len(images)
    fake = inception.features(to_uint8(images).split(50))["2048"]
    key = reference_key("shapes", "train", resolution, 3, n, 0, inception.id)
    real = cached_features(key, lambda: inception.features(x for _, x in real_batches("shapes", resolution, 3, n)))
    return fid_from_features(fake, real["2048"])


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96).
_T975 = (12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131) + (
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def welch_significant(a: list[float], b: list[float]) -> bool | None:
    """Whether the means of `a` and `b` differ at the 5% level (Welch's two-sided t-test; degrees of freedom by
    Welch-Satterthwaite, rounded down). None when either side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = abs(statistics.fmean(a) - statistics.fmean(b))
    if va + vb == 0:
        return diff > 0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t_crit = _T975[max(int(df), 1) - 1] if df < 31 else 1.96
    return diff / math.sqrt(va + vb) > t_crit


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


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
    """Mean +- std over seeds per configuration; * marks a difference from the reference significant at 5%."""
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
                sig = welch_significant(values, [r[m] for r in ref if m in r])
                mark = " *" if sig else ""
            cells.append(_mean_std(values) + mark)
        problems = [f"seed {r['seed']}: {r['status']}" for r in mine if r["status"] != "finished"]
        collapsed = [r for r in done if any(k.startswith("sample_std") and v < COLLAPSED_STD for k, v in r.items())]
        problems += [f"seed {r['seed']}: collapsed (sample_std < {COLLAPSED_STD})" for r in collapsed]
        runs = f"{len(done)}/{len(mine)}" + (" (" + "; ".join(problems) + ")" if problems else "")
        out.append(f"| {config} | {runs} | {' | '.join(cells)} |")
    settings = "; ".join(f"`{c}`: {' '.join(s) or '(preset)'}" for c, s in grid.configs.items())
    footer = (
        f"\n{grid.description}. Common settings: preset `{grid.preset}`, {' '.join(grid.sets)}. {settings}. "
        f"Mean ± standard deviation over seeds; * : differs from `{grid.reference}` at the 5% level (Welch's "
        "t-test, two-sided). train_minutes: training time from the run's own log (startup and evaluation excluded)."
    )
    return "\n".join(out) + "\n" + footer + "\n"


def plot_summary(grid: Grid, rows: list[dict], metrics: list[str], path: Path) -> None:
    """One panel per metric: each configuration's seeds as points and their mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(grid.configs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    from sagan.loading import load_generator
    from sagan.metrics.evaluate import generated_batches

    panels = []
    for config in grid.configs:
        done = sorted(r["seed"] for r in rows if r["config"] == config and r["status"] == "finished")
        if done:
            G = load_generator(outdir / grid.run_name(config, done[0]))
            images = torch.cat([x for _, x in generated_batches(G, num, seed=0)])
            k = max(G.cfg.num_classes, 1)
            order = sorted(range(num), key=lambda i: (i % k, i))  # classes cycle; group them
            panels.append((f"{config} (seed {done[0]})", make_grid(images[order], nrow=8, padding=2)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.0), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels, strict=True):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    _save_figure(fig, path, dpi=150)


def _save_figure(fig, path: Path, dpi: int) -> None:
    """Write `fig` to `path` as PNG (replacing it atomically) and close it."""
    import matplotlib.pyplot as plt

    from sagan.files import atomic_output

    fig.tight_layout()
    try:
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
