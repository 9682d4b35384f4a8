"""Exact convolutions of integers as float32 matrix products, in NumPy (no PyTorch), and the geometry of a
transposed convolution as ``stride**2`` ordinary ones ("phases"), which the PyTorch form
(``sarcodec.models.codecs.integer``) shares.

A convolution tap is a product of the tap's ``(C_out, C_in)`` weight matrix with the zero-padded input flattened
to ``(C_in, H * W_padded)``: shifting the tap is shifting a contiguous slice of that flat array, so no tap copies
the input, and only matrix products run (no Winograd or FFT algorithm, which would not be exact). A row's last
``W_padded - W`` outputs wrap into the next row and are dropped. When every partial sum is an integer of magnitude
at most 2**24 (the integer hyper-decoder's weights and activation clamps are chosen for that), float32 holds each
exactly, so the result is the same in any order of summation: on any BLAS, thread count or machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CHUNK", "Phase", "conv2d", "conv_transpose2d", "transposed_phases"]

F32 = npt.NDArray[np.float32]
#: Output columns computed at a time (96 channels x 8192 float32: 3 MB, in cache across a layer's taps; 1.7x faster
#: than whole layers on a 1056 px tile here, 4096 and 2048 a little slower).
CHUNK = 8192


@dataclass(frozen=True)
class Phase:
    """One phase of a transposed convolution: the outputs ``out[:, rows, cols]`` (``count_y`` x ``count_x``) are an
    ordinary correlation of the input padded by ``pad`` (top, bottom, left, right; one spare row at the bottom for
    the flat slices) with the kernel taps ``taps``: ``(dy, dx, ky, kx)`` = offset in the padded input, kernel index.
    No taps: the bias alone."""

    rows: slice
    cols: slice
    count_y: int
    count_x: int
    pad: tuple[int, int, int, int]
    taps: tuple[tuple[int, int, int, int], ...]


def _phase(r: int, size_out: int, kernel: int, stride: int, padding: int) -> tuple[int, int, list[int]]:
    """One axis of phase ``r``: output ``o = stride * q - padding + r`` takes ``sum_t W[r + stride * t] x[q - t]``.
    Returns the first ``q``, the number of outputs, and the kernel indices ``r + stride * t``."""
    q0 = -(-(padding - r) // stride)  # ceil: the first q with o >= 0
    count = max(0, -(-(size_out + padding - r) // stride) - q0)  # the q with o < size_out
    return q0, count, list(range(r, kernel, stride))


def transposed_phases(h: int, w: int, kh: int, kw: int, stride: int, padding: int, output_padding: int
                      ) -> tuple[int, int, list[Phase]]:
    """Output size and phases of a transposed convolution (square stride and padding) of an ``h`` x ``w`` input."""
    h_out = (h - 1) * stride - 2 * padding + kh + output_padding
    w_out = (w - 1) * stride - 2 * padding + kw + output_padding
    phases = []
    for ry in range(stride):
        qy0, count_y, ky = _phase(ry, h_out, kh, stride, padding)
        for rx in range(stride):
            qx0, count_x, kx = _phase(rx, w_out, kw, stride, padding)
            if count_y == 0 or count_x == 0:
                continue
            rows = slice(stride * qy0 - padding + ry, h_out, stride)
            cols = slice(stride * qx0 - padding + rx, w_out, stride)
            if not ky or not kx:
                phases.append(Phase(rows, cols, count_y, count_x, (0, 1, 0, 0), ()))
                continue
            # out[q] reads x[q - t]: pad x so that every such index lies inside.
            top, left = max(0, len(ky) - 1 - qy0), max(0, len(kx) - 1 - qx0)
            bottom = max(0, qy0 + count_y - h) + 1  # + the spare row of the flat slices
            right = max(0, qx0 + count_x - w)
            taps = tuple((qy0 - ty + top, qx0 - tx + left, kyy, kxx)
                         for ty, kyy in enumerate(ky) for tx, kxx in enumerate(kx))
            phases.append(Phase(rows, cols, count_y, count_x, (top, bottom, left, right), taps))
    return h_out, w_out, phases


def _correlate(xpad: F32, taps: list[tuple[int, int, F32]], bias: F32, out_h: int, out_w: int) -> F32:
    """``out[:, i, j] = bias + sum(w @ xpad[:, i + dy, j + dx] for dy, dx, w in taps)`` for one image ``xpad``
    (C_in, Hp, Wp) with one spare row."""
    c_in, hp, wp = xpad.shape
    flat = xpad.reshape(c_in, hp * wp)
    n = out_h * wp
    out = np.empty((taps[0][2].shape[0], n), np.float32)
    out[:] = bias[:, None]
    product = np.empty((out.shape[0], min(n, CHUNK)), np.float32)
    for a in range(0, n, CHUNK):  # column chunks: a chunk's sums and products stay in cache across the taps
        b = min(n, a + CHUNK)
        for dy, dx, w in taps:
            start = dy * wp + dx + a
            np.matmul(w, flat[:, start : start + b - a], out=product[:, : b - a])
            out[:, a:b] += product[:, : b - a]
    return out.reshape(-1, out_h, wp)[:, :, :out_w]


def conv2d(x: F32, weight: F32, bias: F32, padding: int) -> F32:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1) of one image ``x`` (C, H, W), float32."""
    _, _, kh, kw = weight.shape
    taps = [(ky, kx, np.ascontiguousarray(weight[:, :, ky, kx])) for ky in range(kh) for kx in range(kw)]
    xpad = np.pad(x, ((0, 0), (padding, padding + 1), (padding, padding)))
    return _correlate(xpad, taps, bias, x.shape[1] + 2 * padding - kh + 1, x.shape[2] + 2 * padding - kw + 1)


def conv_transpose2d(x: F32, weight: F32, bias: F32, stride: int, padding: int, output_padding: int) -> F32:
    """``F.conv_transpose2d`` (groups 1, dilation 1, square stride and padding) of one image ``x`` (C, H, W)."""
    _, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    h_out, w_out, phases = transposed_phases(h, w, kh, kw, stride, padding, output_padding)
    out = np.empty((c_out, h_out, w_out), np.float32)
    for p in phases:
        if not p.taps:
            out[:, p.rows, p.cols] = bias[:, None, None]
            continue
        top, bottom, left, right = p.pad
        xpad = np.pad(x, ((0, 0), (top, bottom), (left, right)))
        taps = [(dy, dx, np.ascontiguousarray(weight[:, :, ky, kx].T)) for dy, dx, ky, kx in p.taps]
        out[:, p.rows, p.cols] = _correlate(xpad, taps, bias, p.count_y, p.count_x)
    return out
