"""G, D, G_ema, their optimisers and grad scalers, and the two SAGAN update steps; knows nothing of files.

Hinge loss and TTUR Adam by default. One G update is one step; each step first runs `d_steps` D updates. D sees
real and fake images in a single forward on cat([real, fake]) (D has no batch norm, so this is exact).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from sagan import distributed as dist_utils
from sagan.augment import diff_augment, parse_policy
from sagan.config import ModelConfig, TrainConfig
from sagan.layers.norm import convert_sync_batchnorm
from sagan.layers.spectral import power_iteration_frozen
from sagan.losses import LOSSES, lecam
from sagan.model_files.checkpoints import set_rng_state
from sagan.models import Discriminator, Generator
from sagan.training.ema import ema_update, standing_statistics
from sagan.training.precision import TIMING_BATCH, TIMING_STEPS

log = logging.getLogger("sagan")


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp {amp!r} must be resolved to none, bf16 or fp16 before training")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """The EMA decay after G update `step` (0-based): 0 (a copy of G) before ema_start_step, then ema_decay, or
    with ema_rampup min(ema_decay, (1 + n) / (10 + n)) at n steps after the start, so that a short run's G_ema
    is not an average over a mostly untrained G (TensorFlow's ExponentialMovingAverage with num_updates)."""
    if step < cfg.ema_start_step:
        return 0.0
    if cfg.ema_rampup:
        n = step - cfg.ema_start_step
        return min(cfg.ema_decay, (1 + n) / (10 + n))
    return cfg.ema_decay


def class_signal_at(step: int, cfg: TrainConfig) -> float:
    """The class signal of G update `step` (0-based) under transitional conditioning (Shahbazi et al., "Collapse by
    conditioning", ICLR 2022): 0 before class_ramp_start, (step - start) / (end - start) in between, 1 from
    class_ramp_end on, and always 1 when class_ramp_end is 0 (off). It scales G's conditional-BN class gains and
    biases and D's projection term; the models are unconditional at 0."""
    if not cfg.class_ramp_end:
        return 1.0
    span = cfg.class_ramp_end - cfg.class_ramp_start
    return min(1.0, max(0.0, (step - cfg.class_ramp_start) / span))


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: no allocation through mmap (which returns memory to the
    OS on free, so each step's large activations are page-faulted and zeroed again) and trimming of the heap only
    above 2 GiB of free memory at its top. Process-wide; the process's resident memory stays near its peak.
    Returns whether it applied (False where the C library is not glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


class Trainer:
    """G, D, G_ema, their optimisers and grad scalers, and the two update steps. Knows nothing of files.

    The D step sees `cat([real, fake])` in one forward (D has no batch norm, so this is exact). The G step
    uses the unwrapped D with requires_grad off: no D gradients are computed or synchronised there.
    """

    def __init__(
        self, model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, info: dist_utils.DistInfo | None = None
    ) -> None:
        if cfg.amp == "auto":  # `sagan train` resolves it before the run; a library caller may not have
            from sagan.training.precision import choose_amp

            choice = choose_amp(device.type, model_cfg, cfg, measure=time_bf16_speedup)
            cfg = dataclasses.replace(cfg, amp=choice.amp)
        self.model_cfg, self.cfg, self.device = model_cfg, cfg, device
        self.info = info or dist_utils.DistInfo()
        world = self.info.world_size
        self.local_batch = dist_utils.local_batch(cfg.batch_size, world)
        # Weights from the seed alone (every rank builds the same models), without touching the global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G, self.D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
        # All randomness of a step (noise, labels, flips) comes from this stream, the same on every rank: each
        # draws the whole global batch and takes its share [rank::world], the positions of its real images.
        self.gen = torch.Generator(device).manual_seed(cfg.seed)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.use_ema else None
        self.resumed = False
        if self.local_batch % cfg.grad_accumulation:
            raise ValueError(
                f"the batch of each process ({self.local_batch}) does not divide into grad_accumulation "
                f"{cfg.grad_accumulation} micro-batches"
            )
        self.augment = parse_policy(cfg.augment)
        self.lecam_ema = torch.zeros(2, device=device)  # moving averages of mean D(real), mean D(fake)
        self.lecam_steps = 0  # D updates with LeCam so far
        # foreach: one multi-tensor kernel per Adam operation instead of a loop over parameters (torch picks it
        # on GPUs by itself, not on CPU); the update is the same.
        adam = dict(betas=(cfg.beta1, cfg.beta2), foreach=True)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, **adam)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, **adam)
        if device.type == "cpu" and cfg.cpu_malloc_cache and not keep_freed_memory():
            log.debug("cpu_malloc_cache: no glibc mallopt here; memory allocation left as it is")
        self.scaler_G = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.scaler_D = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.d_loss_fn, self.g_loss_fn = LOSSES[cfg.loss]
        self.attn_layers = {**self.G.attention_layers(), **self.D.attention_layers()}

    def wrap(self) -> None:
        """Apply SyncBN, channels_last, DDP and torch.compile as configured (after loading any checkpoint)."""
        G, D, cfg = self.G, self.D, self.cfg
        if cfg.sync_bn and self.info.enabled:
            convert_sync_batchnorm(G)  # G's BatchNorm over the global batch, as on one device
        if cfg.channels_last:
            G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.G_train = DDP(G, device_ids=ids) if self.info.enabled else G
        self.D_train = DDP(D, device_ids=ids) if self.info.enabled else D
        if self.G_ema is not None and not self.resumed:  # a copy of the weights DDP has made identical
            self.G_ema.load_state_dict(G.state_dict())
        self.D_for_G = D
        if cfg.compile:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)
            self.D_for_G = torch.compile(D)
        G.train(), D.train()

    def _share(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's share of a tensor drawn for the whole global batch (dim 0)."""
        return t[self.info.rank :: self.info.world_size] if self.info.enabled else t

    def noise(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share (local_batch) of one global batch of noise z and labels y."""
        B = self.cfg.batch_size
        z = torch.randn(B, self.model_cfg.z_dim, device=self.device, generator=self.gen)
        n_cls = self.model_cfg.num_classes
        y = torch.randint(0, n_cls, (B,), device=self.device, generator=self.gen) if n_cls else None
        return self._share(z), (self._share(y) if y is not None else None)

    def _chunks(self, *tensors):
        """The tensors (local batch first) cut into grad_accumulation equal micro-batches: [(t1, t2, ...), ...]."""
        K = self.cfg.grad_accumulation
        return list(zip(*[t.chunk(K) if t is not None else [None] * K for t in tensors], strict=True))

    def d_step(self, x_real: torch.Tensor, y_real: torch.Tensor | None) -> torch.Tensor:
        """One D update; returns detached (loss_d, mean D(real), mean D(fake)) on the device, no sync.

        D sees cat([real, fake]) in one forward per micro-batch (grad_accumulation of them, gradients summed
        with weight 1/K: the update of one batch, since D has no batch norm). With `augment`, real and fake
        images get independent DiffAugment draws; with `lecam_weight`, the LeCam term joins the loss.
        """
        cfg = self.cfg
        if cfg.hflip:
            flip = self._share(torch.rand(cfg.batch_size, device=self.device, generator=self.gen) < 0.5)
            x_real = torch.where(flip[:, None, None, None], x_real.flip(3), x_real)
        if cfg.channels_last:
            x_real = x_real.contiguous(memory_format=torch.channels_last)
        z, y_fake = self.noise()
        self.opt_D.zero_grad(set_to_none=True)
        chunks = self._chunks(x_real, y_real, z, y_fake)
        stats = torch.zeros(3, device=self.device)
        for i, (xr, yr, zc, yc) in enumerate(chunks):
            with self._no_sync(self.D_train, last=i == len(chunks) - 1), self._one_power_iteration(i):
                with _autocast(self.device, cfg.amp):
                    with torch.no_grad():
                        x_fake = self.G(zc, yc).to(xr.dtype)
                    if self.augment:  # independent draws for real and fake
                        xr = diff_augment(xr, self.augment, self.gen)
                        x_fake = diff_augment(x_fake, self.augment, self.gen)
                    y_all = torch.cat([yr, yc]) if yc is not None else None
                    logits = self.D_train(torch.cat([xr, x_fake]), y_all).float()
                    d_real, d_fake = logits.chunk(2)
                    loss = self.d_loss_fn(d_real, d_fake)
                    if cfg.lecam_weight:
                        if not self.lecam_steps:  # the averages start at the first batch's means, not at 0
                            self.lecam_ema = torch.stack([d_real.mean(), d_fake.mean()]).detach()
                        loss = loss + cfg.lecam_weight * lecam(d_real, d_fake, *self.lecam_ema)
                self.scaler_D.scale(loss / len(chunks)).backward()
            stats += torch.stack([loss, d_real.mean(), d_fake.mean()]).detach() / len(chunks)
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
        if cfg.lecam_weight:  # the moving averages of D's mean outputs
            self.lecam_ema = cfg.lecam_decay * self.lecam_ema + (1 - cfg.lecam_decay) * stats[1:]
            self.lecam_steps += 1
        return stats

    def g_step(self) -> torch.Tensor:
        """One G update (grad_accumulation micro-batches); returns the detached loss on the device."""
        self.D.requires_grad_(False)
        try:
            return self._g_update()
        finally:
            self.D.requires_grad_(True)  # also when the step fails: D trains again next time

    def _g_update(self) -> torch.Tensor:
        z, y_fake = self.noise()
        self.opt_G.zero_grad(set_to_none=True)
        chunks = self._chunks(z, y_fake)
        total = torch.zeros((), device=self.device)
        for i, (zc, yc) in enumerate(chunks):
            with self._no_sync(self.G_train, last=i == len(chunks) - 1), self._one_power_iteration(i):
                with _autocast(self.device, self.cfg.amp):
                    x_fake = self.G_train(zc, yc)
                    if self.augment:
                        x_fake = diff_augment(x_fake, self.augment, self.gen)
                    loss = self.g_loss_fn(self.D_for_G(x_fake, yc).float())
                self.scaler_G.scale(loss / len(chunks)).backward()
            total += loss.detach() / len(chunks)
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        return total

    def _one_power_iteration(self, micro_batch: int):
        """Spectral norm's power iteration runs on the first micro-batch of an update only (see
        `power_iteration_frozen`), so accumulation normalises G and D as one batch would."""
        return power_iteration_frozen(self.G, self.D) if micro_batch else contextlib.nullcontext()

    @staticmethod
    def _no_sync(module, last: bool):
        """DDP's no_sync for all but the last micro-batch (gradients are all-reduced once per update)."""
        return module.no_sync() if isinstance(module, DDP) and not last else contextlib.nullcontext()

    def set_class_signal(self, step: int) -> None:
        """Give G and D the class signal of G update `step` (`class_signal_at`); G_ema takes G's at its updates."""
        if self.model_cfg.num_classes and self.cfg.class_ramp_end:
            strength = class_signal_at(step, self.cfg)
            self.G.set_class_signal(strength)
            self.D.set_class_signal(strength)

    def update_ema(self, step: int) -> None:
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, ema_decay_at(step, self.cfg))

    def refresh_ema_statistics(self) -> None:
        """Give G_ema its own BatchNorm statistics (`standing_statistics`) before it is drawn, scored or saved.

        A function of G_ema's weights and the run's seed alone, so a resumed run computes the same values."""
        if self.G_ema is not None and self.cfg.ema_standing_batches:
            standing_statistics(self.G_ema, self.cfg.ema_standing_batches, self.cfg.batch_size, self.cfg.seed)

    def state_dict(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict(),
            "scaler_D": self.scaler_D.state_dict(),
            "lecam": {"ema": self.lecam_ema, "steps": self.lecam_steps},
        }

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a checkpoint's state; this run's learning rates and betas replace the saved ones."""
        self.resumed = True
        try:
            self.G.load_state_dict(ckpt["G"])
            self.D.load_state_dict(ckpt["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
        except RuntimeError:  # keys or shapes of another model: one line naming the config fields that differ
            from sagan.model_files.checkpoints import weights_config_error

            raise weights_config_error(ckpt, f"the checkpoint to resume (step {ckpt['step']})") from None
        self.opt_G.load_state_dict(ckpt["opt_G"])
        self.opt_D.load_state_dict(ckpt["opt_D"])
        for opt, lr in ((self.opt_G, self.cfg.lr_g), (self.opt_D, self.cfg.lr_d)):
            for group in opt.param_groups:  # Adam's state (moments) stays; the hyper-parameters are the config's
                group["lr"], group["betas"] = lr, (self.cfg.beta1, self.cfg.beta2)
                group["foreach"] = True  # how the update is computed, not state: older checkpoints stored None
        lecam_state = ckpt.get("lecam")
        if isinstance(lecam_state, dict) and torch.is_tensor(lecam_state.get("ema")):
            self.lecam_ema = lecam_state["ema"].to(self.device)
            self.lecam_steps = int(lecam_state.get("steps", 0))
        for name in ("scaler_G", "scaler_D"):
            if ckpt[name] and self.cfg.amp == "fp16":  # empty when saved without fp16 (a forced change)
                getattr(self, name).load_state_dict(ckpt[name])
        states, info = ckpt["rng"], self.info
        same = len(states) == info.world_size and states[info.rank]["generator"].shape == self.gen.get_state().shape
        if same:  # the same number of processes on the same kind of device
            set_rng_state(states[info.rank], self.gen)
        else:
            log.warning(
                "the checkpoint's RNG states come from %d process(es) on another kind of device or count than this "
                "run's %d: reseeding from the step (the continuation is not bit-exact)",
                len(states),
                info.world_size,
            )
            self.gen.manual_seed(self.cfg.seed + 7919 * int(ckpt["step"]))

    def parameters_finite(self) -> bool:
        """True when every parameter of G, D and G_ema is finite (one host sync)."""
        models = [m for m in (self.G, self.D, self.G_ema) if m is not None]
        flags = [p.isfinite().all() for m in models for p in m.parameters()]
        return bool(torch.stack(flags).all())


def time_bf16_speedup(model, train) -> float:
    """fp32 time / bf16 time of the run's training step (one D and one G update on fixed random images): the model
    `model` (ModelConfig) with the step settings of `train` (TrainConfig: D steps, channels last, batch up to
    TIMING_BATCH), on the CPU, in alternating rounds. The global RNG is left as it was."""
    batch = min(train.batch_size, TIMING_BATCH)
    cfgs = {
        amp: dataclasses.replace(
            train, amp=amp, batch_size=batch, grad_accumulation=1, compile=False, device="cpu", sync_bn=False
        )
        for amp in ("none", "bf16")
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        C, R, K = model.img_channels, model.resolution, model.num_classes
        x = torch.rand(batch, C, R, R) * 2 - 1
        y = torch.randint(0, K, (batch,)) if K else None
        trainers = {amp: Trainer(model, cfg, torch.device("cpu")) for amp, cfg in cfgs.items()}
        for t in trainers.values():
            t.wrap()
            t.d_step(x, y), t.g_step()  # warm-up: first calls allocate and pick kernels
        seconds = {amp: [] for amp in trainers}
        for _ in range(TIMING_STEPS):
            for amp, t in trainers.items():
                start = time.perf_counter()
                t.d_step(x, y), t.g_step()
                seconds[amp].append(time.perf_counter() - start)
    return min(seconds["none"]) / min(seconds["bf16"])
