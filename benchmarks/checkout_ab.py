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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_codec_speed import speckled_scene

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "scripts"))

from same_files import is_checkout, records  # noqa: E402 (the scripts folder, just added)

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


def run_child(tree: Path, code: str, args: list[str], cwd: Path) -> dict[str, Any]:
    """``python -c code *args`` in a fresh process of ``tree``'s sarcodec (``PYTHONPATH``; the working directory
    ``cwd`` must not be a checkout, as ``python -c`` puts it first on ``sys.path``); the JSON object it printed last."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, check=True, capture_output=True,
                         text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def alternate(trees: dict[str, Path], code: str, runs: int, cwd: Path,
              args: Callable[[str, Path], list[str]] = lambda tag, tree: [],
              show: Callable[[dict[str, Any]], str] = str) -> dict[str, dict[str, list[float]]]:
    """``code`` run ``runs`` times in each checkout of ``trees`` in turn (:func:`run_child`, with ``args(tag,
    tree)``), one line per process (``show`` of its result); the numbers each reported, per checkout and name."""
    numbers: dict[str, dict[str, list[float]]] = {tag: {} for tag in trees}
    for i in range(runs):
        for tag, tree in trees.items():
            result = run_child(tree, code, args(tag, tree), cwd)
            for name, value in result.items():
                if isinstance(value, float):
                    numbers[tag].setdefault(name, []).append(value)
            print(f"run {i + 1:2d}  {tag:5s}  {show(result)}", flush=True)
    return numbers


def print_medians(numbers: dict[str, dict[str, list[float]]], scale: float = 1.0, unit: str = "s") -> None:
    """Per name: the median of each checkout (``other`` and ``this``), their ratio other / this (above 1: this
    checkout is faster), the minima and the pairs this checkout won."""
    for name, mine in numbers["this"].items():
        theirs = numbers["other"][name]
        a, b = statistics.median(theirs), statistics.median(mine)
        won = sum(t < o for t, o in zip(mine, theirs, strict=True))
        print(f"{name:16s} median other {scale * a:.3f} {unit}, this {scale * b:.3f} {unit} (min {scale * min(theirs):.3f}"
              f" / {scale * min(mine):.3f} {unit}): ratio {a / b:.3f}, this faster in {won} of {len(mine)} pairs")


def other_checkout(path: Path) -> Path | None:
    """``path`` resolved when it is a sarcodec checkout; else None, with a one-line error on stderr."""
    if is_checkout(path.resolve()):
        return path.resolve()
    print(f"error: {path} is not a sarcodec checkout", file=sys.stderr)
    return None


def ab_main(description: str, code: str, runs: int, args: Callable[[str, Path], list[str]],
            show: Callable[[dict[str, Any]], str]) -> int:
    """The command line of an A/B of one program (``code``, see :func:`run_child`) that reports seconds: ``OTHER
    [--runs N]``; runs it alternately in the other checkout and this one and prints the medians in ms."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--runs", type=int, default=runs)
    options = parser.parse_args()
    other = other_checkout(options.other)
    if other is None:
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        numbers = alternate({"other": other, "this": HERE}, code, options.runs, Path(tmp), args, show)
    print_medians(numbers, 1e3, "ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    other = other_checkout(args.other)
    if other is None:
        return 2
    trees = {"other": other, "this": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "scene.npy", speckled_scene(args.size))
        print(f"scene {args.size} x {args.size} uint16, quality {args.quality:g}; other = {trees['other']}")

        def child_args(tag: str, tree: Path) -> list[str]:
            return [str(work / "scene.npy"), str(work / f"{tag}.sarc"), str(args.quality), str(work / f"{tag}.npy")]

        # a warm-up each (byte-compiled modules, the page cache), then the alternating runs
        versions = {tag: run_child(tree, CHILD, child_args(tag, tree), work)["version"] for tag, tree in trees.items()}
        numbers = alternate(trees, CHILD, args.runs, work, child_args, lambda r: (
            f"({r['version']})  compress {r['compress']:.3f} s  decompress {r['decompress']:.3f} s"))
        print(f"versions: other {versions['other']}, this {versions['this']}")
        print_medians(numbers)
        same = records(work / "other.sarc") == records(work / "this.sarc")
        a, b = np.load(work / "other.npy").astype(np.float64), np.load(work / "this.npy").astype(np.float64)
        print(f"files: {'the same' if same else 'DIFFERENT'} (header but the writer's version, and records); "
              f"decoded pixels: largest difference {np.abs(a - b).max():g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
