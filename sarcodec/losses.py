"""Training losses on the [0, 1] working representation, tensors of shape ``(N, 1, H, W)``.

SSIM and MS-SSIM are the SPEC's definitions (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03,
data range 1), computed by :mod:`sarcodec.metrics` through ``pytorch_msssim``; they run in float32
with autocast switched off, so the losses work inside an fp16/bf16 ``torch.autocast`` region.

``mask`` arguments are optional validity masks of shape ``(N, 1, H, W)`` (bool, or float in {0, 1}),
True/1 where the pixel is valid. Invalid pixels are left out of the MSE and are replaced by the
target's values before SSIM, so they neither cost nor receive gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sarcodec.metrics import batch_ms_ssim, batch_ssim

__all__ = ["CombinedLoss", "MSELoss", "MSSSIMLoss", "SSIMLoss"]


def _check_pair(pred: Tensor, target: Tensor, mask: Tensor | None) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    if pred.dim() != 4:
        raise ValueError(f"expected (N, 1, H, W) tensors, got shape {tuple(pred.shape)}")
    if mask is not None and mask.shape != pred.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from pred shape {tuple(pred.shape)}")


def _masked_pred(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """``pred`` with invalid pixels replaced by ``target`` (so SSIM sees agreement there)."""
    if mask is None:
        return pred
    return torch.where(mask.bool(), pred, target.to(pred.dtype))


class MSELoss(nn.Module):
    """Mean squared error over valid pixels, computed in float32 (float64 for float64 input)."""

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the scalar MSE; with a mask, the mean over valid pixels (0 if none is valid)."""
        _check_pair(pred, target, mask)
        dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=pred.device.type, enabled=False):
            sq_err = (pred.to(dtype) - target.to(dtype)).pow(2)
            if mask is None:
                return sq_err.mean()
            weight = mask.to(dtype)
            return (sq_err * weight).sum() / weight.sum().clamp_min(1.0)


class SSIMLoss(nn.Module):
    """``1 - SSIM``, SSIM averaged over the batch; 0 for identical images, differentiable."""

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the scalar loss. H and W must be at least 11 (the SSIM window)."""
        _check_pair(pred, target, mask)
        ssim = batch_ssim(_masked_pred(pred, target, mask), target, self.data_range).mean()
        return 1.0 - ssim


class MSSSIMLoss(nn.Module):
    """``1 - MS-SSIM``, averaged over the batch; H and W must be at least 161 (5 scales)."""

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Return the scalar loss."""
        _check_pair(pred, target, mask)
        ms_ssim = batch_ms_ssim(_masked_pred(pred, target, mask), target, self.data_range).mean()
        return 1.0 - ms_ssim


class CombinedLoss(nn.Module):
    """Weighted sum ``mse_weight * MSE + ssim_weight * (1 - SSIM) + ms_ssim_weight * (1 - MS-SSIM)``.

    The seed study uses ``CombinedLoss(mse_weight=0.7, ssim_weight=0.3)``. SSIM is always computed
    and reported (without a graph when ``ssim_weight == 0``); MS-SSIM only when
    ``ms_ssim_weight > 0`` (so its 161-pixel minimum applies only then).

    ``forward(pred, target, mask=None)`` returns a dict of tensors (CompressAI style):

    - ``"loss"``: the total, a scalar with grad (float32, or float64 for float64 input);
    - ``"mse"``: the MSE (not weighted);
    - ``"ssim"``: the SSIM index itself, batch mean (not ``1 - SSIM``, not weighted);
    - ``"ms_ssim"``: the MS-SSIM index, batch mean, if ``ms_ssim_weight > 0``.

    The parts are not detached: call ``.item()`` (or ``.detach()``) to log them.
    """

    def __init__(
        self,
        mse_weight: float = 0.7,
        ssim_weight: float = 0.3,
        ms_ssim_weight: float = 0.0,
        data_range: float = 1.0,
    ) -> None:
        super().__init__()
        weights = {
            "mse_weight": mse_weight,
            "ssim_weight": ssim_weight,
            "ms_ssim_weight": ms_ssim_weight,
        }
        for name, value in weights.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if mse_weight + ssim_weight + ms_ssim_weight == 0:
            raise ValueError("at least one of mse_weight, ssim_weight, ms_ssim_weight must be > 0")
        if not (math.isfinite(data_range) and data_range > 0):
            raise ValueError(f"data_range must be a positive finite number, got {data_range}")
        self.mse_weight = float(mse_weight)
        self.ssim_weight = float(ssim_weight)
        self.ms_ssim_weight = float(ms_ssim_weight)
        self.data_range = float(data_range)
        self.mse = MSELoss()

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Return ``{"loss", "mse", "ssim"[, "ms_ssim"]}`` for ``(N, 1, H, W)`` tensors in [0, 1]."""
        _check_pair(pred, target, mask)
        mse = self.mse(pred, target, mask)
        out: dict[str, Tensor] = {"mse": mse}
        total = self.mse_weight * mse
        pred_ssim = _masked_pred(pred, target, mask)
        # SSIM is always reported (validation histories log it); no graph when it is not trained on
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.ssim_weight > 0):
            ssim = batch_ssim(pred_ssim, target, self.data_range).mean()
        out["ssim"] = ssim
        if self.ssim_weight > 0:
            total = total + self.ssim_weight * (1.0 - ssim)
        if self.ms_ssim_weight > 0:
            ms_ssim = batch_ms_ssim(pred_ssim, target, self.data_range).mean()
            out["ms_ssim"] = ms_ssim
            total = total + self.ms_ssim_weight * (1.0 - ms_ssim)
        return {"loss": total, **out}

    def extra_repr(self) -> str:
        return (
            f"mse_weight={self.mse_weight}, ssim_weight={self.ssim_weight}, "
            f"ms_ssim_weight={self.ms_ssim_weight}, data_range={self.data_range}"
        )
