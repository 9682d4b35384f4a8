from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarcodec.errors import BadInputError
from sarcodec.io.raster import find_rasters, open_raster, tiff_complete
from tests.conftest import speckle_intensity, write_geotiff


def test_geotiff_windowed_read_and_georeferencing(tmp_path: Path) -> None:
    img = speckle_intensity((50, 40), seed=1)
    path = write_geotiff(tmp_path / "a.tif", img, nodata=-1.0)
    with open_raster(path) as r:
        assert r.info.shape == (50, 40) and r.info.dtype == "float32"
        assert r.info.nodata == -1.0
        assert r.info.crs is not None and "UTM" in r.info.crs
        assert r.info.transform == (10.0, 0.0, 500000.0, 0.0, -10.0, 3800000.0)
        np.testing.assert_array_equal(r.read((10, 5, 7, 9)), img[10:17, 5:14])
        np.testing.assert_array_equal(r.read(), img)
        blocks = list(r.iter_row_blocks(16))
        assert [row for row, _ in blocks] == [0, 16, 32, 48]
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), img)


def test_ungeoreferenced_tiff_has_no_transform(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "plain.tif", speckle_intensity((8, 8)), georef=False)
    with open_raster(path) as r:
        assert r.info.crs is None and r.info.transform is None


def test_uint16_and_complex_geotiffs(tmp_path: Path) -> None:
    dn = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    with open_raster(write_geotiff(tmp_path / "dn.tif", dn)) as r:
        assert r.info.dtype == "uint16"
        np.testing.assert_array_equal(r.read(), dn)
    z = (np.arange(16) + 1j * np.arange(16)).astype(np.complex64).reshape(4, 4)
    with open_raster(write_geotiff(tmp_path / "slc.tif", z)) as r:
        assert r.info.dtype == "complex64"
        np.testing.assert_array_equal(r.read(), z)


def test_npy_and_band_choice(tmp_path: Path) -> None:
    stack = np.stack([speckle_intensity((12, 10), seed=s) for s in range(3)])
    np.save(tmp_path / "stack.npy", stack)
    with pytest.raises(BadInputError, match="3 bands; choose one with band=N"):
        open_raster(tmp_path / "stack.npy")
    with open_raster(tmp_path / "stack.npy", band=2) as r:
        np.testing.assert_array_equal(r.read((1, 2, 3, 4)), stack[1, 1:4, 2:6])
    with pytest.raises(BadInputError, match="out of range"):
        open_raster(tmp_path / "stack.npy", band=4)
    path = write_geotiff(tmp_path / "two.tif", stack[:2])
    with pytest.raises(BadInputError, match="2 bands"):
        open_raster(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.tif", "no such file"),
        (lambda d: (d / "text.tif").write_text("not a tiff") and d / "text.tif", "not a readable raster"),
        (lambda d: np.save(d / "empty.npy", np.zeros((0, 5), np.float32)) or d / "empty.npy", "empty raster"),
        (lambda d: np.save(d / "cube.npy", np.zeros((2, 2, 2, 2))) or d / "cube.npy", "expected a 2-D"),
    ],
)
def test_bad_rasters_raise_bad_input(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match=message):
        open_raster(make(tmp_path))


def test_find_rasters(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "b.npy", np.ones((4, 4), np.float32))
    write_geotiff(tmp_path / "a.tif", speckle_intensity((4, 4)))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_rasters([tmp_path])] == ["a.tif", "b.npy"]
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BadInputError, match="no raster files"):
        find_rasters([tmp_path / "empty_dir"])
    with pytest.raises(BadInputError, match="no such file or directory"):
        find_rasters([tmp_path / "absent"])


def test_tiff_complete_finds_geotiffs_gdal_did_not_finish(tmp_path: Path) -> None:
    import rasterio

    whole = write_geotiff(tmp_path / "whole.tif", speckle_intensity((300, 200), seed=3), tiled=True, blockxsize=64,
                          blockysize=64, compress="deflate")
    assert tiff_complete(whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) * 6 // 10])  # still opens (the directory comes first), blocks missing
    with rasterio.open(cut) as ds:
        assert ds.shape == (300, 200)
    assert not tiff_complete(cut)
    (tmp_path / "empty.tif").write_bytes(b"")
    assert not tiff_complete(tmp_path / "empty.tif") and not tiff_complete(tmp_path / "missing.tif")
    sparse = write_geotiff(tmp_path / "sparse.tif", np.zeros((300, 200), np.float32), nodata=0.0, tiled=True,
                           blockxsize=64, blockysize=64, sparse_ok=True)  # blocks all nodata are never written
    assert not tiff_complete(sparse)
    np.save(tmp_path / "a.npy", np.ones((4, 4), np.float32))
    assert not tiff_complete(tmp_path / "a.npy")
