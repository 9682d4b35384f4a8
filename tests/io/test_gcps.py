"""Ground control points packed for format 4: exact, compact, and damage is reported."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from sarcodec.errors import CorruptFileError
from sarcodec.io.gcps import MAX_POINTS, pack_points, unpack_points


def _grid(rows: int = 10, cols: int = 21) -> list[list[float]]:
    """A Sentinel-1-like GCP grid: rows/cols at non-integer spacing, lon/lat smooth with curvature, heights."""
    out = []
    for i in range(rows):
        for j in range(cols):
            row, col = i * 100.44199785177229, j * 64.02249033618367
            lon = 78.20390305293508 - 0.0017936 * col + 1.2e-4 * row + 3.1e-9 * col * col
            lat = 10.737548333634779 + 3.6e-4 * col - 1.8e-3 * row + 2.7e-9 * row * col
            out.append([row, col, lon, lat, 255.30090383719653 + 0.343 * i - 2e-6 * j])
    return out


def _bits(points: list[list[float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 5).view(np.uint64)


@pytest.mark.parametrize("points", [
    _grid(),
    [[1.0, 2.0, 3.0, 4.0, 5.0]],
    [[0.0, -0.0, 5e-324, -1.7976931348623157e308, 1e-300]] * 3,  # signed zero, subnormal, the largest float
    (np.random.default_rng(0).standard_normal((40, 5)) * 10.0 ** np.random.default_rng(1).integers(-300, 300, (40, 5))
     ).tolist(),  # no structure at all: still exact
])
def test_points_come_back_bit_for_bit(points: list[list[float]]) -> None:
    back = unpack_points(pack_points(points), len(points))
    np.testing.assert_array_equal(_bits(back), _bits(points))


def test_a_grid_packs_to_less_than_half_of_its_deflated_json() -> None:
    points = _grid()
    as_json = len(zlib.compress(json.dumps(points).encode(), 9))
    packed = len(pack_points(points))
    assert packed < 0.5 * as_json, (packed, as_json)


def test_no_points() -> None:
    assert unpack_points(pack_points([]), 0) == []


@pytest.mark.parametrize("count", [209, 211, 0])
def test_a_wrong_count_is_reported(count: int) -> None:
    with pytest.raises(CorruptFileError, match="ground control points"):
        unpack_points(pack_points(_grid()), count)


@pytest.mark.parametrize("blob", [b"", b"\x00" * 10, b"garbage that is not LZMA2"])
def test_damaged_bytes_are_reported(blob: bytes) -> None:
    with pytest.raises(CorruptFileError):
        unpack_points(blob, 3)


def test_an_absurd_count_is_refused_before_anything_is_allocated() -> None:
    with pytest.raises(CorruptFileError, match="at most"):
        unpack_points(pack_points([[1.0] * 5]), MAX_POINTS + 1)


def test_more_points_than_a_file_holds_are_refused_when_packing() -> None:
    with pytest.raises(ValueError, match="at most"):
        pack_points([[0.0] * 5] * (MAX_POINTS + 1))
