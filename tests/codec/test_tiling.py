"""Tiling helpers: blend ramps, the rolling blender, the smooth fill of invalid pixels."""

from __future__ import annotations

import numpy as np
import pytest

from sarcodec.codec.tiling import Blender, Region, extended, fill_invalid, ramp
from sarcodec.io.sarc import tile_grid


def test_ramps_sum_to_one_across_tiles() -> None:
    length, size, overlap = 100, 32, 5
    total = np.zeros(length)
    for start in range(0, length, size):
        stop = min(start + size, length)
        e0, e1 = extended(start, stop, length, overlap)
        w = ramp(start, stop, length, overlap)
        assert len(w) == e1 - e0
        total[e0:e1] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_blender_gives_full_weight_to_the_only_tile_that_covers_a_strip() -> None:
    blender = Blender(10)
    tile = np.full((4, 6), 0.25, np.float32)
    blender.add(0, 0, tile, ramp(0, 5, 10, 1)[None, :].repeat(4, axis=0))  # the right neighbour is not coded
    out = blender.pop(4)
    np.testing.assert_allclose(out[:, :6], 0.25, rtol=1e-6)
    assert (out[:, 6:] == 0).all()


def test_fill_keeps_valid_pixels_and_is_smooth_inside_a_nodata_border() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, (120, 100)).astype(np.float32)
    valid = np.zeros_like(x, dtype=bool)
    valid[40:80, 30:70] = True
    filled = fill_invalid(np.where(valid, x, 0.0).astype(np.float32), valid)
    np.testing.assert_array_equal(filled[valid], x[valid])
    border = ~valid
    assert 0.3 <= filled[border].min() and filled[border].max() <= 0.7  # an extension, not the noise floor
    step = np.abs(np.diff(filled, axis=0))[:30]  # far from the valid core: a smooth surface
    assert step.max() < 0.01 < np.abs(np.diff(x, axis=0)).mean()


def test_fill_of_all_valid_and_all_invalid() -> None:
    x = np.full((8, 8), 0.5, np.float32)
    assert fill_invalid(x, np.ones((8, 8), bool)) is x
    np.testing.assert_array_equal(fill_invalid(x, np.zeros((8, 8), bool)), 0.0)


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5), (7, 2), (64, 63), (33, 100)])
def test_the_fill_pyramid_is_pytorchs_pooling_and_bilinear_resize(h: int, w: int) -> None:
    """The push-pull fill runs in NumPy (compress needs no PyTorch); its two operations are PyTorch's
    ``avg_pool2d(2, ceil_mode=True)`` and ``interpolate(bilinear, align_corners=False)``, as it used before."""
    import torch
    import torch.nn.functional as F

    from sarcodec.codec.tiling import _bilinear, _half_mean

    t = np.random.default_rng(h * w).random((h, w))
    pooled = F.avg_pool2d(torch.from_numpy(t)[None, None], 2, ceil_mode=True)[0, 0].numpy()
    np.testing.assert_allclose(_half_mean(t), pooled, rtol=1e-14, atol=0)
    for size in ((2 * h, 2 * w), (2 * h - 1, 2 * w - 1), (h + 1, w + 3)):
        want = F.interpolate(torch.from_numpy(t)[None, None], size=size, mode="bilinear", align_corners=False)
        up = _bilinear(t, size)
        np.testing.assert_allclose(up, want[0, 0].numpy(), rtol=1e-13, atol=1e-15)
        assert up.flags.c_contiguous  # as the maps it is combined with


def test_region_tiles_are_those_whose_extended_extent_meets_it() -> None:
    rows, cols = tile_grid(300, 100), tile_grid(250, 100)  # 3 x 3 tiles, the last ones short
    region = Region(100, 105, 195, 205)  # rows in the second tile row, columns across the 2nd/3rd boundary
    assert region.tiles(rows, cols, 300, 250, 0) == ([False, True, False], [(100, 200), (200, 250)])
    # with overlap 8, the first tile row's extent reaches row 108: it blends into the region too
    assert region.tiles(rows, cols, 300, 250, 8) == ([True, True, False], [(100, 200), (200, 250)])
    whole = Region.whole(300, 250)
    assert whole.tiles(rows, cols, 300, 250, 16) == ([True] * 3, cols)
    # a region strictly inside one core, away from its edges by more than the overlap: only that tile
    assert Region(130, 170, 30, 70).tiles(rows, cols, 300, 250, 16) == ([False, True, False], [(0, 100)])
