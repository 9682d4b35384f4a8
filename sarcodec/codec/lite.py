"""Coding without PyTorch: the hyperprior's decoder (sarcodec 0.6) and encoder (0.7) on NumPy and ONNX Runtime.

Importing PyTorch takes 2-4 s on a small CPU, longer than coding a tile, and coding needs little of it. For weights
that carry the exact integer hyper-decoder (``sarcodec.models.codecs.integer``: the shipped default since 0.5) this
module codes a tile with:

- the entropy coding of z and y (constriction, ``sarcodec.entropy.tables``), as ``FactorizedDensity`` and
  ``GaussianConditional`` encode and decode them;
- the integer hyper-decoder as an ONNX graph (sarcodec 0.7.2; NumPy matrix products per kernel tap before, 1.3x
  slower): the same integer weights in float32 convolutions (the transposed ones as the convolutions of their
  output phases), exact by the bound the weights were calibrated for in any order of summation (ONNX Runtime's
  CPU convolutions are matrix products or direct sums, in its blocked layout or not, no Winograd or FFT; the
  rescales are inputs, so no rewrite folds a weight with a rescale), the same correctly rounded rescale, leaky ReLU,
  round-half-even and clamp, then the same thresholds in NumPy: the same means and scale indices as PyTorch's
  path, so the same symbols (tested against it);
- the transforms under ONNX Runtime (one thread per tile, as tiles run in parallel), from graphs built from the
  weights (:func:`_conv_nodes`) with ONNX's protobuf classes but without importing the onnx package (:func:`_proto`;
  sarcodec 0.7.4: ~1 s less before the first tile): the synthesis (conv, inverse GDN, transposed conv, inverse
  GDN, transposed conv; since 0.8.3 computed on the phases of its transposed convolutions, :func:`_synthesis_graph`)
  and, for the encoder, the analysis (conv, GDN, conv, GDN, conv) and the hyper-analysis
  (conv, leaky ReLU, conv, leaky ReLU, conv), the full-resolution ones run in strips of latent rows with enough
  context to give the whole tile's values. The synthesis' pixels are PyTorch's within float rounding (about 1e-6
  relative, as on a GPU), and the same for any number of threads.

The encoder writes PyTorch's symbols wherever its analysis does not fall within float rounding of a rounding
boundary (the bundled samples give byte-identical files), and fits the side layer's correction against this
module's own synthesis, i.e. exactly what this module decodes.

``sarcodec compress`` and ``decompress`` (``runtime="auto"``, on the CPU) take this path when the weights allow it
and onnx and onnxruntime are installed, else PyTorch's (``runtime="torch"`` asks for PyTorch's path).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import constriction
import numpy as np
import numpy.typing as npt

from sarcodec.entropy.keep import keep_masks
from sarcodec.entropy.tables import decode_values, encode_grouped
from sarcodec.errors import CorruptFileError, IncompatibleModelError

__all__ = ["LiteAnalysis", "LiteCodec", "LiteHyperprior", "available", "load_lite"]

F32 = npt.NDArray[np.float32]
#: The hyperprior's layers as ``sarcodec.models.codecs`` builds them (checked against PyTorch's model in the tests):
#: the hyper-decoder's convolutions as (transposed?, stride), the synthesis as (layer, kind) in order.
_HYPER_SYNTHESIS = ((True, 2), (True, 2), (False, 1))
_SYNTHESIS = (("synthesis.0", "conv"), ("synthesis.1", "igdn"), ("synthesis.2", "deconv"), ("synthesis.3", "igdn"),
              ("synthesis.4", "deconv"))
_ANALYSIS = (("analysis.0", "down"), ("analysis.1", "gdn"), ("analysis.2", "down"), ("analysis.3", "gdn"),
             ("analysis.4", "conv"))
_HYPER_ANALYSIS = (("hyper_analysis.0", "conv"), ("hyper_analysis.1", "leaky"), ("hyper_analysis.2", "down"),
                   ("hyper_analysis.3", "leaky"), ("hyper_analysis.4", "down"))
_NEGATIVE_SLOPE = np.float32(0.01)
#: Latent rows the synthesis runs on at a time, and the context rows it is given each side (its reach is 3).
_STRIP, _HALO = 64, 3


def available() -> bool:
    """Whether onnx and onnxruntime can be imported (dependencies of sarcodec, but an installation may lack them)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


# ------------------------------------------------------------------------------------------- graph building
_PROTO_LOCK = threading.Lock()
_proto_module: list[Any] = []


def _proto() -> Any:
    """ONNX's generated protobuf classes (``ModelProto``, ``NodeProto``...), which this module builds its graphs
    with, as ``onnx.helper`` does.

    They are loaded from the installed onnx package's ``onnx_ml_pb2.py`` without running the package's
    ``__init__``: ``import onnx`` imports ml_dtypes, and ml_dtypes 0.7.0 takes 1.1-1.4 s to import on the 2-core
    machine (0.6.0: 0.15 s), most of what a command spent before its first tile (``scripts/compress_timeline.py``:
    1.86 s against 0.82 s). The classes come from protobuf's default descriptor pool, so they are the very ones a
    later ``import onnx`` gives. When onnx is imported already, or that file cannot be loaded, its own module."""
    import importlib.util
    import sys

    with _PROTO_LOCK:
        if not _proto_module:
            module = sys.modules.get("onnx.onnx_ml_pb2")
            if module is None:
                try:
                    spec = importlib.util.find_spec("onnx")
                    assert spec is not None and spec.origin is not None
                    pb_spec = importlib.util.spec_from_file_location(
                        "sarcodec.codec._onnx_ml_pb2", Path(spec.origin).with_name("onnx_ml_pb2.py"))
                    assert pb_spec is not None and pb_spec.loader is not None
                    module = importlib.util.module_from_spec(pb_spec)
                    pb_spec.loader.exec_module(module)
                except Exception:  # noqa: BLE001 (another layout of the onnx package: import it)
                    from onnx import onnx_ml_pb2 as module
            _proto_module.append(module)
        return _proto_module[0]


def _node(op: str, inputs: list[str], outputs: list[str], **attributes: float | int | list[int]) -> Any:
    """A ``NodeProto`` (as ``onnx.helper.make_node``: attributes sorted by name; a Python float is a FLOAT, an int
    an INT, a list an INTS attribute)."""
    pb = _proto()
    node = pb.NodeProto(op_type=op, input=inputs, output=outputs)
    for key, value in sorted(attributes.items()):
        if isinstance(value, float):
            node.attribute.add(name=key, type=pb.AttributeProto.FLOAT, f=value)
        elif isinstance(value, int):
            node.attribute.add(name=key, type=pb.AttributeProto.INT, i=value)
        else:
            node.attribute.add(name=key, type=pb.AttributeProto.INTS, ints=[int(v) for v in value])
    return node


def _initializer(array: F32, name: str) -> Any:
    """A float32 ``TensorProto`` holding ``array`` (as ``onnx.numpy_helper.from_array``: raw little-endian data)."""
    pb = _proto()
    data = np.asarray(array, dtype="<f4")  # tobytes() is in C order; not ascontiguousarray, which makes 0-d 1-d
    return pb.TensorProto(name=name, dims=list(data.shape), data_type=pb.TensorProto.FLOAT, raw_data=data.tobytes())


def _float_input(name: str, shape: list[int | str]) -> Any:
    """A float32 graph input or output of ``shape`` (a str is a symbolic dimension), as
    ``onnx.helper.make_tensor_value_info``."""
    pb = _proto()
    info = pb.ValueInfoProto(name=name)
    info.type.tensor_type.elem_type = pb.TensorProto.FLOAT
    for d in shape:
        dim = info.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    return info


# ------------------------------------------------------------------------------------------- synthesis graph
def _conv_nodes(current: str, out: str, weight: F32, bias: F32, kind: str, name: str) -> tuple[list[Any], list[Any]]:
    """The nodes and initializers (``{name}...``) of one "same"-padded convolution of ``current`` into ``out``, as
    ``sarcodec.models.layers`` pads it: ``conv`` (stride 1), ``down`` (stride 2: ``conv()``) or ``deconv``
    (``deconv()``: stride 2, padding k // 2, output padding 1).

    A ``deconv`` runs as the convolutions of its four output phases (:func:`_deconv_phase_nodes`), concatenated
    and put in place by a DepthToSpace (sarcodec 0.8.3). It was ONNX Runtime's ConvTranspose in groups of output
    channels before (0.7.3-0.8.2), whose col2im and layout copies made it ~2.5x slower than the blocked
    convolutions per multiply-add, and a stride-1 convolution of 36 taps (the 25 taps and zeros) with a pixel
    shuffle before that (0.6-0.7.2)."""
    k = int(weight.shape[-1])
    if kind in ("conv", "down"):
        stride = 2 if kind == "down" else 1
        inits = [_initializer(weight, f"{name}.w"), _initializer(bias, f"{name}.bias")]
        return [_node("Conv", [current, f"{name}.w", f"{name}.bias"], [out], kernel_shape=[k, k],
                      pads=[k // 2] * 4, strides=[stride, stride])], inits
    nodes, inits, phases = _deconv_phase_nodes(current, weight, bias, name)
    return nodes + [_node("Concat", phases, [f"{out}.phases"], axis=1),
                    _node("DepthToSpace", [f"{out}.phases"], [out], blocksize=2)], inits


def _deconv_taps(k: int, out_phase: int, in_phase: int, up: int) -> dict[int, int]:
    """One dimension of ``deconv()`` (stride 2, padding k // 2, output padding 1) read on phases: output row
    ``up * m + out_phase`` gets input row ``2 * (m + j) + in_phase`` (``in_phase`` 0 and ``up`` 2 for an input at
    full resolution) times tap ``t``, for each ``{j: t}`` returned. From ``out[o] = sum_i x[i] w[o + k // 2 - 2 i]``
    with ``o = up * m + out_phase`` and ``i = (up // 2) * (m + j) + in_phase``: ``t = out_phase + k // 2 - 2 *
    in_phase - up * j``."""
    base = out_phase + k // 2 - 2 * in_phase
    return {j: base - up * j for j in range(-k, k + 1) if 0 <= base - up * j < k}


def _deconv_phase_nodes(current: str, weight: F32, bias: F32, name: str) -> tuple[list[Any], list[Any], list[str]]:
    """``deconv()`` of ``current`` as four convolutions at the input's resolution, one for each output phase (row
    and column parity (p, q), in the order (0, 0), (0, 1), (1, 0), (1, 1)): the taps of the k x k kernel that reach
    that phase (:func:`_deconv_taps`; 9, 6, 6 and 4 of 25), with the bias. Returns the nodes, the initializers and
    the phase maps' names (``{name}.p{p}{q}``)."""
    k = int(weight.shape[-1])
    nodes, inits, phases = [], [_initializer(bias, f"{name}.bias")], []
    for p, q in itertools.product((0, 1), (0, 1)):
        rows, cols = _deconv_taps(k, p, 0, 2), _deconv_taps(k, q, 0, 2)  # consecutive offsets, in order
        phase = f"{name}.p{p}{q}"
        kernel = weight[:, :, list(rows.values())][:, :, :, list(cols.values())].transpose(1, 0, 2, 3)
        inits.append(_initializer(np.ascontiguousarray(kernel), f"{phase}.w"))
        nodes.append(_node("Conv", [current, f"{phase}.w", f"{name}.bias"], [phase],
                           kernel_shape=[len(rows), len(cols)], pads=[-min(rows), -min(cols), max(rows), max(cols)]))
        phases.append(phase)
    return nodes, inits, phases


def _model_bytes(nodes: list[Any], inits: list[Any], name: str, inputs: list[Any], output: Any) -> bytes:
    """The serialized ONNX model of a graph (opset 17; as ``onnx.helper.make_model``, the same bytes: tested, as
    is ``onnx.checker.check_model`` on every graph; ONNX Runtime checks a model again when it loads it)."""
    pb = _proto()
    graph = pb.GraphProto(node=nodes, name=name, input=inputs, output=[output], initializer=inits)
    model = pb.ModelProto(ir_version=8,  # what onnxruntime >= 1.15 reads
                          producer_name="sarcodec", graph=graph,
                          opset_import=[pb.OperatorSetIdProto(domain="", version=17)])
    return bytes(model.SerializeToString())


def _gdn_nodes(state: dict[str, npt.NDArray[Any]], layer: str, kind: str, current: str, out: str,
               shared: bool = False) -> tuple[list[Any], list[Any]]:
    """(Inverse) GDN of ``current`` into ``out``: x / or * sqrt(beta + conv1x1(x^2, gamma)), beta and gamma bounded as
    ``GDN.forward`` bounds them; with ``shared``, the layer's initializers are left out (another call made them)."""
    beta = np.maximum(state[f"{layer}.beta"], np.float32(1e-6)).astype(np.float32)
    gamma = np.maximum(state[f"{layer}.gamma"], np.float32(0.0)).astype(np.float32)[:, :, None, None]
    inits = [] if shared else [_initializer(gamma, f"{layer}.g"), _initializer(beta, f"{layer}.b")]
    nodes = [_node("Mul", [current, current], [f"{out}.sq"]),
             _node("Conv", [f"{out}.sq", f"{layer}.g", f"{layer}.b"], [f"{out}.norm"]),
             _node("Sqrt", [f"{out}.norm"], [f"{out}.root"]),
             _node("Mul" if kind == "igdn" else "Div", [current, f"{out}.root"], [out])]
    return nodes, inits


def _layer_nodes(state: dict[str, npt.NDArray[Any]], layer: str, kind: str, current: str, out: str
                 ) -> tuple[list[Any], list[Any]]:
    """The nodes and initializers of one layer of a transform (:func:`_transform_graph`'s kinds)."""
    if kind in ("gdn", "igdn"):
        return _gdn_nodes(state, layer, kind, current, out)
    if kind == "leaky":
        return [_node("LeakyRelu", [current], [out], alpha=float(_NEGATIVE_SLOPE))], []
    return _conv_nodes(current, out, state[f"{layer}.weight"].astype(np.float32),
                       state[f"{layer}.bias"].astype(np.float32), kind, layer)


def _chain_nodes(state: dict[str, npt.NDArray[Any]], layers: tuple[tuple[str, str], ...]
                 ) -> tuple[list[Any], list[Any], str]:
    """The nodes and initializers of ``layers`` applied in turn to the input ``x`` (outputs ``h0``, ``h1``...), and
    the name of the last output."""
    nodes, inits, current = [], [], "x"
    for i, (layer, kind) in enumerate(layers):
        layer_nodes, layer_inits = _layer_nodes(state, layer, kind, current, f"h{i}")
        nodes += layer_nodes
        inits += layer_inits
        current = f"h{i}"
    return nodes, inits, current


def _transform_graph(state: dict[str, npt.NDArray[Any]], layers: tuple[tuple[str, str], ...], name: str) -> bytes:
    """A transform as an ONNX graph (input ``x`` (N, C, H, W), output ``y``), from the weights. ``layers`` are
    (state prefix, kind): ``conv``, ``down``, ``deconv`` (:func:`_conv_nodes`), ``gdn``, ``igdn``, ``leaky``
    (LeakyReLU 0.01)."""
    nodes, inits, current = _chain_nodes(state, layers)
    nodes.append(_node("Identity", [current], ["y"]))
    first = state[f"{layers[0][0]}.weight"]
    channels = int(first.shape[0] if layers[0][1] == "deconv" else first.shape[1])
    return _model_bytes(nodes, inits, name, [_float_input("x", ["n", channels, "h", "w"])],
                        _float_input("y", ["n", "c", "H", "W"]))


def _span(offsets: list[int]) -> range:
    """The consecutive offsets from the least to the largest of ``offsets``."""
    return range(min(offsets), max(offsets) + 1)


def _synthesis_graph(state: dict[str, npt.NDArray[Any]]) -> bytes:
    """The synthesis transform as an ONNX graph (input ``x`` (N, C, H, W), output ``y`` (N, 1, 4H, 4W)), from the
    weights, computed at the latents' resolution throughout ("polyphase", sarcodec 0.8.3).

    The first transposed convolution is four convolutions, one for each phase (row and column parity) of its
    output: the 5 x 5 kernel's 9, 6, 6 and 4 taps that reach that phase (:func:`_deconv_taps`). The inverse GDN
    after it works pixel by pixel, so it runs on each phase map. The last transposed convolution is then, for
    each of the four phase maps, one convolution of 2 x 2 taps into the 16 phases of the output (a 4 x 4 block per
    latent pixel), summed over the maps and put in place by a DepthToSpace. The same function as the transposed
    convolutions (within float rounding: sums in another order; tested against PyTorch's), in ONNX Runtime's
    blocked convolutions without its ConvTranspose's col2im: the synthesis of a strip 1.8x as fast."""
    kinds = tuple(kind for _, kind in _SYNTHESIS)
    assert kinds[-3:] == ("deconv", "igdn", "deconv") and "deconv" not in kinds[:-3]
    nodes, inits, current = _chain_nodes(state, _SYNTHESIS[:-3])  # at the latents' resolution
    (up, _), (norm, _), (last, _) = _SYNTHESIS[-3:]
    w_up, w_last = state[f"{up}.weight"].astype(np.float32), state[f"{last}.weight"].astype(np.float32)
    k_last, c_out = int(w_last.shape[-1]), int(w_last.shape[1])
    phase_nodes, phase_inits, phases = _deconv_phase_nodes(current, w_up, state[f"{up}.bias"].astype(np.float32), up)
    nodes += phase_nodes
    inits += phase_inits
    sums = []
    for (p, q), phase in zip(itertools.product((0, 1), (0, 1)), phases, strict=True):
        gdn_nodes, gdn_inits = _gdn_nodes(state, norm, "igdn", phase, f"{phase}.n", shared=(p, q) != (0, 0))
        nodes += gdn_nodes
        inits += gdn_inits
        # the last transposed convolution from this phase map into the 16 output phases (r, s)
        taps_r = [_deconv_taps(k_last, r, p, 4) for r in range(4)]
        taps_s = [_deconv_taps(k_last, s, q, 4) for s in range(4)]
        j_rows = _span([j for taps in taps_r for j in taps])  # offsets this map is read at
        j_cols = _span([j for taps in taps_s for j in taps])
        kernel = np.zeros((16 * c_out, w_last.shape[0], len(j_rows), len(j_cols)), np.float32)
        for r, s in itertools.product(range(4), range(4)):
            for (a, j), (b, jj) in itertools.product(enumerate(j_rows), enumerate(j_cols)):
                if j in taps_r[r] and jj in taps_s[s]:  # DepthToSpace's channel order: (r * 4 + s) * C + c
                    kernel[(r * 4 + s) * c_out : (r * 4 + s + 1) * c_out, :, a, b] = \
                        w_last[:, :, taps_r[r][j], taps_s[s][jj]].T
        inits.append(_initializer(kernel, f"{phase}.last"))
        nodes.append(_node("Conv", [f"{phase}.n", f"{phase}.last"], [f"{phase}.o"],
                           kernel_shape=[len(j_rows), len(j_cols)],
                           pads=[-j_rows[0], -j_cols[0], j_rows[-1], j_cols[-1]]))
        sums.append(f"{phase}.o")
    inits.append(_initializer(np.tile(state[f"{last}.bias"].astype(np.float32), 16)[None, :, None, None],
                              f"{last}.bias"))
    nodes += [_node("Add", sums[:2], ["s0"]), _node("Add", sums[2:], ["s1"]), _node("Add", ["s0", "s1"], ["s"]),
              _node("Add", ["s", f"{last}.bias"], ["phases"]),
              _node("DepthToSpace", ["phases"], ["y"], blocksize=4)]
    channels = int(state[f"{_SYNTHESIS[0][0]}.weight"].shape[1])
    return _model_bytes(nodes, inits, "synthesis", [_float_input("x", ["n", channels, "h", "w"])],
                        _float_input("y", ["n", "c", "H", "W"]))


def _integer_hyper_graph(weights: list[F32], biases: list[F32], limits: list[float]) -> bytes:
    """The integer hyper-decoder (``IntegerHyperSynthesis.forward`` up to the last layer's accumulators) as an ONNX
    graph: inputs ``z`` (1, C_z, h, w) and the per-channel rescales ``r0``, ``r1``... (1, C, 1, 1), output ``acc``.
    The rescales are inputs, not constants, so that no graph rewrite can fold them into a convolution's weights;
    what ONNX Runtime's optimisations do rewrite (blocked layouts, the transposed convolutions' phases put in
    place) changes only the order of exact integer sums (sarcodec 0.8.3; they were off before: the hyper-decoder
    of a tile 1.6x as fast with its transposed convolutions as phases, :func:`_conv_nodes`)."""
    nodes, inits = [], []
    inputs = [_float_input("z", [1, int(weights[0].shape[0]), "h", "w"])]
    current, last = "z", len(_HYPER_SYNTHESIS) - 1
    for i, (transposed, stride) in enumerate(_HYPER_SYNTHESIS):
        # deconv()'s and conv()'s geometry (checked against the model in the tests)
        assert stride == (2 if transposed else 1)
        kind = "deconv" if transposed else "conv"
        conv_nodes, conv_inits = _conv_nodes(current, f"a{i}", weights[i], biases[i], kind, f"layer{i}")
        nodes += conv_nodes
        inits += conv_inits
        current = f"a{i}"
        if i < last:
            channels = int(weights[i].shape[1] if transposed else weights[i].shape[0])
            inputs.append(_float_input(f"r{i}", [1, channels, 1, 1]))
            inits += [_initializer(np.array(-limits[i], np.float32), f"lo{i}"),
                      _initializer(np.array(limits[i], np.float32), f"hi{i}")]
            nodes += [_node("Mul", [current, f"r{i}"], [f"v{i}"]),
                      _node("LeakyRelu", [f"v{i}"], [f"l{i}"], alpha=float(_NEGATIVE_SLOPE)),
                      _node("Round", [f"l{i}"], [f"q{i}"]),  # half to even, as NumPy and PyTorch
                      _node("Clip", [f"q{i}", f"lo{i}", f"hi{i}"], [f"x{i}"])]
            current = f"x{i}"
    nodes.append(_node("Identity", [current], ["acc"]))
    return _model_bytes(nodes, inits, "integer_hyper", inputs, _float_input("acc", [1, "c", "H", "W"]))


# ------------------------------------------------------------------------------------------- the decoder
def _tables(counts: npt.NDArray[Any], lengths: npt.NDArray[Any]) -> list[npt.NDArray[np.int64]]:
    return [counts[i, : int(lengths[i])].astype(np.int64) for i in range(len(lengths))]


class LiteHyperprior:
    """The decoder of a hyperprior codec with an integer hyper-decoder, without PyTorch (see the module doc)."""

    codec_name = "hyperprior"

    def __init__(self, state: dict[str, npt.NDArray[Any]], config: dict[str, Any]) -> None:
        self.config = config
        self.latent_channels = int(config.get("latent_channels", 48))
        self.factor = 4  # the analysis' two stride-2 convolutions; z is 4x coarser still
        self.log_inverse_gain = state["log_inverse_gain"].astype(np.float32)
        self.num_levels = int(self.log_inverse_gain.shape[0])
        self.z_offsets = state["hyper_density.table_offsets"].astype(np.int64)
        self.z_lengths = state["hyper_density.table_lengths"].astype(np.int64)
        self.z_tables = _tables(state["hyper_density.table_counts"], self.z_lengths)
        self.y_lengths = state["conditional.table_lengths"].astype(np.int64)
        self.y_radii = (self.y_lengths - 1) // 2  # symbol r of a table is the value 0
        # what an uncoded z position holds (FactorizedDensity.default_values): 0 clamped to each channel's support
        self.z_default = np.clip(0, self.z_offsets, self.z_offsets + self.z_lengths - 1)
        self.y_tables = _tables(state["conditional.table_counts"], self.y_lengths)
        self.mean_scale = state["integer_hyper.mean_scale"].astype(np.float32)
        self.thresholds = state["integer_hyper.thresholds"].astype(np.float32)  # integers up to 2**24 + 2: exact
        self.log_gain = state["log_gain"].astype(np.float32)
        self.session = _session(_synthesis_graph(state))
        n = len(_HYPER_SYNTHESIS)
        self.hyper_session = _session(_integer_hyper_graph(
            [state[f"integer_hyper.weight{i}"].astype(np.float32) for i in range(n)],
            [state[f"integer_hyper.bias{i}"].astype(np.float32) for i in range(n)],
            [float(state[f"integer_hyper.limit{i}"]) for i in range(n - 1)]))
        #: the session's rescale inputs, fed with every hyper-latent
        self.rescale_feeds = {f"r{i}": state[f"integer_hyper.rescale{i}"].astype(np.float32).reshape(1, -1, 1, 1)
                              for i in range(n - 1)}
        # the encoder's transforms, built when first needed (a decoder never runs them)
        self._state = {k: v for k, v in state.items() if k.startswith(("analysis.", "hyper_analysis."))}
        self._encoder: tuple[Any, Any] | None = None
        self._encoder_lock = threading.Lock()

    def check_quality(self, quality: float) -> float:
        """As ``RDCodec.check_quality``."""
        if not (isinstance(quality, int | float) and math.isfinite(quality) and 1 <= quality <= self.num_levels):
            raise IncompatibleModelError(f"quality must be between 1 and {self.num_levels}, got {quality!r}")
        return float(quality)

    def _gain(self, quality: float, inverse: bool = True) -> F32:
        """As ``RDCodec.gains``: the inverse gain (or the gain) of ``quality`` (float32, interpolated between
        levels)."""
        logs = self.log_inverse_gain if inverse else self.log_gain
        q = min(max(np.float32(quality) - np.float32(1), np.float32(0)), np.float32(self.num_levels - 1))
        lo = min(int(math.floor(q)), self.num_levels - 2) if self.num_levels > 1 else 0
        hi = min(lo + 1, self.num_levels - 1)
        t = np.float32(q - lo)
        log = logs[lo] * (np.float32(1) - t) + logs[hi] * t
        gain: F32 = np.exp(log).astype(np.float32)
        return gain

    def probability_path(self, z_hat: F32) -> tuple[F32, npt.NDArray[np.int64]]:
        """Means (C, H, W) and scale indices of ``z_hat`` (C_z, h, w): ``IntegerHyperSynthesis.forward``."""
        feeds = {"z": np.ascontiguousarray(z_hat[None], dtype=np.float32), **self.rescale_feeds}
        acc = self.hyper_session.run(["acc"], feeds)[0][0]
        half = acc.shape[0] // 2
        means = acc[:half] * self.mean_scale[:, None, None]
        values = np.ascontiguousarray(acc[half:]).reshape(half, -1)
        indices = np.empty(values.shape, np.int64)
        for c in range(half):  # torch.searchsorted (side left): the first threshold >= the value
            indices[c] = np.searchsorted(self.thresholds[c], values[c], side="left")
        np.minimum(indices, self.thresholds.shape[1] - 1, out=indices)
        return means.astype(np.float32), indices.reshape(acc[half:].shape)

    def _decode_z(self, coder: Any, shape: tuple[int, int], keep: npt.NDArray[np.bool_] | None) -> F32:
        """The hyper-latents' values (C_z, h, w): each symbol plus its channel's lowest value."""
        h, w = shape
        channels = len(self.z_lengths)
        coded = None if keep is None else np.repeat(keep.ravel(), channels)  # pixel-major, channel-minor
        values = decode_values(coder, np.tile(np.arange(channels), h * w), self.z_tables, -self.z_offsets, coded,
                               np.tile(self.z_default, h * w))
        out: F32 = np.ascontiguousarray(values.reshape(h, w, channels).transpose(2, 0, 1))
        return out

    def _decode_y(self, coder: Any, indices: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_] | None) -> F32:
        """The latents' values (C, h, w): each symbol less its table's radius (symbol r is the value 0; a position
        not coded holds 0)."""
        coded = None if keep is None else np.tile(keep.ravel(), indices.shape[0])
        values = decode_values(coder, indices.reshape(-1), self.y_tables, self.y_radii, coded)
        out: F32 = values.reshape(indices.shape)
        return out

    def decompress_tile(self, payload: bytes, height: int, width: int, quality: float,
                        valid: npt.NDArray[np.bool_] | None = None) -> F32:
        """As ``RDCodec.decompress_tile``: x_norm (1, 1, height, width) in [0, 1], float32."""
        if len(payload) % 4 or not payload:
            raise CorruptFileError("an entropy-coded tile is empty or not a whole number of 32-bit words")
        q = self.check_quality(quality)
        m = self.factor * 4
        shape = (math.ceil(height / m) * m, math.ceil(width / m) * m)
        try:
            coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        except Exception as exc:  # noqa: BLE001 (constriction's own errors)
            raise CorruptFileError(f"an entropy-coded tile is damaged ({exc})") from None
        keep_y, keep_z = keep_masks(valid, shape, self.factor, m)
        z_hat = self._decode_z(coder, (shape[0] // m, shape[1] // m), keep_z)
        means, indices = self.probability_path(z_hat)
        y_hat = self._decode_y(coder, indices, keep_y) + means
        if not coder.is_empty():
            raise CorruptFileError("an entropy-coded tile does not match the shape and model in the header")
        return np.clip(self.synthesize(y_hat * self._gain(q)[:, None, None])[:, :, :height, :width], 0.0, 1.0)

    def synthesize(self, y: F32) -> F32:
        """The synthesis of ``y`` (C, h, w) -> (1, 1, 4h, 4w), in strips (:func:`_in_strips`): decoding the
        10 000^2 scene peaked at 1769 MiB with whole tiles."""
        return _in_strips(self.session, y[None], 1, self.factor)

    # --- the encoder ------------------------------------------------------------------------------------------
    def _encoder_sessions(self) -> tuple[Any, Any]:
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = (_session(_transform_graph(self._state, _ANALYSIS, "analysis")),
                                 _session(_transform_graph(self._state, _HYPER_ANALYSIS, "hyper_analysis")))
            return self._encoder

    def analyze(self, x: F32, valid: npt.NDArray[np.bool_] | None = None) -> LiteAnalysis:
        """As ``RDCodec.analyze``: ``x`` (1, 1, H, W) in [0, 1] padded (replicate, bottom/right) to a multiple of 16,
        the analysis transform (before any quality's gain) and the latent positions to code."""
        height, width = x.shape[-2:]
        m = self.factor * 4
        padded = np.pad(np.asarray(x, np.float32)[0, 0], ((0, -height % m), (0, -width % m)), mode="edge")
        keep_y, keep_z = keep_masks(valid, padded.shape, self.factor, m)
        y = _in_strips(self._encoder_sessions()[0], padded[None, None], self.factor, 1)[0]
        return LiteAnalysis(y, int(height), int(width), keep_y, keep_z)

    def encode_analysis(self, analysis: LiteAnalysis, quality: float, reconstruct: bool = True
                        ) -> tuple[bytes, F32 | None]:
        """As ``RDCodec.encode_analysis`` (``HyperpriorCodec._encode``): the tile's words and, with
        ``reconstruct``, what the decoder will reconstruct ((1, 1, H, W) float32): this module's own synthesis, so
        the very pixels this module decodes."""
        q = self.check_quality(quality)
        y = analysis.y * self._gain(q, inverse=False)[:, None, None]
        z = self._encoder_sessions()[1].run(["y"], {"x": np.ascontiguousarray(y[None])})[0][0]
        low, high = self.z_offsets[:, None, None], (self.z_offsets + self.z_lengths - 1)[:, None, None]
        z_hat = np.clip(np.round(z.astype(np.float64)), low, high)  # FactorizedDensity.coded_values
        if analysis.keep_z is not None:  # positions not coded hold the default the decoder puts there
            z_hat = np.where(analysis.keep_z[None], z_hat, self.z_default[:, None, None])
        means, indices = self.probability_path(z_hat.astype(np.float32))
        radii = self.y_radii.astype(np.float32)[indices]
        # GaussianConditional.encode: the values, integers within each table's radius, in float32 (exact)
        values = np.clip(np.round(y - means), -radii, radii)
        if analysis.keep_y is not None:
            values *= analysis.keep_y[None]
        coder = constriction.stream.stack.AnsCoder()
        # y first, then z: the decoder pops z (needed to decode y) first
        y_coded = None if analysis.keep_y is None else np.tile(analysis.keep_y.ravel(), values.shape[0])
        encode_grouped(coder, (values + radii).astype(np.int32).reshape(-1), indices.reshape(-1), self.y_tables,
                       y_coded)
        channels = len(self.z_lengths)
        z_symbols = (z_hat.astype(np.int64) - self.z_offsets[:, None, None]).transpose(1, 2, 0).reshape(-1)
        z_coded = None if analysis.keep_z is None else np.repeat(analysis.keep_z.ravel(), channels)
        encode_grouped(coder, z_symbols, np.tile(np.arange(channels), z_symbols.size // channels), self.z_tables,
                       z_coded)
        words = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
        if not reconstruct:
            return words, None
        y_hat = values + means
        x_hat = self.synthesize(y_hat * self._gain(q)[:, None, None])[:, :, : analysis.height, : analysis.width]
        return words, np.clip(x_hat, 0.0, 1.0)


@dataclass
class LiteAnalysis:
    """What :meth:`LiteHyperprior.analyze` computed (as ``sarcodec.models.codecs.Analysis``, in NumPy): ``y``
    (C, h, w) before any quality's gain, the tile's unpadded size, the latent positions to code (None: all)."""

    y: F32
    height: int
    width: int
    keep_y: npt.NDArray[np.bool_] | None
    keep_z: npt.NDArray[np.bool_] | None


_ARENA_LOCK = threading.Lock()
_shared_arena: list[bool] = []  # [registered?] once the process-wide arena has been tried


def _use_shared_arena(onnxruntime: Any) -> bool:
    """Register one CPU arena for the whole process (once), which every session here allocates from: the encoder's
    analysis, hyper-analysis and synthesis then share one arena's peak instead of keeping one each (the 10 000^2
    compress peaked at 1563 MiB with an arena per session). It grows by what is asked (kSameAsRequested)."""
    with _ARENA_LOCK:
        if not _shared_arena:
            try:
                info = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                                 onnxruntime.OrtMemType.DEFAULT)
                onnxruntime.create_and_register_allocator(info, onnxruntime.OrtArenaCfg({"arena_extend_strategy": 1}))
                _shared_arena.append(True)
            except Exception:  # noqa: BLE001 (an older runtime, or one registered already by someone else)
                _shared_arena.append(False)
        return _shared_arena[0]


def _session(graph: bytes) -> Any:
    """An ONNX Runtime session on one thread (tiles run in parallel, one thread each), allocating from the
    process-wide arena (:func:`_use_shared_arena`) or, failing that, from its own, which grows by what is asked,
    not by doubling."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if _use_shared_arena(onnxruntime):
        options.add_session_config_entry("session.use_env_allocators", "1")
    return onnxruntime.InferenceSession(graph, options, providers=[("CPUExecutionProvider",
                                                                    {"arena_extend_strategy": "kSameAsRequested"})])


def _in_strips(session: Any, x: F32, scale_in: int, scale_out: int) -> F32:
    """``session`` on ``x`` (1, C, H, W) in strips of ``_STRIP`` latent rows, each computed with ``_HALO`` latent
    rows of context each side; a latent row is ``scale_in`` rows of ``x`` and ``scale_out`` rows of the output.
    The transforms reach 3 latent rows (the analysis 10 pixels, the synthesis 3 latent rows), so the strips give
    the whole tile's values, and ONNX Runtime's buffers, which its arena keeps, hold a strip instead of a tile."""
    rows = x.shape[2] // scale_in
    out: F32 | None = None
    for a in range(0, rows, _STRIP):
        b = min(rows, a + _STRIP)
        lo, hi = max(0, a - _HALO), min(rows, b + _HALO)
        strip = session.run(["y"], {"x": np.ascontiguousarray(x[:, :, lo * scale_in : hi * scale_in],
                                                              dtype=np.float32)})[0]
        if out is None:
            out = np.empty((*strip.shape[:2], rows * scale_out, strip.shape[3]), np.float32)
        out[:, :, a * scale_out : b * scale_out] = strip[:, :, (a - lo) * scale_out : (b - lo) * scale_out]
    assert out is not None
    return out


@dataclass
class _Cpu:
    type: str = "cpu"


@dataclass
class LiteCodec:
    """A decoder without PyTorch, shaped like ``LoadedCodec`` for ``sarcodec.codec.lossy``."""

    model: LiteHyperprior
    name: str
    sha256: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    device: _Cpu = field(default_factory=_Cpu)

    @property
    def num_levels(self) -> int:
        return self.model.num_levels


_CACHE: dict[str, tuple[LiteHyperprior, dict[str, Any]]] = {}


def load_lite(name: str, path: Path) -> LiteCodec | None:
    """The PyTorch-free decoder of the weights at ``path``, or None when they have no integer hyper-decoder, are
    not a hyperprior of the layout this module knows, or onnx/onnxruntime are missing."""
    if not available():
        return None
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        data = path.read_bytes()
    except OSError:
        return None
    sha = hashlib.sha256(data).hexdigest()
    if sha not in _CACHE:
        try:
            with safe_open(str(path), framework="np") as handle:
                metadata = dict(handle.metadata() or {})
            state = load_file(str(path))
            config = json.loads(metadata.get("config", "{}"))
        except Exception:  # noqa: BLE001 (not a readable codec file: the PyTorch path reports it)
            return None
        known = {"log_gain", "log_inverse_gain"} | {
            f"{layer}.{p}" for layer, kind in _SYNTHESIS + _ANALYSIS + _HYPER_ANALYSIS if kind != "leaky"
            for p in (("beta", "gamma") if kind in ("gdn", "igdn") else ("weight", "bias"))}
        if metadata.get("codec") != "hyperprior" or "integer_hyper.weight0" not in state or not known <= set(state) \
                or len([k for k in state if k.startswith("integer_hyper.weight")]) != len(_HYPER_SYNTHESIS):
            return None
        try:
            _CACHE[sha] = (LiteHyperprior(state, config), metadata)
        except Exception:  # noqa: BLE001 (weights this decoder cannot run: the PyTorch path loads or reports them)
            return None
    model, metadata = _CACHE[sha]
    return LiteCodec(model, name, sha, path, metadata)

