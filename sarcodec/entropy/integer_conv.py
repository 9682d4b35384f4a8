"""The geometry of a transposed convolution as ``stride**2`` ordinary ones ("phases"), without PyTorch: the exact
integer convolutions of ``sarcodec.models.codecs.integer`` run each phase as matrix products.

(Until sarcodec 0.7.1 this module also held a NumPy form of those convolutions for the PyTorch-free decoder, which
now runs them under ONNX Runtime: ``sarcodec.codec.lite``.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Phase", "transposed_phases"]


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
