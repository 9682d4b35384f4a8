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

__version__ = "0.1.0"


def compress(*args: Any, **kwargs: Any) -> Any:
    """Compress a raster file or a 2-D array to a ``.sarc`` file; see :func:`sarcodec.codec.api.compress`."""
    from sarcodec.codec.api import compress as _compress

    return _compress(*args, **kwargs)


def decompress(*args: Any, **kwargs: Any) -> Any:
    """Decode a ``.sarc`` file to a GeoTIFF or an array; see :func:`sarcodec.codec.api.decompress`."""
    from sarcodec.codec.api import decompress as _decompress

    return _decompress(*args, **kwargs)


def read_info(*args: Any, **kwargs: Any) -> Any:
    """The header of a ``.sarc`` file; see :func:`sarcodec.codec.api.read_info`."""
    from sarcodec.codec.api import read_info as _read_info

    return _read_info(*args, **kwargs)


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
