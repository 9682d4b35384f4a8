"""sarcodec's allocation policy measured: glibc's default (since 0.8.4) against 0.8.3's, which mapped every buffer of
1 MiB or more and ran ``malloc_trim`` after each tile (rebuilt here around the unchanged tile pool).

    python results/codec/allocator/allocator.py {default|trimmed} compress IN.tif -o OUT.sarc -q 4
    python results/codec/allocator/allocator.py {default|trimmed} decompress IN.sarc -o OUT.tif

Run it under ``/usr/bin/time -v`` for the page faults, system time and peak RSS (``allocator.txt``).
"""

from __future__ import annotations

import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sarcodec.codec.pipeline as pipeline
from sarcodec.cli import main

M_MMAP_THRESHOLD = -3


class _TrimmedPool(ThreadPoolExecutor):
    """0.8.3's tile pool: each job followed by ``malloc_trim(0)``."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        def trimmed() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                _LIBC.malloc_trim(0)
        return super().submit(trimmed)


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    if mode == "trimmed":
        _LIBC = ctypes.CDLL("libc.so.6")
        enter = pipeline.TilePool.__enter__

        def tuned_enter(self: Any) -> Any:  # 0.8.3 set the threshold as a tile pool opened
            _LIBC.mallopt(M_MMAP_THRESHOLD, 1 << 20)
            return enter(self)
        pipeline.TilePool.__enter__ = tuned_enter  # type: ignore[method-assign]
        pipeline.ThreadPoolExecutor = _TrimmedPool  # type: ignore[misc]
    elif mode != "default":
        raise SystemExit("mode: default or trimmed")
    sys.argv[0] = "sarcodec"
    main()
