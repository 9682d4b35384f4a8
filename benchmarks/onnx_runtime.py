"""`sarcodec compress --runtime onnx` (the encoder without PyTorch, `sarcodec.codec.lite`: the default on the CPU
since 0.7) against `--runtime torch`, end to end, in the same run.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with speckle (``prepare_bench.make_scene``; default
4096 x 4096), compresses it with each runtime in its own process (``sarcodec compress``, default model, quality 4,
CPU), prints MP/s, peak RSS, the ratio onnx/torch and whether the two files are byte-identical (they are when no
latent sits within float rounding of a rounding boundary; either file decodes on either decoder).

    python benchmarks/onnx_runtime.py [--size 4096] [--quality 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_bench import make_scene, run_measured  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--quality", type=float, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarcodec-onnx-bench-") as tmp:
        work = Path(tmp)
        scene = work / "scene.tif"
        make_scene(scene, args.size)
        mpix = args.size * args.size / 1e6
        seconds, rss, files = {}, {}, {}
        for runtime in ("torch", "onnx"):
            files[runtime] = work / f"{runtime}.sarc"
            cmd = [sys.executable, "-m", "sarcodec", "compress", str(scene), "-o", str(files[runtime]),
                   "--quality", str(args.quality), "--device", "cpu", "--runtime", runtime]
            seconds[runtime], rss[runtime] = run_measured(cmd)
        same = files["torch"].read_bytes() == files["onnx"].read_bytes()
        for runtime in ("torch", "onnx"):
            print(f"compress --runtime {runtime:5s}: {mpix / seconds[runtime]:6.2f} MP/s {seconds[runtime]:7.1f} s  "
                  f"{files[runtime].stat().st_size} bytes  peak RSS {rss[runtime] / 2**20:6.0f} MiB")
        print(f"scene {args.size} x {args.size}, quality {args.quality:g}; files identical: {same}")
        print(f"ratio onnx/torch (throughput): {seconds['torch'] / seconds['onnx']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
