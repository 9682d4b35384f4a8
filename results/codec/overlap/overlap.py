"""Experiment record (sarcodec 0.8.0, issues 9 and 10): what the tile overlap costs and buys.

Every coded tile carries ``overlap`` pixels of its neighbours on each side that has one, so a 1024 px tile codes
(1024 + 2 * overlap)^2 pixels: with the default 16 px, 6.3 % more latents (and network time) than its core. This
codes the dev images whose side is 256 px with 128 px tiles (2 x 2 tiles, so the seams are a large share of each
image and the effect of the overlap is ~8x what it is with 1024 px tiles) at overlaps 0, 4, 8, 16, and as one tile
(256 px, no seam), every quality, end to end (``.sarc`` written and decoded, the benchmark's x_norm PSNR), and
prints per group the BD-rate of each overlap against 16 px, the PSNR within 8 px of a seam and the rest, and the
bpp, the analyst metrics of the benchmark (CFAR F1, point-target error, scene bias; means over images and
qualities), and how much more the decode jumps across a seam than between any other neighbouring pixels
("one tile" has no seam and gives the reference). MSTAR chips (128 px) are one tile and left out.

    python results/codec/overlap/overlap.py [--qualities 1,2,3,4,5,6,7,8] > results/codec/overlap/overlap.txt

``--images FILE...`` and ``--tile`` run the same on other images (the check on larger scenes in the README).
"""
import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np

from sarcodec.bench.bd import bd_metrics
from sarcodec.codec.api import compress, decompress
from sarcodec.evaluate import load_reference
from sarcodec.metrics import bias_db, psnr, seam_jump, seam_mask

DEV = Path(__file__).resolve().parents[3].parent / "shared/data/sar/dev"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qualities", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlaps", default="0,4,8,16")
    ap.add_argument("--images", nargs="*", type=Path, default=None, help="default: the dev images")
    args = ap.parse_args()
    qs = [float(q) for q in args.qualities.split(",")]
    one = 2048  # one tile (the largest the format allows): larger than any image here
    configs = [(args.tile, int(o)) for o in args.overlaps.split(",")] + [(one, 0)]
    rows = collections.defaultdict(list)  # (group, config) -> [(image, q, bpp, psnr, seam psnr, rest psnr)]
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.images or sorted(DEV.glob("*.tif")):
            ref = load_reference(path)
            h, w = ref.x.shape
            if min(h, w) <= args.tile:
                continue
            seam = seam_mask((h, w), args.tile) & ref.valid
            rest = ref.valid & ~seam
            for tile, overlap in configs:
                for q in qs:
                    out = Path(tmp) / "x.sarc"
                    res = compress(ref.raw, out, quality=q, units=ref.params.units, nodata=ref.params.nodata,
                                   tile_size=tile, overlap=overlap, device="cpu", overwrite=True)
                    x_hat, intensity = ref.decoded(decompress(out, device="cpu").array)
                    score = ref.score(x_hat, intensity)
                    rows[(ref.group, (tile, overlap))].append(
                        (ref.name, q, res.bytes * 8 / ref.x.size, score.psnr, psnr(x_hat, ref.x, mask=seam),
                         psnr(x_hat, ref.x, mask=rest), seam_jump(x_hat, ref.valid, args.tile),
                         score.cfar_f1, score.peak_db, score.bias_db, bias_db(intensity, ref.intensity, seam)))
    groups = sorted({g for g, _ in rows})
    anchor = (args.tile, 16)
    print(f"tile {args.tile} px; BD-rate/BD-PSNR against overlap 16 over 0.25-2 bpp, mean over "
          "images; PSNR means over images and qualities")
    for g in groups:
        images = sorted({r[0] for r in rows[(g, anchor)]})
        print(f"== {g} ({len(images)} images)")
        for cfg in configs:
            bds = []
            for im in images:
                a = [(r[2], r[3]) for r in rows[(g, anchor)] if r[0] == im]
                t = [(r[2], r[3]) for r in rows[(g, cfg)] if r[0] == im]
                bds.append(bd_metrics(a, t))
            rate, dpsnr = np.nanmean([b[0] for b in bds]), np.nanmean([b[1] for b in bds])
            rs = rows[(g, cfg)]
            label = "one tile" if cfg[0] == one else f"overlap {cfg[1]:2d}"
            print(f"  {label}: BD-rate {rate:+6.2f} %  BD-PSNR {dpsnr:+.3f} dB  bpp {np.mean([r[2] for r in rs]):.4f}"
                  f"  PSNR {np.mean([r[3] for r in rs]):.3f}  seam {np.mean([r[4] for r in rs]):.3f}"
                  f"  rest {np.mean([r[5] for r in rs]):.3f}  seam jump {np.mean([r[6] for r in rs]):.2f}"
                  f"  CFAR F1 {np.nanmean([r[7] for r in rs]):.3f}"
                  f"  point-target error {np.nanmean([r[8] for r in rs]):.3f} dB"
                  f"  bias {np.nanmean([r[9] for r in rs]):+.4f} dB"
                  f"  seam band bias {np.nanmean([r[10] for r in rs]):+.4f} dB")
        for cfg in configs:
            label = "one tile" if cfg[0] == one else f"overlap {cfg[1]:2d}"
            per_q = collections.defaultdict(list)
            for r in rows[(g, cfg)]:
                per_q[r[1]].append(r[6])
            print(f"  {label} seam jump by quality: " + " ".join(f"{np.mean(v):.2f}" for _, v in sorted(per_q.items())))
        for cfg in configs:
            label = "one tile" if cfg[0] == one else f"overlap {cfg[1]:2d}"
            per_q = collections.defaultdict(list)
            for r in rows[(g, cfg)]:
                per_q[r[1]].append(r[4] - r[5])
            print(f"  {label} seam - rest PSNR by quality: "
                  + " ".join(f"{np.mean(v):+.2f}" for _, v in sorted(per_q.items())))


if __name__ == "__main__":
    main()
