"""Model selection on validation patches (never on the dev/test images): BD-rate of codec B against codec A.

Estimated rates (from the likelihoods) and PSNR of every quality level on the validation split of a prepared
dataset, as is and with extra 1..3-look speckle (``sarcodec.train.objectives.add_speckle``, fixed seed); prints both
curves and B's BD-rate against A on each set.

    python scripts/compare_codecs_val.py A.safetensors B.safetensors [--data outputs/codec_p64]
"""

from __future__ import annotations

import argparse

import torch

from sarcodec.bench.bd import bd_metrics
from sarcodec.codec.registry import load_codec
from sarcodec.train.objectives import add_speckle, evaluate_levels, load_patches, patch_db_ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--data", default="outputs/codec_p64")
    parser.add_argument("--patches", type=int, default=512)
    args = parser.parse_args()
    val = load_patches(args.data, "val")[: args.patches]
    speckled = add_speckle(val, patch_db_ranges(args.data, "val")[: args.patches], torch.Generator().manual_seed(0))
    for name, patches in (("val", val), ("val + 1..3-look speckle", speckled)):
        curves = {}
        for path in (args.a, args.b):
            rows = evaluate_levels(load_codec(path).model, patches)
            curves[path] = [(r["bpp"], r["psnr"]) for r in rows]
            print(f"{name:24s} {path}: " + "  ".join(f"{b:.3f}/{p:.2f}" for b, p in curves[path]))
        rate, psnr = bd_metrics(curves[args.a], curves[args.b], bd_range=(0.1, 4.0))
        print(f"{name:24s} BD-rate of B vs A: {rate:+.2f} %, BD-PSNR {psnr:+.3f} dB")


if __name__ == "__main__":
    main()
