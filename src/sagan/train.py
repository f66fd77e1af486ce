"""The SAGAN training loop: hinge loss, TTUR Adam, EMA generator, AMP, DDP, checkpoints, samples, logs.

One G update is one step; each step first runs `d_steps` D updates. D sees real and fake images in a single
forward on cat([real, fake]) (D has no batch norm, so this is exact). Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from sagan import distributed as dist_utils
from sagan.checkpoint import FORMAT_VERSION, prune_snapshots, rng_state, save_atomic, set_rng_state
from sagan.config import ModelConfig, TrainConfig
from sagan.data import InfiniteSampler, load_dataset
from sagan.ema import ema_update
from sagan.losses import LOSSES
from sagan.models import Discriminator, Generator
from sagan.sampling import fixed_noise, generate, make_labels, save_grid

log = logging.getLogger("sagan")
NUM_SAMPLES = 64  # images in each sample grid


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits. A second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: finishing this step, then saving a checkpoint", signal.Signals(signum).name)


def _ignore_sigint(_worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business


def new_run_dir(outdir: str | Path, name: str) -> Path:
    """outdir/NNNNN-name with the next free number."""
    outdir = Path(outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    ids = [int(p.name.split("-")[0]) for p in outdir.iterdir() if p.name.split("-")[0].isdigit()]
    return outdir / f"{max(ids, default=-1) + 1:05d}-{name}"


def resolved_config(model_cfg: ModelConfig, cfg: TrainConfig, preset: str) -> dict:
    """The dict written to config.json and embedded in every checkpoint (JSON types: lists, not tuples)."""
    config = {"preset": preset, "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(cfg)}
    return json.loads(json.dumps(config))


def _make_loader(cfg: TrainConfig, model_cfg: ModelConfig, info, device, start_step: int) -> DataLoader:
    dataset = load_dataset(
        cfg.data, model_cfg.resolution, model_cfg.img_channels, cfg.data_root, cfg.download, seed=cfg.seed
    )
    if len(dataset) < cfg.batch_size * info.world_size:
        raise ValueError(f"dataset has {len(dataset)} images, fewer than one batch of all processes")
    workers = cfg.num_workers if cfg.num_workers >= 0 else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
    consumed = start_step * cfg.d_steps * cfg.batch_size  # indices this rank has already used
    sampler = InfiniteSampler(len(dataset), info.rank, info.world_size, cfg.seed, start=consumed)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_sigint,
        prefetch_factor=4 if workers > 0 else None,
    )


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    preset: str = "custom",
    resume: dict | None = None,
    run_dir: Path | None = None,
) -> Path | None:
    """Train to `cfg.steps` G updates; return the run folder (on rank 0). `resume` is a loaded checkpoint."""
    info, device = dist_utils.init(cfg.device)
    try:
        with StopRequest() as stop:
            return _train(model_cfg, cfg, preset, resume, run_dir, info, device, stop)
    finally:
        dist_utils.shutdown()


def _train(model_cfg, cfg, preset, resume, run_dir, info, device, stop) -> Path | None:  # noqa: C901
    # Setup: seeds, run folder, models, optimisers.
    torch.manual_seed(cfg.seed * 1000 + info.rank)
    gen = torch.Generator(device).manual_seed(cfg.seed * 1000 + info.rank)  # noise, labels, flips
    start_step = int(resume["step"]) if resume else 0
    config = resolved_config(model_cfg, cfg, preset)
    writer = None
    if info.is_main:
        run_dir = Path(run_dir) if run_dir else new_run_dir(cfg.outdir, preset)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({**config, "world_size": info.world_size}, indent=2))
        _setup_file_log(run_dir)
        _trim_metrics(run_dir / "metrics.jsonl", start_step)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
        log.info(
            "run folder %s (%d process%s, device %s)",
            run_dir,
            info.world_size,
            "es" if info.world_size > 1 else "",
            device,
        )

    G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.use_ema else None
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    scaler_G = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    scaler_D = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    if resume:
        G.load_state_dict(resume["G"])
        D.load_state_dict(resume["D"])
        if G_ema is not None:
            G_ema.load_state_dict(resume["G_ema"] if resume.get("G_ema") is not None else resume["G"])
        opt_G.load_state_dict(resume["opt_G"])
        opt_D.load_state_dict(resume["opt_D"])
        scaler_G.load_state_dict(resume["scaler_G"])
        scaler_D.load_state_dict(resume["scaler_D"])
        states = resume["rng"]
        if len(states) == info.world_size:
            set_rng_state(states[info.rank], gen)
        else:
            log.warning(
                "checkpoint has RNG states of %d processes, this run has %d: reseeding from the step",
                len(states),
                info.world_size,
            )
            gen.manual_seed(cfg.seed * 1000 + info.rank + 7919 * start_step)
        log.info("resumed from step %d", start_step)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_train = DDP(G, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else G
    D_train = DDP(D, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else D
    D_for_G = D  # the G step needs no D gradient sync, so it uses the unwrapped D with requires_grad off
    if cfg.compile:
        G_train, D_train, D_for_G = torch.compile(G_train), torch.compile(D_train), torch.compile(D)
    d_loss_fn, g_loss_fn = LOSSES[cfg.loss]
    attn_layers = {**G.attention_layers(), **D.attention_layers()}

    loader = _make_loader(cfg, model_cfg, info, device, start_step)
    batches = iter(loader)
    n_cls = model_cfg.num_classes
    sample_z = fixed_noise(NUM_SAMPLES, model_cfg.z_dim, cfg.seed)
    sample_y = make_labels(NUM_SAMPLES, n_cls, per_row=8)
    stats = torch.zeros(4, device=device)  # sums of loss_d, loss_g, D(real), D(fake) since the last log
    stats_n, t_log, step = 0, time.perf_counter(), start_step

    def noise(b: int):
        z = torch.randn(b, model_cfg.z_dim, device=device, generator=gen)
        y = torch.randint(0, n_cls, (b,), device=device, generator=gen) if n_cls else None
        return z, y

    def save(step: int, snapshot: bool) -> None:
        rngs = dist_utils.all_gather_objects(rng_state(gen), info)  # a collective: every rank calls it
        digests = dist_utils.all_gather_objects(dist_utils.parameter_digest(G), info)
        if len(set(digests)) > 1:  # DDP keeps replicas equal; anything else is a bug
            raise RuntimeError(f"generator weights differ across ranks at step {step}: {digests}")
        if not info.is_main:
            return
        ckpt = {
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": G_ema.state_dict() if G_ema is not None else None,
            "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(),
            "scaler_G": scaler_G.state_dict(),
            "scaler_D": scaler_D.state_dict(),
            "step": step,
            "rng": rngs,
            "G_digests": digests,
            "config": config,
            "world_size": info.world_size,
            "version": FORMAT_VERSION,
        }
        save_atomic(ckpt, run_dir / "checkpoints" / "latest.pt")
        if snapshot:
            save_atomic(ckpt, run_dir / "checkpoints" / f"step-{step:07d}.pt")
            prune_snapshots(run_dir / "checkpoints", cfg.keep_snapshots)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        unit="step",
        disable=not info.is_main,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )  # few lines in log files
    G.train(), D.train()
    for step in range(start_step, cfg.steps):
        # D step(s).
        for _ in range(cfg.d_steps):
            x_real, y_real = next(batches)
            x_real = x_real.to(device, non_blocking=True)
            y_real = y_real.to(device, non_blocking=True) if n_cls else None
            if cfg.hflip:
                flip = torch.rand(x_real.shape[0], device=device, generator=gen) < 0.5
                x_real = torch.where(flip[:, None, None, None], x_real.flip(3), x_real)
            if cfg.channels_last:
                x_real = x_real.contiguous(memory_format=torch.channels_last)
            z, y_fake = noise(x_real.shape[0])
            with _autocast(device, cfg.amp):
                with torch.no_grad():
                    x_fake = G(z, y_fake)
                y_all = torch.cat([y_real, y_fake]) if n_cls else None
                logits = D_train(torch.cat([x_real, x_fake.to(x_real.dtype)]), y_all).float()
                d_real, d_fake = logits.chunk(2)
                loss_d = d_loss_fn(d_real, d_fake)
            opt_D.zero_grad(set_to_none=True)
            scaler_D.scale(loss_d).backward()
            scaler_D.step(opt_D)
            scaler_D.update()

        # G step.
        D.requires_grad_(False)
        z, y_fake = noise(cfg.batch_size)
        with _autocast(device, cfg.amp):
            loss_g = g_loss_fn(D_for_G(G_train(z, y_fake), y_fake).float())
        opt_G.zero_grad(set_to_none=True)
        scaler_G.scale(loss_g).backward()
        scaler_G.step(opt_G)
        scaler_G.update()
        D.requires_grad_(True)

        # EMA.
        if G_ema is not None:
            ema_update(G_ema, G, 0.0 if step < cfg.ema_start_step else cfg.ema_decay)

        # Maintenance (losses are summed on the device; the host reads them every log_every steps only).
        stats += torch.stack([loss_d.detach(), loss_g.detach(), d_real.detach().mean(), d_fake.detach().mean()])
        stats_n += 1
        done = step + 1
        bar.update(1)
        last = done == cfg.steps
        if done % cfg.log_every == 0 or last:
            now = time.perf_counter()
            ips = stats_n * cfg.batch_size * cfg.d_steps * info.world_size / (now - t_log)
            loss_d_m, loss_g_m, real_m, fake_m = (stats / stats_n).tolist()
            row = {
                "step": done,
                "kimg": done * cfg.batch_size * cfg.d_steps * info.world_size / 1000,
                "loss_d": loss_d_m,
                "loss_g": loss_g_m,
                "d_real": real_m,
                "d_fake": fake_m,
                **{f"gamma/{k}": a.gamma.item() for k, a in attn_layers.items()},
                "lr_g": opt_G.param_groups[0]["lr"],
                "lr_d": opt_D.param_groups[0]["lr"],
                "images_per_s": ips,
            }
            if info.is_main:
                _write_metrics(run_dir, writer, row)
                bar.set_postfix(loss_d=f"{loss_d_m:.3f}", loss_g=f"{loss_g_m:.3f}", img_s=f"{ips:.0f}")
            stats.zero_()
            stats_n, t_log = 0, now
        if info.is_main and (done % cfg.sample_every == 0 or last):
            G_s = G_ema if G_ema is not None else G.eval()
            save_grid(generate(G_s, sample_z, sample_y), run_dir / "samples" / f"step-{done:07d}.png")
            G.train()
        should_stop = stop.requested
        if info.enabled and (done % cfg.log_every == 0 or last):
            should_stop = dist_utils.any_rank(stop.requested, info, device)
        elif info.enabled:
            should_stop = False  # ranks agree on stopping only at log steps, where they all check
        snapshot = cfg.snapshot_every > 0 and done % cfg.snapshot_every == 0
        if done % cfg.checkpoint_every == 0 or snapshot or last or should_stop:
            save(done, snapshot)
        if should_stop:
            break
    bar.close()
    if writer is not None:
        writer.close()
    if stop.requested and step + 1 < cfg.steps:
        if info.is_main:
            log.warning(
                "stopped at step %d; checkpoint written. Resume with: sagan train --resume %s", step + 1, run_dir
            )
    elif info.is_main:
        log.info("finished %d steps; run folder %s", cfg.steps, run_dir)
    return run_dir if info.is_main else None


def _setup_file_log(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)


def _trim_metrics(path: Path, start_step: int) -> None:
    """On resume, drop metric rows past the checkpoint's step (they are recomputed)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= start_step]
    path.write_text("".join(line + "\n" for line in keep))


def _write_metrics(run_dir: Path, writer, row: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    for k, v in row.items():
        if k != "step":
            writer.add_scalar(k if "/" in k else f"train/{k}", v, row["step"])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
