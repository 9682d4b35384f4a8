"""Layers of the rate-distortion codecs' transforms: GDN/IGDN and the "same"-padded (transposed) convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.entropy.models import lower_bound

__all__ = ["GDN", "conv", "deconv"]


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016); ``inverse=True`` gives IGDN."""

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(gamma_init * torch.eye(channels))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        beta = lower_bound(self.beta, 1e-6)
        gamma = lower_bound(self.gamma, 0.0)
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        if not torch.is_grad_enabled():  # inference: the same operations in place (two tile-sized buffers fewer)
            norm.sqrt_()
            return norm.mul_(x) if self.inverse else torch.div(x, norm, out=norm)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A "same"-padded convolution (stride 2 halves the size), as the codecs' transforms use it."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """The transposed convolution that undoes :func:`conv`'s size change exactly."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)
