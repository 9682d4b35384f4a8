"""Training losses: values, gradients, masks, mixed precision."""

from __future__ import annotations

import pytest
import torch

from sarcodec import metrics
from sarcodec.losses import CombinedLoss, MSELoss, MSSSIMLoss, SSIMLoss


def _batch(seed: int, shape: tuple[int, ...] = (2, 1, 48, 40)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.nn.functional.avg_pool2d(torch.rand(shape, generator=gen), 3, 1, 1)
    pred = (target + 0.1 * torch.randn(shape, generator=gen)).clamp(0, 1)
    return pred, target


def test_combined_loss_is_weighted_sum() -> None:
    pred, target = _batch(0)
    out = CombinedLoss(mse_weight=0.7, ssim_weight=0.3)(pred, target)
    assert set(out) == {"loss", "mse", "ssim"}
    mse = torch.mean((pred - target) ** 2)
    ssim = metrics.batch_ssim(pred, target).mean()
    assert out["mse"].item() == pytest.approx(mse.item(), rel=1e-6)
    assert out["ssim"].item() == pytest.approx(ssim.item(), abs=1e-6)
    assert 0.0 < out["ssim"].item() < 0.9
    expected = 0.7 * out["mse"] + 0.3 * (1.0 - out["ssim"])
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-7)
    assert out["loss"].dim() == 0


def test_combined_loss_with_ms_ssim() -> None:
    pred, target = _batch(1, (1, 1, 176, 176))
    out = CombinedLoss(mse_weight=0.5, ssim_weight=0.2, ms_ssim_weight=0.3)(pred, target)
    assert set(out) == {"loss", "mse", "ssim", "ms_ssim"}
    expected = 0.5 * out["mse"] + 0.2 * (1 - out["ssim"]) + 0.3 * (1 - out["ms_ssim"])
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert MSSSIMLoss()(pred, target).item() == pytest.approx(1 - out["ms_ssim"].item(), abs=1e-6)


def test_losses_zero_for_identical_inputs() -> None:
    _, target = _batch(2)
    out = CombinedLoss()(target.clone(), target)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["mse"].item() == 0.0
    assert out["ssim"].item() == pytest.approx(1.0, abs=1e-6)
    assert SSIMLoss()(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)


def test_backward_reaches_prediction() -> None:
    pred, target = _batch(3)
    pred.requires_grad_(True)
    out = CombinedLoss(mse_weight=0.7, ssim_weight=0.3)(pred, target)
    out["loss"].backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_autocast_bfloat16() -> None:
    pred, target = _batch(4)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recon = torch.sigmoid(conv(pred))
        assert recon.dtype == torch.bfloat16
        out = CombinedLoss()(recon, target)
    assert out["loss"].dtype == torch.float32
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    # same value as in float32 on the same (bf16-rounded) prediction
    reference = CombinedLoss()(recon.detach().float(), target)
    assert out["loss"].item() == pytest.approx(reference["loss"].item(), abs=1e-5)


def test_mask_excludes_invalid_pixels() -> None:
    pred, target = _batch(5)
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[:, :, :8] = False
    corrupted = pred.clone()
    corrupted[:, :, :8] = 1.0  # any error on invalid pixels must not count
    assert MSELoss()(corrupted, target, mask).item() == pytest.approx(
        MSELoss()(pred, target, mask).item(), rel=1e-6
    )
    corrupted.requires_grad_(True)
    out = CombinedLoss()(corrupted, target, mask)
    out["loss"].backward()
    assert corrupted.grad is not None
    assert corrupted.grad[:, :, :8].abs().max().item() == 0.0
    assert corrupted.grad[:, :, 8:].abs().max().item() > 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mse_weight": -0.1},
        {"ssim_weight": -1.0},
        {"ms_ssim_weight": float("nan")},
        {"mse_weight": 0.0, "ssim_weight": 0.0},
    ],
)
def test_invalid_weights_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CombinedLoss(**kwargs)


def test_shape_mismatch_and_small_images_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        CombinedLoss()(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17))
    with pytest.raises(ValueError, match="at least 11"):
        CombinedLoss()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="161"):
        MSSSIMLoss()(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))
