"""Codec weights: the shipped models in ``sarcodec/weights/`` and any ``.safetensors`` a user trained.

A weights file is a safetensors file (no pickle) whose metadata names the architecture (``codec``) and its
``config`` (JSON); ``training`` holds the training summary. A model is identified in ``.sarc`` files by its name
and the SHA-256 of its weights file, so a file is only ever decoded by the exact weights that encoded it.

``python -m sarcodec.codec.registry export SRC DST`` checks a trained file (loads it, codes a test image) and
copies it to DST (used by ``scripts/train_codecs.sh`` to refresh the shipped weights).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarcodec.errors import IncompatibleModelError

if TYPE_CHECKING:  # PyTorch is imported when a model is loaded, not with this module (its names are light)
    import torch

    from sarcodec.models.codecs import RDCodec

__all__ = ["DEFAULT_CODEC", "WEIGHTS_DIR", "LoadedCodec", "adopt_coding_state", "is_coding_state", "load_codec",
           "resolve_codec", "shipped_codec_with_sha", "shipped_codecs"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: The model ``sarcodec compress`` uses when no ``--model`` is given.
DEFAULT_CODEC = "hyperprior"


@dataclass
class LoadedCodec:
    """A codec ready to code: the network (eval mode), its name, the SHA-256 of its weights, its metadata."""

    model: RDCodec
    name: str
    sha256: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """Where the transforms run."""
        return next(self.model.parameters()).device

    @property
    def num_levels(self) -> int:
        """Quality levels 1..num_levels."""
        return self.model.num_levels


def shipped_codecs() -> list[str]:
    """Names of the codecs whose weights ship with the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def current_codecs() -> list[str]:
    """The shipped codecs less the earlier defaults kept only so that their files decode (``NAME_vN``)."""
    return [name for name in shipped_codecs() if not re.search(r"_v\d+$", name)]


_SHA_CACHE: dict[tuple[Path, int, int], str] = {}


def shipped_codec_with_sha(sha256: str) -> str | None:
    """The name of the shipped codec whose weights file has this SHA-256 (a ``.sarc`` header's), or None: files
    written with weights that shipped under another name (earlier defaults, kept as ``hyperprior_v1``, ``hyperprior_v2``)
    decode."""
    for name in shipped_codecs():
        path = WEIGHTS_DIR / f"{name}.safetensors"
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _SHA_CACHE:
            _SHA_CACHE[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        if _SHA_CACHE[key] == sha256:
            return name
    return None


def resolve_codec(name_or_path: str | Path) -> tuple[str, Path]:
    """The name and weights file of a shipped codec name or a ``.safetensors`` path (IncompatibleModelError
    otherwise)."""
    text = str(name_or_path)
    if text in shipped_codecs():
        return text, WEIGHTS_DIR / f"{text}.safetensors"
    path = Path(text)
    if path.suffix == ".safetensors" and path.is_file():
        return path.stem, path
    raise IncompatibleModelError(
        f"unknown model {text!r}: give one of {', '.join(shipped_codecs()) or '(none shipped)'} "
        "or the path of a .safetensors codec file"
    )


#: Networks by (weights SHA-256, device): building one takes a while. Only the network and its metadata are shared;
#: the name and path are always those of the request, so a copy of a weights file under another name is named as
#: asked (headers written with it name it, not whichever copy was loaded first).
_CACHE: dict[tuple[str, str], tuple[RDCodec, dict[str, Any]]] = {}


def load_codec(name_or_path: str | Path = DEFAULT_CODEC, device: str | torch.device = "cpu") -> LoadedCodec:
    """Load a shipped codec by name or a ``.safetensors`` codec file by path (networks cached per file content and
    device). Coding without PyTorch loads the same files with ``sarcodec.codec.lite.load_lite``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from sarcodec.models.codecs import create_codec

    name, path = resolve_codec(name_or_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IncompatibleModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    sha = hashlib.sha256(data).hexdigest()
    key = (sha, str(device))
    if key in _CACHE:
        model, metadata = _CACHE[key]
        return LoadedCodec(model=model, name=name, sha256=sha, path=path, metadata=metadata)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError
        raise IncompatibleModelError(f"{path}: not a readable safetensors codec file ({exc})") from None
    if metadata.get("format") != "sarcodec-codec":
        raise IncompatibleModelError(f"{path}: not a sarcodec codec file (metadata format={metadata.get('format')!r})")
    try:
        config = json.loads(metadata["config"])
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise IncompatibleModelError(f"{path}: codec config missing or malformed ({exc})") from None
    model = create_codec(metadata.get("codec", ""), **config)
    state = {k: (v.to(torch.int64) if v.dtype == torch.int32 else v) for k, v in state.items()}
    adopt_coding_state(model, state, load=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IncompatibleModelError(f"{path}: weights do not fit the {metadata.get('codec')} architecture ({exc})") from None
    model.eval().to(device)
    _CACHE[key] = (model, metadata)
    return LoadedCodec(model=model, name=name, sha256=sha, path=path, metadata=metadata)


_INTEGER_PREFIX = "integer_hyper."


def is_coding_state(key: str) -> bool:
    """Whether a codec state-dict key is coding state (a coding table, the integer hyper-decoder): what a training
    run derives at its end from the learned weights instead of learning it."""
    return "table_" in key or key.startswith(_INTEGER_PREFIX)


def adopt_coding_state(model: RDCodec, state: dict[str, torch.Tensor], load: bool = True) -> None:
    """Give ``model`` the coding state of ``state`` (a codec's state dict): its coding tables, whose buffers'
    shapes depend on training, so the stored shapes are adopted (as int64), and, when ``state`` has one, an integer
    hyper-decoder; with ``load``, their values too (without, ``model.load_state_dict(state)`` fills them)."""
    import torch

    for module_name, module in model.named_modules():
        for buffer_name in ("table_offsets", "table_lengths", "table_counts"):
            key_name = f"{module_name}.{buffer_name}" if module_name else buffer_name
            if key_name in state and hasattr(module, buffer_name):
                device = getattr(module, buffer_name).device
                setattr(module, buffer_name, state[key_name].to(device, torch.int64).clone())
    add_integer_hyper = getattr(model, "add_integer_hyper", None)
    prefix = _INTEGER_PREFIX
    if any(k.startswith(prefix) for k in state) and callable(add_integer_hyper):
        integer = add_integer_hyper()  # weights with the exact integer hyper-decoder (sarcodec >= 0.5)
        if load:
            integer.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
            integer.to(next(model.parameters()).device)
    elif load and getattr(model, "integer_hyper", None) is not None:
        setattr(model, "integer_hyper", None)  # noqa: B010 (the state's codec has the float64 path)


def describe_codec(name_or_path: str | Path) -> str:
    """What ``sarcodec info MODEL`` prints: architecture, weights, training summary, probability path."""
    codec = load_codec(name_or_path)
    training = json.loads(codec.metadata.get("training", "{}"))
    params = sum(p.numel() for p in codec.model.parameters())
    lines = [
        f"codec {codec.name}: {codec.model.codec_name} {json.dumps(codec.model.config)}",
        f"  weights: {codec.path} ({codec.path.stat().st_size / 1e6:.2f} MB, sha256 {codec.sha256[:16]}...), "
        f"{params:,} parameters, quality levels 1..{codec.num_levels}",
    ]
    if training:
        lines.append(f"  trained: {training.get('steps_done')} steps, {training.get('minutes')} min on "
                     f"{training.get('device')}, data {training.get('data')}")
        for row in training.get("val_levels", []):
            lines.append(f"    quality {row['quality']}: {row['bpp']:.3f} bpp, {row['psnr']:.2f} dB (val patches, estimated rate)")
    if getattr(codec.model, "integer_hyper", None) is not None:
        calibration = json.loads(codec.metadata.get("integer_hyper", "{}")).get("calibration", "?")
        calibration = ", ".join(calibration) if isinstance(calibration, list) else calibration
        lines.append(f"  probability path: exact integer hyper-decoder (activation ranges from {calibration})")
    elif hasattr(codec.model, "hyper_synthesis"):
        lines.append("  probability path: float64 hyper-decoder on the CPU (weights of sarcodec <= 0.4)")
    return "\n".join(lines)


def _export(src: Path, dst: Path) -> None:
    import torch

    loaded = load_codec(src)
    x = torch.rand(1, 1, 40, 56)
    for quality in range(1, loaded.num_levels + 1):
        payload = loaded.model.compress_tile(x, quality)
        loaded.model.decompress_tile(payload, 40, 56, quality)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    print(f"exported {src} -> {dst} ({dst.stat().st_size / 1e6:.2f} MB, sha256 {loaded.sha256[:16]})")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m sarcodec.codec.registry export SRC.safetensors DST.safetensors")
    _export(Path(sys.argv[2]), Path(sys.argv[3]))
