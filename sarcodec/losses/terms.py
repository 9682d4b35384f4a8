"""Single-term losses on the [0, 1] working representation (see the package docstring for conventions)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sarcodec.metrics import batch_ms_ssim, batch_ssim

__all__ = ["MSELoss", "MSSSIMLoss", "SSIMLoss"]


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
