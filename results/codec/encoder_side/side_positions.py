"""Experiment record (sarcodec 0.7.10, not part of the package): how far a context model could shrink the side
layer's position bits. For each dev image at quality 1: the bright outliers' and targets' positions as written
(LZMA2 of the gap planes, alone), the cost of as many positions drawn at random, and the adaptive code length of
the position mask in raster order with 0, 2 (W, N), 4 and 6 causal neighbours as context; the values as written and
their order-0 entropy.

    python results/codec/encoder_side/side_positions.py
"""
import glob, os, warnings, sys, math, numpy as np
warnings.filterwarnings("ignore")
from sarcodec.codec import sidelayer
from sarcodec.codec.sidelayer import TileSide
from sarcodec.io import packing
from sarcodec.codec.api import compress
import rasterio
seen = []
orig = sidelayer.encode_side
sidelayer.encode_side = lambda s: (seen.append(s), orig(s))[1]
E = np.zeros(0, dtype=np.int64)
def ctx_bits(mask, order):
    """Adaptive (KT) code length of a binary mask in raster order with causal neighbour context."""
    h, w = mask.shape
    p = np.pad(mask.astype(np.int64), 2)
    ctxs = []
    offs = {"none": [], "W,N": [(0,-1),(-1,0)], "4": [(0,-1),(-1,-1),(-1,0),(-1,1)], "6": [(0,-1),(-1,-1),(-1,0),(-1,1),(0,-2),(-2,0)]}[order]
    c = np.zeros((h, w), dtype=np.int64)
    for k, (dy, dx) in enumerate(offs):
        c |= p[2+dy:2+dy+h, 2+dx:2+dx+w] << k
    c = c.ravel(); m = mask.ravel().astype(np.int64)
    n0 = np.full(1 << len(offs), 0.5); n1 = np.full(1 << len(offs), 0.5)
    bits = 0.0
    for ci, mi in zip(c, m):
        t = n0[ci] + n1[ci]
        bits -= math.log2((n1[ci] if mi else n0[ci]) / t)
        if mi: n1[ci] += 1
        else: n0[ci] += 1
    return bits
for f in sorted(glob.glob("../shared/data/sar/dev/*.tif")):
    with rasterio.open(f) as ds: shape = (ds.height, ds.width)
    seen.clear(); compress(f, "/tmp/cm.sarc", quality=1.0, overwrite=True); s = seen[-1]
    gaps = np.diff(np.concatenate([[-1], s.above_index])) - 1
    lz_pos = len(packing.compress(packing.varints(np.array([s.above_index.size])) + packing.planes(gaps, packing.width(gaps))))
    lz_val = len(packing.compress(packing.planes(s.above_q, packing.width(s.above_q))))
    mask = np.zeros(shape, bool); mask.ravel()[s.above_index] = True
    n = s.above_index.size; N = mask.size
    rand = (math.lgamma(N+1)-math.lgamma(n+1)-math.lgamma(N-n+1))/math.log(2)/8
    # value entropy order-0
    _, cnt = np.unique(s.above_q, return_counts=True); h0 = -(cnt*np.log2(cnt/cnt.sum())).sum()/8
    print(f"{os.path.basename(f)[6:34]:28s} n={n:4d} pos: lzma {lz_pos:4d} B, random {rand:5.0f}, ctx0 {ctx_bits(mask,'none')/8:5.0f}, ctxWN {ctx_bits(mask,'W,N')/8:5.0f}, ctx4 {ctx_bits(mask,'4')/8:5.0f}, ctx6 {ctx_bits(mask,'6')/8:5.0f} | val: lzma {lz_val} H0 {h0:.0f}")
