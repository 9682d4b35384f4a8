"""Model selection on validation patches (never on the dev/test images): BD-rate of codec B against codec A.

Estimated rates (from the likelihoods) and PSNR of every quality level on the validation split of a prepared
dataset, as is and with extra 1..3-look speckle (``sarcodec.train.objectives.add_speckle``, fixed seed); prints both
curves and B's BD-rate against A on each set. ``--patches N`` takes the split's first N patches (the split is in file
order, so a few scenes may fill them; 0: all); ``--by-scene`` also prints B's BD-rate on each scene's patches.

    python scripts/compare_codecs_val.py A.safetensors B.safetensors [--data outputs/codec_p64] [--patches 0] [--by-scene]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from sarcodec.bench.bd import bd_metrics
from sarcodec.codec.registry import load_codec
from sarcodec.data.prepare import load_manifest
from sarcodec.train.objectives import add_speckle, evaluate_levels, load_patches, patch_db_ranges

#: Rates of the BD metrics on validation patches (wider than the benchmark's: patches span more rates than images).
BD_RANGE = (0.1, 4.0)


def patch_scenes(root: str, split: str) -> list[str]:
    """The scene of each patch of ``split`` (from the dataset's manifest and index)."""
    manifest = load_manifest(root)
    index = np.load(f"{root}/{manifest['files'][split]['index']}")
    return [manifest["images"][int(i)]["scene"] for i in index[:, 0]]


def compare(models: Sequence[torch.nn.Module], names: Sequence[str], label: str, patches: torch.Tensor,
            show: bool = True) -> tuple[float, float]:
    """BD-rate and BD-PSNR of the second model against the first on ``patches`` (prints both curves if ``show``)."""
    curves = []
    for model, name in zip(models, names):
        rows = evaluate_levels(model, patches)
        curves.append([(r["bpp"], r["psnr"]) for r in rows])
        if show:
            print(f"{label:24s} {name}: " + "  ".join(f"{b:.3f}/{p:.2f}" for b, p in curves[-1]))
    return bd_metrics(curves[0], curves[1], bd_range=BD_RANGE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--data", default="outputs/codec_p64")
    parser.add_argument("--patches", type=int, default=512, help="the split's first N patches (0: all; default 512)")
    parser.add_argument("--by-scene", action="store_true", help="also B's BD-rate on each scene's patches")
    args = parser.parse_args()
    val = load_patches(args.data, "val")
    count = len(val) if args.patches <= 0 else min(args.patches, len(val))
    val = val[:count]
    speckled = add_speckle(val, patch_db_ranges(args.data, "val")[:count], torch.Generator().manual_seed(0))
    models = [load_codec(path).model for path in (args.a, args.b)]
    scenes = np.array(patch_scenes(args.data, "val")[:count])
    for name, patches in (("val", val), ("val + 1..3-look speckle", speckled)):
        rate, psnr = compare(models, (args.a, args.b), name, patches)
        print(f"{name:24s} BD-rate of B vs A: {rate:+.2f} %, BD-PSNR {psnr:+.3f} dB ({count} patches)")
        if args.by_scene:
            for scene in sorted(set(scenes.tolist())):
                chosen = torch.from_numpy(np.flatnonzero(scenes == scene))
                rate, psnr = compare(models, (args.a, args.b), name, patches[chosen], show=False)
                print(f"{name:24s}   scene {scene}: {rate:+.2f} %, BD-PSNR {psnr:+.3f} dB ({len(chosen)} patches)")


if __name__ == "__main__":
    main()
