"""Experiment record (sarcodec 0.8.0): where one 1056 x 1056 tile's time goes in the PyTorch-free coder (one thread, as
coding runs it; best of 3): encode_analysis without reconstruction, decompress_tile, and the decoder's parts (the
integer hyper-decoder session, its scale-index search, the probability path whole, the synthesis). The rANS decode is
what is left of decompress_tile.

    python results/codec/tile_profile.py
"""
import time

import numpy as np
from sarcodec.codec.registry import resolve_codec
from sarcodec.codec.lite import load_lite
name, path = resolve_codec("hyperprior")
lite = load_lite(name, path)
m = lite.model
rng = np.random.default_rng(0)
x = rng.random((1, 1, 1056, 1056)).astype(np.float32)
a = m.analyze(x)
def t(fn, n=3):
    fn(); best = 9e9
    for _ in range(n):
        s = time.perf_counter(); fn(); best = min(best, time.perf_counter() - s)
    return best
words, _ = m.encode_analysis(a, 4.0, reconstruct=False)
print("encode_analysis (no recon)", t(lambda: m.encode_analysis(a, 4.0, reconstruct=False)))
print("decompress_tile", t(lambda: m.decompress_tile(words, 1056, 1056, 4.0)))
# pieces
z = m._encoder_sessions()[1].run(["y"], {"x": np.ascontiguousarray((a.y * m._gain(4.0, inverse=False)[:, None, None])[None])})[0][0]
low, high = m.z_offsets[:, None, None], (m.z_offsets + m.z_lengths - 1)[:, None, None]
z_hat = np.clip(np.round(z.astype(np.float64)), low, high).astype(np.float32)
feeds = {"z": np.ascontiguousarray(z_hat[None]), **m.rescale_feeds}
print("hyper session", t(lambda: m.hyper_session.run(["acc"], feeds)))
acc = m.hyper_session.run(["acc"], feeds)[0][0]
half = acc.shape[0] // 2
values = np.ascontiguousarray(acc[half:]).reshape(half, -1)
def ss():
    indices = np.empty(values.shape, np.int64)
    for c in range(half):
        indices[c] = np.searchsorted(m.thresholds[c], values[c], side="left")
    return indices
print("searchsorted", t(ss), values.shape, m.thresholds.shape)
print("prob path", t(lambda: m.probability_path(z_hat)))
means, indices = m.probability_path(z_hat)
print("synth", t(lambda: m.synthesize(np.zeros((48, 264, 264), np.float32))))
