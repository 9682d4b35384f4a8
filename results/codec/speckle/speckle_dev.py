"""Speckle synthesis (``compress --speckle``) on the dev set: what it gives back and what it costs.

For every image of DEV (default ``../shared/data/sar/dev``) and quality 1..6: ``sarcodec.compress`` with and without
``speckle=True``, ``sarcodec.decompress`` (the file's default: speckle synthesized when stored), then the SPEC's
metrics against the original (``sarcodec.evaluate``), and JPEG 2000 on the full range (``sarcodec.bench.classical``,
as the benchmark runs it) at the bpp of the speckle file. Prints, per group, each codec's metrics interpolated
linearly in bpp at 0.5 and 1 bpp (codec v2's ENL target is 0.8-1.25 there on Sentinel-1), and the file size
the speckle map and its extra false-target fixes add at each quality.

    python results/codec/speckle/speckle_dev.py [DEV] [--qualities 1,2,3,4,5,6] [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

import sarcodec
from sarcodec.bench.classical import jpeg2000_fullrange_roundtrip
from sarcodec.evaluate import load_reference

METRICS = ("psnr", "enl_ratio", "cfar_f1", "peak_db", "bias_db", "hom_bias_db", "ssim")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev", nargs="?", default="../shared/data/sar/dev")
    ap.add_argument("--qualities", default="1,2,3,4,5,6")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    qualities = [float(q) for q in args.qualities.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(p for p in Path(args.dev).iterdir() if p.suffix in (".tif", ".tiff")):
            image = load_reference(path)
            for q in qualities:
                for codec, speckle in (("sarcodec", False), ("sarcodec --speckle", True)):
                    out = Path(tmp) / f"{path.stem}_{q}_{speckle}.sarc"
                    result = sarcodec.compress(path, out, quality=q, speckle=speckle)
                    x_hat, intensity = image.decoded(sarcodec.decompress(out).array)
                    score = image.score(x_hat, intensity).to_dict()
                    rows.append({"image": image.name, "group": image.group, "codec": codec, "quality": q,
                                 "bpp": result.bpp, **{m: score[m] for m in METRICS}})
                n_bytes, x_full, i_full, _, _ = jpeg2000_fullrange_roundtrip(image, rows[-1]["bpp"])
                score = image.score(x_full, i_full).to_dict()
                rows.append({"image": image.name, "group": image.group, "codec": "jpeg2000 full range", "quality": q,
                             "bpp": n_bytes * 8 / image.x.size, **{m: score[m] for m in METRICS}})
            print(f"{image.name}: done", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    report(rows, qualities)


def at_bpp(points: list[tuple[float, float]], bpp: float) -> float:
    """A metric interpolated linearly in bpp (NaN outside the measured range)."""
    points = sorted(p for p in points if np.isfinite(p[1]))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if not xs or bpp < xs[0] or bpp > xs[-1]:
        return float("nan")
    return float(np.interp(bpp, xs, ys))


def report(rows: list[dict], qualities: list[float]) -> None:
    by = defaultdict(list)
    for r in rows:
        by[r["group"], r["codec"], r["image"]].append(r)
    groups = sorted({r["group"] for r in rows})
    codecs = ["sarcodec", "sarcodec --speckle", "jpeg2000 full range"]
    for group in groups:
        images = sorted({r["image"] for r in rows if r["group"] == group})
        print(f"\n## {group} ({len(images)} images): mean over images, interpolated at each bpp")
        print("| codec | bpp | " + " | ".join(METRICS) + " |")
        print("|---|---|" + "---|" * len(METRICS))
        for bpp in (0.25, 0.5, 1.0):
            for codec in codecs:
                values = [[at_bpp([(r["bpp"], r[m]) for r in by[group, codec, im]], bpp) for im in images]
                          for m in METRICS]
                if np.isnan(values[0]).all():
                    continue  # outside every image's measured range of bpp
                print(f"| {codec} | {bpp} | " + " | ".join(f"{np.nanmean(v):.3f}" for v in values) + " |")
        print("\n| quality | mean bpp | mean bpp --speckle | size added |")
        print("|---|---|---|---|")
        for q in qualities:
            plain = np.mean([r["bpp"] for r in rows if r["group"] == group and r["codec"] == "sarcodec"
                             and r["quality"] == q])
            speck = np.mean([r["bpp"] for r in rows if r["group"] == group and r["codec"] == "sarcodec --speckle"
                             and r["quality"] == q])
            print(f"| {q:g} | {plain:.3f} | {speck:.3f} | {100 * (speck / plain - 1):+.1f} % |")


if __name__ == "__main__":
    main()
