"""The symbols' order by table on this CPU: the radix argsort (`sarcodec.entropy.tables._group_order`, since 0.8.4)
against the packed-key sort of sarcodec 0.8.3 (rebuilt here), on one tile's worth of table indices.

    python results/codec/group_order/group_order.py   # one thread, best of 7; prints the CPU and NumPy
"""

from __future__ import annotations

import platform
import time

import numpy as np

from sarcodec.entropy.tables import _group_order


def packed_order(groups: np.ndarray) -> np.ndarray:
    """0.8.3's order: one default sort of (group << bits | index) uint32 keys, the indices masked back out."""
    bits = (groups.size - 1).bit_length()
    keys = (groups.astype(np.uint32) << np.uint32(bits)) | np.arange(groups.size, dtype=np.uint32)
    keys.sort()
    return (keys & np.uint32((1 << bits) - 1)).astype(np.int64)


def best(f, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    print(f"CPU: {model}; NumPy {np.__version__}")
    rng = np.random.default_rng(0)
    # a 1040^2 tile's 3 244 800 latents, table indices spread as the shipped model's (about 25 tables in use)
    groups = np.clip(rng.normal(12, 4, 3_244_800), 0, 25).astype(np.int64)
    assert np.array_equal(packed_order(groups), _group_order(groups)[0])
    keys = rng.integers(0, 1 << 32, groups.size, dtype=np.uint32)
    print(f"np.sort of {groups.size} random uint32 keys: {best(lambda: np.sort(keys)) * 1e3:.1f} ms")
    print(f"packed-key sort (0.8.3):  {best(lambda: packed_order(groups)) * 1e3:.1f} ms")
    print(f"radix argsort (0.8.4):    {best(lambda: _group_order(groups)) * 1e3:.1f} ms (order, bincount, starts)")
    keys8 = groups.astype(np.uint8)
    print(f"  the argsort alone:      {best(lambda: np.argsort(keys8, kind='stable')) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
