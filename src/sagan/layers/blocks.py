"""Up- and down-blocks: the residual ones of the SNGAN/BigGAN ResNet backbones that SAGAN's official code uses,
and the plain conv stages of the DCGAN backbone that many public SAGANs use (e.g. heykeetae/Self-Attention-GAN).

Resampling is folded into the convolutions next to it. Each fold is the same linear map as the textbook order,
computed with fewer multiplications and without the resampled tensor (float64 tests check both against it):
- nearest 2x upsampling then a 3x3 conv = one 4x4 transposed conv with stride 2 at the low resolution
  (`upsample_conv3x3`: 16 instead of 36 taps per 2x2 output pixels);
- a 3x3 conv then 2x2 average pooling = one 4x4 conv with stride 2 (`conv3x3_avgpool`: 16 taps per output pixel
  instead of 36);
- adding an upsampled shortcut = a broadcast add (`add_upsampled`).
Measured fwd+bwd on 2 CPU cores, batch 64, 256 channels, 16 -> 32 px: 1629 ms -> 753 ms for the first; 128
channels at 32 px, batch 128: 932 ms -> 390 ms for the second (nearest upsampling of NCHW tensors is also
slow on CPU: 229 ms for (64, 256, 16, 16) -> 32 x 32).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sagan.layers.norm import ConditionalBatchNorm2d

# Row (and column) taps of the 3x3 kernel that a 4x4 stride-2 transposed conv applies: an input row i reaches
# output rows 2i - 1 + k for k = 0..3, and nearest upsampling then a 3x3 conv gives output row 2i + a the input rows
# i - 1 + a and i + a with the taps (w0, w1 + w2) for a = 0 and (w0 + w1, w2) for a = 1. Row k of this matrix is
# the 3x3 rows that make the transposed conv's tap k.
_UPSAMPLE_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def upsample_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(nearest_upsample_2x(x)) for a 3x3 conv with padding 1: (B, C, H, W) -> (B, O, 2H, 2W).

    Output pixel (2i + a, 2j + b) sees only the low-resolution rows i - 1 + a .. i + a and columns
    j - 1 + b .. j + b, with the kernel taps summed where the upsampled copies repeat: one 4x4 transposed conv
    with stride 2 (4 taps per output pixel and input channel instead of 9), whose kernel is the 3x3 one with
    its rows and columns combined by `_UPSAMPLE_TAPS`. One op: no padded copies of x and no interleaving of
    output phases, and the memory format of x is kept. Measured fwd+bwd on 2 CPU cores, batch 64, against four
    2x2 convs, one per output phase: 0.63-0.77x the time for the DCGAN stages of `fashion-mnist-cpu` (256 -> 128
    channels at 4 px to 64 -> 32 at 16 px), 0.85-1.01x at 256 -> 256 channels, 4 to 16 px.
    """
    w = conv.weight  # (O, C, 3, 3); a parametrised (spectrally normalised) weight is computed once here
    taps = _UPSAMPLE_TAPS.to(w)
    kernel = torch.einsum("kr,ls,ocrs->cokl", taps, taps, w)  # (C, O, 4, 4), conv_transpose2d's layout
    return F.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


def add_upsampled(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """h + nearest_upsample_2x(s) without forming the upsampled s: h (B, C, 2H, 2W), s (B, C, H, W)."""
    B, C, H, W = s.shape
    return (h.unflatten(3, (W, 2)).unflatten(2, (H, 2)) + s[:, :, :, None, :, None]).reshape(B, C, 2 * H, 2 * W)


def conv3x3_avgpool(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """avg_pool2d(conv(x), 2) for a 3x3 conv with padding 1, as one 4x4 conv with stride 2: (B, C, H, W) ->
    (B, O, H // 2, W // 2). The 4x4 kernel is the 3x3 one convolved with the 2x2 box filter."""
    w = conv.weight
    box = F.pad(w, (0, 1, 0, 1)) + F.pad(w, (1, 0, 0, 1)) + F.pad(w, (0, 1, 1, 0)) + F.pad(w, (1, 0, 1, 0))
    return F.conv2d(x, 0.25 * box, conv.bias, stride=2, padding=1)


class GBlock(nn.Module):
    """Generator block: (c)BN-ReLU-up2-conv3-(c)BN-ReLU-conv3, plus a 1x1-conv upsampled shortcut.

    x: (B, in_channels, H, W), y: (B,) or None -> (B, out_channels, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0, bn_eps: float = 1e-5):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_channels, num_classes, eps=bn_eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(out_channels, num_classes, eps=bn_eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = upsample_conv3x3(F.relu(self.bn1(x, y)), self.conv1)  # = conv1(up(relu(bn1(x))))
        h = self.conv2(F.relu(self.bn2(h, y)))
        # A 1x1 conv commutes with nearest upsampling, so convolve at the lower resolution.
        return add_upsampled(h, self.shortcut(x))


class DBlock(nn.Module):
    """Discriminator block: [ReLU]-conv3-ReLU-conv3-[avgpool2], plus a 1x1-conv shortcut when shapes change.

    The first block of D sees images and has no pre-activation (BigGAN's `preactivation=False`).
    x: (B, in_channels, H, W) -> (B, out_channels, H/2, W/2) when downsampling, else same size.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True, preactivation: bool = True):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        learnable = in_channels != out_channels or downsample
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = F.relu(self.conv1(h))
        h = conv3x3_avgpool(h, self.conv2) if self.downsample else self.conv2(h)  # = avgpool(conv2(h)) if down
        return h + self._shortcut(x)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        # Average pooling and a 1x1 conv are both linear and commute exactly, so pool first (cheaper).
        x = F.avg_pool2d(x, 2) if self.downsample else x
        return x if self.shortcut is None else self.shortcut(x)


class DCGBlock(nn.Module):
    """DCGAN generator stage: (c)BN-ReLU-up2-conv3, no shortcut (the up-sampling folded into the conv).

    DCGAN's 4x4 stride-2 transposed conv, with a kernel made from the 3x3 one (`upsample_conv3x3`), so without
    its checkerboard pattern. x: (B, in_channels, H, W), y: (B,) or None -> (B, out_channels, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0, bn_eps: float = 1e-5):
        super().__init__()
        self.bn = ConditionalBatchNorm2d(in_channels, num_classes, eps=bn_eps)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return upsample_conv3x3(F.relu(self.bn(x, y)), self.conv)  # = conv(up(relu(bn(x))))


class DCDBlock(nn.Module):
    """DCGAN discriminator stage: conv4 stride 2 (or conv3 when not downsampling), then LeakyReLU(0.1), as in
    SNGAN's standard CNN. x: (B, in_channels, H, W) -> (B, out_channels, H/2, W/2) when downsampling."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True):
        super().__init__()
        self.downsample = downsample
        kernel, stride = (4, 2) if downsample else (3, 1)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.1)
