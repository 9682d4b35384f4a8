"""The synthesis of one 1056 x 1056 tile (latent 48 x 264 x 264, one thread, in strips as decoding runs it) with this
checkout's ``sarcodec.codec.lite`` against another checkout's, alternating 12 times in one process, then the same
with two tiles at once on two threads (as the 2-core decoder runs them); prints min and median seconds of each, the
ratio of the medians and the largest relative difference of their pixels.

    git worktree add /tmp/base 5e34af0     # sarcodec 0.7.2
    python results/codec/transposed_conv/synthesis_ab.py /tmp/base [WEIGHTS.safetensors]
"""

import importlib.util
import json
import sys
import threading
import time

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from sarcodec.codec import lite

base_root = sys.argv[1]
spec = importlib.util.spec_from_file_location("base_lite", f"{base_root}/sarcodec/codec/lite.py")
assert spec is not None and spec.loader is not None
base = importlib.util.module_from_spec(spec)
sys.modules["base_lite"] = base
spec.loader.exec_module(base)
path = sys.argv[2] if len(sys.argv) > 2 else "sarcodec/weights/hyperprior.safetensors"
state = load_file(path)
with safe_open(path, "np") as f:
    config = json.loads((f.metadata() or {}).get("config", "{}"))
models = {"base": base.LiteHyperprior(state, config), "this": lite.LiteHyperprior(state, config)}
y = np.round(np.random.default_rng(0).normal(0, 3, (models["this"].latent_channels, 264, 264))).astype(np.float32)
outs = {name: model.synthesize(y) for name, model in models.items()}
diff = float(np.abs(outs["base"] - outs["this"]).max() / np.abs(outs["base"]).max())


def run(model: object, tiles: int) -> float:
    threads = [threading.Thread(target=model.synthesize, args=(y,)) for _ in range(tiles)]  # type: ignore[attr-defined]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t


for tiles in (1, 2):
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(12):
        for name, model in models.items():
            times[name].append(run(model, tiles))
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{path}, {tiles} tile(s) at once: base {min(times['base']):.3f} / {med['base']:.3f} s (min / median), this "
          f"{min(times['this']):.3f} / {med['this']:.3f} s, ratio of medians {med['base'] / med['this']:.3f}x, "
          f"max relative difference {diff:.1e}")
