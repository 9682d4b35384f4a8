"""sarcodec compress and decompress time of this checkout against another one, alternating fresh processes.

A speed change of a few per cent is below what one run of ``codec_speed.py`` resolves on a shared machine, whose
pace drifts by ±10 % within minutes. This script codes the generated speckled scene of ``device_codec_speed.py``
(from memory to a ``.sarc`` file and back, through the API, default model) in fresh processes, one checkout and then
the other, ``--runs`` times; each process times its own compress and decompress calls (not the interpreter's
start). Prints each run, the median and minimum per checkout and the ratios of the medians (other / this: above 1
means this checkout is faster), then whether the two checkouts wrote the same file (the header's fields but the
writer's version, and every record) and the largest difference of their decoded pixels.

    git worktree add /tmp/base HEAD~1
    python benchmarks/checkout_ab.py /tmp/base [--size 3072] [--quality 4] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from device_codec_speed import speckled_scene

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
import sarcodec
scene = np.load(sys.argv[1])
start = time.perf_counter()
sarcodec.compress(scene, sys.argv[2], quality=float(sys.argv[3]), overwrite=True)
middle = time.perf_counter()
pixels = sarcodec.decompress(sys.argv[2])
end = time.perf_counter()
np.save(sys.argv[4], pixels.array)
print(json.dumps({"version": sarcodec.__version__, "compress": middle - start, "decompress": end - middle}))
"""


def run(tree: Path, work: Path, tag: str, quality: float) -> dict[str, float | str]:
    """One fresh process of ``tree``'s sarcodec; its working directory is not a checkout (``python -c`` puts it
    first on ``sys.path``)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, str(work / "scene.npy"), str(work / f"{tag}.sarc"),
                          str(quality), str(work / f"{tag}.npy")], env=env, cwd=work, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, float | str] = json.loads(out.strip().splitlines()[-1])
    return result


def records(path: Path) -> tuple[dict[str, object], list[object]]:
    from sarcodec.io.sarc import SarcReader

    with SarcReader(path) as reader:
        fields = {k: v for k, v in reader.header.fields.items() if k != "created_by"}
        return fields, list(reader.bands())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": HERE}
    if not (trees["other"] / "sarcodec" / "__init__.py").is_file():
        print(f"error: {args.other} is not a sarcodec checkout", file=sys.stderr)
        return 2
    times: dict[str, dict[str, list[float]]] = {tag: {"compress": [], "decompress": []} for tag in trees}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "scene.npy", speckled_scene(args.size))
        print(f"scene {args.size} x {args.size} uint16, quality {args.quality:g}; other = {trees['other']}")
        for tag, tree in trees.items():  # a warm-up each (byte-compiled modules, the page cache)
            versions[tag] = str(run(tree, work, tag, args.quality)["version"])
        for i in range(args.runs):
            for tag, tree in trees.items():
                result = run(tree, work, tag, args.quality)
                for step in ("compress", "decompress"):
                    times[tag][step].append(float(result[step]))
                print(f"run {i + 1:2d}  {tag:5s} ({versions[tag]})  compress {result['compress']:.3f} s  "
                      f"decompress {result['decompress']:.3f} s", flush=True)
        for step in ("compress", "decompress"):
            medians = {tag: statistics.median(times[tag][step]) for tag in trees}
            faster = sum(t < o for t, o in zip(times["this"][step], times["other"][step], strict=True))
            print(f"{step:10s} median other {medians['other']:.3f} s, this {medians['this']:.3f} s "
                  f"(min {min(times['other'][step]):.3f} / {min(times['this'][step]):.3f} s): "
                  f"ratio {medians['other'] / medians['this']:.3f}, this faster in {faster} of {args.runs} pairs")
        same = records(work / "other.sarc") == records(work / "this.sarc")
        a, b = np.load(work / "other.npy").astype(np.float64), np.load(work / "this.npy").astype(np.float64)
        print(f"files: {'the same' if same else 'DIFFERENT'} (header but the writer's version, and records); "
              f"decoded pixels: largest difference {np.abs(a - b).max():g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
