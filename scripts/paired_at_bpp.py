"""Two codecs of one benchmark run compared image by image at equal file size: each image's metric interpolated in
log-bpp at fixed rates (inside both codecs' ranges), then the mean over images, how many images B is worse on
and a Wilcoxon signed-rank test of |B| against |A| (for bias columns, which want 0) or of B against A.

    python scripts/paired_at_bpp.py results/codec/benchmark/results.csv sarcodec-hyperprior_v1 sarcodec-hyperprior \
        [--metrics hom_bias_db cfar_f1 peak_db bias_db psnr enl_ratio] [--bpp 0.35 0.5 0.75 1 1.5 2] [--group G]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np
from scipy.stats import wilcoxon

#: Columns where a value nearer 0 is better (compared as |value|); the others: higher is better, except errors.
TOWARD_ZERO = {"bias_db", "hom_bias_db"}
TOWARD_ONE = {"enl_ratio"}  # compared as |log ratio|
LOWER_BETTER = {"rmse_db", "peak_db"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--metrics", nargs="+", default=["hom_bias_db", "cfar_f1", "peak_db", "bias_db", "psnr"])
    parser.add_argument("--bpp", nargs="+", type=float, default=[0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
    parser.add_argument("--group", default=None, help="only the images of this group (default: all)")
    args = parser.parse_args()
    curves: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    with open(args.results, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["codec"] in (args.a, args.b) and args.group in (None, row["group"]):
                curves[row["codec"], row["image"]].append({k: float(v) for k, v in row.items()
                                                           if k in (*args.metrics, "bpp")})
    images = sorted({image for codec, image in curves if codec == args.a} & {image for codec, image in curves
                                                                             if codec == args.b})
    if not images:
        raise SystemExit(f"no image has rows of both {args.a} and {args.b} in {args.results}")
    print(f"{args.b} (B) against {args.a} (A) at equal bpp, {len(images)} images"
          f"{f' of group {args.group}' if args.group else ''} of {args.results}")
    print("| metric | bpp | images | mean A | mean B | B worse on | Wilcoxon p |\n|---|---|---|---|---|---|---|")
    for metric in args.metrics:
        for bpp in args.bpp:
            pairs = []
            for image in images:
                values = []
                for codec in (args.a, args.b):
                    points = sorted(curves[codec, image], key=lambda p: p["bpp"])
                    rates = np.log([p["bpp"] for p in points])
                    if not rates[0] <= np.log(bpp) <= rates[-1]:
                        break
                    values.append(float(np.interp(np.log(bpp), rates, [p[metric] for p in points])))
                if len(values) == 2:
                    pairs.append(values)
            if len(pairs) < 3:
                continue
            a, b = np.array(pairs).T
            if metric in TOWARD_ZERO:
                score_a, score_b = np.abs(a), np.abs(b)  # smaller is better
            elif metric in TOWARD_ONE:
                score_a, score_b = np.abs(np.log(a)), np.abs(np.log(b))
            elif metric in LOWER_BETTER:
                score_a, score_b = a, b
            else:
                score_a, score_b = -a, -b
            worse = int((score_b > score_a).sum())
            p = wilcoxon(score_a, score_b).pvalue if np.any(score_a != score_b) else 1.0
            print(f"| {metric} | {bpp:g} | {len(pairs)} | {a.mean():+.3f} | {b.mean():+.3f} | {worse}/{len(pairs)} | "
                  f"{p:.3f} |")


if __name__ == "__main__":
    main()
