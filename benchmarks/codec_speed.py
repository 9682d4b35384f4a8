"""Encode/decode throughput of sarcodec against OpenJPEG, and peak memory on a large scene.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with speckle (``prepare_bench.make_scene``; default
4096 x 4096), then, each in its own process (peak RSS polled every 20 ms):

- ``sarcodec compress`` (default model, quality 4) and ``sarcodec decompress`` end to end: GeoTIFF in, .sarc, GeoTIFF
  out (reading, preprocessing, tiles, entropy coding, writing);
- the reference: OpenJPEG (Pillow, irreversible 9/7) encoding and decoding the same scene's working
  representation as uint16 at the bitrate sarcodec reached, timed around the codec calls only (in memory).

Prints MP/s of each, the ratios sarcodec/OpenJPEG, the bitrates and the peak RSS. ``--size 10000`` is the
memory check of the issue (limit 2 GB). The GPU is used by sarcodec when present (``--device``).

    python benchmarks/codec_bench.py [--size 4096] [--device auto] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_bench import make_scene, run_measured  # noqa: E402

OPENJPEG = """
import io, json, sys, time
import numpy as np
from PIL import Image
from sarcodec.io.raster import open_raster
from sarcodec.preprocess import forward, params_for_array
Image.MAX_IMAGE_PIXELS = None
raw = open_raster(sys.argv[1]).read()
x, _ = forward(raw, params_for_array(raw, "amplitude", nodata=0))
u16 = np.rint(x * 65535).astype(np.uint16)
bpp = float(sys.argv[2])
t0 = time.perf_counter()
buf = io.BytesIO()
Image.fromarray(u16).save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[16 / bpp], irreversible=True)
t1 = time.perf_counter()
out = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
t2 = time.perf_counter()
print(json.dumps({"encode_s": t1 - t0, "decode_s": t2 - t1, "bpp": len(buf.getvalue()) * 8 / u16.size}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sarcodec-codec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = work / f"speckle_{args.size}.tif"
    try:
        if not scene.exists():
            make_scene(scene, args.size)
        mpix = args.size * args.size / 1e6
        sarc, rec = work / "scene.sarc", work / "scene_rec.tif"
        for p in (sarc, rec):
            p.unlink(missing_ok=True)
        sarcodec = [sys.executable, "-m", "sarcodec"]
        enc_s, enc_rss = run_measured([*sarcodec, "compress", str(scene), "-o", str(sarc), "--quality",
                                       str(args.quality), "--device", args.device])
        dec_s, dec_rss = run_measured([*sarcodec, "decompress", str(sarc), "-o", str(rec), "--device", args.device])
        bpp = sarc.stat().st_size * 8 / (args.size * args.size)
        import subprocess

        ref = json.loads(subprocess.run([sys.executable, "-c", OPENJPEG, str(scene), str(bpp)], check=True,
                                        capture_output=True, text=True).stdout)
        import torch

        device = "cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu"
        print(f"scene: {args.size} x {args.size} uint16 amplitude ({mpix:.1f} MP), sarcodec device {device}, "
              f"torch threads {torch.get_num_threads()}")
        print(f"sarcodec compress   (end to end): {mpix / enc_s:7.2f} MP/s {enc_s:7.1f} s  {bpp:.3f} bpp  peak RSS {enc_rss / 2**20:6.0f} MiB")
        print(f"sarcodec decompress (end to end): {mpix / dec_s:7.2f} MP/s {dec_s:7.1f} s               peak RSS {dec_rss / 2**20:6.0f} MiB")
        print(f"OpenJPEG encode (codec only):     {mpix / ref['encode_s']:7.2f} MP/s {ref['encode_s']:7.1f} s  {ref['bpp']:.3f} bpp")
        print(f"OpenJPEG decode (codec only):     {mpix / ref['decode_s']:7.2f} MP/s {ref['decode_s']:7.1f} s")
        print(f"ratio sarcodec/OpenJPEG: encode {ref['encode_s'] / enc_s:.3f}, decode {ref['decode_s'] / dec_s:.3f}")
        limit = 2e9
        ok = max(enc_rss, dec_rss) < limit
        print(f"peak RSS limit 2 GB: {'OK' if ok else 'EXCEEDED'}")
        return 0 if ok else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)



if __name__ == "__main__":
    raise SystemExit(main())
