"""Experiment record (sarcodec 0.7.10, not part of the package): what the side layer costs in x_norm BD-rate.

Compresses every image and quality of a benchmark run again (the same files: sizes checked against results.csv),
splits each file's bytes (header, framing, masks, tile tags, the network's words, the side blobs), splits the
side blob into its bright outliers and targets, dark outliers and correction map (each compressed alone), and
recomputes each image's BD-rate against JPEG 2000 (0.25-2 bpp, the benchmark's PCHIP) with the side bytes
removed, or halved, at the same PSNR: an upper bound on what any cheaper side layer could buy on this metric.

    sarcodec benchmark ../shared/data/sar/dev --models hyperprior --codecs jpeg2000 -o /tmp/bench_base
    python results/codec/encoder_side/side_cost.py /tmp/bench_base/results.csv ../shared/data/sar/dev
"""
import collections
import csv
import struct
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from sarcodec.bench.bd import bd_metrics
from sarcodec.codec import sidelayer
from sarcodec.codec.api import compress
from sarcodec.codec.sidelayer import TileSide
from sarcodec.io.sarc import MAGIC, SarcReader

warnings.filterwarnings("ignore")
results, folder = sys.argv[1], Path(sys.argv[2])
sides: list[TileSide] = []
_encode = sidelayer.encode_side
sidelayer.encode_side = lambda side: (sides.append(side), _encode(side))[1]
EMPTY = np.zeros(0, dtype=np.int64)


def parts(path: Path) -> dict[str, int]:
    with SarcReader(path) as reader:
        out = {"size": reader.size, "header": reader._file.tell() - len(MAGIC) - 6, "records": 0, "mask": 0,
               "tags": 0, "words": 0, "side": 0}
        for mask, tiles in reader.bands():
            out["records"] += 1 + len(tiles)
            out["mask"] += len(mask)
            for t in (t for t in tiles if t):
                words = struct.unpack_from("<I", t, 1)[0] if t[0] == 2 else 0
                out["tags"] += 5 if t[0] == 2 else 1
                out["words"] += words
                out["side"] += len(t) - (5 + words if t[0] == 2 else 1)
    return out


rows = list(csv.DictReader(open(results)))
scratch = Path(tempfile.mkdtemp()) / "x.sarc"
side_bytes = {}
print("image quality bytes | header framing mask | words side (bright n/B, dark n/B, correction B)")
for r in (r for r in rows if r["codec"] == "sarcodec-hyperprior"):
    sides.clear()
    compress(folder / r["image"], scratch, quality=float(r["setting"]), overwrite=True)
    p = parts(scratch)
    assert p["size"] == int(r["bytes"]), (r["image"], r["setting"], p["size"], r["bytes"])
    side_bytes[r["image"], r["setting"]] = p["side"]
    s = sides[-1]
    bright = len(_encode(TileSide(s.above_index, s.above_q, EMPTY, EMPTY, None)))
    dark = len(_encode(TileSide(EMPTY, EMPTY, s.below_index, s.below_q, None)))
    corr = len(_encode(TileSide(EMPTY, EMPTY, EMPTY, EMPTY, s.correction)))
    print(f"{r['image'][:36]:36s} q{r['setting']} {p['size']:6d} | {p['header']:4d} {8 + 6 + 4 * p['records'] + 4:3d} "
          f"{p['mask']:4d} | {p['words']:6d} {p['side']:5d} ({s.above_index.size}/{bright}, {s.below_index.size}/{dark}, "
          f"{corr}) side {100 * p['side'] / p['size']:.1f} %")
groups = collections.defaultdict(list)
for image in sorted({r["image"] for r in rows}):
    mine = [r for r in rows if r["image"] == image]
    j2k = [(float(r["bpp"]), float(r["psnr"])) for r in mine if r["codec"] == "jpeg2000"]
    ours = [r for r in mine if r["codec"] == "sarcodec-hyperprior"]

    def curve(share: float) -> list[tuple[float, float]]:
        return [(float(r["bpp"]) * (1 - share * side_bytes[image, r["setting"]] / int(r["bytes"])), float(r["psnr"]))
                for r in ours]

    groups[mine[0]["group"]].append([bd_metrics(j2k, curve(s), bd_range=(0.25, 2.0))[0] for s in (0.0, 0.5, 1.0)])
print("\nBD-rate against JPEG 2000 (0.25-2 bpp, mean of the group's images): as written / side bytes halved / none")
for group, values in groups.items():
    print(f"{group:10s} " + " / ".join(f"{v:+.1f} %" for v in np.mean(values, axis=0)))
