"""What ``decompress --no-speckle`` keeps of the mean intensity: per dev Sentinel-1 image and quality, the scene bias
and the RMS and largest bias of the 32 x 32 block means (dB, valid pixels, linear intensity against the original) of
the plain file, of the ``--speckle`` file decoded with its speckle, and of the same file decoded without it.

    python results/codec/speckle/no_speckle_bias.py [DEV] [--qualities 1,2,3,4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import sarcodec
from sarcodec.io.raster import open_raster


def block_bias(decoded: np.ndarray, original: np.ndarray, block: int = 32) -> tuple[float, float, float]:
    valid = np.isfinite(original) & (original > 0) & np.isfinite(decoded)
    h, w = (s - s % block for s in original.shape)

    def sums(a: np.ndarray) -> np.ndarray:
        return np.where(valid, a, 0.0)[:h, :w].reshape(h // block, block, w // block, block).sum(axis=(1, 3))

    d, o = sums(decoded.astype(np.float64)), sums(original.astype(np.float64))
    ok = (o > 0) & (d > 0)
    blocks = 10 * np.log10(d[ok] / o[ok])
    scene = 10 * np.log10(decoded[valid].astype(np.float64).sum() / original[valid].astype(np.float64).sum())
    return float(scene), float(np.sqrt(np.mean(blocks ** 2))), float(np.abs(blocks).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev", nargs="?", default="../shared/data/sar/dev")
    ap.add_argument("--qualities", default="1,2,3,4")
    args = ap.parse_args()
    print("| image | q | plain: scene / block rms / max (dB) | --speckle | --speckle, decoded --no-speckle |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(args.dev).glob("*sentinel1*.tif")):
            with open_raster(path) as reader:
                original = reader.read().astype(np.float64)
            for q in (float(v) for v in args.qualities.split(",")):
                cells = []
                for speckle, decode in ((False, True), (True, True), (True, False)):
                    out = Path(tmp) / f"{speckle}.sarc"
                    if decode:
                        sarcodec.compress(path, out, quality=q, speckle=speckle, overwrite=True)
                    decoded = sarcodec.decompress(out, speckle=decode).array
                    cells.append("{:+.3f} / {:.3f} / {:.3f}".format(*block_bias(decoded, original)))
                print(f"| {path.name[6:40]} | {q:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
