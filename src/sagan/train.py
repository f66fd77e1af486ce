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


class Trainer:
    """G, D, G_ema, their optimisers and grad scalers, and the two update steps. Knows nothing of files.

    The D step sees `cat([real, fake])` in one forward (D has no batch norm, so this is exact). The G step
    uses the unwrapped D with requires_grad off: no D gradients are computed or synchronised there.
    """

    def __init__(
        self, model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, info: dist_utils.DistInfo | None = None
    ) -> None:
        self.model_cfg, self.cfg, self.device = model_cfg, cfg, device
        self.info = info or dist_utils.DistInfo()
        seed = cfg.seed * 1000 + self.info.rank
        torch.manual_seed(seed)
        self.gen = torch.Generator(device).manual_seed(seed)  # noise, labels, flips: all randomness of a step
        self.G, self.D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.use_ema else None
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.scaler_G = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.scaler_D = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.d_loss_fn, self.g_loss_fn = LOSSES[cfg.loss]
        self.attn_layers = {**self.G.attention_layers(), **self.D.attention_layers()}

    def wrap(self) -> None:
        """Apply channels_last, DDP and torch.compile as configured (after loading any checkpoint)."""
        G, D, cfg = self.G, self.D, self.cfg
        if cfg.channels_last:
            G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.G_train = DDP(G, device_ids=ids) if self.info.enabled else G
        self.D_train = DDP(D, device_ids=ids) if self.info.enabled else D
        self.D_for_G = D
        if cfg.compile:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)
            self.D_for_G = torch.compile(D)
        G.train(), D.train()

    def noise(self, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(batch, self.model_cfg.z_dim, device=self.device, generator=self.gen)
        n_cls = self.model_cfg.num_classes
        y = torch.randint(0, n_cls, (batch,), device=self.device, generator=self.gen) if n_cls else None
        return z, y

    def d_step(self, x_real: torch.Tensor, y_real: torch.Tensor | None) -> torch.Tensor:
        """One D update; returns detached (loss_d, mean D(real), mean D(fake)) on the device, no sync."""
        cfg = self.cfg
        if cfg.hflip:
            flip = torch.rand(x_real.shape[0], device=self.device, generator=self.gen) < 0.5
            x_real = torch.where(flip[:, None, None, None], x_real.flip(3), x_real)
        if cfg.channels_last:
            x_real = x_real.contiguous(memory_format=torch.channels_last)
        z, y_fake = self.noise(x_real.shape[0])
        with _autocast(self.device, cfg.amp):
            with torch.no_grad():
                x_fake = self.G(z, y_fake)
            y_all = torch.cat([y_real, y_fake]) if y_fake is not None else None
            logits = self.D_train(torch.cat([x_real, x_fake.to(x_real.dtype)]), y_all).float()
            d_real, d_fake = logits.chunk(2)
            loss = self.d_loss_fn(d_real, d_fake)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler_D.scale(loss).backward()
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
        return torch.stack([loss, d_real.mean(), d_fake.mean()]).detach()

    def g_step(self) -> torch.Tensor:
        """One G update; returns the detached loss on the device."""
        self.D.requires_grad_(False)
        z, y_fake = self.noise(self.cfg.batch_size)
        with _autocast(self.device, self.cfg.amp):
            loss = self.g_loss_fn(self.D_for_G(self.G_train(z, y_fake), y_fake).float())
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(loss).backward()
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        self.D.requires_grad_(True)
        return loss.detach()

    def update_ema(self, step: int) -> None:
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, 0.0 if step < self.cfg.ema_start_step else self.cfg.ema_decay)

    def state_dict(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict(),
            "scaler_D": self.scaler_D.state_dict(),
        }

    def load_state_dict(self, ckpt: dict) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
        for name in ("opt_G", "opt_D", "scaler_G", "scaler_D"):
            getattr(self, name).load_state_dict(ckpt[name])
        states, info = ckpt["rng"], self.info
        if len(states) == info.world_size:
            set_rng_state(states[info.rank], self.gen)
        else:
            log.warning(
                "checkpoint has RNG states of %d processes, this run has %d: reseeding from the step",
                len(states),
                info.world_size,
            )
            self.gen.manual_seed(self.cfg.seed * 1000 + info.rank + 7919 * int(ckpt["step"]))


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


def _train(model_cfg, cfg, preset, resume, run_dir, info, device, stop) -> Path | None:
    # Setup: run folder, models, data.
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
        log.info("run folder %s (%d process(es), device %s)", run_dir, info.world_size, device)
    t = Trainer(model_cfg, cfg, device, info)
    if resume:
        t.load_state_dict(resume)
        log.info("resumed from step %d", start_step)
    t.wrap()
    batches = iter(_make_loader(cfg, model_cfg, info, device, start_step))
    conditional = model_cfg.num_classes > 0
    sample_z = fixed_noise(NUM_SAMPLES, model_cfg.z_dim, cfg.seed)
    sample_y = make_labels(NUM_SAMPLES, model_cfg.num_classes, per_row=8)
    stats = torch.zeros(4, device=device)  # sums of loss_d, D(real), D(fake), loss_g since the last log
    stats_n, t_log, step = 0, time.perf_counter(), start_step

    best_fid = float(resume.get("best_fid", float("inf"))) if resume else float("inf")
    evaluator = Evaluator(cfg, model_cfg, device) if cfg.eval_every and info.is_main else None

    def save(step: int, snapshot: bool, metrics: dict | None) -> None:
        nonlocal best_fid
        rngs = dist_utils.all_gather_objects(rng_state(t.gen), info)  # a collective: every rank calls it
        digests = dist_utils.all_gather_objects(dist_utils.parameter_digest(t.G), info)
        if len(set(digests)) > 1:  # DDP keeps replicas equal; anything else is a bug
            raise RuntimeError(f"generator weights differ across ranks at step {step}: {digests}")
        if not info.is_main:
            return
        fid = next((v for k, v in (metrics or {}).items() if k.startswith("fid")), None)
        is_best = fid is not None and fid < best_fid
        best_fid = fid if is_best else best_fid
        ckpt = {
            **t.state_dict(),
            "step": step,
            "rng": rngs,
            "G_digests": digests,
            "config": config,
            "world_size": info.world_size,
            "best_fid": best_fid,
            "version": FORMAT_VERSION,
        }
        save_atomic(ckpt, run_dir / "checkpoints" / "latest.pt")
        if snapshot:
            save_atomic(ckpt, run_dir / "checkpoints" / f"step-{step:07d}.pt")
            prune_snapshots(run_dir / "checkpoints", cfg.keep_snapshots)
        if is_best:
            save_atomic(ckpt, run_dir / "checkpoints" / "best.pt")
            log.info("step %d: best FID so far (%.3f), saved checkpoints/best.pt", step, fid)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        unit="step",
        disable=not info.is_main,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )  # few lines in log files
    for step in range(start_step, cfg.steps):
        # Fetch data and D step(s).
        for _ in range(cfg.d_steps):
            x_real, y_real = next(batches)
            x_real = x_real.to(device, non_blocking=True)
            y_real = y_real.to(device, non_blocking=True) if conditional else None
            d_stats = t.d_step(x_real, y_real)

        # G step.
        loss_g = t.g_step()

        # EMA.
        t.update_ema(step)

        # Maintenance (stats stay on the device; the host reads them every log_every steps only).
        stats += torch.cat([d_stats, loss_g[None]])
        stats_n += 1
        done = step + 1
        bar.update(1)
        last = done == cfg.steps
        if done % cfg.log_every == 0 or last:
            now = time.perf_counter()
            ips = stats_n * cfg.batch_size * cfg.d_steps * info.world_size / (now - t_log)
            loss_d_m, real_m, fake_m, loss_g_m = (stats / stats_n).tolist()
            row = {
                "step": done,
                "kimg": done * cfg.batch_size * cfg.d_steps * info.world_size / 1000,
                "loss_d": loss_d_m,
                "loss_g": loss_g_m,
                "d_real": real_m,
                "d_fake": fake_m,
                **{f"gamma/{k}": a.gamma.item() for k, a in t.attn_layers.items()},
                "lr_g": t.opt_G.param_groups[0]["lr"],
                "lr_d": t.opt_D.param_groups[0]["lr"],
                "images_per_s": ips,
            }
            if info.is_main:
                _write_metrics(run_dir, writer, row)
                bar.set_postfix(loss_d=f"{loss_d_m:.3f}", loss_g=f"{loss_g_m:.3f}", img_s=f"{ips:.0f}")
            stats.zero_()
            stats_n, t_log = 0, now
        if info.is_main and (done % cfg.sample_every == 0 or last):
            G_s = t.G_ema if t.G_ema is not None else t.G.eval()
            save_grid(generate(G_s, sample_z, sample_y), run_dir / "samples" / f"step-{done:07d}.png")
            t.G.train()
        should_stop = stop.requested
        if info.enabled:  # ranks agree on stopping at log steps, where all of them check
            logged = done % cfg.log_every == 0 or last
            should_stop = logged and dist_utils.any_rank(stop.requested, info, device)
        metrics = None
        if cfg.eval_every and (done % cfg.eval_every == 0 or last) and info.is_main:
            metrics = evaluator(t.G_ema if t.G_ema is not None else t.G, done)
            _write_metrics(run_dir, writer, {"step": done, **{f"eval/{k}": v for k, v in metrics.items()}})
            t.G.train()
        snapshot = cfg.snapshot_every > 0 and done % cfg.snapshot_every == 0
        evaluated = cfg.eval_every and (done % cfg.eval_every == 0 or last)
        if done % cfg.checkpoint_every == 0 or snapshot or last or should_stop or evaluated:
            save(done, snapshot, metrics)
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


class Evaluator:
    """Evaluates G during training with the `sagan evaluate` protocol; Inception and reference features load once."""

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, device: torch.device) -> None:
        from sagan.metrics.evaluate import parse_metrics
        from sagan.metrics.inception import Inception

        self.cfg, self.model_cfg = cfg, model_cfg
        self.metrics = parse_metrics(cfg.eval_metrics)
        self.inception = Inception(cfg.inception_path, device, with_logits="is" in self.metrics)

    def __call__(self, G: torch.nn.Module, step: int) -> dict:
        from sagan.metrics.evaluate import evaluate

        G.eval()
        mc, cfg = self.model_cfg, self.cfg
        result = evaluate(
            G,
            cfg.data,
            self.metrics,
            cfg.eval_num,
            mc.resolution,
            mc.img_channels,
            cfg.data_root,
            inception=self.inception,
            seed=cfg.seed,
        )
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items()))
        return result["metrics"]


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
