"""Image quality metrics for SAR reconstructions, as defined in SPEC.md ("Evaluation protocol").

Conventions
-----------
- ``x`` is the image under test (a reconstruction), ``ref`` the reference (the original). Both are
  already in the units a metric asks for; this module converts nothing between units (that is
  :mod:`sarcodec.preprocess`). In particular:

  * PSNR, SSIM, MS-SSIM and EPI take the ``[0, 1]`` working representation (dB of intensity,
    clipped and scaled with the ORIGINAL's ``preprocessing_params``), so ``data_range=1``.
    PSNR in dB units on dB images is ``psnr(x_db, ref_db, data_range=hi_db - lo_db)``.
  * ENL and the ENL ratio take **linear intensity** (power), never dB or normalized values.

- Single-image functions take 2-D arrays of shape ``(H, W)`` (NumPy arrays, or torch tensors,
  which are detached and copied to the CPU; leading axes of size 1 such as ``(1, 1, H, W)`` are
  dropped) and return Python floats, computed in float64.
- ``batch_psnr`` / ``batch_ssim`` / ``batch_ms_ssim`` take torch tensors of shape ``(N, 1, H, W)``
  and return one value per image, a float32 (or float64 for float64 input) tensor of shape ``(N,)``
  on the input's device. They are differentiable; wrap them in ``torch.no_grad()`` in a
  validation loop and take ``.mean()`` for a batch average.
- Invalid input (shape mismatch, image smaller than the SSIM window, ...) raises ``ValueError``.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # PyTorch is imported by the functions that need it: the CFAR detector (the codec's side layer)
    import torch   # and the NumPy metrics run without it (importing it takes seconds)

__all__ = [
    "CFAR_GUARD",
    "CFAR_THRESHOLD_DB",
    "CFAR_WINDOW",
    "FIDELITY_METRICS",
    "MS_SSIM_MIN_SIZE",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_WIN_SIGMA",
    "SSIM_WIN_SIZE",
    "RegionBox",
    "batch_ms_ssim",
    "batch_psnr",
    "batch_ssim",
    "bias_db",
    "cfar_detections",
    "cfar_f1",
    "enl",
    "enl_ratio",
    "epi",
    "fidelity",
    "hom_bias_db",
    "homogeneous_regions",
    "homogeneous_windows",
    "ms_ssim",
    "peak_db",
    "psnr",
    "regional_enl",
    "rmse_db",
    "seam_jump",
    "seam_mask",
    "ssim",
]

ImageLike: TypeAlias = "NDArray[np.floating] | NDArray[np.integer] | torch.Tensor"

# SSIM as in Wang et al. 2004 and SPEC.md: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WIN_SIZE = 11
SSIM_WIN_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# pytorch_msssim's MS-SSIM (5 scales, 4 halvings) needs min(H, W) > (win - 1) * 2**4 = 160.
MS_SSIM_MIN_SIZE = (SSIM_WIN_SIZE - 1) * 2**4 + 1


# --------------------------------------------------------------------------------------------
# input handling


def _as_image(a: ImageLike, name: str) -> NDArray[np.float64]:
    """Return ``a`` as a 2-D float64 NumPy array, dropping leading axes of size 1."""
    torch_ = sys.modules.get("torch")  # a tensor needs PyTorch imported already
    arr: NDArray[np.float64]
    if torch_ is not None and isinstance(a, torch_.Tensor):
        arr = a.detach().to("cpu", torch_.float64).numpy()
    else:
        arr = np.asarray(a, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D image (H, W), got shape {tuple(np.shape(a))}; "
            "use the batch_* functions for (N, 1, H, W) batches"
        )
    return arr


def _as_pair(x: ImageLike, ref: ImageLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x_arr = _as_image(x, "x")
    ref_arr = _as_image(ref, "ref")
    if x_arr.shape != ref_arr.shape:
        raise ValueError(f"x and ref differ in shape: {x_arr.shape} vs {ref_arr.shape}")
    return x_arr, ref_arr


def _positive_and_masked(values: NDArray[np.float64], mask: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    """Pixels of an intensity image that are finite, > 0 and inside ``mask`` (when given, of the same shape)."""
    valid: NDArray[np.bool_] = np.isfinite(values) & (values > 0)
    if mask is not None:
        mask_arr = np.asarray(mask, dtype=bool)
        if mask_arr.shape != values.shape:
            raise ValueError(f"mask shape {mask_arr.shape} differs from image shape {values.shape}")
        valid &= mask_arr
    return valid


def _check_data_range(data_range: float) -> None:
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")


def _check_batch(x: torch.Tensor, ref: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) tensors, got shape {tuple(x.shape)}")
    if x.shape != ref.shape:
        raise ValueError(f"x and ref differ in shape: {tuple(x.shape)} vs {tuple(ref.shape)}")


def _metric_dtype(t: torch.Tensor) -> torch.dtype:
    # Half precision loses SSIM's small variances (and overflows in x*x sums): float32 at least.
    import torch

    return torch.float64 if t.dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------------------------
# PSNR


def psnr(
    x: ImageLike,
    ref: ImageLike,
    data_range: float = 1.0,
    mask: NDArray[np.bool_] | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB: ``10 * log10(data_range**2 / MSE(x, ref))``.

    Args:
        x, ref: images of the same shape ``(H, W)``; by default the [0, 1] working representation.
        data_range: the span of valid values (1 for the working representation; ``hi - lo`` in dB
            for PSNR "in dB units" on dB images).
        mask: optional boolean array of the same shape, True where pixels count (e.g. the validity
            mask). ``None`` counts every pixel.

    Returns:
        PSNR in dB; ``inf`` when x and ref are identical (on the counted pixels), ``nan`` when the
        mask selects no pixel.
    """
    _check_data_range(data_range)
    x_arr, ref_arr = _as_pair(x, ref)
    diff = x_arr - ref_arr
    if mask is not None:
        mask_arr = np.asarray(mask, dtype=bool)
        if mask_arr.shape != diff.shape:
            raise ValueError(f"mask shape {mask_arr.shape} differs from image shape {diff.shape}")
        diff = diff[mask_arr]
        if diff.size == 0:
            return float("nan")
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


def batch_psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of a batch.

    Args:
        x, ref: tensors of shape ``(N, C, H, W)`` (C = 1 for SAR), [0, 1] working representation.
        data_range: span of valid values.

    Returns:
        Tensor of shape ``(N,)`` (float32, float64 for float64 input): PSNR of each image, its MSE
        taken over all its pixels; ``inf`` for identical images. Average with ``.mean()`` after
        checking for ``inf``, or average the MSEs first if a batch PSNR is wanted.
    """
    _check_data_range(data_range)
    _check_batch(x, ref)
    dtype = _metric_dtype(x)
    diff = x.to(dtype) - ref.to(dtype)
    mse = diff.pow(2).flatten(1).mean(dim=1)
    import torch

    return 10.0 * torch.log10(data_range**2 / mse)


# --------------------------------------------------------------------------------------------
# SSIM and MS-SSIM (pytorch_msssim, configured with the SPEC's constants)


def _ssim_per_image(
    x: torch.Tensor, ref: torch.Tensor, data_range: float, multiscale: bool
) -> torch.Tensor:
    """SSIM or MS-SSIM per image, shape ``(N,)``, computed in float32/64 outside any autocast.

    pytorch_msssim uses a "valid" convolution: the mean runs over the positions where the 11 x 11
    window lies inside the image, which is exactly the (H - 10) x (W - 10) interior that
    scikit-image keeps when it crops its border.
    """
    _check_data_range(data_range)
    _check_batch(x, ref)
    height, width = x.shape[-2:]
    if multiscale:
        if min(height, width) < MS_SSIM_MIN_SIZE:
            raise ValueError(
                f"MS-SSIM (5 scales, window {SSIM_WIN_SIZE}) needs images of at least "
                f"{MS_SSIM_MIN_SIZE} x {MS_SSIM_MIN_SIZE} pixels, got {height} x {width}"
            )
    elif min(height, width) < SSIM_WIN_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WIN_SIZE} x {SSIM_WIN_SIZE} pixels "
            f"(its Gaussian window), got {height} x {width}"
        )
    dtype = _metric_dtype(x)
    # fp16/bf16 autocast would run the window convolutions in half precision: switch it off.
    import pytorch_msssim
    import torch

    with torch.autocast(device_type=x.device.type, enabled=False):
        x_f = x.to(dtype)
        ref_f = ref.to(dtype)
        fn = pytorch_msssim.ms_ssim if multiscale else pytorch_msssim.ssim
        values: torch.Tensor = fn(
            x_f,
            ref_f,
            data_range=data_range,
            size_average=False,
            win_size=SSIM_WIN_SIZE,
            win_sigma=SSIM_WIN_SIGMA,
            K=(SSIM_K1, SSIM_K2),
        )
        return values


def batch_ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of a batch (Wang et al. 2004; Gaussian window 11, sigma 1.5, K = 0.01, 0.03).

    Args:
        x, ref: tensors of shape ``(N, C, H, W)`` with H, W >= 11, [0, 1] working representation.
            Any dtype; computed in float32 (float64 for float64 input) with autocast disabled.
        data_range: span of valid values.

    Returns:
        Tensor of shape ``(N,)``: mean SSIM over each image's valid-window positions (and
        channels), in [-1, 1]; 1 for identical images. Differentiable.
    """
    return _ssim_per_image(x, ref, data_range, multiscale=False)


def batch_ms_ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image MS-SSIM of a batch (Wang et al. 2003, 5 scales, the standard weights).

    Args:
        x, ref: tensors of shape ``(N, C, H, W)`` with H, W >= ``MS_SSIM_MIN_SIZE`` (161).
        data_range: span of valid values.

    Returns:
        Tensor of shape ``(N,)`` with values in [0, 1]; 1 for identical images. Differentiable.
    """
    return _ssim_per_image(x, ref, data_range, multiscale=True)


def ssim(x: ImageLike, ref: ImageLike, data_range: float = 1.0) -> float:
    """SSIM of two 2-D images, as :func:`batch_ssim` (computed in float64).

    Matches ``skimage.metrics.structural_similarity(x, ref, data_range=..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``.

    Args:
        x, ref: images of shape ``(H, W)`` with H, W >= 11, [0, 1] working representation.
        data_range: span of valid values.

    Returns:
        Mean SSIM in [-1, 1]; 1.0 for identical images.
    """
    x_arr, ref_arr = _as_pair(x, ref)
    import torch

    x_t = torch.from_numpy(x_arr)[None, None]
    ref_t = torch.from_numpy(ref_arr)[None, None]
    return float(batch_ssim(x_t, ref_t, data_range).item())


def ms_ssim(x: ImageLike, ref: ImageLike, data_range: float = 1.0) -> float:
    """MS-SSIM of two 2-D images, as :func:`batch_ms_ssim` (computed in float64).

    Args:
        x, ref: images of shape ``(H, W)`` with H, W >= ``MS_SSIM_MIN_SIZE`` (161 pixels).
        data_range: span of valid values.

    Returns:
        MS-SSIM in [0, 1]; 1.0 for identical images.
    """
    x_arr, ref_arr = _as_pair(x, ref)
    import torch

    x_t = torch.from_numpy(x_arr)[None, None]
    ref_t = torch.from_numpy(ref_arr)[None, None]
    return float(batch_ms_ssim(x_t, ref_t, data_range).item())


# --------------------------------------------------------------------------------------------
# ENL and the ENL ratio (linear intensity)


class RegionBox(NamedTuple):
    """A rectangular region in pixel indices, half-open: rows ``[top, bottom)``, cols ``[left, right)``.

    Slice with ``image[box.slices]``; draw with ``matplotlib.patches.Rectangle((box.left - 0.5,
    box.top - 0.5), box.width, box.height)`` on an ``imshow`` of the image.
    """

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def enl(intensity: ImageLike, mask: NDArray[np.bool_] | None = None) -> float:
    """Equivalent number of looks, ``mean**2 / variance``, of linear intensity.

    Meaningful only on a homogeneous region (constant underlying reflectivity), where L-look
    speckle gives ENL close to L. The variance is the population variance (ddof = 0).

    Args:
        intensity: linear intensity (power), 2-D ``(H, W)``; not dB, not amplitude.
        mask: optional boolean array of the same shape, True where pixels count. Non-finite pixels
            are always left out.

    Returns:
        ENL (dimensionless, > 0); ``inf`` for a constant region; ``nan`` if fewer than 2 pixels count.
    """
    values = _as_image(intensity, "intensity")
    keep = np.isfinite(values)
    if mask is not None:
        mask_arr = np.asarray(mask, dtype=bool)
        if mask_arr.shape != values.shape:
            raise ValueError(f"mask shape {mask_arr.shape} differs from image shape {values.shape}")
        keep &= mask_arr
    return _enl_of_values(values[keep])


def _enl_of_values(values: NDArray[np.float64]) -> float:
    if values.size < 2:
        return float("nan")
    mean = float(np.mean(values))
    var = float(np.var(values))
    if var == 0.0:
        return float("inf") if mean != 0.0 else float("nan")
    return mean * mean / var


def homogeneous_regions(
    intensity: ImageLike,
    block_size: int = 32,
    fraction: float = 0.1,
    min_regions: int = 4,
    sub_block: int = 8,
    mask: NDArray[np.bool_] | None = None,
) -> list[RegionBox]:
    """Select the most homogeneous square blocks of an ORIGINAL intensity image.

    Rule:
      1. Tile the image into non-overlapping ``block_size`` x ``block_size`` blocks from the top-left
         corner; partial blocks at the right/bottom edges are dropped.
      2. Drop every block holding an invalid pixel: ``<= 0``, NaN, Inf, or False in ``mask``.
      3. Score each remaining block by the standard deviation of the means of ``ln(intensity)``
         over its ``sub_block`` x ``sub_block`` sub-blocks (for 32/8: 16 means of 64 pixels).
         Speckle averages out in the local means, so the score measures variation of the
         underlying reflectivity (edges, gradients, texture) rather than speckle; the log makes
         it independent of the intensity scale.
      4. Keep the ``max(min_regions, ceil(fraction * n_valid))`` lowest-scoring blocks (all of them
         if fewer are valid), ordered from most to least homogeneous.

    Why not the pixel CV (std / mean of the pixels): picking the blocks with the lowest pixel CV
    picks the blocks whose speckle happens to have the smallest sample variance, which inflates
    ENL(I) (by about 10 % for 1-look speckle in 32 x 32 blocks at ``fraction=0.1``) and biases
    the ENL ratio low: two independent speckle realizations of the same flat scene would score
    about 0.92. With the log sub-block means they score within about 1 % of 1 for 1 to 4 looks.

    Args:
        intensity: linear intensity (power) of the original, 2-D ``(H, W)``.
        block_size: side of the square blocks, pixels; a multiple of ``sub_block``.
        fraction: share of the valid blocks to keep, in (0, 1].
        min_regions: keep at least this many blocks (when that many are valid).
        sub_block: side of the sub-blocks whose log-means score a block, pixels.
        mask: optional boolean validity mask (True = valid) of the same shape.

    Returns:
        The selected blocks as :class:`RegionBox`; empty if no block qualifies (image smaller than
        a block, or every block holds an invalid pixel).
    """
    values = _as_image(intensity, "intensity")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    if sub_block < 1 or block_size % sub_block != 0 or block_size // sub_block < 2:
        raise ValueError(
            f"sub_block ({sub_block}) must divide block_size ({block_size}) into at least 2 x 2 parts"
        )
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if min_regions < 1:
        raise ValueError(f"min_regions must be at least 1, got {min_regions}")

    valid = _positive_and_masked(values, mask)

    n_rows, n_cols = values.shape[0] // block_size, values.shape[1] // block_size
    if n_rows == 0 or n_cols == 0:
        return []
    crop = (slice(0, n_rows * block_size), slice(0, n_cols * block_size))
    # blocks[r, c, i, j]: pixel (i, j) of block (r, c)
    blocks = (
        values[crop].reshape(n_rows, block_size, n_cols, block_size).transpose(0, 2, 1, 3)
    )
    block_valid: NDArray[np.bool_] = np.asarray(
        valid[crop].reshape(n_rows, block_size, n_cols, block_size).all(axis=(1, 3))
    )
    if not block_valid.any():
        return []

    n_sub = block_size // sub_block
    # log of intensity: speckle is multiplicative, and the log damps the bright speckle outliers
    # that dominate a block's intensity variance (see "Why" in the docstring)
    log_blocks = np.log(np.where(block_valid[:, :, None, None], blocks, 1.0))
    sub_means = log_blocks.reshape(n_rows, n_cols, n_sub, sub_block, n_sub, sub_block).mean(axis=(3, 5))
    score = np.where(block_valid, sub_means.std(axis=(2, 3)), np.inf)

    n_valid = int(block_valid.sum())
    n_keep = min(n_valid, max(min_regions, math.ceil(fraction * n_valid)))
    # stable sort: ties keep raster order, so the selection is deterministic
    order = np.argsort(score, axis=None, kind="stable")[:n_keep]
    boxes = []
    for flat in order:
        r, c = divmod(int(flat), n_cols)
        boxes.append(
            RegionBox(r * block_size, c * block_size, (r + 1) * block_size, (c + 1) * block_size)
        )
    return boxes


def regional_enl(intensity: ImageLike, regions: list[RegionBox]) -> NDArray[np.float64]:
    """ENL (``mean**2 / variance``) of linear intensity in each region, shape ``(len(regions),)``.

    Non-finite pixels inside a region are left out; see :func:`enl` for ``inf``/``nan``.
    """
    values = _as_image(intensity, "intensity")
    out = np.empty(len(regions), dtype=np.float64)
    for k, box in enumerate(regions):
        if box.bottom > values.shape[0] or box.right > values.shape[1]:
            raise ValueError(f"region {box} lies outside the image of shape {values.shape}")
        patch = values[box.slices]
        out[k] = _enl_of_values(patch[np.isfinite(patch)])
    return out


def enl_ratio(
    recon_intensity: ImageLike,
    orig_intensity: ImageLike,
    block_size: int = 32,
    fraction: float = 0.1,
    min_regions: int = 4,
    sub_block: int = 8,
    mask: NDArray[np.bool_] | None = None,
    regions: list[RegionBox] | None = None,
) -> float:
    """ENL ratio ``ENL(R) / ENL(I)`` on linear intensity over homogeneous regions of the original.

    The regions are chosen on the ORIGINAL only (:func:`homogeneous_regions`, same keyword
    arguments) and the same regions are used for the reconstruction. ENL(I) and ENL(R) are each the
    mean over the regions of the per-region ENL; the result is their ratio. Above 1: speckle was
    smoothed; below 1: amplified.

    Args:
        recon_intensity: reconstruction R, linear intensity, ``(H, W)``.
        orig_intensity: original I, linear intensity, same shape.
        block_size, fraction, min_regions, sub_block, mask: region selection, see
            :func:`homogeneous_regions`.
        regions: precomputed regions (e.g. to share them across codecs); overrides the selection.

    Returns:
        The ratio; ``nan`` if no region qualifies (or ENL is undefined in every region); ``inf``
        if the reconstruction is constant in a region.
    """
    recon_arr, orig_arr = _as_pair(recon_intensity, orig_intensity)
    if regions is None:
        regions = homogeneous_regions(
            orig_arr,
            block_size=block_size,
            fraction=fraction,
            min_regions=min_regions,
            sub_block=sub_block,
            mask=mask,
        )
    if not regions:
        return float("nan")
    enl_orig = regional_enl(orig_arr, regions)
    enl_recon = regional_enl(recon_arr, regions)
    usable = ~(np.isnan(enl_orig) | np.isnan(enl_recon))
    if not usable.any():
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):  # constant regions: ENL inf, a ratio of inf or nan
        return float(np.mean(enl_recon[usable]) / np.mean(enl_orig[usable]))


# --------------------------------------------------------------------------------------------
# EPI


def _laplacian_valid(image: NDArray[np.float64]) -> NDArray[np.float64]:
    """3 x 3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] on the interior, shape (H - 2, W - 2)."""
    return (
        image[:-2, 1:-1]
        + image[2:, 1:-1]
        + image[1:-1, :-2]
        + image[1:-1, 2:]
        - 4.0 * image[1:-1, 1:-1]
    )


def epi(x: ImageLike, ref: ImageLike) -> float:
    """Edge preservation index (Sattar et al. 1997): Pearson correlation of Laplacian-filtered images.

    ``EPI = sum(dLx * dLref) / sqrt(sum(dLx**2) * sum(dLref**2))`` where ``Lx`` is the 3 x 3
    Laplacian ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` of x and ``dLx = Lx - mean(Lx)``. The Laplacian is
    evaluated only where the kernel fits inside the image ("valid": the 1-pixel border is dropped),
    so no border rule enters the value.

    Args:
        x, ref: images of shape ``(H, W)``, H, W >= 3; by default the [0, 1] working representation
            (the SPEC's x and y). EPI is invariant to affine rescaling of either image, so the
            normalization's lo/hi do not matter, but the dB-vs-linear choice does.

    Returns:
        EPI in [-1, 1]: 1 for identical images, near 0 for unrelated ones; ``nan`` if either
        Laplacian is constant (e.g. a flat or linear-ramp image).
    """
    x_arr, ref_arr = _as_pair(x, ref)
    if min(x_arr.shape) < 3:
        raise ValueError(f"EPI needs images of at least 3 x 3 pixels, got {x_arr.shape}")
    lap_x = _laplacian_valid(x_arr)
    lap_ref = _laplacian_valid(ref_arr)
    lap_x -= lap_x.mean()
    lap_ref -= lap_ref.mean()
    denom = math.sqrt(float(np.sum(lap_x * lap_x)) * float(np.sum(lap_ref * lap_ref)))
    if denom == 0.0:
        return float("nan")
    return float(np.sum(lap_x * lap_ref)) / denom


# --------------------------------------------------------------------------------------------
# Original-unit fidelity (SPEC "Evaluation protocol"): linear intensity, valid pixels, no clipping
#
# ``x`` is the reconstruction's and ``ref`` the original's linear intensity, (H, W); ``valid`` the original's
# validity mask (default: finite and > 0 in ``ref``). Reconstruction values that are not finite or <= 0 where
# the original is valid count as the original's smallest valid intensity (a dB value must exist).

CFAR_THRESHOLD_DB = 12.0
CFAR_WINDOW = 31
CFAR_GUARD = 9
HOM_WINDOW = 9
HOM_FRACTION = 0.1
PEAK_PERCENTILE = 99.9
FIDELITY_METRICS = ("rmse_db", "bias_db", "hom_bias_db", "peak_db", "cfar_f1")


def _intensity_pair(
    x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    x_arr, ref_arr = _as_pair(x, ref)
    ok = _positive_and_masked(ref_arr, valid)
    if not ok.any():
        raise ValueError("no valid pixels to compare")
    floor = float(ref_arr[ok].min())
    x_arr = np.where(np.isfinite(x_arr) & (x_arr > 0), x_arr, floor)
    return x_arr, np.where(ok, ref_arr, 0.0), ok


def _db(intensity: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(intensity)


def rmse_db(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None) -> float:
    """RMSE (dB) of 10*log10 intensity over the valid pixels, no clipping."""
    x_arr, ref_arr, ok = _intensity_pair(x, ref, valid)
    err = _db(x_arr[ok]) - _db(ref_arr[ok])
    return float(np.sqrt(np.mean(err * err)))


def bias_db(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None) -> float:
    """Scene bias (dB): 10*log10(mean x / mean ref) over the valid pixels. 0 is ideal; < 0 means darker."""
    x_arr, ref_arr, ok = _intensity_pair(x, ref, valid)
    return float(10.0 * np.log10(x_arr[ok].sum() / ref_arr[ok].sum()))


def _mean3(intensity: NDArray[np.float64], ok: NDArray[np.bool_]) -> NDArray[np.float64]:
    """3 x 3 mean of the valid pixels around each pixel (invalid neighbours and the outside ignored)."""
    from scipy import ndimage

    ones = np.ones(3)
    weighted = np.where(ok, intensity, 0.0)
    sums = ndimage.correlate1d(ndimage.correlate1d(weighted, ones, 0, mode="constant"), ones, 1, mode="constant")
    counts = ndimage.correlate1d(ndimage.correlate1d(ok.astype(np.float64), ones, 0, mode="constant"), ones, 1,
                                 mode="constant")
    result: NDArray[np.float64] = sums / np.maximum(counts, 1.0)
    return result


def homogeneous_windows(
    ref: ImageLike, valid: NDArray[np.bool_] | None = None, window: int = HOM_WINDOW, fraction: float = HOM_FRACTION
) -> list[tuple[int, int]]:
    """Top-left corners of the most homogeneous ``fraction`` (at least one) of the non-overlapping
    ``window`` x ``window`` windows of ``ref`` (a grid from the top-left; windows with an invalid pixel are
    skipped), ranked by the coefficient of variation (std / mean) of the 3 x 3-mean-filtered intensity."""
    ref_arr, _, ok = _intensity_pair(ref, ref, valid)
    smooth = _mean3(np.where(ok, ref_arr, 0.0), ok)
    h, w = ref_arr.shape
    scored = []
    for r in range(0, h - window + 1, window):
        for c in range(0, w - window + 1, window):
            if not ok[r : r + window, c : c + window].all():
                continue
            block = smooth[r : r + window, c : c + window]
            scored.append((float(block.std() / block.mean()), r, c))
    scored.sort()
    n = max(1, math.ceil(fraction * len(scored))) if scored else 0
    return [(r, c) for _, r, c in scored[:n]]


def hom_bias_db(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None,
                window: int = HOM_WINDOW, fraction: float = HOM_FRACTION) -> float:
    """Bias (dB) over the most homogeneous windows of the original (:func:`homogeneous_windows`):
    10*log10(sum x / sum ref) over their pixels; NaN when the image has no fully valid window."""
    x_arr, ref_arr, ok = _intensity_pair(x, ref, valid)
    corners = homogeneous_windows(ref_arr, ok, window, fraction)
    if not corners:
        return float("nan")
    sx = sum(float(x_arr[r : r + window, c : c + window].sum()) for r, c in corners)
    sr = sum(float(ref_arr[r : r + window, c : c + window].sum()) for r, c in corners)
    return float(10.0 * np.log10(sx / sr))


def peak_db(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None,
            percentile: float = PEAK_PERCENTILE) -> float:
    """Point-target error (dB): median |dB error| over the valid pixels at or above the ``percentile``-th
    percentile of the original's valid intensity (its brightest 0.1 % by default)."""
    x_arr, ref_arr, ok = _intensity_pair(x, ref, valid)
    level = np.percentile(ref_arr[ok], percentile)
    bright = ok & (ref_arr >= level)
    return float(np.median(np.abs(_db(x_arr[bright]) - _db(ref_arr[bright]))))


def _window_counts(shape: tuple[int, ...], size: int) -> NDArray[np.float64]:
    """Pixels of an image of ``shape`` inside each pixel's ``size`` x ``size`` window, placed as scipy's filters
    place it (``size // 2`` before the pixel): the product of its row and column extents, no filtering."""
    rows, cols = (np.minimum(np.arange(n) + size - 1 - size // 2, n - 1) - np.maximum(np.arange(n) - size // 2, 0) + 1
                  for n in shape)
    return np.outer(rows, cols).astype(np.float64)


def cfar_detections(intensity: ImageLike, valid: NDArray[np.bool_] | None = None,
                    threshold_db: float = CFAR_THRESHOLD_DB, window: int = CFAR_WINDOW,
                    guard: int = CFAR_GUARD) -> NDArray[np.bool_]:
    """Cell-averaging CFAR: a valid pixel is a detection when it exceeds the mean of the valid pixels of its
    ``window`` x ``window`` neighbourhood minus the ``guard`` x ``guard`` centre by ``threshold_db``.
    Neighbourhoods are cut at the image edge (only pixels inside count)."""
    from scipy import ndimage

    image = _as_image(intensity, "intensity")
    ok = _positive_and_masked(image, valid)
    if not ok.any():
        raise ValueError("no valid pixels to compare")
    weighted = np.where(ok, image, 0.0)  # the intensity at valid pixels, 0 elsewhere

    def box(values: NDArray[np.float64], size: int) -> NDArray[np.float64]:
        # scipy's running means in float64, times the size: sums within ~1e-13 of the direct ones even with a
        # 1e9 target beside 1e-3 sea (tested), at a third of the time of correlating with ones (the encoder runs
        # this on every tile, twice)
        out: NDArray[np.float64] = ndimage.uniform_filter1d(
            ndimage.uniform_filter1d(values, size, 0, mode="constant"), size, 1, mode="constant") * float(size * size)
        return out

    def count(size: int) -> NDArray[np.float64]:  # of valid pixels in each window
        return _window_counts(ok.shape, size) if all_ok else box(ok.astype(np.float64), size)

    all_ok = bool(ok.all())
    ring_sum = box(weighted, window) - box(weighted, guard)
    ring_count = np.rint(count(window) - count(guard))
    ring_mean = ring_sum / np.maximum(ring_count, 1.0)
    result: NDArray[np.bool_] = ok & (ring_count > 0) & (weighted > ring_mean * 10.0 ** (threshold_db / 10.0))
    return result


def cfar_f1(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None, tolerance: int = 1) -> float:
    """F1 of the CA-CFAR detections in ``x`` against those in ``ref`` (:func:`cfar_detections`, valid pixels of
    the original), a detection matching when the other image has one within ``tolerance`` pixels (Chebyshev).
    1.0 when neither image has a detection."""
    from scipy import ndimage

    x_arr, ref_arr, ok = _intensity_pair(x, ref, valid)
    det_x = cfar_detections(x_arr, ok)
    det_ref = cfar_detections(ref_arr, ok)
    if not det_x.any() and not det_ref.any():
        return 1.0
    if not det_x.any() or not det_ref.any():
        return 0.0
    structure = np.ones((2 * tolerance + 1, 2 * tolerance + 1), dtype=bool)
    precision = float((det_x & ndimage.binary_dilation(det_ref, structure)).sum() / det_x.sum())
    recall = float((det_ref & ndimage.binary_dilation(det_x, structure)).sum() / det_ref.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def fidelity(x: ImageLike, ref: ImageLike, valid: NDArray[np.bool_] | None = None) -> dict[str, float]:
    """All original-unit metrics (:data:`FIDELITY_METRICS`) of reconstruction ``x`` against ``ref``."""
    return {
        "rmse_db": rmse_db(x, ref, valid),
        "bias_db": bias_db(x, ref, valid),
        "hom_bias_db": hom_bias_db(x, ref, valid),
        "peak_db": peak_db(x, ref, valid),
        "cfar_f1": cfar_f1(x, ref, valid),
    }


def seam_mask(shape: tuple[int, int], tile: int, width: int = 8) -> NDArray[np.bool_]:
    """The pixels of a ``shape`` raster within ``width`` pixels of a seam of its ``tile`` px grid (the rows and
    columns k = tile, 2 tile, ... and the ``width`` before each): where tiles meet and a decoder blends them."""
    mask = np.zeros(shape, bool)
    for k in range(tile, max(shape), tile):
        if k < shape[0]:
            mask[max(0, k - width) : k + width, :] = True
        if k < shape[1]:
            mask[:, max(0, k - width) : k + width] = True
    return mask


def seam_jump(x: ImageLike, valid: NDArray[np.bool_], tile: int) -> float:
    """How much more a tiled decode ``x`` (any units; x_norm or dB) changes across its tile seams than across any
    other line: the mean |x[k] - x[k-1]| over the rows and columns k = tile, 2 tile, ... over the same mean across
    every other pair of neighbouring rows and columns, pairs of ``valid`` pixels only. About 1 when the seams are
    no more visible than any other line (a decode is smooth, so a seam shows as a jump where the original has none;
    the one-tile decode of the same image gives the reference), above 1 when the decode steps at them. Not a SPEC
    metric: it measures the tiling (``results/codec/overlap``, ``results/codec/seams``)."""
    image = _as_image(x, "x")
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != image.shape:
        raise ValueError(f"valid mask shape {valid.shape} != image shape {image.shape}")
    if tile < 1 or tile >= max(image.shape):
        raise ValueError(f"tile {tile} leaves no seam in a {image.shape[0]} x {image.shape[1]} image")
    seams, lines = [], []
    for d, v in ((image, valid), (image.T, valid.T)):
        jumps = np.abs(np.diff(d, axis=1))
        ok = v[:, 1:] & v[:, :-1]  # both pixels of a pair valid
        seam = np.zeros(jumps.shape[1], bool)
        seam[np.arange(tile, d.shape[1], tile) - 1] = True
        seams.append(jumps[:, seam][ok[:, seam]])
        lines.append(jumps[:, ~seam][ok[:, ~seam]])
    at_seams = [s.mean() for s in seams if s.size]
    elsewhere = [s.mean() for s in lines if s.size]
    if not at_seams or not elsewhere or np.mean(elsewhere) == 0:
        raise ValueError("no pair of valid pixels across a seam, or a constant image: no seam jump to measure")
    return float(np.mean(at_seams) / np.mean(elsewhere))
