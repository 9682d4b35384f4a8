"""Checkpoints: the one way to save and load training state.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain Python values (dict, list, str, int,
float, bool, None), so ``torch.load(path, weights_only=True)`` reads it without unpickling any code. Keys:

- ``format`` (``"sarcodec-checkpoint"``), ``format_version``, ``sarcodec_version``, ``torch_version``;
- ``objective`` (``autoencoder`` or ``rd``; absent in older checkpoints: autoencoder), ``model_name``,
  ``model_config`` (``objectives.build_network(objective, model_name, model_config)`` rebuilds the network),
  ``model_state_dict``, ``parameter_counts``;
- ``optimizer_state_dict``, ``scheduler_state_dict``, ``scaler_state_dict`` (and ``aux_optimizer_state_dict``
  for rate-distortion runs);
- ``epoch`` (epochs completed, 1-based), ``step`` (optimizer steps taken), ``best_val_loss``, ``best_epoch``,
  ``epochs_without_improvement``, ``history`` (one dict per completed epoch: ``history[-1]['epoch'] == epoch``);
- ``config`` (the run's TrainConfig as a plain dict), ``preprocessing_params`` (the dataset's, as in its
  manifest), ``dataset`` (where the data came from, patch size, scene splits), ``world_size``;
- ``rng_state``: torch CPU (and CUDA) generator states as uint8 tensors, numpy's MT19937 state and Python's
  ``random`` state as lists of ints.

Files are written to a temporary file in the same directory and moved into place with ``os.replace``, so a
crash or a full disk never leaves a truncated ``best.pth``/``last.pth`` behind.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, OutputError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "capture_rng_state",
    "load_checkpoint",
    "load_model_from_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "sarcodec-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED_KEYS = ("model_name", "model_config", "model_state_dict")


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically to ``path`` (temporary file in the same directory, fsync, ``os.replace``).

    Raises:
        OutputError: the directory cannot be written (the previous file, if any, is left intact).
    """
    _check_plain(state, "state")
    path = Path(path)
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, file_mode())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return path


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` would reject (numpy scalars, str subclasses, objects)."""
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return
    if type(value) in (dict, OrderedDict):  # both load under weights_only
        for key, item in value.items():
            if type(key) not in _PLAIN:
                raise TypeError(f"checkpoint {where}: key {key!r} of type {type(key).__name__} is not a plain value")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint {where}: {type(value).__qualname__} is not a tensor or plain value "
                    "(it would need pickle to load)")


def file_mode() -> int:
    """The permissions of a new file under the process's umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a sarcodec checkpoint with ``weights_only=True`` (no code is unpickled).

    Raises:
        BadInputError: ``path`` does not exist or is a directory.
        CorruptFileError: the file is truncated, damaged, not a torch file, needs pickle, or lacks the model keys.
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, not a checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save's format since PyTorch 1.6; else torch.load's pickle message misled
        raise CorruptFileError(f"{path}: not a readable checkpoint (not a PyTorch checkpoint archive: another kind "
                               "of file, or one damaged or cut short)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, KeyError,
            AttributeError, TypeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it holds pickled Python objects, not only tensors and plain values"
        raise CorruptFileError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(ckpt, dict):
        raise CorruptFileError(f"{path}: not a sarcodec checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CorruptFileError(f"{path}: not a sarcodec checkpoint (missing {', '.join(missing)})")
    if ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path}: unknown checkpoint format {ckpt.get('format')!r}")
    if int(ckpt.get("format_version", CHECKPOINT_VERSION)) > CHECKPOINT_VERSION:
        raise IncompatibleModelError(
            f"{path}: checkpoint format version {ckpt['format_version']} is newer than this sarcodec reads "
            f"({CHECKPOINT_VERSION}); upgrade sarcodec"
        )
    return ckpt


def load_model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the checkpoint's model, load its weights, and return it in eval mode.

    Raises:
        CorruptFileError: see :func:`load_checkpoint`.
        IncompatibleModelError: unknown model name, or weights that do not fit the architecture.
    """
    return model_from_checkpoint(load_checkpoint(path, map_location=map_location), str(path)).to(map_location)


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the model of an already loaded checkpoint dict, in eval mode (``source`` names it in errors)."""
    from sarcodec.train.objectives import build_network

    model = build_network(ckpt.get("objective", "autoencoder"), ckpt["model_name"], ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model_state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise IncompatibleModelError(f"{source}: weights do not fit model {ckpt['model_name']!r}: {first}") from None
    return model.eval()


# ------------------------------------------------------------------------------------------ RNG state
def capture_rng_state() -> dict[str, Any]:
    """Every global RNG's state as tensors and plain lists (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # legacy=True form: (name, keys, pos, has_gauss, cached_gaussian)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss_next": py_gauss},
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored only when as many devices are present)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    np_state = state["numpy"]
    np.random.set_state((
        np_state["bit_generator"],
        np_state["keys"].cpu().numpy().astype(np.uint32),
        int(np_state["pos"]),
        int(np_state["has_gauss"]),
        float(np_state["cached_gaussian"]),
    ))
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"]), py["gauss_next"]))
