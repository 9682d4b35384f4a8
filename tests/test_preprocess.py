from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.preprocess import (
    DbHistogram,
    PreprocessingParams,
    db_histogram,
    denormalize_db,
    forward,
    infer_units,
    inverse_db,
    intensity_to_db,
    inverse,
    inverse_intensity,
    make_params,
    normalize_db,
    params_for_array,
    to_db,
)
from tests.conftest import speckle_intensity


def test_intensity_db_conversions_are_inverse() -> None:
    intensity = np.array([1e-4, 0.01, 1.0, 250.0])
    db = intensity_to_db(intensity)
    np.testing.assert_allclose(db, [-40.0, -20.0, 0.0, 10 * math.log10(250.0)])
    x = normalize_db(db, -40.0, 30.0)
    np.testing.assert_allclose(denormalize_db(x, -40.0, 30.0), db, atol=1e-5)


@pytest.mark.parametrize("units, dtype", [("amplitude", "uint16"), ("intensity", "float32"), ("db", "float32"),
                                          ("db", "int16"), ("complex", "complex64"), ("amplitude", "uint8")])
def test_inverse_intensity_is_inverse_db_of_its_db(units: str, dtype: str) -> None:
    """What format 6's decoder writes linear outputs with: the values ``inverse_db`` gives for the same intensity's
    dB (within float rounding; the integers equal), saturating, the fill where invalid, without the round trip."""
    rng = np.random.default_rng(2)
    intensity = np.concatenate([10 ** rng.uniform(-3, 9.5, 503), [0.0, 1e-300, 1e60]]).reshape(-1, 11)
    valid = rng.random(intensity.shape) > 0.1
    params = PreprocessingParams(units=units, dtype=dtype, db_lo=-20.0, db_hi=60.0, nodata=0.0)
    expected = inverse_db(intensity_to_db(intensity), params, valid)
    got = inverse_intensity(intensity.copy(), params, valid)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    if np.issubdtype(got.dtype, np.integer):
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("units", ["intensity", "amplitude", "db"])
def test_float_round_trip_within_clip_range_below_1e4_db(units: str) -> None:
    intensity = speckle_intensity((64, 64), looks=3, seed=1).astype(np.float64)
    raw = {"intensity": intensity, "amplitude": np.sqrt(intensity), "db": 10 * np.log10(intensity)}[units].astype(np.float32)
    params = params_for_array(raw, units)
    x, valid = forward(raw, params)
    assert x.dtype == np.float32 and valid.all()
    back = inverse(x, params, valid)
    assert back.dtype == np.float32
    db_in, _ = to_db(raw, units)
    db_out, _ = to_db(back, units)
    inside = (db_in >= params.db_lo) & (db_in <= params.db_hi)
    assert inside.mean() > 0.99
    assert np.abs(db_out - db_in)[inside].max() < 1e-4


def test_uint16_amplitude_round_trip_is_exact_after_rounding() -> None:
    rng = np.random.default_rng(3)
    amplitude = np.clip(np.sqrt(speckle_intensity((128, 128), seed=2) * 1e6), 1, 65535).astype(np.uint16)
    amplitude[0, 0], amplitude[0, 1] = 1, 65535
    params = make_params("amplitude", np.uint16, 0.0, 20 * math.log10(65535.0))  # clip range covers all DNs
    x, valid = forward(amplitude, params)
    back = inverse(x, params, valid)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, amplitude)
    assert rng is not None


def test_invalid_pixels_get_noise_floor_mask_and_fill() -> None:
    intensity = speckle_intensity((32, 32), seed=4)
    intensity[0, :4] = [0.0, -1.0, np.nan, np.inf]
    params = params_for_array(intensity, "intensity")
    x, valid = forward(intensity, params)
    assert not valid[0, :4].any() and valid[1:].all()
    assert np.all(x[0, :4] == 0.0)  # noise floor = db_lo -> x_norm 0
    back = inverse(x, params, valid)
    assert np.all(back[0, :4] == 0.0)  # no nodata declared: linear units get 0


def test_nodata_value_is_invalid_and_restored() -> None:
    amplitude = np.full((16, 16), 500, dtype=np.uint16)
    amplitude[3, 3] = 0
    amplitude[4, 4] = 7
    params = params_for_array(amplitude, "amplitude", nodata=7)
    x, valid = forward(amplitude, params)
    assert not valid[3, 3] and not valid[4, 4]
    back = inverse(x, params, valid)
    assert back[4, 4] == 7 and back[5, 5] == 500


def test_complex_keeps_magnitude() -> None:
    rng = np.random.default_rng(5)
    z = (rng.normal(size=(32, 32)) + 1j * rng.normal(size=(32, 32))).astype(np.complex64)
    params = params_for_array(z, "complex", clip_percentiles=(0.0, 100.0))
    x, valid = forward(z, params)
    back = inverse(x, params, valid)
    assert back.dtype == np.complex64
    np.testing.assert_allclose(np.abs(back), np.abs(z), rtol=1e-4)


def test_infer_units_rules() -> None:
    assert infer_units(np.uint16)[0] == "amplitude"
    assert infer_units(np.complex64)[0] == "complex"
    assert infer_units(np.float32, np.array([0.1, 0.5]))[0] == "intensity"
    assert infer_units(np.float32, np.array([-15.0, -20.0, 3.0]))[0] == "db"
    with pytest.raises(BadInputError):
        infer_units(np.bool_)


def test_params_dict_is_json_and_round_trips() -> None:
    params = make_params("intensity", "float32", -30.0, 10.0, nodata=float("nan"))
    data = json.loads(json.dumps(params.to_dict()))
    again = PreprocessingParams.from_dict(data)
    assert again.db_lo == -30.0 and again.units == "intensity" and math.isnan(again.nodata or 0.0)
    with pytest.raises(CorruptFileError):
        PreprocessingParams.from_dict({"units": "intensity"})
    with pytest.raises(BadInputError):
        make_params("watts", "float32", 0.0, 1.0)


def test_histogram_percentiles_match_numpy() -> None:
    db = 10 * np.log10(speckle_intensity((300, 300), seed=6).astype(np.float64))
    hist = DbHistogram()
    for chunk in np.array_split(db, 7):  # streaming in blocks gives the same answer
        hist.add(chunk)
    for q in (0.1, 50.0, 99.9):
        assert abs(hist.percentile(q) - np.percentile(db, q)) < 0.002
    with pytest.raises(BadInputError, match="no valid pixels"):
        DbHistogram().percentile(50.0)


@pytest.mark.parametrize("dtype, units, nodata", [
    (np.uint16, "amplitude", 0), (np.uint16, "intensity", None), (np.int16, "amplitude", -1),
    (np.uint8, "db", 7), (np.int8, "intensity", None),
])
def test_integer_rasters_histogram_by_value_like_pixel_by_pixel(dtype: type, units: str, nodata: int | None) -> None:
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    blocks = [rng.integers(info.min, info.max, (60, 70), endpoint=True).astype(dtype) for _ in range(3)]
    blocks.append(blocks[0].astype(np.float32))  # a float block in the same stream is converted pixel by pixel
    expected = DbHistogram()
    for block in blocks:
        expected.add(*to_db(block, units, nodata))
    np.testing.assert_array_equal(db_histogram(iter(blocks), units, nodata).counts, expected.counts)


def test_histogram_of_blocks_of_mixed_integer_dtypes() -> None:
    rng = np.random.default_rng(4)
    blocks = [rng.integers(0, 255, (20, 30)).astype(np.uint8), rng.integers(-300, 300, (20, 30)).astype(np.int16),
              rng.integers(-100, 100, (20, 30)).astype(np.int8)]
    expected = DbHistogram()
    for block in blocks:
        expected.add(*to_db(block, "intensity", None))
    np.testing.assert_array_equal(db_histogram(iter(blocks), "intensity").counts, expected.counts)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.int8])
@pytest.mark.parametrize("units, nodata", [("amplitude", None), ("amplitude", 0), ("intensity", 7.0),
                                           ("db", None), ("amplitude", math.nan)])
def test_integer_rasters_convert_through_a_table_exactly(monkeypatch: pytest.MonkeyPatch, dtype: type, units: str,
                                                          nodata: float | None) -> None:
    """Large 8/16-bit rasters go through a table of every value: the same dB and mask as pixel by pixel."""
    import sarcodec.preprocess as pre

    info = np.iinfo(dtype)
    values = np.random.default_rng(3).integers(info.min, info.max + 1, (400, 400)).astype(dtype)
    assert values.size > pre._LOOKUP_MIN
    db, valid = to_db(values, units, nodata)
    monkeypatch.setattr(pre, "_LOOKUP_MIN", values.size)  # pixel by pixel
    want_db, want_valid = to_db(values, units, nodata)
    assert db.dtype == want_db.dtype and db.shape == values.shape
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_array_equal(db, want_db)  # NaN where invalid in both


def test_db_lookup_tables_only_small_integer_dtypes() -> None:
    """A table of every value for 8/16-bit integers (indexed by the bit pattern, so signed values too), none for
    wider or float dtypes or complex units."""
    from sarcodec.preprocess import db_lookup, value_codes

    values = np.array([-300, -1, 0, 1, 7, 32767], dtype=np.int16)
    table = db_lookup(np.int16, "amplitude", 7.0)
    assert table is not None and table[0].size == 1 << 16
    db, valid = to_db(values, "amplitude", 7.0)
    np.testing.assert_array_equal(table[0][value_codes(values)], db)
    np.testing.assert_array_equal(table[1][value_codes(values)], valid)
    assert db_lookup(np.int32, "amplitude") is None and db_lookup(np.float32, "db") is None
    assert db_lookup(np.int16, "complex") is None


def test_integer_outputs_in_linear_units_keep_valid_pixels_positive() -> None:
    """0 has no dB (it reads back as invalid, a GRD's nodata): a valid pixel decoded below 0.5 DN becomes 1."""
    db = np.array([[-20.0, 0.0, 40.0, -20.0]])  # amplitude 0.1, 1, 100, 0.1
    valid = np.array([[True, True, True, False]])
    amplitude = PreprocessingParams("amplitude", "uint16", -10.0, 30.0, nodata=0.0)
    np.testing.assert_array_equal(inverse_db(db, amplitude, valid), [[1, 1, 100, 0]])
    in_db = PreprocessingParams("db", "int16", -30.0, 10.0)  # integer dB: 0 and negatives are values
    np.testing.assert_array_equal(inverse_db(np.array([[-20.0, 0.0]]), in_db), [[-20, 0]])
