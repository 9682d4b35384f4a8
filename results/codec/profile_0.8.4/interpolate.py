"""``sidelayer.interpolate_correction`` as 0.8.4 computes it (column products and their sum in place) against the
expression of 0.8.3 (five full-size buffers): one 1024^2 tile core, float32 block values, one thread, best of 9.

    python results/codec/profile_0.8.4/interpolate.py   # interpolate.txt
"""

from __future__ import annotations

import time

import numpy as np

from sarcodec.codec import sidelayer


def interpolate_083(blocks_db: np.ndarray, shape: tuple[int, int], block: int = sidelayer.BIAS_BLOCK) -> np.ndarray:
    r0, r1, tr = sidelayer._axis_weights(shape[0], block)
    c0, c1, tc = sidelayer._axis_weights(shape[1], block)
    tr, tc = tr.astype(blocks_db.dtype, copy=False), tc.astype(blocks_db.dtype, copy=False)
    rows = blocks_db[r0] * (1 - tr)[:, None] + blocks_db[r1] * tr[:, None]
    out: np.ndarray = np.take(rows, c0, axis=1) * (1 - tc)[None, :] + np.take(rows, c1, axis=1) * tc[None, :]
    return out


def best_ms(f, runs: int = 9) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def main() -> None:
    shape = (1024, 1024)
    for dtype in (np.float32, np.float64):
        blocks = np.random.default_rng(0).normal(0, 1, sidelayer.correction_grid(shape)).astype(dtype)
        same = np.array_equal(interpolate_083(blocks, shape), sidelayer.interpolate_correction(blocks, shape))
        print(f"{np.dtype(dtype).name}: 0.8.3 {best_ms(lambda: interpolate_083(blocks, shape)):.2f} ms, "
              f"0.8.4 {best_ms(lambda: sidelayer.interpolate_correction(blocks, shape)):.2f} ms, "
              f"the same values: {same}")


if __name__ == "__main__":
    main()
