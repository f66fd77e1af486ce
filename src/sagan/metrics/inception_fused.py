"""TF Inception-v3 for inference only, with the same function as torch-fidelity's network and fewer passes over
memory: what `sagan evaluate` runs (`sagan.metrics.inception.InceptionV3` is torch-fidelity's network as it is).

Every rewrite is exact in real arithmetic; float32 rounding moves the pool3 features by ~1e-5 (the tests compare
with torch-fidelity's network and with the TorchScript module itself):
- each batch norm folded into the convolution before it (scale into the weight, shift into a bias);
- TF1's bilinear resize to 299 x 299 (no half-pixel offset, as torch-fidelity's
  `interpolate_bilinear_2d_like_tensorflow1x` computes it) as two small matrix products, rows of the matrices
  holding the two interpolation weights; the input scaling (x - 128) / 128 folded into them and into the bias of
  the first convolution (which has no padding, so the shift is exact at every output);
- in each Inception block, the 1x1 convolutions that read the block's input run as one convolution of their
  stacked weights (one pass over the input instead of three or four);
- the 3 x 3 average pool (TF's, which ignores padding) before the pool branch's 1x1 convolution moves after it:
  both are linear, the pool's weights sum to 1 at every position, so the bias passes through; it then pools
  32-192 channels instead of 192-2048.
Channels-last memory throughout. `precision="bf16"` runs the convolutions under bf16 autocast (the resize and
the final average in float32).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# The 1x1 convolutions of each block kind that read the block's input, in the order of their outputs in the
# block's concatenation; a name ending in "_pool" is the pool branch, average-pooled after its convolution.
FUSED_HEADS = {
    "InceptionA": ("branch1x1", "branch5x5_1", "branch3x3dbl_1", "branch_pool"),
    "InceptionC": ("branch1x1", "branch7x7_1", "branch7x7dbl_1", "branch_pool"),
    "InceptionD": ("branch3x3_1", "branch7x7x3_1"),
    "InceptionE_1": ("branch1x1", "branch3x3_1", "branch3x3dbl_1", "branch_pool"),
    "InceptionE_2": ("branch1x1", "branch3x3_1", "branch3x3dbl_1"),  # its pool branch max-pools: no commuting
}
PRECISIONS = ("fp32", "bf16")


def fold_batchnorm(block: nn.Module) -> nn.Conv2d:
    """The convolution of a torch-fidelity `BasicConv2d` (conv, BN, ReLU) with its batch norm folded in."""
    conv, bn = block.conv, block.bn
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)  # (O,)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True).to(
        conv.weight.device
    )
    folded.weight.data = (conv.weight.double() * scale[:, None, None, None]).float()
    folded.bias.data = (bn.bias.double() - bn.running_mean.double() * scale).float()
    return folded


class ConvReLU(nn.Sequential):
    """A folded `BasicConv2d`: convolution with bias, then ReLU."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__(fold_batchnorm(block), nn.ReLU(inplace=True))


class FusedBlock(nn.Module):
    """One Inception block (A, C, D, E_1 or E_2 of torch-fidelity) with its input-reading 1x1 convolutions as one
    (`heads`, pre-activation) and every other convolution folded; the same output as the block in eval mode."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.kind = type(block).__name__
        names = FUSED_HEADS[self.kind]
        heads = [fold_batchnorm(getattr(block, n)) for n in names]
        self.sizes = [h.out_channels for h in heads]
        self.pooled = names[-1] == "branch_pool"  # its last head is average-pooled after the convolution
        self.heads = nn.Conv2d(heads[0].in_channels, sum(self.sizes), 1)
        self.heads.weight.data = torch.cat([h.weight.data for h in heads])
        self.heads.bias.data = torch.cat([h.bias.data for h in heads])
        self.rest = nn.ModuleDict(
            {n: ConvReLU(m) for n, m in block.named_children() if n not in names and hasattr(m, "bn")}
        )
        if self.kind == "InceptionE_2":
            self.rest["branch_pool"] = ConvReLU(block.branch_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.rest
        parts = list(self.heads(x).split(self.sizes, 1))  # views of one (B, sum(sizes), H, W) tensor
        if self.pooled:  # TF's average pool ignores the padding: count_include_pad=False
            parts[-1] = F.avg_pool2d(parts[-1], 3, stride=1, padding=1, count_include_pad=False)
        parts = [F.relu(p) for p in parts]
        if self.kind == "InceptionA":
            one, five, dbl, pool = parts
            out = [one, r["branch5x5_2"](five), r["branch3x3dbl_3"](r["branch3x3dbl_2"](dbl)), pool]
        elif self.kind == "InceptionC":
            one, seven, dbl, pool = parts
            seven = r["branch7x7_3"](r["branch7x7_2"](seven))
            for n in ("branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"):
                dbl = r[n](dbl)
            out = [one, seven, dbl, pool]
        elif self.kind == "InceptionD":
            three, seven = parts
            seven = r["branch7x7x3_4"](r["branch7x7x3_3"](r["branch7x7x3_2"](seven)))
            out = [r["branch3x3_2"](three), seven, F.max_pool2d(x, 3, stride=2)]
        else:  # InceptionE_1, InceptionE_2
            one, three, dbl = parts[:3]
            dbl = r["branch3x3dbl_2"](dbl)
            if self.pooled:
                pool = parts[3]
            else:  # E_2: TF's graph max-pools here (torch-fidelity's patch)
                pool = r["branch_pool"](F.max_pool2d(x, 3, stride=1, padding=1))
            out = [one, r["branch3x3_2a"](three), r["branch3x3_2b"](three)]
            out += [r["branch3x3dbl_3a"](dbl), r["branch3x3dbl_3b"](dbl), pool]
        return torch.cat(out, 1)


def tf1_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) float32 matrix of TF1's bilinear resize along one axis with align_corners=False:
    output j samples the input at j * size_in / size_out (no half-pixel offset), between floor of that and the
    next index (clamped to the last), computed in float32 as torch-fidelity computes it."""
    src = torch.arange(size_out, dtype=torch.float32) * torch.tensor(size_in / size_out, dtype=torch.float32)
    lo = src.long()
    hi = (lo + 1).clamp_max(size_in - 1)
    frac = src - lo.float()
    m = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    m.index_put_((rows, lo), (1 - frac).double(), accumulate=True)
    m.index_put_((rows, hi), frac.double(), accumulate=True)
    return m.float()


class FusedInceptionV3(nn.Module):
    """`sagan.metrics.inception.InceptionV3` (loaded) made into the fused inference network above: uint8
    (N, 3, H, W) -> {"2048": (N, 2048)[, "logits_unbiased": (N, 1008)]}, float32."""

    SIZE = 299

    def __init__(self, net: nn.Module, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        first = fold_batchnorm(net.Conv2d_1a_3x3)
        if first.padding != (0, 0):
            raise ValueError("the input scaling is folded into a first convolution without padding")
        # conv((x - 128) / 128) = conv(x / 128) - sum of each filter's taps: the / 128 goes into the resize.
        first.bias.data -= first.weight.data.double().sum((1, 2, 3)).float()
        stages: list[nn.Module] = [nn.Sequential(first, nn.ReLU(inplace=True))]
        for name in net.STAGES[1:]:
            m = getattr(net, name)
            if type(m).__name__ in FUSED_HEADS:
                stages.append(FusedBlock(m))
            elif hasattr(m, "bn"):
                stages.append(ConvReLU(m))
            else:  # the max pools, and InceptionB, whose only 1x1 convolution has nothing to stack with
                stages.append(_folded_copy(m))
        self.stages = nn.Sequential(*stages)
        self.fc = None if net.fc is None else nn.Linear(2048, 1008, bias=False)
        if self.fc is not None:
            self.fc.weight.data = net.fc.weight.data.clone()
        self._resize: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # per (H, W, device): a few entries
        self.to(net.Conv2d_1a_3x3.conv.weight.device, memory_format=torch.channels_last)
        if precision == "bf16":  # weights cast once, not at every call as autocast would: the same numbers
            self.stages.to(torch.bfloat16)
        self.eval().requires_grad_(False)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float (N, 3, H, W) in [0, 255] -> (N, 3, 299, 299) float32 of (resized - 128) / 128, less the
        -1 that the first convolution's bias holds: resized / 128, channels last."""
        key = (x.shape[-2], x.shape[-1], x.device)
        if key not in self._resize:
            rows = tf1_resize_matrix(x.shape[-2], self.SIZE).to(x.device) / 128  # a power of two: exact
            cols = tf1_resize_matrix(x.shape[-1], self.SIZE).to(x.device)
            self._resize[key] = rows, cols.t().contiguous()
        rows, cols_t = self._resize[key]
        y = rows @ (x.float() @ cols_t)  # (299, H) @ (N, 3, H, 299) -> (N, 3, 299, 299)
        return y.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=False):
            x = self.resize(x)
            x = self.stages(x.to(torch.bfloat16) if self.precision == "bf16" else x)
            pool = F.adaptive_avg_pool2d(x.float(), 1).flatten(1)  # (N, 2048, 8, 8) -> (N, 2048)
        out = {"2048": pool}
        if self.fc is not None:
            out["logits_unbiased"] = pool.mm(self.fc.weight.T)  # torch-fidelity's IS uses logits without bias
        return out


def _folded_copy(module: nn.Module) -> nn.Module:
    """`module` (a pool or an InceptionB block) with each `BasicConv2d` child replaced by its `ConvReLU`."""
    import copy

    module = copy.deepcopy(module)
    for name, child in list(module.named_children()):
        if hasattr(child, "bn"):
            setattr(module, name, ConvReLU(child))
    return module
