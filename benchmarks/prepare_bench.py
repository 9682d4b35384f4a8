"""Throughput and peak memory of ``sarcodec prepare`` on a large uint16 amplitude GeoTIFF.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with speckle (default 10 000 x 10 000, tiled,
written block by block), then runs in separate processes:

- the reference: a plain rasterio read of the whole file in 1024-row windows (I/O + decode floor);
- ``sarcodec prepare`` on it (both streaming passes, patch 64, all patches kept).

Prints MP/s of both, their ratio, and the peak RSS of the prepare process (must stay under 1.5 GB).

    python benchmarks/prepare_bench.py [--size 10000] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import rasterio
from affine import Affine
from rasterio.windows import Window

READ_REFERENCE = """
import sys, rasterio
from rasterio.windows import Window
with rasterio.open(sys.argv[1]) as ds:
    for row in range(0, ds.height, 1024):
        ds.read(1, window=Window(0, row, ds.width, min(1024, ds.height - row)))
"""


def make_scene(path: Path, size: int, seed: int = 0) -> None:
    """Write a uint16 amplitude GeoTIFF: a blocky reflectivity field times 1-look speckle."""
    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", height=size, width=size, count=1, dtype="uint16", crs="EPSG:32632",
                   transform=Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0), tiled=True,
                   blockxsize=512, blockysize=512, nodata=0)
    coarse = rng.normal(0.0, 4.0, size=(size // 32 + 2, size // 32 + 2))
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 1024):
            h = min(1024, size - row)
            field = np.repeat(np.repeat(coarse[row // 32 : (row + h) // 32 + 2], 32, 0), 32, 1)[:h, :size]
            intensity = 10 ** ((48.0 + field) / 10) * rng.exponential(1.0, size=(h, size))
            dst.write(np.clip(np.sqrt(intensity), 1, 65535).astype(np.uint16), 1, window=Window(0, row, size, h))


@contextlib.contextmanager
def work_folder(workdir: Path | None, keep: bool, prefix: str) -> Iterator[Path]:
    """The benchmark's folder: ``workdir`` (created if missing, kept), else a new temporary one, removed at the end
    unless ``keep``."""
    work = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not keep and workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS in bytes of the process and its children), polled every 20 ms."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated scene and dataset")
    args = parser.parse_args()
    with work_folder(args.workdir, args.keep, "sarcodec-bench-") as work:
        scene = work / f"speckle_{args.size}.tif"
        if not scene.exists():
            t = time.perf_counter()
            make_scene(scene, args.size)
            print(f"generated {scene} ({scene.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        mpix = args.size * args.size / 1e6
        read_s, read_rss = run_measured([sys.executable, "-c", READ_REFERENCE, str(scene)])
        out = work / "dataset"
        shutil.rmtree(out, ignore_errors=True)
        prep_s, prep_rss = run_measured([sys.executable, "-m", "sarcodec", "prepare", str(scene), "-o", str(out),
                                         "--patch-size", "64", "--split", "1", "0", "0"])
        print(f"scene: {args.size} x {args.size} uint16 amplitude ({mpix:.0f} MP)")
        print(f"reference (rasterio windowed read): {mpix / read_s:8.1f} MP/s  {read_s:6.1f} s  peak RSS {read_rss / 2**20:6.0f} MiB")
        print(f"sarcodec prepare (2 passes, p=64):  {mpix / prep_s:8.1f} MP/s  {prep_s:6.1f} s  peak RSS {prep_rss / 2**20:6.0f} MiB")
        print(f"ratio prepare/reference throughput: {read_s / prep_s:.3f}")
        print(f"peak RSS limit 1.5 GB: {'OK' if prep_rss < 1.5e9 else 'EXCEEDED'}")
        return 0 if prep_rss < 1.5e9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
