"""A prepared patch dataset as the codec's network sees tiles at inference: a copy of ``SRC`` whose patches have
the side layer's pixels and the invalid pixels replaced by the encoder's smooth fill.

At inference the encoder stores the pixels beyond the clip range, the CA-CFAR point targets and the dark outliers
in the side layer and gives the network a smooth fill there (``sarcodec.codec.lossy._prepare_region``: the side
mask of ``sarcodec.codec.sidelayer.side_mask``, then ``sarcodec.codec.tiling.fill_invalid``), and fills nodata the
same way; ``sarcodec prepare`` cuts patches from the plain x_norm (spikes, noise floor at nodata). This computes each
image's side mask on the whole image (targets by CA-CFAR over the whole image, as the encoder does over a tile and
its overlap), then fills each patch. Same manifest, index and validity masks; only the patches change.

    python scripts/side_fill_patches.py outputs/codec_p64x outputs/codec_p64x_filled
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from sarcodec.codec import sidelayer
from sarcodec.codec.tiling import fill_invalid
from sarcodec.data.prepare import load_manifest
from sarcodec.io.raster import open_raster
from sarcodec.preprocess import db_to_intensity, to_db


def image_side_mask(entry: dict, root: Path) -> np.ndarray:
    """The side layer's pixels of one image of the manifest (whole image)."""
    params = entry["preprocessing_params"]
    path = Path(entry["path"])
    with open_raster(path if path.exists() else root / path, entry["raster"]["band"]) as reader:
        values = reader.read()
    db, valid = to_db(values, params["units"], params["nodata"])
    targets = sidelayer.point_targets(db_to_intensity(np.where(valid, db, -np.inf)), valid)
    return sidelayer.side_mask(db, valid, params["db_lo"], params["db_hi"], sidelayer.STEP_LO_DB,
                               sidelayer.STEP_HI_DB, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    manifest = load_manifest(args.src)
    if args.dst.exists():
        raise SystemExit(f"{args.dst} exists")
    shutil.copytree(args.src, args.dst)
    p = int(manifest["patch_size"])
    filled_share = []
    for split, files in manifest["files"].items():
        patches = np.load(args.dst / files["patches"])
        valid = np.load(args.dst / files["valid"]).astype(bool)
        index = np.load(args.dst / files["index"])
        by_image = defaultdict(list)
        for i, (image, _, _) in enumerate(index):
            by_image[int(image)].append(i)
        for image, rows in by_image.items():
            side = image_side_mask(manifest["images"][image], args.src)
            for i in rows:
                _, r, c = index[i]
                keep = valid[i] & ~side[r : r + p, c : c + p]
                filled_share.append(1.0 - keep.mean())
                x = fill_invalid(patches[i].astype(np.float32) / 65535.0, keep)
                patches[i] = np.rint(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)
        np.save(args.dst / files["patches"], patches)
        print(f"{split}: {len(index)} patches filled")
    manifest["side_filled"] = {"from": str(args.src), "by": "scripts/side_fill_patches.py",
                               "mean_filled_share": float(np.mean(filled_share))}
    (args.dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"pixels filled: {100 * np.mean(filled_share):.3f} % on average per patch")


if __name__ == "__main__":
    main()
