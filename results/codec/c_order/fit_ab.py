"""The side layer's correction fit of one 1024 x 1024 tile core (``sidelayer.fit_correction``) and the push-pull fill
of a 1088 x 1088 tile with a nodata stripe (``tiling.fill_invalid``), this checkout against another, alternating
fresh processes (``PYTHONPATH`` picks the checkout); each process reports the best of 7 and a digest of the results.

    git worktree add /tmp/base HEAD~1
    python results/codec/c_order/fit_ab.py /tmp/base [--runs 3]
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

HERE = Path(__file__).resolve().parents[3]

CHILD = r"""
import hashlib, json, time
import numpy as np
from sarcodec.codec import sidelayer
from sarcodec.codec.tiling import fill_invalid
rng = np.random.default_rng(0)
shape = (1024, 1024)
orig = rng.gamma(4, 0.25, shape) * np.exp(rng.normal(0, 1, shape))
decoded_db = (10 * np.log10(orig) + rng.normal(0, 0.5, shape)).astype(np.float32)
use = rng.random(shape) > 0.01
x = rng.random((1088, 1088)).astype(np.float32)
valid = np.ones(x.shape, bool)
valid[:, 900:] = False
def best(f):
    f(); seconds = []
    for _ in range(7):
        t = time.perf_counter(); f(); seconds.append(time.perf_counter() - t)
    return min(seconds)
digest = hashlib.sha256(sidelayer.fit_correction(orig, decoded_db, use, 32).tobytes() + fill_invalid(x, valid).tobytes())
print(json.dumps({"fit_correction": best(lambda: sidelayer.fit_correction(orig, decoded_db, use, 32)),
                  "fill_invalid": best(lambda: fill_invalid(x, valid)), "digest": digest.hexdigest()[:16]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": HERE}
    seconds: dict[str, dict[str, list[float]]] = {tag: {"fit_correction": [], "fill_invalid": []} for tag in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for tag, tree in trees.items():
                env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
                out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tmp, check=True, capture_output=True,
                                     text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                for step in seconds[tag]:
                    seconds[tag][step].append(result[step])
                print(f"run {i + 1}  {tag:5s}  fit_correction {1e3 * result['fit_correction']:.1f} ms  "
                      f"fill_invalid {1e3 * result['fill_invalid']:.1f} ms  results {result['digest']}", flush=True)
    for step in seconds["this"]:
        a, b = statistics.median(seconds["other"][step]), statistics.median(seconds["this"][step])
        print(f"{step:15s} median other {1e3 * a:.1f} ms, this {1e3 * b:.1f} ms: ratio {a / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
