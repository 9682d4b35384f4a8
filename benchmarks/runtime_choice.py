"""Which inference runtime the coding path uses, measured: the synthesis and analysis of one 1056 x 1056 tile on
one thread (how tiles are coded, see sarcodec/codec/pipeline.py) under each candidate.

Candidates: PyTorch eager with its native CPU kernels (oneDNN off), eager with oneDNN, eager with oneDNN in
channels-last, bfloat16 autocast, the network cast to bfloat16 (weights and activations; fast where the CPU has
AMX or AVX512-BF16, which the first line names; ``results/codec/bf16/`` measures what it costs on real images),
``torch.compile`` (inductor) when a C++ compiler is present, and ONNX Runtime (the PyTorch-free coder's runtime).
Prints seconds per tile, the ratio to the native kernels measured in the same run, and the largest pixel
difference to the native kernels' output (the inputs are random: real latents differ far less in bfloat16).

    python benchmarks/runtime_choice.py [--repeat 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sarcodec.codec.lite import _in_strips, load_lite
from sarcodec.codec.registry import DEFAULT_CODEC, load_codec, resolve_codec


def _time(fn: Callable[[], torch.Tensor], repeat: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (and compilation)
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def _has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, AMX "
          f"{'yes' if _has_amx() else 'no (or not Linux)'}")
    model = load_codec(DEFAULT_CODEC).model
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(1, model.config["latent_channels"], 264, 264, generator=gen)
    x = torch.rand(1, 1, 1056, 1056, generator=gen)
    _, inverse_gain = model.gains(torch.tensor([4.0]))
    h = (y * inverse_gain).detach()
    results: list[tuple[str, str, float, torch.Tensor | None]] = []

    def run(name: str, part: str, net: torch.nn.Module, inp: torch.Tensor, mkldnn: bool = True, cl: bool = False,
            bf16: bool = False, cast: torch.dtype | None = None) -> None:
        def fn() -> torch.Tensor:
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=mkldnn), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                a = inp.contiguous(memory_format=torch.channels_last) if cl else inp
                return net(a if cast is None else a.to(cast)).float().contiguous()
        seconds, out = _time(fn, args.repeat)
        results.append((name, part, seconds, out))

    for part, net, inp in (("synthesis", model.synthesis, h), ("analysis", model.analysis, x)):
        run("eager, native kernels (oneDNN off)", part, net, inp, mkldnn=False)
        run("eager, oneDNN", part, net, inp)
        run("eager, oneDNN, channels-last", part, net, inp, cl=True)
        run("eager, bfloat16 autocast, channels-last", part, net, inp, cl=True, bf16=True)
        run("eager, network in bfloat16, channels-last", part, copy.deepcopy(net).to(torch.bfloat16), inp, cl=True,
            cast=torch.bfloat16)
        if not args.no_compile:
            try:
                compiled = torch.compile(net)
                run("torch.compile (inductor)", part, compiled, inp)
            except Exception as exc:  # no compiler, unsupported op...
                results.append((f"torch.compile: not available ({type(exc).__name__})", "", float("nan"), None))
        try:
            import onnxruntime as ort

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "net.onnx"
                torch.onnx.export(net, (inp,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
                options = ort.SessionOptions()
                options.intra_op_num_threads = options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                feed = {"x": inp.detach().numpy()}
                seconds, out = _time(lambda: torch.from_numpy(session.run(None, feed)[0]), args.repeat)
                results.append(("ONNX Runtime (CPU, 1 thread)", part, seconds, out))
        except ImportError:
            results.append(("ONNX Runtime: not installed", "", float("nan"), None))
    lite = load_lite(*resolve_codec(DEFAULT_CODEC))
    if lite is not None:  # what decompress runs: sarcodec's own graph, in strips (sarcodec/codec/lite.py)
        seconds, out = _time(lambda: torch.from_numpy(_in_strips(lite.model.session, h.numpy(), 1, lite.model.factor)),
                             args.repeat)
        results.append(("sarcodec's ONNX graph in strips (decompress)", "synthesis", seconds, out))
    for part in ("synthesis", "analysis"):
        rows = [r for r in results if r[1] == part]
        ref_s, ref_out = rows[0][2], rows[0][3]
        print(f"{part} of one 1056 x 1056 tile, 1 thread:")
        for name, _, seconds, out in rows:
            diff = float((out - ref_out).abs().max()) if out is not None and ref_out is not None else float("nan")
            print(f"  {name:45s} {seconds:6.2f} s  ratio to native {ref_s / seconds:5.2f}x  max |diff| {diff:.1e}")
    for name, part, *_ in results:
        if not part:
            print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
