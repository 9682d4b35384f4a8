"""Experiment record (sarcodec 0.8.0, not part of the package): how much of the homogeneous-region bias that
--speckle adds at quality 1 comes from the encoder's false-target pass. For the four dev Sentinel-1 images, plain and
--speckle files at quality 1, with the pass as shipped (`on`) or disabled (`off`: sidelayer.point_targets patched to
find nothing when called from lossy._close_side).

    python results/codec/speckle/hom_bias_false_targets.py on
    python results/codec/speckle/hom_bias_false_targets.py off
"""
import sys, numpy as np, sarcodec, tempfile
from pathlib import Path
from sarcodec.codec import sidelayer
from sarcodec.evaluate import load_reference
disable = sys.argv[1] == "off"
orig = sidelayer.point_targets

def patched(intensity, valid):
    import inspect
    caller = inspect.stack()[1].function
    if disable and caller == "_close_side":
        return np.zeros(intensity.shape, bool)
    return orig(intensity, valid)
sidelayer.point_targets = patched
tmp = Path(tempfile.mkdtemp())
for path in sorted(Path("../shared/data/sar/dev").glob("*sentinel1*.tif")):
    image = load_reference(path)
    row = []
    for sp in (False, True):
        sarcodec.compress(path, tmp / "a.sarc", quality=1, speckle=sp, overwrite=True)
        s = image.score(*image.decoded(sarcodec.decompress(tmp / "a.sarc").array))
        row.append(f"hom {s.hom_bias_db:+.3f} enl {s.enl_ratio:.2f} cfar {s.cfar_f1:.3f} bytes {(tmp/'a.sarc').stat().st_size}")
    print(path.name[6:30], " | ".join(row), flush=True)
