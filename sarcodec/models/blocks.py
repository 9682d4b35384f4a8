"""Layers shared by the autoencoder variants.

Every block maps ``(N, C_in, H, W)`` float tensors to ``(N, C_out, H', W')`` with ``H' = H / stride`` for the
downsampling blocks and ``H' = 2 H`` for the upsampling ones. None of them holds anything random at inference
(no dropout); BatchNorm uses its running statistics once the model is in ``eval()`` mode.

Operations whose CUDA backward pass is non-deterministic *and* raises under
``torch.use_deterministic_algorithms(True)`` (bilinear ``F.interpolate``, ``ReflectionPad2d``, adaptive pooling)
are avoided on purpose, so that a seeded training run can be made bit-reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CBAM",
    "ChannelAttention",
    "PostActBlock",
    "PostActUpBlock",
    "PreActBlock",
    "SpatialAttention",
    "Upsample2x",
    "UpsampleConv",
    "upsample2x_bilinear",
]


def _upsample2x_along(x: Tensor, dim: int) -> Tensor:
    """Double the size of ``x`` along ``dim`` (a negative index) with half-pixel-centred linear interpolation."""
    n = x.shape[dim]
    # Neighbours with edge replication: identical to align_corners=False, which clamps the source coordinate.
    previous = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    following = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)
    # Output sample 2i sits at source coordinate i - 1/4, sample 2i + 1 at i + 1/4.
    even = 0.75 * x + 0.25 * previous
    odd = 0.75 * x + 0.25 * following
    # Stacking at a negative `dim` puts the even/odd axis right after the original one: flattening the two
    # interleaves them as [even_0, odd_0, even_1, odd_1, ...].
    return torch.stack([even, odd], dim=dim).flatten(dim - 1, dim)


def upsample2x_bilinear(x: Tensor) -> Tensor:
    """Bilinear x2 upsampling, equal to ``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)``.

    Written with slicing and weighted sums because the CUDA backward of ``F.interpolate(mode="bilinear")`` uses
    atomic adds and raises under ``torch.use_deterministic_algorithms(True)``; this version is deterministic
    on every device.

    Args:
        x: ``(N, C, H, W)`` float tensor, any range.

    Returns:
        ``(N, C, 2H, 2W)`` tensor.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    return _upsample2x_along(_upsample2x_along(x, -1), -2)


class Upsample2x(nn.Module):
    """Module form of :func:`upsample2x_bilinear` (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return upsample2x_bilinear(x)


class UpsampleConv(nn.Module):
    """Bilinear x2 upsampling followed by a 1x1 convolution that changes the width.

    Upsample-then-convolve instead of a strided transposed convolution avoids checkerboard artefacts.
    The convolution has no bias because a pre-activation block (starting with BatchNorm) always follows it.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = Upsample2x()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(self.upsample(x))
        return out


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, "Identity Mappings in Deep Residual Networks").

    ``BN -> ReLU -> Conv3x3(stride) -> BN -> ReLU -> Conv3x3``, added to the shortcut, with nothing after the
    addition so the residual stream stays an identity path. When the width or the stride changes, the shortcut
    is a strided 1x1 projection of the *pre-activated* input, as in the paper.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out: Tensor = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + identity


class PostActBlock(nn.Module):
    """Post-activation ("original ResNet") basic block, optionally downsampling.

    ``Conv3x3(stride) -> BN -> ReLU -> Conv3x3 -> BN``, plus the shortcut, then ReLU. The shortcut is a strided
    1x1 convolution with BatchNorm when the shape changes, otherwise the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PostActUpBlock(nn.Module):
    """Post-activation residual block that doubles the resolution: the mirror of a stride-2 :class:`PostActBlock`.

    Main path ``Conv3x3 -> BN -> ReLU`` at the input width and resolution, then bilinear x2 and
    ``Conv3x3 (in -> out) -> BN``; the shortcut is the upsampled input, projected by a 1x1 convolution with
    BatchNorm when the width changes; ReLU after the addition. Mirroring the downsampling block layer for layer
    keeps the decoder as large as the encoder, and upsample-then-convolve avoids the checkerboard artefacts of
    strided transposed convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.upsample = Upsample2x()
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.upsample(out)))
        return F.relu(out + self.shortcut(self.upsample(x)))


class ChannelAttention(nn.Module):
    """CBAM channel attention: a shared MLP on the spatial mean and max of each channel, gated by a sigmoid.

    The hidden width is ``max(1, channels // reduction)`` so narrow layers (small ``base_channels``) still work.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        # Plain reductions instead of AdaptiveAvg/MaxPool2d, whose CUDA backward raises in deterministic mode.
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: a ``k x k`` convolution on the channel-wise mean and max maps, gated by a sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial kernel size must be odd to keep the map aligned, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018): channel attention, then spatial attention.

    Shape-preserving: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_kernel)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.spatial(self.channel(x))
        return out
