"""The side layer's correction fit of one 1024 x 1024 tile core (``sidelayer.fit_correction``) and the push-pull fill
of a 1088 x 1088 tile with a nodata stripe (``tiling.fill_invalid``), this checkout against another, alternating
fresh processes (``PYTHONPATH`` picks the checkout); each process reports the best of 7 and a digest of the results.

    git worktree add /tmp/base HEAD~1
    python results/codec/c_order/fit_ab.py /tmp/base [--runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(HERE / "benchmarks"))

from checkout_ab import ab_main  # noqa: E402 (the benchmarks folder, just added)

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


if __name__ == "__main__":
    sys.exit(ab_main(__doc__.splitlines()[0], CHILD, 3, lambda tag, tree: [],
                     lambda r: (f"fit_correction {1e3 * r['fit_correction']:.1f} ms  "
                                f"fill_invalid {1e3 * r['fill_invalid']:.1f} ms  results {r['digest']}")))
