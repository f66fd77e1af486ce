"""G, D, G_ema, their optimisers and grad scalers, and the two SAGAN update steps; knows nothing of files.

Hinge loss and TTUR Adam by default. One G update is one step; each step first runs `d_steps` D updates. D sees
real and fake images in a single forward on cat([real, fake]) (D has no batch norm, so this is exact).
"""

from __future__ import annotations

import contextlib
import copy
import logging

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from sagan import distributed as dist_utils
from sagan.checkpoint import set_rng_state
from sagan.config import ModelConfig, TrainConfig
from sagan.ema import ema_update, standing_statistics
from sagan.losses import LOSSES
from sagan.models import Discriminator, Generator

log = logging.getLogger("sagan")


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
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
        }

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a checkpoint's state; this run's learning rates and betas replace the saved ones."""
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        self.opt_D.load_state_dict(ckpt["opt_D"])
        for opt, lr in ((self.opt_G, self.cfg.lr_g), (self.opt_D, self.cfg.lr_d)):
            for group in opt.param_groups:  # Adam's state (moments) stays; the hyper-parameters are the config's
                group["lr"], group["betas"] = lr, (self.cfg.beta1, self.cfg.beta2)
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
            self.gen.manual_seed(self.cfg.seed * 1000 + info.rank + 7919 * int(ckpt["step"]))

    def parameters_finite(self) -> bool:
        """True when every parameter of G, D and G_ema is finite (one host sync)."""
        models = [m for m in (self.G, self.D, self.G_ema) if m is not None]
        flags = [p.isfinite().all() for m in models for p in m.parameters()]
        return bool(torch.stack(flags).all())
