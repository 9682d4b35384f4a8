"""Side information of a tile (``.sarc`` format version 2): pixels outside the clip range, and the radiometric
correction map.

The networks see dB clipped to ``[db_lo, db_hi]`` (the 0.1/99.9 percentiles by default). Two things are lost on
that path and are carried here instead, per tile core:

- **Outliers and point targets.** Valid pixels at or above ``db_hi`` (ships, corner reflectors, urban double
  bounce; the clip would saturate them), pixels that stand out from their background like point targets (CA-CFAR
  detections at ``TARGET_CONTRAST_DB``: a target inside the clip range is still flattened by a smoothing codec),
  and pixels darker than ``db_lo - step_lo / 2`` are stored sparsely: positions (gaps in raster order) and dB
  values, quantized with ``step_hi`` (0.5 dB, from ``db_lo`` up) or ``step_lo`` (1 dB, from ``db_lo`` down).
  Decoded, each is within half a step of its original dB value; every other valid pixel is inside the clip range
  (or within half a dark step of it), so the decoded image covers the original's whole range. The encoder gives
  the network a smooth fill at these pixels instead of spikes, so they cost the network no bits.
- **Radiometric correction.** A dB-domain reconstruction is close to a geometric mean and biases linear
  intensity low where the codec smooths speckle (up to -2.5 dB on single-look data). The encoder knows the
  original, so it measures, per block of ``BIAS_BLOCK`` x ``BIAS_BLOCK`` pixels of the tile core, the dB
  correction that makes the decoded block's mean intensity equal the original's (outliers excluded: they are
  restored separately), and stores it in steps of ``BIAS_STEP_DB``. The decoder interpolates the block values
  bilinearly inside the tile core and adds them to the decoded dB; the encoder fits the block values through the
  same interpolation (a few fixed-point steps), so block means are preserved after interpolation too. In files of
  more than one tile (format 6) the decoder extends each tile's correction over its overlap and blends the
  corrected tiles in linear intensity (``sarcodec.io.sarc.BLEND_VERSION``).

- **Speckle** (``compress --speckle``, format 5 or 6, optional). A codec trained on squared error smooths
  speckle: decoded homogeneous regions have several times the original's equivalent number of looks at low rates.
  As video codecs synthesize film grain, the encoder measures, per block of the correction's grid, the relative
  intensity variance the decoded image lacks (:func:`fit_speckle`: ``(1 + CV2_original) / (1 + CV2_decoded) - 1``
  over the block's inliers) and stores it in steps of 1/4 octave; the decoder multiplies the decoded intensity by
  unit-mean gamma noise of that variance (:func:`speckle_db`, interpolated like the correction, seeded by the tile's
  own entropy-coded words, normalized per block so that the block's mean intensity stays the decoded one), so the
  image keeps the original's speckle statistics at a cost in squared error. The encoder fits the correction and
  looks for false point targets with that noise.

Both are written as byte planes of fixed-width integers and compressed with LZMA2 (Python's ``lzma``, raw
stream) into one blob per tile. Decoding validates every count against the tile size and decompresses with a hard
output cap, so a hostile blob cannot allocate more than a few bytes per pixel of the tile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import CorruptFileError
from sarcodec.io import packing
from sarcodec.preprocess import db_to_intensity

__all__ = [
    "BIAS_BLOCK",
    "BIAS_STEP_DB",
    "STEP_HI_DB",
    "STEP_LO_DB",
    "TileSide",
    "add_targets",
    "decode_side",
    "encode_side",
    "find_outliers",
    "fit_correction",
    "fit_speckle",
    "interpolate_correction",
    "network_pixels",
    "reconstruct_db",
    "speckle_db",
    "speckle_seed",
]

#: Quantization steps (dB) of pixels above ``db_hi`` and below ``db_lo`` (format version 2 defaults; the header
#: stores the values a file was written with).
STEP_HI_DB = 0.5
STEP_LO_DB = 1.0
#: Local contrast (dB over the CA-CFAR background) from which pixels inside the clip range are kept as point targets.
TARGET_CONTRAST_DB = 11.0
#: Block size (pixels) and quantization step (dB) of the radiometric correction map.
BIAS_BLOCK = 32
BIAS_STEP_DB = 0.01
#: Largest correction stored (dB); more than any codec level needs (single-look speckle smoothed flat: 2.5 dB).
_MAX_CORRECTION_DB = 20.0
_LN10_10 = math.log(10.0) / 10.0  # 10 ** (db / 10) == exp(db * _LN10_10)
_FIT_ITERATIONS = 16  # at most; the fit stops once no block's residual is 0.004 dB
#: Over-relaxation of the fit: the bilinear spread damps a block's own step (its slowest, checkerboard mode by ~4x),
#: so steps of 1.5x the residual converge in ~7 iterations instead of ~12, as close to the fixed point (tried on
#: synthetic 1024 px tiles: 1.0 -> 11-12 iterations, 1.5 -> 7-8; stable below 2).
_FIT_RELAXATION = 1.5
#: Speckle synthesis: a block's stored ``q`` means relative variance 0 (q = 0) or ``2 ** ((q - 32) / 4)``, at most 1
#: (q = 32: one-look speckle over a flat decode; a larger gap is texture, which independent noise would render as
#: spikes, whose false-target fixes cost bytes: capped at 2, a dev image's quality-1 file grew by 218 bytes, at 1 by 126);
#: variances below 2 ** -7.75 are not stored. Quarter-octave steps: the variance within ~9 % (1/8-octave steps:
#: 50 bytes against 42 for a 256^2 dev image's map).
_SPECKLE_ZERO_Q, _SPECKLE_MAX_Q, _SPECKLE_OCTAVE = 32, 32, 4
#: Fewest inlier pixels of a block whose variance is measured (fewer: no speckle added there).
_SPECKLE_MIN_PIXELS = 16
#: Largest quantized outlier value accepted from a file (400 dB at the finest step: far beyond any raster).
_MAX_OUTLIER_STEPS = 1600

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating[Any]]


@dataclass
class TileSide:
    """Side information of one tile core of shape ``(h, w)``: flat indices of the bright and dark outliers with
    their quantized dB (bright: steps of ``step_hi`` above ``db_lo``, dark: steps of ``step_lo`` below it), and the
    correction map (int, units of ``BIAS_STEP_DB``) or None."""

    above_index: IntArray
    above_q: IntArray
    below_index: IntArray
    below_q: IntArray
    correction: IntArray | None = None
    speckle: IntArray | None = None  # the quantized speckle variance per block (format 5), or None

    def outliers(self, db_lo: float, step_lo: float, step_hi: float) -> tuple[IntArray, FloatArray]:
        """Flat indices of the outliers (bright, then dark) and their decoded dB."""
        return (np.concatenate([self.above_index, self.below_index]),
                np.concatenate([db_lo + self.above_q * step_hi, db_lo - self.below_q * step_lo]))

    def stored(self, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """The pixels the side layer stores (its outliers and targets), as a mask of a tile core of ``shape``."""
        mask = np.zeros(shape[0] * shape[1], dtype=bool)
        mask[self.above_index] = True
        mask[self.below_index] = True
        return mask.reshape(shape)

    def outlier_db(self, shape: tuple[int, int], db_lo: float, db_hi: float, step_lo: float,
                   step_hi: float) -> FloatArray:
        """Per-pixel dB of the outliers (NaN elsewhere), shape ``shape``."""
        out = np.full(shape[0] * shape[1], np.nan)
        index, values = self.outliers(db_lo, step_lo, step_hi)
        out[index] = values
        return out.reshape(shape)

    def correction_db(self, shape: tuple[int, int], bias_step: float = BIAS_STEP_DB,
                      block: int = BIAS_BLOCK) -> FloatArray | None:
        """The per-pixel correction (dB) over a tile core of ``shape`` that the decoder adds, or None without a
        correction map."""
        if self.correction is None:
            return None
        return interpolate_correction(self.correction * bias_step, shape, block)


def correction_grid(shape: tuple[int, int], block: int = BIAS_BLOCK) -> tuple[int, int]:
    """Number of correction blocks (rows, cols) over a tile core of ``shape`` (the last ones may be partial)."""
    return math.ceil(shape[0] / block), math.ceil(shape[1] / block)


def find_outliers(db: FloatArray, valid: npt.NDArray[np.bool_], db_lo: float, db_hi: float, step_lo: float,
                  step_hi: float, targets: npt.NDArray[np.bool_] | None = None) -> TileSide:
    """The valid pixels of ``db`` (a tile core) at or above ``db_hi`` or marked in ``targets`` (point targets by
    local contrast, see :func:`point_targets`), and those below ``db_lo - step_lo/2``, quantized:
    bright ones as ``round((db - db_lo) / step_hi)``, dark ones as ``round((db_lo - db) / step_lo)``."""
    flat = db.ravel()
    ok = valid.ravel() & np.isfinite(flat)
    bright = flat >= db_hi  # the clip saturates them: the network alone would return them smoothed
    if targets is not None:
        bright |= targets.ravel() & (flat > db_lo)
    above = np.flatnonzero(ok & bright)
    below = np.flatnonzero(ok & (flat < db_lo - step_lo / 2))
    above_q = np.minimum(np.rint((flat[above] - db_lo) / step_hi), _MAX_OUTLIER_STEPS).astype(np.int64)
    below_q = np.minimum(np.rint((db_lo - flat[below]) / step_lo), _MAX_OUTLIER_STEPS).astype(np.int64)
    return TileSide(above, above_q, below, below_q)


def side_mask(db: FloatArray, valid: npt.NDArray[np.bool_], db_lo: float, db_hi: float, step_lo: float,
              step_hi: float, targets: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """The pixels :func:`find_outliers` selects, as a mask of ``db``'s shape."""
    return find_outliers(db, valid, db_lo, db_hi, step_lo, step_hi, targets).stored(db.shape)


def point_targets(intensity: FloatArray, valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels that stand out from their background like point targets: CA-CFAR detections (SPEC metric
    definition: 31 x 31 window, 9 x 9 guard) at ``TARGET_CONTRAST_DB`` (a little below the metric's 12 dB, so
    that targets near the threshold keep their side of it)."""
    from sarcodec.metrics import cfar_detections

    if not valid.any():
        return np.zeros(valid.shape, dtype=bool)
    return cfar_detections(np.where(valid, intensity, 0.0), valid, threshold_db=TARGET_CONTRAST_DB)


def reconstruct_db(decoded_db: FloatArray, side: TileSide, db_lo: float, step_lo: float, step_hi: float,
                   bias_step: float = BIAS_STEP_DB, block: int = BIAS_BLOCK) -> FloatArray:
    """The dB a decoder gives a tile core from the network's decoded dB there and the side layer ``side`` (with
    its correction): the interpolated correction added, the outliers' values put in (as ``lossy`` decodes)."""
    db = np.array(decoded_db, dtype=np.float64)
    correction = side.correction_db(db.shape, bias_step, block)
    if correction is not None:
        db += correction.astype(np.float32)  # the decoder keeps it in float32
    index, values = side.outliers(db_lo, step_lo, step_hi)
    db.reshape(-1)[index] = values
    return db


def add_targets(side: TileSide, db: FloatArray, pixels: npt.NDArray[np.bool_], db_lo: float,
                step_hi: float) -> TileSide:
    """``side`` with the ``pixels`` of a tile core whose dB ``db`` lies above ``db_lo`` added to its bright
    outliers (quantized as :func:`find_outliers` quantizes them; pixels it already holds are left as they are).
    Returns a new TileSide without a correction map (it is fitted again after)."""
    flat = db.ravel()
    new = np.setdiff1d(np.flatnonzero(pixels.ravel() & np.isfinite(flat) & (flat > db_lo)),
                       np.concatenate([side.above_index, side.below_index]), assume_unique=True)
    if not new.size:
        return dataclasses.replace(side, correction=None)
    q = np.minimum(np.rint((flat[new] - db_lo) / step_hi), _MAX_OUTLIER_STEPS).astype(np.int64)
    index = np.concatenate([side.above_index, new])
    order = np.argsort(index, kind="stable")
    return TileSide(index[order], np.concatenate([side.above_q, q])[order], side.below_index, side.below_q)


def _axis_weights(n: int, block: int) -> tuple[IntArray, IntArray, FloatArray]:
    """For ``n`` pixels along one axis: the two block indices each pixel interpolates between and the weight of
    the second (bilinear between block centres, constant beyond the first and last centre)."""
    blocks = math.ceil(n / block)
    if blocks == 1:
        return np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)
    starts = np.arange(blocks) * block
    centres = (starts + np.minimum(starts + block, n)) / 2  # a partial last block's centre is its pixels' middle
    pos = np.arange(n) + 0.5
    hi = np.clip(np.searchsorted(centres, pos, side="right"), 1, blocks - 1)
    lo = hi - 1
    t = np.clip((pos - centres[lo]) / (centres[hi] - centres[lo]), 0.0, 1.0)
    return lo.astype(np.int64), hi.astype(np.int64), t


def interpolate_correction(blocks_db: FloatArray, shape: tuple[int, int], block: int = BIAS_BLOCK) -> FloatArray:
    """Per-pixel correction (dB) over a tile core of ``shape`` from its block values (bilinear between block
    centres, constant at the edges)."""
    r0, r1, tr = _axis_weights(shape[0], block)
    c0, c1, tc = _axis_weights(shape[1], block)
    tr, tc = tr.astype(blocks_db.dtype, copy=False), tc.astype(blocks_db.dtype, copy=False)  # float32 stays float32
    rows = blocks_db[r0] * (1 - tr)[:, None] + blocks_db[r1] * tr[:, None]
    # np.take along the columns keeps the result in C order (``rows[:, c0]`` is Fortran-ordered, and every
    # elementwise step after it with a C-ordered map then ran strided: ~25x slower in the encoder's fit); the
    # products and the sum in place: the same values, half the time (two full-size buffers instead of five)
    out: FloatArray = np.take(rows, c0, axis=1)
    out *= (1 - tc)[None, :]
    right = np.take(rows, c1, axis=1)
    right *= tc[None, :]
    out += right
    return out


def _block_sums(values: FloatArray, block: int) -> FloatArray:
    """Sums over the ``block`` x ``block`` blocks of ``values`` (partial blocks at the far edges), returned as float64:
    each row's runs of ``block`` values are summed in the array's dtype (float32 for the decoded maps: ~2x faster,
    within float32 rounding of float64 sums), then the rows of a block in float64."""
    h, w = values.shape
    gh, gw = correction_grid((h, w), block)
    if (h, w) != (gh * block, gw * block):
        padded = np.zeros((gh * block, gw * block), values.dtype)
        padded[:h, :w] = values
        values = padded
    rows = values.reshape(gh * block, gw, block).sum(axis=2)
    sums: FloatArray = rows.reshape(gh, block, gw).sum(axis=1, dtype=np.float64)
    return sums


def fit_correction(orig_intensity: FloatArray, decoded_db: FloatArray, use: npt.NDArray[np.bool_],
                   block: int = BIAS_BLOCK) -> IntArray:
    """Quantized block corrections (units of ``BIAS_STEP_DB``) that make each block's mean decoded intensity over
    the pixels ``use`` equal the original's, after :func:`interpolate_correction` (fixed-point refinement).

    Blocks without any pixel in ``use`` get the mean correction of the others (0 when there are none)."""
    shape = decoded_db.shape
    target = _block_sums(np.where(use, orig_intensity, 0.0), block)
    has = target > 0  # blocks with at least one pixel in ``use`` (intensities are > 0)
    # float32 per pixel (the encoder alone runs this; sums are float64): ~2x faster, same blocks within 0.001 dB
    decoded_intensity = np.where(use, np.exp(np.where(use, decoded_db, 0.0).astype(np.float32) * np.float32(_LN10_10)),
                                 np.float32(0.0))
    blocks = np.zeros(correction_grid(shape, block))
    if not has.any():
        return blocks.astype(np.int64)
    start = _block_sums(decoded_intensity, block)  # the first step, from a flat map: the plain block ratios
    ok = has & (start > 0)
    blocks[ok] = 10.0 * np.log10(target[ok] / start[ok])
    for _ in range(_FIT_ITERATIONS):
        full = interpolate_correction(blocks.astype(np.float32), shape, block)
        full *= np.float32(_LN10_10)  # in place: decoded_intensity * exp(full * ln(10) / 10)
        np.exp(full, out=full)
        full *= decoded_intensity
        achieved = _block_sums(full, block)
        step = np.zeros_like(blocks)
        ok = has & (achieved > 0)
        step[ok] = 10.0 * np.log10(target[ok] / achieved[ok])
        blocks = np.clip(blocks + _FIT_RELAXATION * step, -_MAX_CORRECTION_DB, _MAX_CORRECTION_DB)
        if np.abs(step).max() < 0.004:  # well inside the 0.01 dB quantization step
            break
    blocks[~has] = blocks[has].mean()
    return np.rint(blocks / BIAS_STEP_DB).astype(np.int64)


def fit_speckle(orig_intensity: FloatArray, decoded_db: FloatArray, use: npt.NDArray[np.bool_],
                block: int = BIAS_BLOCK) -> IntArray:
    """Quantized relative intensity variance (see :data:`_SPECKLE_ZERO_Q`) per block that the decoded image lacks
    against the original over the pixels ``use``: ``(1 + CV2_original) / (1 + CV2_decoded) - 1`` (CV2: variance over
    squared mean), the variance of independent unit-mean noise that, multiplied in, gives the decoded block the
    original's, at most 1. 0 where it is below the smallest step or a block has fewer than 16 such pixels."""
    x = np.where(use, orig_intensity, 0.0)
    d = np.where(use, db_to_intensity(np.where(use, decoded_db, 0.0)), 0.0)
    n = _block_sums(use.astype(np.float32), block)
    sx, sxx, sd, sdd = (_block_sums(a, block) for a in (x, x * x, d, d * d))
    ok = (n >= _SPECKLE_MIN_PIXELS) & (sx > 0) & (sd > 0)
    ratio = np.ones_like(n)
    # 1 + CV2 = n * sum(x^2) / sum(x)^2
    ratio[ok] = (sxx[ok] * sd[ok] ** 2) / (sdd[ok] * sx[ok] ** 2)
    variance = ratio - 1.0
    q = np.zeros(n.shape, np.int64)
    keep = ok & (variance > 2.0 ** ((1 - _SPECKLE_ZERO_Q) / _SPECKLE_OCTAVE))
    q[keep] = np.clip(np.rint(_SPECKLE_ZERO_Q + _SPECKLE_OCTAVE * np.log2(variance[keep])), 1, _SPECKLE_MAX_Q)
    return q


def network_pixels(side: TileSide, valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The pixels of a tile core (validity ``valid``) whose value the network gives: valid, not stored in ``side``."""
    return valid & ~side.stored(valid.shape)


def speckle_seed(words: bytes) -> int:
    """The speckle generator's seed of a tile: from its entropy-coded words (which the decoder has), so that the
    same tile gives the same pixels whoever decodes it, whole or in part."""
    return int.from_bytes(hashlib.blake2b(words, digest_size=8).digest(), "little")


def speckle_db(q: IntArray, decoded_db: FloatArray, seed: int, block: int = BIAS_BLOCK,
               use: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.float32]:
    """The speckle (dB) the decoder adds over a tile core whose network decode is ``decoded_db``: unit-mean gamma
    noise whose relative variance is the blocks' ``q`` interpolated bilinearly (as the correction), drawn by
    NumPy's legacy ``RandomState`` (Mersenne Twister) seeded with ``seed``'s two 32-bit halves, then divided by its
    mean over each block's pixels in ``use`` (default all; the decoder passes the valid pixels the side layer does
    not store, :func:`network_pixels`) weighted by the decoded intensity: the noise leaves the mean intensity of
    those pixels in every block as decoded, so the correction (fitted with it over them) keeps block means with or
    without it (``decompress --no-speckle``), and pixels the encoder stored because the noise lifted them into
    false targets do not take part.
    Deterministic: the same array for the same arguments, whatever the thread; ``RandomState``'s streams are
    frozen by NumPy's compatibility policy (NEP 19), where ``Generator``'s may change between NumPy versions (it was
    2x faster: 0.03 against 0.07 s a megapixel)."""
    shape = decoded_db.shape
    variance = np.where(q > 0, 2.0 ** ((q - _SPECKLE_ZERO_Q) / _SPECKLE_OCTAVE), 0.0)
    per_pixel = interpolate_correction(variance, shape, block)
    noise = np.ones(shape)
    on = per_pixel > 1e-4
    if on.any():
        looks = 1.0 / per_pixel[on]
        state = np.random.RandomState(np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32))
        noise[on] = np.maximum(state.gamma(looks, 1.0 / looks), 1e-6)
        weight = db_to_intensity(np.asarray(decoded_db, np.float64))
        if use is not None:
            weight = np.where(use, weight, 0.0)
        total = _block_sums(weight, block)
        means = np.ones_like(total)  # a block without such pixels: left as drawn
        has = total > 0
        means[has] = _block_sums(noise * weight, block)[has] / total[has]
        noise /= np.repeat(np.repeat(means, block, axis=0), block, axis=1)[: shape[0], : shape[1]]
    return (10.0 * np.log10(noise)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ coding
#: Largest byte width of a stream: gaps (a tile core has fewer than 2**24 pixels), quantized values, corrections.
_GAP_BYTES, _VALUE_BYTES, _CORRECTION_BYTES, _SPECKLE_BYTES = 3, 2, 2, 1


def encode_side(side: TileSide) -> bytes:
    """One LZMA2 blob: the two counts (varints), then byte planes of the outlier gaps and values (bright, then
    dark) and of the zigzag deltas of the correction map in raster order (absent when ``side.correction`` is
    None), then those of the speckle map (format 5; absent when ``side.speckle`` is None)."""
    if side.speckle is not None and side.correction is None:
        raise ValueError("a speckle map is stored only with a correction map")
    streams = []
    for index, q in ((side.above_index, side.above_q), (side.below_index, side.below_q)):
        streams += [np.diff(np.concatenate([[-1], index])) - 1, q]
    if side.correction is not None:
        streams.append(packing.zigzag(np.diff(np.concatenate([[0], side.correction.ravel()]))))
    if side.speckle is not None:
        streams.append(packing.zigzag(np.diff(np.concatenate([[0], side.speckle.ravel()]))))
    widths = [packing.width(v) for v in streams]
    parts = [packing.varints(np.array([side.above_index.size, side.below_index.size, *widths]))]
    parts += [packing.planes(v, w) for v, w in zip(streams, widths)]
    return packing.compress(b"".join(parts))


def decode_side(data: bytes, shape: tuple[int, int], with_correction: bool,
                block: int = BIAS_BLOCK, with_speckle: bool = False) -> TileSide:
    """Inverse of :func:`encode_side` for a tile core of ``shape`` (``with_speckle``: the blob carries a speckle map,
    format 5, only with a correction); CorruptFileError on any inconsistency."""
    pixels = shape[0] * shape[1]
    grid = correction_grid(shape, block)
    with_speckle = with_speckle and with_correction
    # The cap bounds the inflated size by what a valid blob for this tile can hold.
    cap = 20 + 2 * pixels * (_GAP_BYTES + _VALUE_BYTES) + (grid[0] * grid[1] * _CORRECTION_BYTES if with_correction
                                                           else 0) + (grid[0] * grid[1] * _SPECKLE_BYTES
                                                                      if with_speckle else 0)
    raw = packing.inflate(data, cap, "a tile's side information")
    counts, pos = packing.read_varints(raw, 6 + with_correction + with_speckle, 0)
    n_above, n_below = int(counts[0]), int(counts[1])
    widths = [int(w) for w in counts[2:]]
    limits = [_GAP_BYTES, _VALUE_BYTES, _GAP_BYTES, _VALUE_BYTES, _CORRECTION_BYTES, _SPECKLE_BYTES]
    if n_above + n_below > pixels or any(w > limit for w, limit in zip(widths, limits)):
        raise CorruptFileError("a tile's side information lists more outliers than the tile has pixels, or "
                               "numbers wider than it can hold")
    arrays = []
    for n, (w_gap, w_q) in zip((n_above, n_below), (widths[0:2], widths[2:4])):
        gaps, pos = packing.from_planes(raw, n, w_gap, pos)
        q, pos = packing.from_planes(raw, n, w_q, pos)
        index = np.cumsum(gaps + 1) - 1
        if n and int(index[-1]) >= pixels:
            raise CorruptFileError("a tile's side information points outside the tile")
        if n and int(q.max()) > _MAX_OUTLIER_STEPS:
            raise CorruptFileError("a tile's side information holds an outlier value out of range")
        arrays += [index, q]
    correction = speckle = None
    if with_correction:
        deltas, pos = packing.from_planes(raw, grid[0] * grid[1], widths[4], pos)
        correction = np.cumsum(packing.unzigzag(deltas)).reshape(grid)
        if np.abs(correction).max(initial=0) > _MAX_CORRECTION_DB / BIAS_STEP_DB + 1:
            raise CorruptFileError("a tile's radiometric correction is out of range")
    if with_speckle:
        deltas, pos = packing.from_planes(raw, grid[0] * grid[1], widths[5], pos)
        speckle = np.cumsum(packing.unzigzag(deltas)).reshape(grid)
        if speckle.size and (int(speckle.min()) < 0 or int(speckle.max()) > _SPECKLE_MAX_Q):
            raise CorruptFileError("a tile's speckle map is out of range")
    if pos != len(raw):
        raise CorruptFileError("a tile's side information has trailing bytes")
    side = TileSide(arrays[0], arrays[1], arrays[2], arrays[3], correction, speckle)
    if np.intersect1d(side.above_index, side.below_index).size:
        raise CorruptFileError("a tile's side information lists a pixel twice")
    return side
