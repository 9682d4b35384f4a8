"""Write the four ONNX graphs the PyTorch-free coder builds for a weights file, as bytes, and compare two checkouts.

    python results/codec/startup_0.7.4/graphs_equal.py OTHER_CHECKOUT [WEIGHTS]

Builds the synthesis, analysis, hyper-analysis and integer hyper-decoder graphs of WEIGHTS (default: the shipped
default) with this checkout's ``sarcodec.codec.lite`` and, in a subprocess with ``PYTHONPATH=OTHER_CHECKOUT``, with
that checkout's; prints each graph's size and whether the bytes are equal. Exit status 1 when any differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUILD = r"""
import hashlib, sys
from safetensors.numpy import load_file
from sarcodec.codec import lite
state = load_file(sys.argv[1])
n = len(lite._HYPER_SYNTHESIS)
graphs = {
    "synthesis": lite._synthesis_graph(state),
    "analysis": lite._transform_graph(state, lite._ANALYSIS, "analysis"),
    "hyper_analysis": lite._transform_graph(state, lite._HYPER_ANALYSIS, "hyper_analysis"),
    "integer_hyper": lite._integer_hyper_graph(
        [state[f"integer_hyper.weight{i}"] for i in range(n)], [state[f"integer_hyper.bias{i}"] for i in range(n)],
        [float(state[f"integer_hyper.limit{i}"]) for i in range(n - 1)]),
}
for name, data in graphs.items():
    print(name, len(data), hashlib.sha256(data).hexdigest())
"""


def build(checkout: Path, weights: Path) -> dict[str, tuple[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run([sys.executable, "-c", BUILD, str(weights)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return {name: (size, digest) for name, size, digest in (line.split() for line in out.splitlines())}


def main() -> int:
    here = Path(__file__).resolve().parents[3]
    other = Path(sys.argv[1]).resolve()
    weights = Path(sys.argv[2]) if len(sys.argv) > 2 else here / "sarcodec" / "weights" / "hyperprior.safetensors"
    mine, theirs = build(here, weights), build(other, weights)
    same = True
    for name in mine:
        equal = mine[name] == theirs.get(name)
        same &= equal
        print(f"{name:15s} {int(mine[name][0]):>9,d} B  {'equal' if equal else 'DIFFERENT'}  ({mine[name][1][:16]})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
