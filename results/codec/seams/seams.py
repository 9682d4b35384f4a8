"""Experiment record (sarcodec 0.8.2, issues 9 and 10): seams of the radiometric correction before format 6 and in it.

Until format 5 the decoder blended the tiles' network outputs across the overlap in dB and then added each tile
*core*'s radiometric correction (``sarcodec.codec.sidelayer``), which therefore stepped at the core's edge: at low
rates the seams showed, and the strips were darker (a mean in dB is a geometric mean of intensities). Format 6
(multi-tile lossy files) extends each tile's correction over its overlap and blends the corrected tiles in linear
intensity. The tile records are
the same; this writes each image both ways (format 6 as the coder does now, the older format by writing the file
as if it had one tile), checks the records are identical, decodes both and prints per group and for a one-tile file
of the same image (no seam, the reference): x_norm PSNR, PSNR within 8 px of a seam, seam jump
(:func:`sarcodec.metrics.seam_jump`) overall and per quality, the benchmark's analyst metrics and the bias of mean
intensity within 8 px of a seam.

    python results/codec/seams/seams.py > results/codec/seams/seams.txt
    python results/codec/seams/seams.py --tile 512 --images ../shared/data/sar/extra/rio_tiler_pds_s1_grd/*.tiff
    python results/codec/seams/seams.py --speckle > results/codec/seams/seams_speckle.txt

Images no larger than one tile (MSTAR chips at the default ``--tile 128``) have no seam and are left out.
"""
import argparse
import collections
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from sarcodec.codec.api import compress, decompress
from sarcodec.evaluate import load_reference
from sarcodec.io import sarc
from sarcodec.metrics import bias_db, psnr, seam_jump, seam_mask

DEV = Path(__file__).resolve().parents[3].parent / "shared/data/sar/dev"
MODES = ("before 6", "format 6", "one tile")


def records(path: Path) -> list:
    with sarc.SarcReader(path) as reader:
        return [(mask, list(payloads)) for mask, payloads in reader.bands()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qualities", default="1,2,3,4,6,8")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--images", nargs="*", type=Path, default=None, help="default: the dev images")
    ap.add_argument("--speckle", action="store_true", help="compress --speckle (speckle maps, decoded with them)")
    args = ap.parse_args()
    qs = [float(q) for q in args.qualities.split(",")]
    rows = collections.defaultdict(list)  # (group, mode) -> [(q, bpp, psnr, seam psnr, jump, cfar, peak, bias)]
    single = sarc.stored_version
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.images or sorted(DEV.glob("*.tif")):
            ref = load_reference(path)
            h, w = ref.x.shape
            if max(h, w) <= args.tile:  # no seam
                continue
            seam = seam_mask((h, w), args.tile) & ref.valid
            for q in qs:
                files = {mode: Path(tmp) / f"{i}.sarc" for i, mode in enumerate(MODES)}
                for mode, out in files.items():
                    one = mode == "one tile"
                    with mock.patch.object(sarc, "stored_version", lambda f, v: single({**f, "n_tiles": 1}, v)) \
                            if mode == "before 6" else mock.patch.object(sarc, "stored_version", single):
                        res = compress(ref.raw, out, quality=q, units=ref.params.units, nodata=ref.params.nodata,
                                       tile_size=2048 if one else args.tile, overlap=0 if one else args.overlap,
                                       device="cpu", overwrite=True, speckle=args.speckle)
                    with sarc.SarcReader(out) as reader:
                        version = reader.version
                    x_hat, intensity = ref.decoded(decompress(out, device="cpu").array)
                    s = ref.score(x_hat, intensity)
                    jump = seam_jump(x_hat, ref.valid, args.tile)
                    rows[(ref.group, mode)].append((q, res.bytes * 8 / ref.x.size, s.psnr,
                                                    psnr(x_hat, ref.x, mask=seam), jump, s.cfar_f1, s.peak_db,
                                                    s.bias_db, version, bias_db(intensity, ref.intensity, seam),
                                                    s.enl_ratio))
                assert records(files["before 6"]) == records(files["format 6"]), path
    print(f"tile {args.tile} px, overlap {args.overlap}{', --speckle' if args.speckle else ''}; means over images and "
          f"qualities {args.qualities}")
    for g in sorted({g for g, _ in rows}):
        print(f"== {g} ({len(rows[(g, MODES[0])]) // len(qs)} images)")
        for mode in MODES:
            rs = np.array(rows[(g, mode)], dtype=np.float64)
            versions = sorted({int(v) for v in rs[:, 8]})
            print(f"  {mode:8s} (written as {versions}): bpp {rs[:, 1].mean():.4f}  PSNR {rs[:, 2].mean():.4f}"
                  f"  seam band {rs[:, 3].mean():.4f}  seam jump {rs[:, 4].mean():.3f}"
                  f"  CFAR F1 {np.nanmean(rs[:, 5]):.4f}  point-target error {np.nanmean(rs[:, 6]):.4f} dB"
                  f"  bias {np.nanmean(rs[:, 7]):+.4f} dB  seam band bias {np.nanmean(rs[:, 9]):+.4f} dB"
                  f"  ENL ratio {np.nanmean(rs[:, 10]):.3f}")
            print("    seam jump by quality: " + "  ".join(
                f"q{q:g} {rs[rs[:, 0] == q, 4].mean():.2f}" for q in qs))


if __name__ == "__main__":
    main()
