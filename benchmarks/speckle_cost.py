"""What ``compress --speckle`` costs in time and bytes, against the same commands without it, in the same run.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with one-look speckle (``prepare_bench.make_scene``;
default 3072 x 3072, 9 tiles), then times ``sarcodec compress`` (quality Q, default 4) and ``sarcodec decompress``
end to end (process start to file written) with and without speckle synthesis, alternating the two, ``--repeat``
times each; the median is kept. Prints the seconds, the file sizes and the ratios (with / without).

    python benchmarks/speckle_cost.py [--size 3072] [--quality 4] [--repeat 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_bench import make_scene, run_measured, work_folder  # noqa: E402

SARCODEC = [sys.executable, "-m", "sarcodec"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with work_folder(args.workdir, args.keep, "sarcodec-speckle-") as work:
        scene = work / f"scene_{args.size}.tif"
        if not scene.exists():
            make_scene(scene, args.size)
        times: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.repeat):
            for speckle in (False, True):
                sarc, out = work / f"s_{speckle}.sarc", work / f"s_{speckle}.tif"
                flag = ["--speckle"] if speckle else []
                compress = [*SARCODEC, "compress", str(scene), "-o", str(sarc), "-q", str(args.quality), *flag,
                            "--overwrite"]
                times.setdefault(("compress", speckle), []).append(run_measured(compress)[0])
                decompress = [*SARCODEC, "decompress", str(sarc), "-o", str(out), "--overwrite"]
                times.setdefault(("decompress", speckle), []).append(run_measured(decompress)[0])
        mp = args.size * args.size / 1e6
        print(f"{args.size} x {args.size} uint16 scene (one-look speckle), quality {args.quality:g}, "
              f"median of {args.repeat} runs, end to end")
        print("| command | without --speckle | with --speckle | ratio (with / without) |")
        print("|---|---|---|---|")
        for command in ("compress", "decompress"):
            plain, synth = (statistics.median(times[command, s]) for s in (False, True))
            print(f"| {command} | {plain:.2f} s ({mp / plain:.2f} MP/s) | {synth:.2f} s ({mp / synth:.2f} MP/s) "
                  f"| {synth / plain:.3f} |")
        plain_bytes, synth_bytes = ((work / f"s_{s}.sarc").stat().st_size for s in (False, True))
        print(f"| file | {plain_bytes} bytes ({plain_bytes * 8 / mp / 1e6:.4f} bpp) | {synth_bytes} bytes "
              f"({synth_bytes * 8 / mp / 1e6:.4f} bpp) | {synth_bytes / plain_bytes:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
