"""The synthesis and the integer hyper-decoder with their transposed convolutions on phases (sarcodec 0.8.3)
against the ConvTranspose graphs of 0.7.3-0.8.2: the same values, and the time of one tile's worth on one thread.

    python results/codec/polyphase/polyphase.py [--repeat 7]

The 0.8.2 graphs are rebuilt here from the weights with ConvTranspose nodes in groups of output channels, as
``sarcodec.codec.lite._conv_nodes`` built them then; the integer hyper-decoder's session ran without graph
optimisations then (``ORT_DISABLE_ALL``). Inputs: the default model's weights, random latents of a 1088 x 1088 tile
(272 x 272 latents, run as ``decompress`` runs them: the synthesis in strips, ``lite._in_strips``) and random
hyper-latents within the integer path's limits (68 x 68).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime
from safetensors.numpy import load_file

from sarcodec.codec import lite
from sarcodec.codec.registry import DEFAULT_CODEC, resolve_codec


def convtranspose_nodes(current: str, out: str, weight: np.ndarray, bias: np.ndarray, kind: str, name: str
                        ) -> tuple[list[Any], list[Any]]:
    """0.8.2's ``_conv_nodes``: a deconv as ConvTranspose nodes of at most 400 // k**2 output channels each."""
    if kind != "deconv":
        return shipped_conv_nodes(current, out, weight, bias, kind, name)
    k, c_out = int(weight.shape[-1]), int(weight.shape[1])
    per_group = max(1, 400 // (k * k))
    bounds = list(range(0, c_out, per_group)) + [c_out]
    nodes, inits, parts = [], [], []
    for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        part = out if len(bounds) == 2 else f"{out}.g{g}"
        inits += [lite._initializer(weight[:, lo:hi], f"{name}.w{g}"), lite._initializer(bias[lo:hi], f"{name}.bias{g}")]
        nodes.append(lite._node("ConvTranspose", [current, f"{name}.w{g}", f"{name}.bias{g}"], [part],
                                kernel_shape=[k, k], pads=[k // 2] * 4, strides=[2, 2], output_padding=[1, 1]))
        parts.append(part)
    if len(parts) > 1:
        nodes.append(lite._node("Concat", parts, [out], axis=1))
    return nodes, inits


shipped_conv_nodes = lite._conv_nodes


def session(graph: bytes, optimize: bool = True) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def best(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    state = load_file(str(resolve_codec(DEFAULT_CODEC)[1]))
    state32 = {k: v.astype(np.float32) for k, v in state.items() if v.dtype.kind == "f"}
    n = len(lite._HYPER_SYNTHESIS)
    hyper_args = ([state[f"integer_hyper.weight{i}"].astype(np.float32) for i in range(n)],
                  [state[f"integer_hyper.bias{i}"].astype(np.float32) for i in range(n)],
                  [float(state[f"integer_hyper.limit{i}"]) for i in range(n - 1)])
    rescales = {f"r{i}": state[f"integer_hyper.rescale{i}"].astype(np.float32).reshape(1, -1, 1, 1)
                for i in range(n - 1)}

    new_synthesis = session(lite._synthesis_graph(state32))
    new_hyper = session(lite._integer_hyper_graph(*hyper_args))
    lite._conv_nodes = convtranspose_nodes  # the 0.8.2 graphs
    try:
        old_synthesis = session(lite._transform_graph(state32, lite._SYNTHESIS, "synthesis"))
        old_hyper = session(lite._integer_hyper_graph(*hyper_args), optimize=False)
    finally:
        lite._conv_nodes = shipped_conv_nodes

    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 1.5, (1, 48, 272, 272)).astype(np.float32).round()
    z = rng.integers(-12, 13, (1, 32, 68, 68)).astype(np.float32)
    a, b = (lite._in_strips(s, y, 1, 4) for s in (old_synthesis, new_synthesis))
    print(f"synthesis of a 1088^2 tile: largest difference {np.abs(a - b).max():.2e} "
          f"(values up to {np.abs(a).max():.2f}); same shape {a.shape == b.shape}")
    feeds = {"z": z, **rescales}
    h_old, h_new = (s.run(["acc"], feeds)[0] for s in (old_hyper, new_hyper))
    print(f"integer hyper-decoder of a 68^2 z: the same accumulators {np.array_equal(h_old, h_new)} "
          f"(up to {np.abs(h_old).max():.0f})")
    print(f"one thread, best of {args.repeat}:")
    for label, old, new in [
        ("synthesis, 1088^2 tile in strips", lambda: lite._in_strips(old_synthesis, y, 1, 4),
         lambda: lite._in_strips(new_synthesis, y, 1, 4)),
        ("integer hyper-decoder, 68^2 z", lambda: old_hyper.run(["acc"], feeds),
         lambda: new_hyper.run(["acc"], feeds)),
    ]:
        t_old, t_new = best(old, args.repeat), best(new, args.repeat)
        print(f"  {label:34s} 0.8.2 {t_old:.3f} s  0.8.3 {t_new:.3f} s  {t_old / t_new:.2f}x")


if __name__ == "__main__":
    main()
