"""Tiling of whole scenes: tile intervals with overlap, blending ramps, the rolling blender of the decoder, and
the smooth fill of invalid pixels before analysis.

Each tile core ``[start, stop)`` is coded with ``overlap`` extra pixels on every side that has a neighbour
(:func:`extended`); the decoder blends neighbouring tiles across the shared ``2 * overlap`` strip with linear
ramps that sum to one (:func:`ramp`), and :class:`Blender` keeps only a band of full-width rows, so memory is
bounded by the scene width, never its height. A tile that is not coded (no valid pixel in its core) adds
nothing: the blender divides by the weights it received, so its neighbours' strips take full weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError

__all__ = ["Blender", "Region", "RegionSink", "extended", "fill_invalid", "ramp"]


@dataclass(frozen=True)
class Region:
    """Rows ``[row0, row1)`` and columns ``[col0, col1)`` of a raster: the part a decoder is asked for."""

    row0: int
    row1: int
    col0: int
    col1: int

    @classmethod
    def whole(cls, height: int, width: int) -> Region:
        return cls(0, height, 0, width)

    @classmethod
    def from_srcwin(cls, srcwin: tuple[int, int, int, int], height: int, width: int) -> Region:
        """``(xoff, yoff, xsize, ysize)`` as ``gdal_translate -srcwin`` (and rasterio's ``Window``) order it: the
        first column and row, then the width and height; it must lie inside the ``height`` x ``width`` raster."""
        values = tuple(srcwin) if isinstance(srcwin, tuple | list) else ()
        if len(values) != 4 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            raise BadInputError(f"srcwin {srcwin!r}: give four integers (xoff, yoff, xsize, ysize)")
        xoff, yoff, xsize, ysize = (int(v) for v in values)
        if xoff < 0 or yoff < 0 or xsize < 1 or ysize < 1:
            raise BadInputError(f"--srcwin {xoff} {yoff} {xsize} {ysize}: offsets must be >= 0 and sizes >= 1")
        if xoff + xsize > width or yoff + ysize > height:
            raise BadInputError(f"--srcwin {xoff} {yoff} {xsize} {ysize} reaches beyond the {width} x {height} "
                                "raster (columns x rows)")
        return cls(yoff, yoff + ysize, xoff, xoff + xsize)

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    def rows_meet(self, start: int, stop: int) -> bool:
        return start < self.row1 and self.row0 < stop

    def cols_meet(self, start: int, stop: int) -> bool:
        return start < self.col1 and self.col0 < stop

    def tiles(self, rows: list[tuple[int, int]], cols: list[tuple[int, int]], height: int, width: int,
              overlap: int) -> tuple[list[bool], list[tuple[int, int]]]:
        """The tiles of a ``height`` x ``width`` raster (cores ``rows`` x ``cols``, coded with ``overlap``) whose
        extended extent meets the region, i.e. every tile that gives any of its pixels: a flag per tile row, and
        the cores among ``cols`` that do."""
        meet_rows = [self.rows_meet(*extended(r0, r1, height, overlap)) for r0, r1 in rows]
        return meet_rows, [(c0, c1) for c0, c1 in cols if self.cols_meet(*extended(c0, c1, width, overlap))]


def extended(start: int, stop: int, length: int, overlap: int) -> tuple[int, int]:
    """The interval a tile with core ``[start, stop)`` is coded over (core plus overlap, inside ``[0, length)``)."""
    return max(0, start - overlap), min(length, stop + overlap)


def ramp(start: int, stop: int, length: int, overlap: int) -> npt.NDArray[np.float32]:
    """Blend weights over the extended interval of core [start, stop): linear ramps over the 2*overlap strips."""
    e0, e1 = extended(start, stop, length, overlap)
    p = np.arange(e0, e1, dtype=np.float64) + 0.5
    w = np.ones(e1 - e0)
    if overlap > 0:
        if start > 0:
            w *= np.clip((p - (start - overlap)) / (2 * overlap), 0, 1)
        if stop < length:
            w *= np.clip(((stop + overlap) - p) / (2 * overlap), 0, 1)
    return w.astype(np.float32)


def fill_invalid(x: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """``x`` with its invalid pixels replaced by a smooth extension of the valid ones (push-pull).

    A pyramid of valid-weighted 2x2 means is built up to one pixel; going back down, each level keeps its own
    mean in proportion to its fraction of valid pixels and takes the bilinearly upsampled coarser level for the
    rest. Valid pixels are returned unchanged; a nodata border becomes a smooth surface continuing the image,
    with no edge at the border for the codec to spend bits on. All-invalid input gives zeros.
    """
    if valid.all():
        return x
    if not valid.any():
        return np.zeros_like(x)
    w = valid.astype(np.float64)
    v = np.where(valid, x.astype(np.float64), 0.0)
    levels = [(v, w)]
    while max(levels[-1][0].shape) > 1:
        v, w = (_half_mean(t) for t in levels[-1])
        levels.append((v, w))
    v, w = levels[-1]
    filled = v / np.maximum(w, 1e-300)
    for v, w in reversed(levels[:-1]):
        up = _bilinear(filled, v.shape)
        alpha = np.clip(w, 0, 1)
        filled = np.where(w > 0, v / np.maximum(w, 1e-300), up) * alpha + up * (1 - alpha)
    out = np.where(valid, x, filled.astype(np.float32))
    return out.astype(np.float32)


def _half_mean(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Means of 2 x 2 blocks, a partial block at an odd edge averaging the pixels it has (PyTorch's
    ``avg_pool2d(t, 2, ceil_mode=True)``)."""
    h, w = t.shape
    sums = np.pad(t, ((0, h % 2), (0, w % 2)))
    sums = sums[0::2, 0::2] + sums[1::2, 0::2] + sums[0::2, 1::2] + sums[1::2, 1::2]
    rows = np.full(sums.shape[0], 2.0)
    cols = np.full(sums.shape[1], 2.0)
    if h % 2:
        rows[-1] = 1.0
    if w % 2:
        cols[-1] = 1.0
    out: npt.NDArray[np.float64] = sums / (rows[:, None] * cols[None, :])
    return out


def _bilinear(t: npt.NDArray[np.float64], shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """``t`` resized to ``shape`` by bilinear interpolation (PyTorch's ``interpolate(..., mode="bilinear",
    align_corners=False)`` with a target size)."""

    def taps(n_in: int, n_out: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        lo = np.minimum(src.astype(np.intp), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    r0, r1, fr = taps(t.shape[0], shape[0])
    c0, c1, fc = taps(t.shape[1], shape[1])
    rows = t[r0] * (1 - fr)[:, None] + t[r1] * fr[:, None]
    # in C order, as the maps it is combined with (``rows[:, c0]`` would be Fortran-ordered)
    out: npt.NDArray[np.float64] = np.take(rows, c0, axis=1) * (1 - fc) + np.take(rows, c1, axis=1) * fc
    return out


class RegionSink:
    """Passes on the part of each written block of rows that lies in ``region``; the rows it is given start at
    column ``left`` of the raster, and ``sink`` (anything with ``write(row, values)``) gets region coordinates."""

    def __init__(self, sink: Any, region: Region, left: int) -> None:
        self.sink, self.region, self.left = sink, region, left

    def write(self, row: int, values: npt.NDArray[Any]) -> None:
        r = self.region
        top, bottom = max(row, r.row0), min(row + values.shape[0], r.row1)
        if top < bottom:
            self.sink.write(top - r.row0, values[top - row : bottom - row, r.col0 - self.left : r.col1 - self.left])


class Blender:
    """Accumulates weighted tiles over a rolling band of full-width rows and releases finished rows (the first
    one ``start``)."""

    def __init__(self, width: int, start: int = 0) -> None:
        self.width = width
        self.start = start
        self.values = np.zeros((0, width), np.float32)
        self.weights = np.zeros((0, width), np.float32)

    def _grow(self, end: int) -> None:
        grow = end - (self.start + self.values.shape[0])
        if grow > 0:
            self.values = np.concatenate([self.values, np.zeros((grow, self.width), np.float32)])
            self.weights = np.concatenate([self.weights, np.zeros((grow, self.width), np.float32)])

    def add(self, row: int, col: int, tile: npt.NDArray[np.float32], weight: npt.NDArray[np.float32]) -> None:
        self._grow(row + tile.shape[0])
        r = row - self.start
        self.values[r : r + tile.shape[0], col : col + tile.shape[1]] += tile * weight
        self.weights[r : r + tile.shape[0], col : col + tile.shape[1]] += weight

    def pop(self, until: int) -> npt.NDArray[np.float32]:
        """Rows ``[start, until)``, blended (rows no tile touched come out as 0)."""
        self._grow(until)
        n = until - self.start
        out = (self.values[:n] / np.maximum(self.weights[:n], np.float32(1e-12))).astype(np.float32)
        self.values, self.weights = self.values[n:], self.weights[n:]
        self.start = until
        return out
