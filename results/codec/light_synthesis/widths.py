"""One tile's synthesis (1088^2 output, the 48 x 272 x 272 latents of a 1024 px tile with its overlap) on one thread, in
sarcodec's ONNX graph as decompress runs it (in strips), for synthesis widths (first hidden layer, second): random
weights of each shape in the default's weights file. Best of 3.

    OMP_NUM_THREADS=1 python results/codec/light_synthesis/widths.py
"""
import time, numpy as np, sys
import sarcodec.codec.lite as lite
from safetensors.numpy import load_file
state = load_file("/work/main/sarcodec/weights/hyperprior.safetensors")
def narrowed(c1, c2):
    s = dict(state)
    r = np.random.default_rng(0)
    def sub(k, shape): s[k] = (r.standard_normal(shape) * 0.05).astype(np.float32)
    sub("synthesis.0.weight", (c1, 48, 3, 3)); sub("synthesis.0.bias", (c1,))
    s["synthesis.1.beta"] = np.ones(c1, np.float32); s["synthesis.1.gamma"] = (0.1*np.eye(c1)).astype(np.float32)
    sub("synthesis.2.weight", (c1, c2, 5, 5)); sub("synthesis.2.bias", (c2,))
    s["synthesis.3.beta"] = np.ones(c2, np.float32); s["synthesis.3.gamma"] = (0.1*np.eye(c2)).astype(np.float32)
    sub("synthesis.4.weight", (c2, 1, 5, 5)); sub("synthesis.4.bias", (1,))
    return s
y = np.random.default_rng(1).standard_normal((1, 48, 272, 272)).astype(np.float32)
for c1, c2 in [(64, 64), (48, 48), (64, 32), (48, 32), (32, 32)]:
    sess = lite._session(lite._synthesis_graph(narrowed(c1, c2)))
    lite._in_strips(sess, y, 1, 4)
    t = []
    for _ in range(3):
        a = time.perf_counter(); lite._in_strips(sess, y, 1, 4); t.append(time.perf_counter() - a)
    print(c1, c2, f"{min(t):.3f} s", flush=True)
