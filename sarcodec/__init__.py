"""sarcodec: learned compression and a research workbench for SAR imagery."""

from __future__ import annotations

from sarcodec.errors import (
    BadInputError,
    CorruptFileError,
    IncompatibleModelError,
    OutputError,
    SarcodecError,
)

__version__ = "0.1.0"

__all__ = [
    "BadInputError",
    "CorruptFileError",
    "IncompatibleModelError",
    "OutputError",
    "SarcodecError",
    "__version__",
]
