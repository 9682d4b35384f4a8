"""Metric values on known cases: SPEC.md "Evaluation protocol"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from sarcodec import metrics

ndimage = pytest.importorskip("scipy.ndimage")
skimage_metrics = pytest.importorskip("skimage.metrics")


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> NDArray[np.float64]:
    """A smooth random field scaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    field -= field.min()
    return field / field.max()


def _speckled_working_image(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.float64]:
    """A real-ish [0, 1] working image: dB of a smooth reflectivity times 1-look speckle, scaled."""
    reflectivity = 10.0 ** (2.0 * _smooth_field(rng, shape, 6.0))
    intensity = reflectivity * rng.gamma(1.0, 1.0, shape)
    x_db = 10.0 * np.log10(intensity)
    lo, hi = np.percentile(x_db, [0.1, 99.9])
    return np.clip((x_db - lo) / (hi - lo), 0.0, 1.0)


def _skimage_ssim(x: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    return float(
        skimage_metrics.structural_similarity(
            x, ref, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


@pytest.fixture(scope="module")
def ssim_pairs() -> list[tuple[str, NDArray[np.float64], NDArray[np.float64]]]:
    rng = np.random.default_rng(20240404)
    x = _speckled_working_image(rng, (96, 80))
    noisy = np.clip(x + 0.08 * rng.standard_normal(x.shape), 0.0, 1.0)
    blurred = ndimage.uniform_filter(x, 5)
    quantized = np.round(x * 15.0) / 15.0
    smooth = _smooth_field(rng, (64, 64), 3.0)
    return [
        ("noisy", x, noisy),
        ("blurred", x, blurred),
        ("quantized", x, quantized),
        ("noisy_vs_blurred", noisy, blurred),
        ("unrelated", x, rng.random(x.shape)),
        ("smooth_offset", smooth, np.clip(smooth * 0.8 + 0.1, 0, 1)),
    ]


# ------------------------------------------------------------------------------------ PSNR


def test_psnr_known_value() -> None:
    ref = np.full((32, 32), 0.5)
    assert metrics.psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-9)
    assert metrics.psnr(ref + 0.01, ref) == pytest.approx(40.0, abs=1e-9)
    # data range enters squared: dB images spanning 50 dB, error 5 dB -> 20 dB
    assert metrics.psnr(ref * 50 + 5.0, ref * 50, data_range=50.0) == pytest.approx(20.0, abs=1e-9)


def test_psnr_identical_is_inf_and_mask() -> None:
    ref = np.linspace(0, 1, 100).reshape(10, 10)
    assert metrics.psnr(ref, ref) == math.inf
    x = ref.copy()
    x[0, :] += 0.5
    mask = np.ones_like(ref, dtype=bool)
    mask[0, :] = False
    assert metrics.psnr(x, ref, mask=mask) == math.inf
    assert math.isnan(metrics.psnr(x, ref, mask=np.zeros_like(mask)))


def test_psnr_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range=0.0)


def test_batch_psnr_per_image() -> None:
    ref = torch.full((3, 1, 16, 16), 0.5)
    x = ref.clone()
    x[0] += 0.1
    x[1] += 0.01
    values = metrics.batch_psnr(x, ref)
    assert values.shape == (3,)
    assert values[0].item() == pytest.approx(20.0, abs=1e-3)
    assert values[1].item() == pytest.approx(40.0, abs=1e-2)
    assert math.isinf(values[2].item())
    # the 2-D function agrees and accepts tensors
    assert metrics.psnr(x[0], ref[0]) == pytest.approx(20.0, abs=1e-3)


# ------------------------------------------------------------------------------------ SSIM


def test_ssim_matches_skimage(
    ssim_pairs: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]],
) -> None:
    diffs = {}
    for name, x, ref in ssim_pairs:
        ours = metrics.ssim(x, ref)
        theirs = _skimage_ssim(x, ref)
        diffs[name] = abs(ours - theirs)
        assert ours == pytest.approx(theirs, abs=1e-3), name
    # the pairs span the range, so the agreement is not trivial
    values = [metrics.ssim(x, ref) for _, x, ref in ssim_pairs]
    assert min(values) < 0.1 and max(values) > 0.8
    assert max(diffs.values()) < 1e-5


def test_batch_ssim_matches_2d_and_float32(
    ssim_pairs: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]],
) -> None:
    pairs = [(x, ref) for _, x, ref in ssim_pairs[:4]]  # same shape (96, 80)
    x = torch.tensor(np.stack([p[0] for p in pairs])[:, None], dtype=torch.float32)
    ref = torch.tensor(np.stack([p[1] for p in pairs])[:, None], dtype=torch.float32)
    values = metrics.batch_ssim(x, ref)
    assert values.shape == (4,) and values.dtype == torch.float32
    expected = [_skimage_ssim(a, b) for a, b in pairs]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-3)
    # half-precision input is computed in float32
    half = metrics.batch_ssim(x.to(torch.bfloat16), ref.to(torch.bfloat16))
    assert half.dtype == torch.float32


def test_ssim_identical_is_one() -> None:
    x = _speckled_working_image(np.random.default_rng(1), (40, 40))
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ssim_smaller_than_window_raises() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(np.zeros((10, 40)), np.zeros((10, 40)))
    with pytest.raises(ValueError, match="at least 11"):
        metrics.batch_ssim(torch.zeros(2, 1, 40, 8), torch.zeros(2, 1, 40, 8))


def test_ms_ssim() -> None:
    rng = np.random.default_rng(2)
    x = _speckled_working_image(rng, (176, 168))
    assert metrics.MS_SSIM_MIN_SIZE == 161
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    blurred = ndimage.uniform_filter(x, 5)
    value = metrics.ms_ssim(blurred, x)
    assert 0.0 < value < 1.0
    with pytest.raises(ValueError, match="161"):
        metrics.ms_ssim(x[:160], x[:160])


# ------------------------------------------------------------------------------------ ENL


@pytest.mark.parametrize("looks", [1, 4, 10])
def test_enl_of_gamma_speckle_is_number_of_looks(looks: int) -> None:
    rng = np.random.default_rng(100 + looks)
    intensity = 7.5 * rng.gamma(looks, 1.0 / looks, (512, 512))
    assert metrics.enl(intensity) == pytest.approx(looks, rel=0.05)
    # per-region ENL over the selected blocks estimates the same thing
    regions = metrics.homogeneous_regions(intensity)
    assert metrics.regional_enl(intensity, regions).mean() == pytest.approx(looks, rel=0.05)


def test_enl_mask_and_invalid_pixels() -> None:
    rng = np.random.default_rng(3)
    intensity = rng.gamma(4.0, 0.25, (128, 128))
    intensity[:10] = np.nan
    intensity[10:20] = 1e6  # masked out below
    mask = np.ones_like(intensity, dtype=bool)
    mask[10:20] = False
    assert metrics.enl(intensity, mask=mask) == pytest.approx(4.0, rel=0.05)


def test_homogeneous_regions_avoid_texture_and_invalid_blocks() -> None:
    rng = np.random.default_rng(4)
    shape = (256, 256)
    reflectivity = np.ones(shape)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    reflectivity[:, 128:] = np.exp(0.4 * texture / texture.std())[:, 128:]
    intensity = reflectivity * rng.gamma(1.0, 1.0, shape)
    intensity[0, 0] = 0.0  # invalid pixel: its block may not be chosen
    intensity[40, 40] = np.nan
    regions = metrics.homogeneous_regions(intensity, block_size=32, fraction=0.2)
    assert len(regions) == math.ceil(0.2 * (64 - 2))
    assert all(box.right <= 128 for box in regions)  # all in the flat half
    assert all(box.height == box.width == 32 for box in regions)
    assert metrics.RegionBox(0, 0, 32, 32) not in regions
    assert metrics.RegionBox(32, 32, 64, 64) not in regions
    # min_regions wins over fraction on small images
    assert len(metrics.homogeneous_regions(intensity[64:128, :64], min_regions=3)) == 3
    # ...and is capped by the number of valid blocks (two of these four hold invalid pixels)
    assert len(metrics.homogeneous_regions(intensity[:64, :64], min_regions=3)) == 2


def test_enl_ratio() -> None:
    rng = np.random.default_rng(5)
    shape = (256, 256)
    reflectivity = 10.0 ** _smooth_field(rng, shape, 20.0)
    orig = reflectivity * rng.gamma(1.0, 1.0, shape)
    assert metrics.enl_ratio(orig, orig) == pytest.approx(1.0, abs=1e-12)
    # speckle smoothed -> above 1 (a 3 x 3 box filter multiplies ENL by about 9 for white speckle)
    smoothed = ndimage.uniform_filter(orig, 3)
    assert metrics.enl_ratio(smoothed, orig) > 3.0
    # an independent speckle realization of the same scene keeps the ratio near 1: the region
    # choice does not favour the original's own speckle sample
    other = reflectivity * rng.gamma(1.0, 1.0, shape)
    assert metrics.enl_ratio(other, orig) == pytest.approx(1.0, abs=0.1)
    # amplified speckle -> below 1
    assert metrics.enl_ratio(orig * rng.gamma(1.0, 1.0, shape), orig) < 0.7
    # shared precomputed regions give the same value
    regions = metrics.homogeneous_regions(orig)
    assert metrics.enl_ratio(smoothed, orig, regions=regions) == metrics.enl_ratio(smoothed, orig)


def test_enl_ratio_without_qualifying_region_is_nan() -> None:
    rng = np.random.default_rng(6)
    small = rng.gamma(1.0, 1.0, (20, 20))
    assert metrics.homogeneous_regions(small) == []
    assert math.isnan(metrics.enl_ratio(small, small))
    invalid = rng.gamma(1.0, 1.0, (64, 64))
    invalid[::16, ::16] = 0.0
    assert math.isnan(metrics.enl_ratio(invalid, invalid))


# ------------------------------------------------------------------------------------ EPI


def test_epi_identical_is_one() -> None:
    x = _speckled_working_image(np.random.default_rng(7), (64, 64))
    assert metrics.epi(x, x) == pytest.approx(1.0, abs=1e-12)
    # affine rescaling (another lo/hi) does not change it
    assert metrics.epi(0.5 * x + 0.2, x) == pytest.approx(1.0, abs=1e-12)


def test_epi_unrelated_images_near_zero() -> None:
    rng = np.random.default_rng(8)
    a = rng.random((128, 128))
    b = rng.random((128, 128))
    assert abs(metrics.epi(a, b)) < 0.1
    c = _speckled_working_image(rng, (128, 128))
    d = _speckled_working_image(rng, (128, 128))
    assert abs(metrics.epi(c, d)) < 0.1


def test_epi_blurred_copy_between_zero_and_one() -> None:
    x = _speckled_working_image(np.random.default_rng(9), (128, 128))
    value = metrics.epi(ndimage.gaussian_filter(x, 1.0), x)
    assert 0.0 < value < 1.0
    noisy = x + 0.05 * np.random.default_rng(10).standard_normal(x.shape)
    assert metrics.epi(noisy, x) > value  # mild noise keeps more edges than a blur


def test_epi_flat_image_is_nan() -> None:
    flat = np.full((16, 16), 0.3)
    assert math.isnan(metrics.epi(flat, flat))
