"""End-to-end check: `sarcodec compress` then `sarcodec decompress` (the CLI, default model and quality) on every
raster under the given paths; checks shape, dtype, CRS, transform and nodata, and prints a Markdown table of
bitrate, PSNR (working representation under the original's parameters) and the original-unit fidelity metrics.

    python scripts/roundtrip_check.py ../shared/data/sar/dev ../shared/data/sar/geotiff ../shared/data/sar/extra
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio

from sarcodec.evaluate import load_reference
from sarcodec.io.raster import find_rasters, open_raster


def _gcps(ds: rasterio.io.DatasetReader) -> tuple[list[tuple[float, ...]], object]:
    points, crs = ds.gcps
    return [(p.row, p.col, p.x, p.y, p.z) for p in points], crs


def main() -> int:
    files = find_rasters(sys.argv[1:])
    failures = 0
    print("| file | shape | dtype | georef kept | bpp | PSNR x_norm (dB) | bias (dB) | hom. bias (dB) | peak err (dB) "
          "| CFAR F1 |\n|---|---|---|---|---|---|---|---|---|---|")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(files):
            sarc, tif = Path(tmp) / f"{i}.sarc", Path(tmp) / f"{i}.tif"
            for args in (["compress", str(f), "-o", str(sarc)], ["decompress", str(sarc), "-o", str(tif)]):
                subprocess.run([sys.executable, "-m", "sarcodec", *args], check=True, capture_output=True)
            georef = True
            if f.suffix != ".npy":
                with rasterio.open(f) as a, rasterio.open(tif) as b:
                    same_nodata = (a.nodata is None and b.nodata is None) or np.isclose(a.nodata, b.nodata,
                                                                                      equal_nan=True)
                    georef = (a.crs == b.crs and a.transform == b.transform and _gcps(a) == _gcps(b)
                              and bool(same_nodata))
            image = load_reference(f)
            with open_raster(tif) as r:
                rec = r.read()
            ok = georef and rec.shape == image.raw.shape and rec.dtype == image.raw.dtype
            score = image.score(*image.decoded(rec))
            bpp = sarc.stat().st_size * 8 / image.raw.size
            failures += not ok
            name = str(f).split("/sar/")[-1]
            print(f"| {name} | {rec.shape[0]}x{rec.shape[1]} | {image.raw.dtype} | {'yes' if georef else 'NO'} | "
                  f"{bpp:.3f} | {score.psnr:.2f} | {score.bias_db:+.3f} | {score.hom_bias_db:+.3f} | "
                  f"{score.peak_db:.2f} | {score.cfar_f1:.2f} |")
    print(f"\n{len(files)} files, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
