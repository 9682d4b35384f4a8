"""Contracts of the shared layers and the padding helper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sarcodec.models import pad_to_multiple
from sarcodec.models.blocks import CBAM, PostActBlock, PostActUpBlock, PreActBlock, UpsampleConv, upsample2x_bilinear


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 16, 9)])
def test_upsample2x_matches_interpolate_values_and_gradients(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ours = upsample2x_bilinear(x)
    ref = F.interpolate(x_ref, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours, ref)
    weight = torch.randn_like(ref)
    (grad_ours,) = torch.autograd.grad((ours * weight).sum(), x)
    (grad_ref,) = torch.autograd.grad((ref * weight).sum(), x_ref)
    torch.testing.assert_close(grad_ours, grad_ref)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (37, 53), (16, 32), (17, 15)])
def test_pad_to_multiple_pads_bottom_right_and_crop_inverts(height: int, width: int) -> None:
    x = torch.rand(2, 1, height, width)
    x_padded, crop = pad_to_multiple(x, 16)
    assert x_padded.shape[-2] % 16 == 0 and x_padded.shape[-1] % 16 == 0
    assert x_padded.shape[-2] - height < 16 and x_padded.shape[-1] - width < 16
    # The original pixels stay at the top-left, so the latent grid is anchored there.
    torch.testing.assert_close(x_padded[..., :height, :width], x)
    torch.testing.assert_close(crop(x_padded), x)
    # Replicate padding: the pad repeats the last row / column.
    bottom_pad = x_padded[..., height:, :width]
    torch.testing.assert_close(bottom_pad, x[..., -1:, :].expand_as(bottom_pad))


def test_pad_to_multiple_is_a_no_op_on_multiples() -> None:
    x = torch.rand(1, 1, 32, 48)
    x_padded, crop = pad_to_multiple(x, 16)
    assert x_padded is x
    assert crop(x).shape == x.shape


def test_cbam_preserves_shape_and_guards_narrow_widths() -> None:
    # 4 channels with reduction 16 would give 0 hidden units without the guard.
    cbam = CBAM(4, reduction=16, spatial_kernel=7)
    x = torch.randn(2, 4, 9, 11)
    assert cbam(x).shape == x.shape
    assert cbam.channel.mlp[0].out_channels == 1


def test_block_shapes() -> None:
    x = torch.randn(2, 8, 12, 10)
    assert PreActBlock(8, 16, stride=2)(x).shape == (2, 16, 6, 5)
    assert PreActBlock(8, 8)(x).shape == x.shape
    assert PostActBlock(8, 16, stride=2)(x).shape == (2, 16, 6, 5)
    assert PostActUpBlock(8, 4)(x).shape == (2, 4, 24, 20)
    assert UpsampleConv(8, 4)(x).shape == (2, 4, 24, 20)
