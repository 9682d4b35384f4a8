"""What nodata costs: an image inside a large NaN border against its valid part alone, at the same quality.

The valid part: a 400 x 400 crop of the uint16 Sentinel-1 GRD in ``../shared/data/sar/extra/rio_tiler_pds_s1_grd``
(intensity = DN^2), or of the bundled OPERA sample when ../shared is absent (100 x 100). It is placed in a NaN border
2.5 times its size each way (84 % NaN); both are compressed with the default model at qualities 2, 4 and 6. Prints
bytes, the ratio bordered / alone (the fidelity issue's target: <= 1.15) and the x_norm PSNR of the valid part in
both files; then a constant 256 x 256 image against JPEG 2000 (OpenJPEG) at its smallest setting.

    python benchmarks/nodata_cost.py
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import sarcodec
from sarcodec.io.raster import open_raster
from sarcodec.metrics import psnr
from sarcodec.preprocess import forward, params_for_array

REPO = Path(__file__).resolve().parents[1]
GRD = REPO.parent / "shared/data/sar/extra/rio_tiler_pds_s1_grd/S1A_IW_GRDH_1SDV_20180716T004042_20180716T004107_022812_02792A_FD5B_vv.tiff"


def main() -> None:
    if GRD.is_file():
        with open_raster(GRD) as reader:
            core = reader.read()[200:600, 200:600].astype(np.float32) ** 2
        source = f"{GRD.name} [200:600, 200:600], DN^2"
    else:
        with open_raster(sorted((REPO / "samples/opera").glob("*.tif"))[0]) as reader:
            core = reader.read().astype(np.float32)
        source = "samples/opera (first file)"
    n = core.shape[0]
    big = np.full((int(2.5 * n), int(2.5 * n)), np.nan, np.float32)
    o = (big.shape[0] - n) // 2
    big[o : o + n, o : o + n] = core
    params = params_for_array(core, "intensity")
    x, _ = forward(core, params)
    print(f"valid part: {source}; bordered: {big.shape[0]} x {big.shape[1]}, {np.isnan(big).mean():.0%} NaN")
    with tempfile.TemporaryDirectory() as tmp:
        for q in (2, 4, 6):
            alone = sarcodec.compress(core, Path(tmp) / "a.sarc", quality=q, overwrite=True)
            bordered = sarcodec.compress(big, Path(tmp) / "b.sarc", quality=q, overwrite=True)
            xa, _ = forward(sarcodec.decompress(Path(tmp) / "a.sarc").array, params)
            xb, _ = forward(sarcodec.decompress(Path(tmp) / "b.sarc").array[o : o + n, o : o + n], params)
            print(f"quality {q}: alone {alone.bytes} B, bordered {bordered.bytes} B, ratio {bordered.bytes / alone.bytes:.3f}; "
                  f"PSNR of the valid part {psnr(xa, x):.2f} / {psnr(xb, x):.2f} dB")
        constant = sarcodec.compress(np.full((256, 256), 0.05, np.float32), Path(tmp) / "c.sarc").bytes
    buf = io.BytesIO()
    Image.fromarray(np.full((256, 256), 1000, np.uint16)).save(buf, format="JPEG2000", irreversible=True,
                                                               quality_mode="rates", quality_layers=[16 / 0.01])
    print(f"constant 256 x 256: sarcodec {constant} B, JPEG 2000 {len(buf.getvalue())} B, "
          f"ratio {constant / len(buf.getvalue()):.2f}")


if __name__ == "__main__":
    main()
