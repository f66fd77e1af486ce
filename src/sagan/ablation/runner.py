"""Running an ablation grid: every configuration x seed trained as a normal run folder OUTDIR/CONFIG-seedK, one
after the other (a finished run is skipped, an interrupted one resumed, a diverged one recorded and not
retried), each final EMA generator evaluated once (OUTDIR/CONFIG-seedK.json), then the tables
(`sagan.ablation.summary`).

Metrics: FID against real images of the grid's data and split (offline Inception; KID too on real data), and
sample_std (spread of the samples: a collapsed generator scores near 0). On the built-in shapes data, which are
exact mirror images (so each is 0, or 1 for the IoU, on real data), also symmetry_fake (mean |x - mirror(x)|),
mirror_iou (does the right half hold the same shape, at the mirrored place, as the left?) and colour_gap (do
the two shapes have one colour?).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from sagan.ablation.grids import Grid
from sagan.ablation.summary import write_tables
from sagan.errors import DivergedError, SaganError
from sagan.safe_files import write_text

log = logging.getLogger("sagan")


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
            wanted = [f"sample_std{sym_num}"] + ([f"fid{fid_num}"] if fid_num else [])
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
            row.update(evaluate_run(outdir / name, sym_num, fid_num, inception, grid))
        write_text(result_path, json.dumps(row, indent=2) + "\n", overwrite=True)
        if trained:
            timing["steps"] += trained
            timing["seconds"] += time.perf_counter() - t0
        rows.append(row)
    write_tables(grid, rows, outdir, fid_num)
    return rows


def _resolve(grid: Grid, config: str, seed: int, extra_sets: tuple[str, ...], device: str):
    from sagan.run_config import resolve

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
    from sagan.model_files.checkpoints import load_checkpoint

    return max(steps - int(load_checkpoint(latest)["step"]), 0)


def _train(resolved, run_dir: Path) -> tuple[str, int]:
    """Train, resume or skip the run in `run_dir`: (status, steps trained now)."""
    from sagan.model_files.checkpoints import load_checkpoint
    from sagan.run_config import resolve
    from sagan.training.loop import train

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
    from sagan.model_files.checkpoints import load_checkpoint

    latest = run_dir / "checkpoints" / "latest.pt"
    return int(load_checkpoint(latest)["step"]) if latest.is_file() else 0


def train_minutes(run_dir: Path) -> float:
    """Training time of a run from its metrics: every log row covers log_every steps at its images/s."""
    from sagan.training.run_folder import read_metrics

    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "images_per_s" in r]
    seconds, kimg = 0.0, 0.0
    for r in rows:
        seconds += (r["kimg"] - kimg) * 1000 / r["images_per_s"]
        kimg = r["kimg"]
    return seconds / 60


@torch.no_grad()
def evaluate_run(run_dir: Path, sym_num: int, fid_num: int, inception=None, grid: Grid | None = None) -> dict:
    """Metrics of a run's final EMA generator (class-balanced samples, noise seed 0) and its training time.

    On shapes data: the shape measures on `sym_num` samples and FID on `fid_num` against as many real images of
    the train stream; on other data: sample_std on `sym_num` samples, and FID and KID of `fid_num` samples
    against `grid.fid_real` images of its `eval_split` (the `sagan evaluate` protocol, reference features cached).
    """
    from sagan.model_files.checkpoints import load_checkpoint
    from sagan.model_files.loading import load_generator

    G = load_generator(run_dir)
    train_cfg = load_checkpoint(run_dir)["config"]["train"]
    data = train_cfg["data"]
    out = {"train_minutes": round(train_minutes(run_dir), 2)}
    if data == "shapes":
        return {**out, **_shape_metrics(G, sym_num, fid_num, inception)}
    from sagan.metrics.evaluate import Protocol, evaluate, main_fid
    from sagan.metrics.sources import generated_batches

    shown = torch.cat([x.float() / 127.5 - 1 for _, x in generated_batches(G, sym_num, seed=0)])
    out[f"sample_std{sym_num}"] = shown.std(0).mean().item()
    if fid_num:
        split, real = (grid.eval_split, grid.fid_real) if grid else ("train", 0)
        mc, root = G.cfg, train_cfg.get("data_root", "")
        protocol = Protocol(data, mc.resolution, mc.img_channels, ("fid", "kid"), fid_num, real or fid_num, split,
                            root)  # fmt: skip
        result = evaluate(G, protocol, inception)["metrics"]
        tag = main_fid(result)[0][3:]
        out[f"fid{fid_num}"], out[f"kid{fid_num}"] = result[f"fid{tag}"], result[f"kid{tag}"]
    return out


def _shape_metrics(G, sym_num: int, fid_num: int, inception) -> dict:
    from sagan.metrics.scores import mirror_colour_gap, mirror_iou, symmetry_error
    from sagan.metrics.sources import generated_batches

    shown = torch.cat([x.float() / 127.5 - 1 for _, x in generated_batches(G, sym_num, seed=0)])
    out = {
        f"symmetry_fake{sym_num}": symmetry_error(shown),
        f"mirror_iou{sym_num}": mirror_iou(shown),
        f"colour_gap{sym_num}": mirror_colour_gap(shown),
        f"sample_std{sym_num}": shown.std(0).mean().item(),
    }
    if fid_num:
        out[f"fid{fid_num}"] = _fid(G, fid_num, inception)
    return out


def _fid(G, fid_num: int, inception) -> float:
    """FID of G's `fid_num` samples against as many images of the shapes data, by `sagan evaluate`'s protocol."""
    from sagan.metrics.evaluate import Protocol, count_tag, evaluate

    protocol = Protocol("shapes", G.cfg.resolution, G.cfg.img_channels, ("fid",), fid_num, fid_num, "train")
    return evaluate(G, protocol, inception)["metrics"][f"fid{count_tag(fid_num)}"]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"
