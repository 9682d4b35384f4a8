"""Experiment record (sarcodec 0.8.0, not part of the package): is the homogeneous-region bias --speckle adds at
quality 1 the noise itself or its one draw? For the four dev Sentinel-1 images at quality 1 and six noise seeds (the
shipped seed XOR k * 0x9E3779B97F4A7C15, k = 0 the shipped one), the gain (dB) of the --speckle decode over the same
file decoded --no-speckle, summed over the most homogeneous 9 x 9 windows of the original (the hom_bias metric's).

    python results/codec/speckle/hom_bias_seeds.py
"""
import numpy as np, sarcodec, tempfile
from pathlib import Path
from sarcodec.codec import sidelayer
from sarcodec.evaluate import load_reference
from sarcodec import metrics
orig = sidelayer.speckle_seed
tmp = Path(tempfile.mkdtemp())
paths = sorted(Path("../shared/data/sar/dev").glob("*sentinel1*.tif"))
images = {p: load_reference(p) for p in paths}
for k in range(6):
    sidelayer.speckle_seed = lambda words, k=k: orig(words) ^ (k * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
    row = []
    for path in paths:
        image = images[path]
        sarcodec.compress(path, tmp / "s.sarc", quality=1, speckle=True, overwrite=True)
        ds = sarcodec.decompress(tmp / "s.sarc").array.astype(np.float64)
        dn = sarcodec.decompress(tmp / "s.sarc", speckle=False).array.astype(np.float64)
        ref = image.intensity.astype(np.float64)
        corners = metrics.homogeneous_windows(ref, image.valid, metrics.HOM_WINDOW, metrics.HOM_FRACTION)
        w = metrics.HOM_WINDOW
        sn = sum(ds[r:r+w, c:c+w].sum() for r, c in corners); s0 = sum(dn[r:r+w, c:c+w].sum() for r, c in corners)
        row.append(10 * np.log10(sn / s0))
    print(k, " ".join(f"{v:+.3f}" for v in row), flush=True)
