"""What a ``.sarc`` file holds, read without the networks (``sarcodec info`` starts in a fraction of a second:
nothing here imports PyTorch)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sarcodec.errors import CorruptFileError
from sarcodec.io.sarc import SarcHeader, SarcReader
from sarcodec.preprocess import PreprocessingParams

__all__ = ["params_of", "read_info"]


def read_info(path: str | Path) -> dict[str, Any]:
    """The header of a ``.sarc`` file (checksum verified) plus its size and bitrate."""
    with SarcReader(path) as reader:
        fields = dict(reader.header.fields)
        fields["preprocessing_params"] = params_of(reader.header).to_dict()
        fields["format_version"] = reader.version
        fields["file_bytes"] = reader.size
        fields["bpp"] = reader.size * 8 / (reader.header.height * reader.header.width)
        return fields


_MAX_ABS_DB = 1000.0


def params_of(header: SarcHeader) -> PreprocessingParams:
    """The header's preprocessing params, checked well enough to invert with them (else CorruptFileError)."""
    params = PreprocessingParams.from_dict(header.fields["preprocessing_params"])
    try:
        fill = params.invalid_fill
        dtype = np.dtype(params.dtype)
        ok = dtype.kind in "uifc" and (fill is None or isinstance(fill, int | float))
        # dB beyond +-1000 exist in no raster (the histograms cover +-200); a fill must fit the dtype
        ok = ok and -_MAX_ABS_DB <= params.db_lo < params.db_hi <= _MAX_ABS_DB
        if ok and fill is not None and dtype.kind in "ui" and math.isfinite(fill):
            ok = np.iinfo(dtype).min <= fill <= np.iinfo(dtype).max
        elif ok and fill is not None and dtype.kind in "fc" and math.isfinite(fill):
            ok = abs(float(fill)) <= float(np.finfo(dtype).max)
    except TypeError:
        ok = False
    if not ok or params.dtype != header.fields["dtype"] or params.units != header.fields["units"]:
        raise CorruptFileError("the header's preprocessing_params are malformed or disagree with its dtype/units")
    return params
