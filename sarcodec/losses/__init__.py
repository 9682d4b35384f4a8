"""Training losses on the [0, 1] working representation, tensors of shape ``(N, 1, H, W)``.

SSIM and MS-SSIM are the SPEC's definitions (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03,
data range 1), computed by :mod:`sarcodec.metrics` through ``pytorch_msssim``; they run in float32
with autocast switched off, so the losses work inside an fp16/bf16 ``torch.autocast`` region.

``mask`` arguments are optional validity masks of shape ``(N, 1, H, W)`` (bool, or float in {0, 1}),
True/1 where the pixel is valid. Invalid pixels are left out of the MSE and are replaced by the
target's values before SSIM, so they neither cost nor receive gradient.

The package keeps one concept per module: ``terms`` holds the single-term losses (``MSELoss``, ``SSIMLoss``,
``MSSSIMLoss``), ``combined`` the seed study's weighted sum ``CombinedLoss`` (importable as
``sarcodec.losses.combined.CombinedLoss``, the seed plan's path).
"""

from __future__ import annotations

from sarcodec.losses.combined import CombinedLoss
from sarcodec.losses.terms import MSELoss, MSSSIMLoss, SSIMLoss

__all__ = ["CombinedLoss", "MSELoss", "MSSSIMLoss", "SSIMLoss"]
