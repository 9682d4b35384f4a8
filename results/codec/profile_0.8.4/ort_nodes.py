"""ONNX Runtime's own profile of the decoder's two networks as sarcodec builds them (shipped default weights, one
thread): the integer hyper-decoder on one tile's hyper-latents (32 x 65 x 65, a 1040^2 tile) and the synthesis on
one strip (48 x 70 x 260 latents: 64 rows and 3 of context each side). Time per run by operator and the costliest
nodes, averaged over 5 runs after one warm-up (profiling adds a little to each node).

    OMP_NUM_THREADS=1 python results/codec/profile_0.8.4/ort_nodes.py   # ort_nodes.txt
"""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file

import sarcodec.codec.lite as lite
from sarcodec.codec.registry import resolve_codec

RUNS = 5


def profile(name: str, graph: bytes, feeds: dict[str, np.ndarray], output: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / name)
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        session.run([output], feeds)
        for _ in range(RUNS):
            session.run([output], feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    by_node: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            by_op[op] += event["dur"]
            by_node[op, event["name"].removesuffix("_kernel_time")] += event["dur"]
    total = sum(by_op.values())
    print(f"== {name}: {total / RUNS / 1000:.1f} ms a run (the first run, a warm-up, left out)")
    for op, us in by_op.most_common():
        print(f"  {us / RUNS / 1000:7.2f} ms {us / total:6.1%}  {op}")
    print("  costliest nodes:")
    for (op, node), us in by_node.most_common(8):
        print(f"  {us / RUNS / 1000:7.2f} ms  {op} {node}")


def main() -> None:
    state = load_file(str(resolve_codec("hyperprior")[1]))
    n = len(lite._HYPER_SYNTHESIS)
    hyper = lite._integer_hyper_graph([state[f"integer_hyper.weight{i}"].astype(np.float32) for i in range(n)],
                                      [state[f"integer_hyper.bias{i}"].astype(np.float32) for i in range(n)],
                                      [float(state[f"integer_hyper.limit{i}"]) for i in range(n - 1)])
    rng = np.random.default_rng(0)
    feeds = {"z": np.round(rng.normal(0, 2, (1, 32, 65, 65))).astype(np.float32)}
    feeds.update({f"r{i}": state[f"integer_hyper.rescale{i}"].astype(np.float32).reshape(1, -1, 1, 1)
                  for i in range(n - 1)})
    profile("integer hyper-decoder, one tile", hyper, feeds, "acc")
    profile("synthesis, one strip", lite._synthesis_graph(state),
            {"x": rng.normal(0, 1, (1, 48, 70, 260)).astype(np.float32)}, "y")


if __name__ == "__main__":
    main()
