"""Experiment record (sarcodec 0.7.1, not part of the package): side-layer parameters against the x_norm BD-rate.

Each variant changes what the encoder writes without a format change (the steps are in the header; the CA-CFAR
contrast is the encoder's choice); every quality 1..8 of the shipped hyperprior is written and decoded end to end and
scored with the benchmark's metrics; BD-rate against JPEG 2000 (same pixels) per image, 0.25-2 bpp.

    python results/codec/encoder_side/side_variants.py '{"base":{}, "hi1":{"step_hi":1.0}, "c12":{"contrast":12.0}, "lo2":{"step_lo":2.0}}' \
        ../shared/data/sar/dev/*sentinel1*
"""
import sys, json, tempfile, numpy as np
from pathlib import Path
import sarcodec.codec.sidelayer as sl
import sarcodec.codec.lossy as lossy
from sarcodec.bench.classical import CLASSICAL_CODECS
from sarcodec.bench.sweep import sarc_roundtrip
from sarcodec.bench.bd import bd_metrics
from sarcodec.evaluate import load_reference

VARIANTS = json.loads(sys.argv[1])
files = sys.argv[2:]
scratch = Path(tempfile.mkdtemp())
j2k = CLASSICAL_CODECS["jpeg2000"]
rt = sarc_roundtrip("hyperprior")
base_defaults = dict(lossy.SIDE_DEFAULTS)
res = {}
for f in files:
    image = load_reference(f, None)
    anchor = []
    for s in j2k[0]:
        nb, xh, inten, _, _ = j2k[2](image, s, scratch)
        anchor.append((nb * 8 / image.x.size, image.score(xh, inten).psnr))
    for name, v in VARIANTS.items():
        lossy.SIDE_DEFAULTS.clear(); lossy.SIDE_DEFAULTS.update(base_defaults)
        lossy.SIDE_DEFAULTS.update({k: v[k] for k in ("step_hi", "step_lo") if k in v})
        sl.TARGET_CONTRAST_DB = v.get("contrast", 11.0)
        pts = []
        for q in range(1, 9):
            nb, xh, inten, _, _ = rt(image, q, scratch)
            sc = image.score(xh, inten)
            pts.append((nb * 8 / image.x.size, sc.psnr, sc.peak_db, sc.cfar_f1, sc.hom_bias_db, sc.bias_db))
        bd, _ = bd_metrics(anchor, [p[:2] for p in pts])
        res.setdefault(name, []).append(bd)
        p = pts
        print(f"{image.name[:34]:34s} {name:12s} BD {bd:+6.2f}%  q1 {p[0][0]:.3f}bpp {p[0][1]:.2f}dB peak {p[0][2]:.2f} f1 {p[0][3]:.2f} | q2 {p[1][0]:.3f} peak {p[1][2]:.2f} f1 {p[1][3]:.2f} | q4 {p[3][0]:.3f} peak {p[3][2]:.2f} f1 {p[3][3]:.2f}", flush=True)
for name, v in res.items():
    print(f"{name:12s} mean BD {np.mean(v):+.2f}%  per image {' '.join(f'{x:+.2f}' for x in v)}")
