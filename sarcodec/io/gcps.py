"""Ground control points as compact bytes, exactly (``.sarc`` format version 4).

Sentinel-1 GRD and SLC products as distributed carry no geotransform but a grid of ground control points: about
200-300 points of (row, col, x, y, z) in float64. As header JSON they take ~20 KB, deflated ~6.5 KB: 14 % of a
quality-4 file of a shrunk 837 x 1280 GRD scene, more than half of a small one. The points are smooth along the
grid, so each is predicted from the two before it (``2 * p[i-1] - p[i-2]``, computed in float64, which the decoder
repeats exactly), and the difference of the float64 bit patterns (an int64, zigzagged) is stored as eight byte
planes per coordinate, compressed with LZMA2 (``sarcodec.io.packing``). Lossless for every finite float64
(signed zeros and subnormals included; the header refuses non-finite points); ~2.4 KB for the 210 points of that
scene.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sarcodec.errors import CorruptFileError
from sarcodec.io import packing

__all__ = ["MAX_POINTS", "check_points", "pack_points", "unpack_points"]

#: Most points a file may hold (bounds what a damaged header can make the reader allocate and loop over: 0.7 MB,
#: ~0.2 s); products carry a few hundred.
MAX_POINTS = 1 << 14
_COORDS = 5  # row, col, x, y, z


def _predictions(points: npt.NDArray[np.float64], i: int) -> npt.NDArray[np.float64]:
    """The prediction of point ``i`` from the points before it (float64, the same on every machine)."""
    if i == 0:
        return np.zeros(_COORDS)
    if i == 1:
        return np.array(points[0])
    with np.errstate(over="ignore", invalid="ignore"):  # a wild prediction only costs bytes
        prediction: npt.NDArray[np.float64] = points[i - 1] * 2.0 - points[i - 2]
    return prediction


def _bits(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def check_points(points: list[list[float]]) -> npt.NDArray[np.float64]:
    """The points as a float64 array (n, 5); ValueError when a file cannot hold them: more than
    :data:`MAX_POINTS`, or any not finite (a NaN would not be repeated bit for bit: ``inf - inf`` gives a NaN whose
    bits differ between CPUs, and the header refuses non-finite points)."""
    if len(points) > MAX_POINTS:
        raise ValueError(f"{len(points)} points, a .sarc file holds at most {MAX_POINTS}")
    values = np.asarray(points, dtype=np.float64).reshape(-1, _COORDS)
    if not np.isfinite(values).all():
        raise ValueError("the points must be finite")
    return values


def pack_points(points: list[list[float]]) -> bytes:
    """The points (each ``[row, col, x, y, z]``) as one LZMA2 blob; :func:`unpack_points` gives them back bit for
    bit."""
    values = check_points(points)
    residuals = np.empty(values.shape, np.uint64)
    for i in range(len(values)):  # uint64 differences wrap around: exact for any two bit patterns
        residuals[i] = _bits(values[i]) - _bits(_predictions(values, i))
    # zigzag over the two's complement: small negative differences become small numbers
    signed = residuals.view(np.int64)
    zigzag = (residuals << np.uint64(1)) ^ (signed >> np.int64(63)).view(np.uint64)
    return packing.compress(packing.planes(zigzag.T.ravel(), 8))


def unpack_points(blob: bytes, count: int) -> list[list[float]]:
    """Inverse of :func:`pack_points` for ``count`` points; CorruptFileError when the blob does not hold exactly
    that many."""
    if not 0 <= count <= MAX_POINTS:
        raise CorruptFileError(f"the header announces {count} ground control points (at most {MAX_POINTS})")
    size = count * _COORDS * 8
    raw = packing.inflate(blob, size + 1, "the block of ground control points")
    if len(raw) != size:
        raise CorruptFileError("the ground control points are truncated or oversized")
    planes = np.frombuffer(raw, np.uint8).reshape(8, count * _COORDS)
    zigzag = np.zeros(count * _COORDS, np.uint64)
    for k in range(8):
        zigzag |= planes[k].astype(np.uint64) << np.uint64(8 * k)
    residuals = (zigzag >> np.uint64(1)) ^ (np.uint64(0) - (zigzag & np.uint64(1)))
    residuals = residuals.reshape(_COORDS, count).T
    values = np.zeros((count, _COORDS), np.float64)
    for i in range(count):
        values[i] = (residuals[i] + _bits(_predictions(values, i))).view(np.float64)
    return [[float(v) for v in row] for row in values]
