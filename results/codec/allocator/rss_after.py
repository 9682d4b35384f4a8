"""What a long-lived process keeps after a command: run ``compress`` twice in one process through ``sarcodec.cli.main``
and print its resident memory after each (``/proc/self/statm``), with the pool's trim as it closes (``closing``, as
shipped) or without it (``none``).

    python results/codec/allocator/rss_after.py {closing|none} SCENE.tif
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

import sarcodec.codec.pipeline as pipeline
from sarcodec.cli import main


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


if __name__ == "__main__":
    mode, scene = sys.argv[1:3]
    if mode == "none":
        pipeline._MALLOC_TRIM = None
    elif mode != "closing":
        raise SystemExit("mode: closing or none")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            main(["compress", scene, "-o", str(Path(tmp) / f"{i}.sarc"), "-q", "4"])
            print(f"{mode}: after compress {i + 1}: {rss_mib():.0f} MiB")
    print(f"{mode}: peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
