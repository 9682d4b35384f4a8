"""Give a hyperprior codec file its exact integer hyper-decoder (``sarcodec.models.codecs.integer``).

The float weights stay as they are; the integer hyper-decoder is quantized from them, with activation ranges
measured on the given training (or validation) images at every quality level, and stored beside them. Files
written with the new weights use the integer probability path; the new file has another SHA-256, so files written
with the source weights keep decoding with those (ship the source under another name).

    python scripts/integerize_codec.py SRC.safetensors DST.safetensors --images ../shared/data/sar/train
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sarcodec.codec.registry import load_codec
from sarcodec.evaluate import load_reference
from sarcodec.io.raster import find_rasters
from sarcodec.train.objectives import save_codec_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="codec weights (.safetensors) or a shipped codec name")
    parser.add_argument("dst", type=Path, help="the new codec file (must not exist)")
    parser.add_argument("--images", nargs="+", required=True, help="rasters or folders: training/validation images")
    args = parser.parse_args()
    if args.dst.exists():
        sys.exit(f"error: {args.dst} exists; not overwriting it")
    loaded = load_codec(args.src)
    model = loaded.model
    if not hasattr(model, "integerize"):
        sys.exit(f"error: {args.src} is a {loaded.metadata.get('codec')} codec, which has no hyper-decoder")
    paths = find_rasters(args.images)
    if not paths:
        sys.exit("error: no rasters found in --images")
    images = (torch.from_numpy(load_reference(p).x)[None, None].float() for p in paths)
    summary = model.integerize(images)  # (changes the network load_codec cached for SRC: fine in this one-shot)
    metadata = dict(loaded.metadata)
    metadata["integer_hyper"] = json.dumps({**summary, "calibration": [str(p) for p in args.images],
                                            "calibration_images": len(paths),
                                            "float_weights_sha256": loaded.sha256})
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    save_codec_file(model, args.dst, metadata)
    print(f"{args.dst}: integer hyper-decoder from {len(paths)} images, {summary}")


if __name__ == "__main__":
    main()
