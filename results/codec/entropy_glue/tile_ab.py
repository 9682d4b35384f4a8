"""The entropy-coding steps of one 1056 x 1056 tile on one thread, this checkout against another, alternating
fresh processes (``PYTHONPATH`` picks the checkout): the latents' decoding (z, the probability path's output
given, then y), the whole ``decompress_tile`` and ``encode_analysis`` without the reconstruction. Each process
reports the best of 7 of each; prints every process's figures and the medians.

    git worktree add /tmp/base HEAD~1
    python results/codec/entropy_glue/tile_ab.py /tmp/base [--runs 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(HERE / "benchmarks"))

from checkout_ab import ab_main  # noqa: E402 (the benchmarks folder, just added)

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, constriction
sys.path.insert(0, sys.argv[1] + "/benchmarks")
from device_codec_speed import speckled_scene
from sarcodec.codec import lite
m = lite.load_lite("hyperprior", Path(sys.argv[1]) / "sarcodec/weights/hyperprior.safetensors").model
scene = np.log(speckled_scene(1056).astype(np.float32))
x = ((scene - scene.min()) / (scene.max() - scene.min()))[None, None].astype(np.float32)
analysis = m.analyze(x)
words, _ = m.encode_analysis(analysis, 4.0, reconstruct=False)
coder = lambda: constriction.stream.stack.AnsCoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
c = coder(); z = m._decode_z(c, (66, 66), None); means, indices = m.probability_path(z)
def best(f, repeats=7):
    f(); seconds = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); seconds.append(time.perf_counter() - t)
    return min(seconds)
def latents():
    c = coder(); m._decode_z(c, (66, 66), None); m._decode_y(c, indices, None)
print(json.dumps({"decode latents": best(latents), "decompress_tile": best(lambda: m.decompress_tile(words, 1056, 1056, 4.0)),
                  "encode_analysis": best(lambda: m.encode_analysis(analysis, 4.0, reconstruct=False))}))
"""


if __name__ == "__main__":
    sys.exit(ab_main(__doc__.splitlines()[0], CHILD, 5, lambda tag, tree: [str(tree)],
                     lambda r: "  ".join(f"{k} {1e3 * v:.1f} ms" for k, v in r.items())))
