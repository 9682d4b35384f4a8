"""The seed study's training loss: a weighted sum of MSE, 1 - SSIM and 1 - MS-SSIM."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sarcodec.losses.terms import MSELoss, _check_pair, _masked_pred
from sarcodec.metrics import batch_ms_ssim, batch_ssim

__all__ = ["CombinedLoss"]


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
