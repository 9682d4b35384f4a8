"""Decoding part of a scene (``decompress --srcwin``) against decoding all of it, in the same run.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF (``prepare_bench.make_scene``; default 8192 x 8192),
compresses it once (default model, quality 4), then times ``sarcodec decompress`` end to end (process start to
GeoTIFF written, peak RSS polled every 20 ms) for the whole file and for windows of the sizes given, each at a
seeded random offset (so most cross tile borders). Each is run ``--repeat`` times; the median is kept. Prints each
window's seconds, the tiles it decoded, and its time as a fraction of the whole file's; a window's pixels are
checked equal to the whole decode's there.

    python benchmarks/window_decode.py [--size 8192] [--windows 256 1024 2048] [--repeat 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_bench import make_scene, run_measured, work_folder  # noqa: E402

SARCODEC = [sys.executable, "-m", "sarcodec"]


def tiles_met(offset: int, size: int, length: int, tile: int = 1024, overlap: int = 16) -> int:
    """Tiles along one axis whose extended extent meets ``[offset, offset + size)`` (the CLI's defaults)."""
    return sum(max(0, start - overlap) < offset + size and offset < min(length, start + tile + overlap)
               for start in range(0, length, tile))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--windows", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scene and the files")
    args = parser.parse_args()
    with work_folder(args.workdir, args.keep, "sarcodec-window-") as work:
        scene, sarc = work / f"speckle_{args.size}.tif", work / f"speckle_{args.size}.sarc"
        rng = np.random.default_rng(0)
        if not scene.exists():
            make_scene(scene, args.size)
        subprocess.run([*SARCODEC, "compress", str(scene), "-o", str(sarc), "--overwrite"], check=True,
                       capture_output=True)
        print(f"scene: {args.size} x {args.size} uint16 amplitude, quality 4, {sarc.stat().st_size * 8 / args.size ** 2:.3f}"
              f" bpp; sarcodec decompress end to end, median of {args.repeat}")

        def decode(out: Path, *extra: str) -> tuple[float, int]:
            runs = [run_measured([*SARCODEC, "decompress", str(sarc), "-o", str(out), "--overwrite", *extra])
                    for _ in range(args.repeat)]
            return statistics.median(s for s, _ in runs), max(r for _, r in runs)

        whole_s, whole_rss = decode(work / "whole.tif")
        tiles = math.ceil(args.size / 1024) ** 2
        print(f"whole file        {whole_s:7.2f} s  {tiles:4d} tiles  peak RSS {whole_rss / 2**20:6.0f} MiB")
        with rasterio.open(work / "whole.tif") as ds:
            whole = ds.read(1)
        for size in args.windows:
            size = min(size, args.size)
            x, y = (int(v) for v in rng.integers(0, args.size - size + 1, size=2))
            seconds, rss = decode(work / "part.tif", "--srcwin", str(x), str(y), str(size), str(size))
            with rasterio.open(work / "part.tif") as ds:
                same = np.array_equal(ds.read(1), whole[y : y + size, x : x + size])
            met = tiles_met(x, size, args.size) * tiles_met(y, size, args.size)
            print(f"window {size:5d}^2    {seconds:7.2f} s  {met:4d} tiles  peak RSS {rss / 2**20:6.0f} MiB  "
                  f"at ({x}, {y})  ratio to whole {seconds / whole_s:.3f}  pixels {'equal' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
