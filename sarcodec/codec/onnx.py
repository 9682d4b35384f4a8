"""ONNX export of a codec's networks (`sarcodec export`), and a runner for the exported graphs.

``sarcodec export [MODEL] -o DIR`` writes the four transforms (``analysis``, ``synthesis``, and for the hyperprior
``hyper_analysis`` and ``hyper_synthesis``) as ONNX graphs with dynamic batch, height and width, and
``manifest.json``: the model's name, SHA-256 and config, the gains of every quality level, the padding multiple, the
files' SHA-256 and how the pieces fit together. Entropy coding stays in Python (constriction): the graphs are what
another runtime needs to run the transforms; a ``.sarc`` file stays tied to the weights (``model_sha256``).

Coding itself does not use these files: ``sarcodec compress`` and ``decompress`` build their own ONNX graphs from the
weights when they run without PyTorch (``sarcodec.codec.lite``, the default on the CPU). :class:`OrtTransform` runs
an exported graph (the parity tests use it).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarcodec.errors import BadInputError, OutputError

if TYPE_CHECKING:
    import torch

    from sarcodec.codec.registry import LoadedCodec

OPSET = 17
#: Input/output names and channel counts of each exported transform.
_GRAPHS = ("analysis", "synthesis", "hyper_analysis", "hyper_synthesis")


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BadInputError("the ONNX runtime needs onnxruntime: pip install 'sarcodec[onnx]' "
                            "(or pip install onnx onnxruntime)") from None
    return onnxruntime


def onnx_bytes(net: torch.nn.Module, channels: int, size: int = 64) -> bytes:
    """``net`` as an ONNX graph (opset 17) with input ``x`` (N, channels, H, W) and output ``y``, dynamic N, H, W."""
    import torch

    buf = io.BytesIO()
    dummy = torch.zeros(1, channels, size, size)
    axes = {0: "n", 2: "h", 3: "w"}
    # traced with autograd on: GDN's in-place inference branch (no_grad) has no ONNX form. The TorchScript
    # exporter (deprecated, still shipped) needs no onnxscript and exports these plain conv/GDN graphs exactly.
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (dummy,), buf,  # type: ignore[arg-type]  # a file object works (documented)
                          input_names=["x"], output_names=["y"], opset_version=OPSET,
                          dynamic_axes={"x": axes, "y": axes}, dynamo=False)
    return buf.getvalue()


class OrtTransform:
    """A transform run by ONNX Runtime on the CPU: ``(N, C, H, W)`` float32 tensor in, tensor out. One intra-op
    thread by default (sarcodec codes tiles in parallel, one thread each)."""

    def __init__(self, model: bytes | str | Path, threads: int = 1) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import torch

        feed = {"x": np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())}
        return torch.from_numpy(self.session.run(["y"], feed)[0])


def _nets(codec: LoadedCodec) -> dict[str, tuple[torch.nn.Module, int]]:
    import torch

    model = codec.model
    cfg = model.config
    nets: dict[str, tuple[torch.nn.Module, int]] = {
        "analysis": (model.analysis, 1), "synthesis": (model.synthesis, int(cfg["latent_channels"]))}
    hyper_analysis, hyper_synthesis = getattr(model, "hyper_analysis", None), getattr(model, "hyper_synthesis", None)
    if isinstance(hyper_analysis, torch.nn.Module) and isinstance(hyper_synthesis, torch.nn.Module):
        nets["hyper_analysis"] = (hyper_analysis, int(cfg["latent_channels"]))
        nets["hyper_synthesis"] = (hyper_synthesis, int(cfg["hyper_latent_channels"]))
    return nets


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a sarcodec ONNX export (its manifest.json says so)."""
    try:
        return bool(json.loads((folder / "manifest.json").read_text()).get("format") == "sarcodec-onnx")
    except (OSError, ValueError, AttributeError):
        return False


def export_codec(model: str | Path, output: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Export ``model`` (a shipped name or a ``.safetensors`` file) to ONNX graphs in the folder ``output``;
    returns the manifest written beside them. An existing non-empty folder is refused unless ``overwrite``."""
    import torch

    from sarcodec.codec.registry import load_codec
    from sarcodec.version import __version__

    out = Path(output)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise OutputError(f"{out}: exists{' and is not empty' if out.is_dir() else ''}; pass overwrite=True "
                          "to write into it")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):  # overwrite names an export, not any folder
        raise OutputError(f"{out}: is not empty and holds no sarcodec ONNX export (its manifest.json); refusing to "
                          "write into it")
    codec = load_codec(model, "cpu")
    graphs = {name: onnx_bytes(net, channels) for name, (net, channels) in _nets(codec).items()}
    gain, inverse_gain = codec.model.gains(torch.arange(1, codec.num_levels + 1, dtype=torch.float32))
    manifest: dict[str, Any] = {
        "format": "sarcodec-onnx", "version": 1, "created_by": f"sarcodec {__version__}", "opset": OPSET,
        "model": codec.name, "model_sha256": codec.sha256, "architecture": codec.model.codec_name,
        "config": codec.model.config, "num_levels": codec.num_levels,
        "pad_multiple": codec.model.downsampling_factor_total(),
        "gain": gain[:, :, 0, 0].tolist(), "inverse_gain": inverse_gain[:, :, 0, 0].tolist(),
        "graphs": {name: {"file": f"{name}.onnx", "sha256": hashlib.sha256(data).hexdigest(),
                          "input": "x (N, C, H, W) float32", "output": "y"} for name, data in graphs.items()},
        "pipeline": ("x in [0, 1], padded (replicate) to pad_multiple -> y = analysis(x) * gain[q-1] -> "
                     "(hyperprior) z = hyper_analysis(y), means, scales = split(hyper_synthesis(round(z))) -> "
                     "symbols = round(y - means), entropy coded by sarcodec (Python, constriction) -> "
                     "x_hat = synthesis((symbols + means) * inverse_gain[q-1]); sarcodec's own decoder computes "
                     "means and scale indices with an exact integer form of hyper_synthesis (or in float64 for "
                     "weights of sarcodec <= 0.4) and the synthesis in PyTorch so that every machine decodes the "
                     "same pixels"),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {f"{name}.onnx": data for name, data in graphs.items()}
        files["manifest.json"] = json.dumps(manifest, indent=1).encode()
        for name, data in files.items():  # each under a temporary name, renamed: a link is replaced, not followed
            tmp = out / f".{name}.{os.getpid()}.partial"
            try:
                tmp.write_bytes(data)
                os.replace(tmp, out / name)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    return manifest


def max_relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a|: how far two runtimes' outputs are apart."""
    scale = float(a.abs().max())
    return float((a - b).abs().max()) / scale if scale > 0 and math.isfinite(scale) else float("nan")
