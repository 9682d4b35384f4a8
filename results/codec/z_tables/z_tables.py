"""Experiment record (sarcodec 0.8.2, issue 9; not part of the package): what per-quality tables for the
hyper-latents z would save.

The shipped hyperprior codes z with one factorized prior (a table per channel) at every quality, though z = h_a(y
scaled by the quality's gain) is far narrower at low qualities. This codes each dev image (one tile each) at
qualities 1-8 with the shipped coder, and counts z's bits under the shipped tables and under per-quality tables
estimated from the *other* dev images (leave one out; each channel's histogram at that quality plus the shipped
table as two pseudo-counts and 0.5 per symbol), no network or bitstream change beyond the tables. Prints per quality
the network's bytes, z's share and the saving, then, given a benchmark run's results.csv of the same coder, each
group's BD-rate against JPEG 2000 as written and with each file smaller by its image's saving (the benchmark's
PCHIP over 0.25-2 bpp, mean over images).

    sarcodec benchmark ../shared/data/sar/dev --models hyperprior --codecs jpeg2000 -o /tmp/bench_dev
    python results/codec/z_tables/z_tables.py /tmp/bench_dev/results.csv > results/codec/z_tables/z_tables.txt

Shipped tables would be estimated on the training split, not on dev: this sizes the lever, it is not the result.
"""
import collections
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

from sarcodec.bench.bd import bd_metrics
from sarcodec.codec.lite import load_lite
from sarcodec.codec.registry import resolve_codec
from sarcodec.evaluate import load_reference

DEV = Path(__file__).resolve().parents[3].parent / "shared/data/sar/dev"
QUALITIES = range(1, 9)


def z_symbols(model, analysis, quality):
    """The coded z symbols (channels x positions) of ``analysis`` at ``quality``, as ``encode_analysis`` codes them."""
    y = analysis.y * model._gain(quality, inverse=False)[:, None, None]
    z = model._encoder_sessions()[1].run(["y"], {"x": np.ascontiguousarray(y[None])})[0][0]
    low, high = model.z_offsets[:, None, None], (model.z_offsets + model.z_lengths - 1)[:, None, None]
    z_hat = np.clip(np.round(z.astype(np.float64)), low, high)
    return (z_hat.astype(np.int64) - model.z_offsets[:, None, None]).reshape(len(model.z_lengths), -1)


def main() -> None:
    warnings.filterwarnings("ignore")
    model = load_lite(*resolve_codec("hyperprior")).model
    prior = [t / t.sum() for t in model.z_tables]
    paths = sorted(DEV.glob("*.tif"))
    sym, words = {}, {}
    for p in paths:
        ref = load_reference(p)
        analysis = model.analyze(ref.x[None, None].astype(np.float32), ref.valid)
        for q in QUALITIES:
            sym[p.name, q] = z_symbols(model, analysis, q)
            words[p.name, q] = len(model.encode_analysis(analysis, q, reconstruct=False)[0])
    saving = {}  # (image, q) -> bytes saved
    print("quality: network bytes (all dev images), z under the shipped tables (share), z under per-quality tables, "
          "saving in % of the network's bytes")
    for q in QUALITIES:
        shipped = tables = 0.0
        for p in paths:
            s = sym[p.name, q]
            bits_shipped = sum(-np.log2(prior[c][s[c]]).sum() for c in range(len(prior)))
            bits_tables = 0.0
            for c in range(len(prior)):
                counts = 0.5 + 2 * prior[c]
                for o in paths:
                    if o != p:
                        counts = counts + np.bincount(sym[o.name, q][c], minlength=len(counts))
                bits_tables += -np.log2(counts[s[c]] / counts.sum()).sum()
            saving[p.name, q] = (bits_shipped - bits_tables) / 8
            shipped, tables = shipped + bits_shipped / 8, tables + bits_tables / 8
        total = sum(words[p.name, q] for p in paths)
        print(f"q{q}: {total:8d} B  z {shipped:7.0f} B ({shipped / total * 100:4.1f} %)  per-quality {tables:7.0f} B  "
              f"saving {(shipped - tables) / total * 100:5.2f} %")
    if len(sys.argv) < 2:
        return
    rows = list(csv.DictReader(open(sys.argv[1])))
    curves = collections.defaultdict(lambda: collections.defaultdict(list))  # group -> image -> codec -> points
    groups = {}
    for r in rows:
        if r["codec"] not in ("jpeg2000", "sarcodec-hyperprior"):
            continue
        pixels = float(r["bytes"]) * 8 / float(r["bpp"])
        groups[r["image"]] = r["group"]
        curves[r["image"]][r["codec"]].append((float(r["bytes"]) * 8 / pixels, float(r["psnr"])))
        if r["codec"] == "sarcodec-hyperprior":
            smaller = float(r["bytes"]) - saving[r["image"], int(float(r["setting"]))]
            curves[r["image"]]["tables"].append((smaller * 8 / pixels, float(r["psnr"])))
    print("BD-rate against JPEG 2000 (0.25-2 bpp, mean over images): as written -> with per-quality z tables")
    for g in sorted(set(groups.values())):
        images = [i for i in curves if groups[i] == g]
        written = [bd_metrics(curves[i]["jpeg2000"], curves[i]["sarcodec-hyperprior"])[0] for i in images]
        tabled = [bd_metrics(curves[i]["jpeg2000"], curves[i]["tables"])[0] for i in images]
        print(f"  {g} ({len(images)}): {np.nanmean(written):+.1f} % -> {np.nanmean(tabled):+.1f} %")


if __name__ == "__main__":
    main()
