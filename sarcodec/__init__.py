"""sarcodec: learned compression and a research workbench for SAR imagery."""

from __future__ import annotations

from typing import Any

from sarcodec.errors import (
    BadInputError,
    CorruptFileError,
    IncompatibleModelError,
    OutputError,
    SarcodecError,
)

from sarcodec.version import __version__


_API = {"compress": "sarcodec.codec.api", "decompress": "sarcodec.codec.api", "read_info": "sarcodec.codec.info"}


def __getattr__(name: str) -> Any:
    """``sarcodec.compress`` and ``decompress`` are the functions of :mod:`sarcodec.codec.api`, ``read_info`` that
    of :mod:`sarcodec.codec.info`, themselves (real signatures and docstrings in ``help()``), imported on first use so that ``import sarcodec``
    stays light (no PyTorch)."""
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sarcodec' has no attribute {name!r}")


__all__ = [
    "BadInputError",
    "CorruptFileError",
    "IncompatibleModelError",
    "OutputError",
    "SarcodecError",
    "__version__",
    "compress",
    "decompress",
    "read_info",
]
