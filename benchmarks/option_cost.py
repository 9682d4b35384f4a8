"""What a ``compress`` option costs in time and bytes, against the same commands without it, in the same run.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with one-look speckle (``prepare_bench.make_scene``;
default 3072 x 3072, 9 tiles), then times ``sarcodec compress`` (quality Q, default 4) with the options ``--a``
(default: none) and with ``--b`` (default ``--speckle``), and ``sarcodec decompress`` of each file, end to end
(process start to file written), alternating A and B, ``--repeat`` times each; the median is kept. Prints the
seconds, the file sizes and the ratios (B / A).

    python benchmarks/option_cost.py [--size 3072] [--quality 4] [--repeat 3] [--a "OPTIONS"] [--b "--speckle"]
                                     [--workdir DIR] [--keep]

(``--a=--overlap 16`` with an equals sign when the options start with a dash.)
"""

from __future__ import annotations

import argparse
import shlex
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
    parser.add_argument("--a", default="", help="compress options of the reference (default: none)")
    parser.add_argument("--b", default="--speckle", help="compress options measured against it (default --speckle)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    variants = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    with work_folder(args.workdir, args.keep, "sarcodec-options-") as work:
        scene = work / f"scene_{args.size}.tif"
        if not scene.exists():
            make_scene(scene, args.size)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for name, options in variants.items():
                sarc, out = work / f"s_{name}.sarc", work / f"s_{name}.tif"
                compress = [*SARCODEC, "compress", str(scene), "-o", str(sarc), "-q", str(args.quality), *options,
                            "--overwrite"]
                times.setdefault(("compress", name), []).append(run_measured(compress)[0])
                decompress = [*SARCODEC, "decompress", str(sarc), "-o", str(out), "--overwrite"]
                times.setdefault(("decompress", name), []).append(run_measured(decompress)[0])
        mp = args.size * args.size / 1e6
        label = {name: " ".join(options) or "(no options)" for name, options in variants.items()}
        print(f"{args.size} x {args.size} uint16 scene (one-look speckle), quality {args.quality:g}, "
              f"median of {args.repeat} runs, end to end")
        print(f"| command | A: {label['A']} | B: {label['B']} | ratio (B / A) |")
        print("|---|---|---|---|")
        for command in ("compress", "decompress"):
            a, b = (statistics.median(times[command, name]) for name in variants)
            print(f"| {command} | {a:.2f} s ({mp / a:.2f} MP/s) | {b:.2f} s ({mp / b:.2f} MP/s) | {b / a:.3f} |")
        a_bytes, b_bytes = ((work / f"s_{name}.sarc").stat().st_size for name in variants)
        print(f"| file | {a_bytes} bytes ({a_bytes * 8 / mp / 1e6:.4f} bpp) | {b_bytes} bytes "
              f"({b_bytes * 8 / mp / 1e6:.4f} bpp) | {b_bytes / a_bytes:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
