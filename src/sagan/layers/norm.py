"""Conditional batch normalisation (de Vries et al. 2017; Miyato & Koyama 2018), as in SAGAN's generator."""

from __future__ import annotations

import torch
import torch.nn as nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias depend on the class: y = BN(x) * (1 + gain[y]) + bias[y].

    With num_classes = 0 this is a plain affine BatchNorm2d. The class embeddings `embed_gain` and
    `embed_bias` start at zero, so the layer starts as plain BN (models that spectrally normalise them
    re-initialise them, since a zero matrix has no spectral norm).

    x: (B, C, H, W); y: (B,) int64 class labels in [0, num_classes), or (B, num_classes) float class weights
    (a mixture of the classes' gains and biases, for class interpolation; one-hot rows equal the labels).

    `class_signal` (a buffer outside the state dict, 1 unless set) scales the class's gain and bias: 0 makes the
    layer BN without affine terms, the same for every class (transitional conditioning, Shahbazi et al. 2022;
    `sagan.training.trainer.class_signal_at`).
    """

    def __init__(self, num_features: int, num_classes: int = 0, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=num_classes == 0)
        if num_classes > 0:
            self.embed_gain = nn.Embedding(num_classes, num_features)
            self.embed_bias = nn.Embedding(num_classes, num_features)
            nn.init.zeros_(self.embed_gain.weight)
            nn.init.zeros_(self.embed_bias.weight)
            # Not persistent: checkpoints keep their keys, and a loaded model is fully conditional until set.
            self.register_buffer("class_signal", torch.ones(()), persistent=False)

    def embeddings(self) -> list[nn.Module]:
        """The class embeddings (empty when unconditional)."""
        return [self.embed_gain, self.embed_bias] if self.num_classes > 0 else []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.bn(x)
        if self.num_classes == 0:
            return h
        if y is None:
            raise ValueError("a conditional batch norm needs class labels y")
        if y.is_floating_point():  # class weights (B, K): the same mixture of every embedding row
            gain, bias = y.to(h.dtype) @ self.embed_gain.weight, y.to(h.dtype) @ self.embed_bias.weight
        else:
            gain, bias = self.embed_gain(y), self.embed_bias(y)
        gain, bias = gain * self.class_signal, bias * self.class_signal  # exact when the signal is 1
        return h * (1.0 + gain[:, :, None, None]) + bias[:, :, None, None]  # (B, C, 1, 1) each


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the whole global batch across processes.

    torch's SyncBatchNorm runs on GPUs only; this one is two differentiable all-reduces (sums, then squared
    deviations from the global mean), so it also runs on CPU (gloo) and its tests run on CPU. Outside training,
    or without a process group of more than one process, it is a plain BatchNorm2d. Its parameters and buffers
    are BatchNorm2d's, so state dicts are interchangeable (`convert_sync_batchnorm`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        count = all_reduce(count)
        mean = all_reduce(x.sum(dim=(0, 2, 3))) / count  # (C,)
        var = all_reduce((x - mean[None, :, None, None]).square().sum(dim=(0, 2, 3))) / count  # biased, as BN
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1), m)  # unbiased, as BN
        return y


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d inside `module` by a SyncBatchNorm2d holding the same parameter and buffer
    objects (an optimiser made before keeps updating them; the state dict keeps its keys, so checkpoints load
    either way), in place."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                setattr(parent, name, _as_sync(child))
    return module


def _as_sync(bn: nn.BatchNorm2d) -> SyncBatchNorm2d:
    sync = SyncBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, device="meta")
    for name, param in bn.named_parameters(recurse=False):
        setattr(sync, name, param)  # the same Parameter objects
    for name, buffer in bn.named_buffers(recurse=False):
        sync.register_buffer(name, buffer)
    return sync.train(bn.training)
