"""End-to-end check: `sarcodec compress` then `sarcodec decompress` (the CLI, default model and quality) on every
raster under the given paths; checks shape, dtype, CRS, transform and nodata, and prints a Markdown table of
bitrate and PSNR (working representation under the original's parameters).

    python scripts/roundtrip_check.py ../shared/data/sar/dev ../shared/data/sar/geotiff
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio

from sarcodec.io.raster import find_rasters, open_raster
from sarcodec.metrics import psnr
from sarcodec.preprocess import forward, params_for_array


def main() -> int:
    files = find_rasters(sys.argv[1:])
    failures = 0
    print("| file | shape | dtype | georef kept | bpp | PSNR (dB) |\n|---|---|---|---|---|---|")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(files):
            sarc, tif = Path(tmp) / f"{i}.sarc", Path(tmp) / f"{i}.tif"
            for args in (["compress", str(f), "-o", str(sarc)], ["decompress", str(sarc), "-o", str(tif)]):
                subprocess.run([sys.executable, "-m", "sarcodec", *args], check=True, capture_output=True)
            with rasterio.open(f) as a, rasterio.open(tif) as b:
                same_nodata = (a.nodata is None and b.nodata is None) or np.isclose(a.nodata, b.nodata, equal_nan=True)
                georef = a.crs == b.crs and a.transform == b.transform and bool(same_nodata)
                ok = georef and a.shape == b.shape and a.dtypes[0] == b.dtypes[0]
            with open_raster(f) as r:
                raw, nodata = r.read(), r.info.nodata
            with open_raster(tif) as r:
                rec = r.read()
            params = params_for_array(raw, None, nodata=nodata)
            value = psnr(forward(rec, params)[0], forward(raw, params)[0])
            bpp = sarc.stat().st_size * 8 / raw.size
            failures += not ok
            name = str(f).split("/sar/")[-1]
            print(f"| {name} | {raw.shape[0]}x{raw.shape[1]} | {raw.dtype} | {'yes' if georef else 'NO'} | {bpp:.3f} | {value:.2f} |")
    print(f"\n{len(files)} files, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
