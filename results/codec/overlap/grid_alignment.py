"""Experiment record (sarcodec 0.8.1): why the generated benchmark scene codes larger with 8 px of overlap.

``benchmarks/prepare_bench.make_scene`` draws its reflectivity field in 32 px blocks aligned to the raster, so with
1024 px tiles every block edge sits at the same offset in every tile: 16 mod 32 from the start of a tile coded
with 16 px of overlap (a multiple of the hyperprior's 16 px grid), 8 mod 32 with 8 px (between two of its hyper-
latents). This codes the 3072^2 scene and the same scene shifted by 8 px (its first 8 rows and columns cut off)
at overlaps 8 and 16, quality 4, and prints the bits per pixel: if the grid is the cause, the shift swaps which
overlap codes smaller. Real scenes have no such grid.

    python results/codec/overlap/grid_alignment.py > results/codec/overlap/grid_alignment.txt
"""
import sys
import tempfile
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from prepare_bench import make_scene  # noqa: E402

from sarcodec.codec.api import compress  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    scene = Path(tmp) / "scene.tif"
    make_scene(scene, 3072)
    with rasterio.open(scene) as ds:
        full = ds.read(1)
    print("scene | overlap 16 bpp | overlap 8 bpp | 8 / 16")
    for name, raster in (("generated 3072^2", full), ("shifted by 8 px (3064^2)", full[8:, 8:])):
        bpp = {}
        for overlap in (16, 8):
            result = compress(raster, Path(tmp) / "x.sarc", quality=4, units="amplitude", nodata=0,
                              overlap=overlap, overwrite=True)
            bpp[overlap] = result.bpp
        print(f"{name} | {bpp[16]:.4f} | {bpp[8]:.4f} | {bpp[8] / bpp[16]:.3f}")
