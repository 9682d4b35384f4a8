"""Side information of format-2 tiles: outliers beyond the clip range and the radiometric correction map."""

from __future__ import annotations

import lzma

import numpy as np
import pytest

from sarcodec.io import packing
from sarcodec.codec import sidelayer as S
from sarcodec.errors import CorruptFileError


def test_varints_round_trip_small_and_large_numbers() -> None:
    values = np.array([0, 1, 127, 128, 300, 2**31, 2**62 + 5, 16383, 16384], dtype=np.int64)
    data = packing.varints(values)
    decoded, end = packing.read_varints(data, values.size, 0)
    np.testing.assert_array_equal(decoded, values)
    assert end == len(data)


def test_outliers_are_within_half_a_step_and_everything_else_inside_the_range() -> None:
    rng = np.random.default_rng(1)
    db = rng.uniform(-40, 40, (50, 60))
    valid = rng.random(db.shape) > 0.1
    lo, hi = -20.0, 20.0
    side = S.find_outliers(db, valid, lo, hi, S.STEP_LO_DB, S.STEP_HI_DB)
    restored = side.outlier_db(db.shape, lo, hi, S.STEP_LO_DB, S.STEP_HI_DB)
    listed = ~np.isnan(restored)
    assert not (listed & ~valid).any()
    err = np.abs(restored[listed] - db[listed])
    assert err.max() <= S.STEP_HI_DB / 2 + 1e-9 or err.max() <= S.STEP_LO_DB / 2 + 1e-9
    rest = valid & ~listed
    assert db[rest].min() >= lo - S.STEP_LO_DB / 2 and db[rest].max() <= hi + S.STEP_HI_DB / 2


def test_point_targets_inside_the_range_are_listed_too() -> None:
    db = np.full((64, 64), -10.0)
    db[20, 30] = 5.0  # 15 dB over its background but below the clip
    targets = S.point_targets(10 ** (db / 10), np.ones(db.shape, bool))
    side = S.find_outliers(db, np.ones(db.shape, bool), -30.0, 10.0, 1.0, 0.5, targets)
    assert side.above_index.tolist() == [20 * 64 + 30]
    assert abs(side.outlier_db(db.shape, -30.0, 10.0, 1.0, 0.5)[20, 30] - 5.0) <= 0.25


def test_added_targets_keep_raster_order_and_skip_listed_and_dark_pixels() -> None:
    shape, lo, step = (8, 10), -30.0, 0.5
    side = S.TileSide(np.array([3, 40]), np.array([7, 9]), np.array([12]), np.array([2]), np.zeros((1, 1), np.int64))
    db = np.full(shape, -100.0)
    pixels = np.zeros(shape, bool)
    for index, value in ((1, -20.1), (40, -10.0), (12, 0.0), (55, -30.0), (79, -0.3)):
        pixels.flat[index], db.flat[index] = True, value  # new, listed bright, listed dark, at db_lo, new
    added = S.add_targets(side, db, pixels, lo, step)
    assert added.above_index.tolist() == [1, 3, 40, 79] and added.correction is None
    assert added.above_q.tolist() == [20, 7, 9, 59]  # round((db - lo) / step); listed pixels keep their values
    np.testing.assert_array_equal(added.below_index, side.below_index)
    np.testing.assert_array_equal(S.decode_side(S.encode_side(added), shape, False).above_index, added.above_index)


def test_reconstruction_puts_in_the_correction_and_the_outliers() -> None:
    shape, lo = (40, 70), -25.0
    decoded = np.random.default_rng(3).uniform(-20, 0, shape)
    correction = np.arange(6, dtype=np.int64).reshape(S.correction_grid(shape)) * 10
    side = S.TileSide(np.array([5, 100]), np.array([4, 60]), np.array([7]), np.array([3]), correction)
    db = S.reconstruct_db(decoded, side, lo, 1.0, 0.5)
    full = decoded + S.interpolate_correction(correction * S.BIAS_STEP_DB, shape)
    assert db.flat[5] == lo + 2.0 and db.flat[100] == lo + 30.0 and db.flat[7] == lo - 3.0
    rest = np.ones(db.size, bool)
    rest[[5, 100, 7]] = False
    np.testing.assert_allclose(db.ravel()[rest], full.ravel()[rest], atol=1e-5)


def test_side_blob_round_trip() -> None:
    rng = np.random.default_rng(2)
    shape = (70, 90)
    idx = np.sort(rng.choice(shape[0] * shape[1], 40, replace=False))
    side = S.TileSide(idx[:25], rng.integers(0, 100, 25), idx[25:], rng.integers(0, 9, 15),
                      rng.integers(-300, 300, S.correction_grid(shape)))
    back = S.decode_side(S.encode_side(side), shape, with_correction=True)
    for name in ("above_index", "above_q", "below_index", "below_q", "correction"):
        np.testing.assert_array_equal(getattr(back, name), getattr(side, name))


def _pack(raw: bytes) -> bytes:
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=packing.LZMA_FILTERS)


def _header(*numbers: int) -> bytes:
    return packing.varints(np.array(numbers))


@pytest.mark.parametrize("blob", [
    b"", b"\x00\x01", _pack(_header(5, 0, 1, 1, 0, 0)),  # truncated: five outliers announced, none follow
    _pack(_header(1, 0, 2, 1, 0, 0) + packing.planes(np.array([70 * 90]), 2) + b"\x01"),  # an index past the tile
    _pack(_header(10**6, 0, 1, 1, 0, 0)),  # more outliers than pixels
    _pack(_header(1, 0, 9, 1, 0, 0)),  # a number wider than the format allows
    _pack(b"\x00" * 10**6),  # decompresses far beyond anything valid (bounded)
    _pack(_header(0, 0, 0, 0, 0, 0) + b"\x00"),  # trailing bytes
    _pack(_header(1, 0, 1, 2, 0, 0) + b"\x05" + packing.planes(np.array([5000]), 2)),  # value out of range
])
def test_damaged_side_blobs_are_corrupt_file_errors(blob: bytes) -> None:
    with pytest.raises(CorruptFileError):
        S.decode_side(blob, (70, 90), with_correction=False)


def test_correction_interpolation_and_fit_preserve_block_means() -> None:
    shape = (100, 70)
    constant = S.interpolate_correction(np.full(S.correction_grid(shape), 1.5), shape)
    np.testing.assert_allclose(constant, 1.5)
    assert constant.flags.c_contiguous  # the fit multiplies it with C-ordered maps: strided, it ran ~25x slower
    rng = np.random.default_rng(3)
    truth = np.kron(rng.uniform(-2, 2, (4, 3)), np.ones((32, 32)))[: shape[0], : shape[1]]
    decoded_db = rng.normal(-10, 2, shape)
    orig = 10 ** ((decoded_db + truth) / 10)  # each block needs its own correction
    use = rng.random(shape) > 0.2
    blocks = S.fit_correction(orig, decoded_db, use) * S.BIAS_STEP_DB
    corrected = 10 ** ((decoded_db + S.interpolate_correction(blocks, shape)) / 10)
    for r in range(0, shape[0], 32):
        for c in range(0, shape[1], 32):
            sel = (slice(r, r + 32), slice(c, c + 32))
            ratio = corrected[sel][use[sel]].sum() / orig[sel][use[sel]].sum()
            assert abs(10 * np.log10(ratio)) < 0.02


@pytest.mark.parametrize("shape", [(64, 96), (70, 45), (32, 32), (5, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_sums_equal_float64_sums_of_each_block(shape: tuple[int, int], dtype: type) -> None:
    """Whole and partial blocks; float32 maps (summed along rows in float32 first) within float32 rounding."""
    from sarcodec.codec.sidelayer import _block_sums

    values = np.random.default_rng(2).gamma(1.0, 1.0, shape).astype(dtype)
    got = _block_sums(values, 32)
    gh, gw = -(-shape[0] // 32), -(-shape[1] // 32)
    assert got.shape == (gh, gw) and got.dtype == np.float64
    for i in range(gh):
        for j in range(gw):
            want = values[32 * i : 32 * i + 32, 32 * j : 32 * j + 32].astype(np.float64).sum()
            assert got[i, j] == pytest.approx(want, rel=1e-6 if dtype == np.float32 else 1e-12)


def test_side_blob_round_trip_with_a_speckle_map() -> None:
    rng = np.random.default_rng(3)
    shape = (70, 90)
    grid = S.correction_grid(shape)
    side = S.TileSide(np.array([5, 900]), np.array([3, 40]), np.array([], np.int64), np.array([], np.int64),
                      rng.integers(-300, 300, grid), rng.integers(0, 33, grid))
    back = S.decode_side(S.encode_side(side), shape, with_correction=True, with_speckle=True)
    for name in ("above_index", "above_q", "below_index", "below_q", "correction", "speckle"):
        np.testing.assert_array_equal(getattr(back, name), getattr(side, name))
    # a speckle value beyond the format's largest (variance 1) is a damaged file
    bad = S.TileSide(side.above_index, side.above_q, side.below_index, side.below_q, side.correction,
                     np.full(grid, 33))
    with pytest.raises(CorruptFileError, match="speckle"):
        S.decode_side(S.encode_side(bad), shape, with_correction=True, with_speckle=True)
    with pytest.raises(CorruptFileError):  # read as a blob without a map: trailing bytes
        S.decode_side(S.encode_side(side), shape, with_correction=True)


def test_fitted_speckle_is_the_variance_the_decode_lacks() -> None:
    rng = np.random.default_rng(4)
    shape = (128, 160)
    flat = np.zeros(shape)  # a decode that smoothed everything to 0 dB
    use = np.ones(shape, bool)
    one_look = rng.exponential(1.0, shape)
    four_looks = rng.gamma(4.0, 0.25, shape)
    q1 = S.fit_speckle(one_look, flat, use)  # variance 1: 2 ** ((32 - 32) / 4), a 1024-pixel sample's within ~10 %
    assert ((q1 >= 30) & (q1 <= 32)).all() and np.median(q1) >= 31
    q4 = S.fit_speckle(four_looks, flat, use)
    assert abs(np.median(q4) - 24) <= 1  # variance 1/4: two octaves down
    assert (S.fit_speckle(one_look, 10 * np.log10(one_look), use) == 0).all()  # nothing lacking
    use[:, :32] = False  # blocks without pixels to measure get none
    assert (S.fit_speckle(one_look, flat, use)[:, 0] == 0).all() and (S.fit_speckle(one_look, flat, use)[:, 1] > 0).all()


def test_synthesized_speckle_is_seeded_keeps_block_means_and_has_the_stored_variance() -> None:
    shape = (96, 130)
    q = np.full(S.correction_grid(shape), 24)  # relative variance 1/4 (4 looks)
    decoded = np.random.default_rng(1).uniform(-30.0, 10.0, shape)  # any decoded image (dB)
    a, b = S.speckle_db(q, decoded, 7), S.speckle_db(q, decoded, 7)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and not np.array_equal(a, S.speckle_db(q, decoded, 8))
    gain = 10 ** (a.astype(np.float64) / 10)
    # every block's mean intensity is the decoded one: the noise is normalized by its intensity-weighted mean
    intensity = 10 ** (decoded / 10)
    block_means = S._block_sums(intensity * gain, S.BIAS_BLOCK) / S._block_sums(intensity, S.BIAS_BLOCK)
    np.testing.assert_allclose(block_means, 1.0, rtol=1e-5)
    flat = S.speckle_db(q, np.zeros(shape), 7)  # over a flat decode, the plain mean
    np.testing.assert_allclose(S._block_sums(10 ** (flat.astype(np.float64) / 10), S.BIAS_BLOCK)
                               / S._block_sums(np.ones(shape), S.BIAS_BLOCK), 1.0, rtol=1e-5)
    assert 0.22 < (10 ** (flat.astype(np.float64) / 10)).var() < 0.28
    np.testing.assert_array_equal(S.speckle_db(np.zeros_like(q), decoded, 7), 0.0)
    # only the pixels ``use`` marks take part in the mean (the decoder passes those the network gives)
    use = np.ones(shape, bool)
    use[::3] = False
    part = 10 ** (S.speckle_db(q, decoded, 7, use=use).astype(np.float64) / 10)
    weight = np.where(use, intensity, 0.0)
    np.testing.assert_allclose(S._block_sums(weight * part, S.BIAS_BLOCK) / S._block_sums(weight, S.BIAS_BLOCK), 1.0,
                               rtol=1e-5)
    side = S.TileSide(np.array([0, 5]), np.array([1, 1]), np.array([7]), np.array([2]))
    mask = S.network_pixels(side, np.ones((2, 4), bool))
    assert mask.ravel().tolist() == [False, True, True, True, True, False, True, False]
    assert S.speckle_seed(b"words") == S.speckle_seed(b"words") != S.speckle_seed(b"other")
