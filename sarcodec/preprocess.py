"""Units, dB conversion, clipping/normalisation, validity masks and their exact inverse.

The working representation of every model and metric is ``x_norm``: dB of intensity, clipped to
``[db_lo, db_hi]`` and scaled to ``[0, 1]``. Everything needed to go back (units, dtype, clip bounds,
nodata) lives in a plain JSON-able dict, ``preprocessing_params``, stored in checkpoints, datasets and
compressed files.

Units (see SPEC "Units and preprocessing"):

- ``intensity``: linear power (sigma0, gamma0, DN^2); valid where finite and > 0.
- ``amplitude``: sqrt(intensity), e.g. Sentinel-1 GRD uint16 DN; valid where finite and > 0.
- ``db``: 10*log10(intensity); valid where finite.
- ``complex``: SLC samples z, intensity = |z|^2; valid where finite and |z| > 0. The phase is not kept:
  the inverse returns complex values of the right magnitude with zero phase.

This module knows nothing of files: readers hand it arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.jsonfloat import float_to_json

Units = Literal["intensity", "amplitude", "db", "complex"]
UNITS: tuple[str, ...] = ("intensity", "amplitude", "db", "complex")
ClipScope = Literal["image", "train"]

PARAMS_VERSION = 1
DEFAULT_CLIP_PERCENTILES: tuple[float, float] = (0.1, 99.9)

# Streaming dB histograms: 0.001 dB bins over [-200, 200] dB cover every physical SAR value
# (sigma0 of -60 dB .. DN^2 of 2^32 ~ 96 dB) with percentiles exact to 0.001 dB.
_HIST_MIN_DB = -200.0
_HIST_MAX_DB = 200.0
_HIST_BIN_DB = 0.001
_HIST_BINS = int(round((_HIST_MAX_DB - _HIST_MIN_DB) / _HIST_BIN_DB))

FloatArray = npt.NDArray[np.floating[Any]]
BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------------------------- units
def infer_units(dtype: np.dtype[Any] | str, sample: npt.NDArray[Any] | None = None) -> tuple[str, str]:
    """Infer the units of a raster from its dtype (and a sample of its values).

    Returns ``(units, rule)`` where ``rule`` is a one-line human explanation to print.
    Rule: complex -> complex; integer -> amplitude; float -> intensity, unless most finite values
    of the sample are negative (impossible for intensity) -> db.
    """
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.complexfloating):
        return "complex", f"{dt} is complex -> complex (SLC, intensity = |z|^2)"
    if np.issubdtype(dt, np.integer):
        return "amplitude", f"{dt} is integer -> amplitude (intensity = DN^2)"
    if np.issubdtype(dt, np.floating):
        if sample is not None:
            finite = sample[np.isfinite(sample)]
            if finite.size and np.count_nonzero(finite < 0) > finite.size / 2:
                return "db", f"{dt} with mostly negative values -> db"
        return "intensity", f"{dt} is float -> intensity (linear power)"
    raise BadInputError(f"unsupported pixel type {dt}; expected integer, float or complex")


def check_units(units: str) -> str:
    """Return ``units`` if known, else raise BadInputError naming the valid choices."""
    if units not in UNITS:
        raise BadInputError(f"unknown units {units!r}; choose one of {', '.join(UNITS)}")
    return units


def intensity_to_db(intensity: npt.ArrayLike) -> FloatArray:
    """10*log10(intensity), float64. Non-positive values give -inf/nan (mask them first)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.asarray(intensity, dtype=np.float64))


def db_to_intensity(db: npt.ArrayLike) -> FloatArray:
    """10**(db/10), float64 (beyond ~3080 dB: inf, without a warning)."""
    with np.errstate(over="ignore"):
        return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


#: Above this many pixels, 8- and 16-bit rasters are converted through a table of every value (see :func:`to_db`).
_LOOKUP_MIN = 1 << 17


def to_db(values: npt.NDArray[Any], units: str, nodata: float | None = None) -> tuple[FloatArray, BoolArray]:
    """Convert raw raster values in ``units`` to dB of intensity, with a validity mask.

    Returns ``(db, valid)``: ``db`` float64 (invalid pixels hold NaN), ``valid`` bool, same shape.
    Invalid: NaN, Inf, equal to ``nodata``, and (except for dB input) <= 0.
    """
    check_units(units)
    arr = np.asarray(values)
    table = db_lookup(arr.dtype, units, nodata) if arr.size > _LOOKUP_MIN else None
    if table is not None:  # 8- and 16-bit rasters (GRD DN): each possible value converted once (~10x faster)
        index = value_codes(arr)
        return table[0][index], table[1][index]
    return _to_db_each(arr, units, nodata)


def _to_db_each(arr: npt.NDArray[Any], units: str, nodata: float | None) -> tuple[FloatArray, BoolArray]:
    """:func:`to_db` value by value."""
    valid = np.ones(arr.shape, dtype=bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        valid &= arr != nodata
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if units == "complex":
            z = arr.astype(np.complex128, copy=False)
            valid &= np.isfinite(z)
            intensity = z.real**2 + z.imag**2
            db = intensity_to_db(intensity)
        elif units == "db":
            db = arr.astype(np.float64, copy=False)
        else:
            lin = arr.astype(np.float64, copy=False)
            db = intensity_to_db(lin * lin if units == "amplitude" else lin)
    valid &= np.isfinite(db)
    db = np.where(valid, db, np.nan)
    return db, valid


def value_codes(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """An 8- or 16-bit integer array's bit patterns (0 .. 2**bits - 1): the index of each value in a
    :func:`db_lookup` table (a view, no copy)."""
    return values.view(values.dtype.str.replace("i", "u"))


def _tabulable(dtype: np.dtype[Any], units: str) -> bool:
    """8- and 16-bit integer rasters (not complex): few enough distinct values to convert each once."""
    return dtype.kind in "ui" and dtype.itemsize <= 2 and units != "complex"


def db_lookup(dtype: npt.DTypeLike, units: str, nodata: float | None = None
              ) -> tuple[FloatArray, BoolArray] | None:
    """:func:`to_db` of every value of an 8- or 16-bit integer ``dtype``, indexed by :func:`value_codes`; None for
    other dtypes and for complex units. ``table[0][value_codes(a)]`` is ``to_db(a, ...)[0]``, exactly."""
    dt = np.dtype(dtype)
    if not _tabulable(dt, units):
        return None
    codes = np.arange(1 << (8 * dt.itemsize), dtype=dt.str.replace("i", "u")).view(dt)
    return _to_db_each(codes, units, nodata)


def db_to_units(db: npt.ArrayLike, units: str) -> npt.NDArray[Any]:
    """Inverse of :func:`to_db` for valid pixels: dB of intensity -> values in ``units`` (float64/complex128)."""
    check_units(units)
    db64 = np.asarray(db, dtype=np.float64)
    if units == "db":
        return db64
    return _intensity_to_units(db_to_intensity(db64), units)


def _intensity_to_units(intensity: FloatArray, units: str, scratch: bool = False) -> npt.NDArray[Any]:
    """Intensity (float64) -> values in the linear ``units`` (float64/complex128); with ``scratch``, the square
    root of amplitudes taken in place."""
    if units == "intensity":
        return intensity
    amplitude = np.sqrt(intensity, out=intensity if scratch else None)
    if units == "amplitude":
        return amplitude
    return amplitude.astype(np.complex128)


# ---------------------------------------------------------------------- clip/normalize
def normalize_db(db: npt.ArrayLike, db_lo: float, db_hi: float) -> npt.NDArray[np.float32]:
    """Clip dB values to [db_lo, db_hi] and scale to x_norm in [0, 1] (float32). NaN -> 0 (noise floor)."""
    span = db_hi - db_lo
    x = (np.asarray(db, dtype=np.float64) - db_lo) / span
    return np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0).astype(np.float32)


def denormalize_db(x_norm: npt.ArrayLike, db_lo: float, db_hi: float) -> FloatArray:
    """x_norm in [0, 1] -> dB (float64). Values outside [0, 1] are clipped first."""
    x = np.clip(np.asarray(x_norm, dtype=np.float64), 0.0, 1.0)
    return db_lo + x * (db_hi - db_lo)


# ------------------------------------------------------------------------------ params
@dataclass(frozen=True)
class PreprocessingParams:
    """Everything needed to map raw raster values to x_norm and back.

    ``db_lo``/``db_hi``: clip bounds in dB of intensity, from the ``clip_percentiles`` of the dB values
    of one image (``clip_scope='image'``) or of all training images (``clip_scope='train'``).
    ``invalid_fill``: value written back where the validity mask is False (``nodata`` when the input
    declared one; otherwise 0 for linear units and NaN for dB).
    """

    units: str
    dtype: str
    db_lo: float
    db_hi: float
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES
    clip_scope: str = "image"
    nodata: float | None = None
    invalid_fill: float | None = None
    version: int = PARAMS_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_units(self.units)
        if not (math.isfinite(self.db_lo) and math.isfinite(self.db_hi)) or self.db_hi <= self.db_lo:
            raise BadInputError(f"invalid clip bounds db_lo={self.db_lo}, db_hi={self.db_hi}")

    @property
    def noise_floor_db(self) -> float:
        """dB value given to invalid pixels before normalisation (x_norm = 0)."""
        return self.db_lo

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (NaN and infinite nodata/fill are stored as 'nan', 'inf', '-inf')."""
        out = asdict(self)
        out["clip_percentiles"] = list(self.clip_percentiles)
        for key in ("nodata", "invalid_fill"):
            out[key] = float_to_json(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingParams:
        """Inverse of :meth:`to_dict`; raises CorruptFileError on a malformed dict."""
        try:
            if int(data.get("version", PARAMS_VERSION)) > PARAMS_VERSION:
                raise CorruptFileError(f"preprocessing_params version {data['version']} is newer than supported")
            kwargs = dict(data)
            for key in ("nodata", "invalid_fill"):
                value = kwargs.get(key)
                if value is not None:
                    if isinstance(value, bool) or not isinstance(value, int | float | str):
                        raise TypeError(f"{key} must be a number")
                    kwargs[key] = float(value)  # also 'nan', 'inf', '-inf'
            if not isinstance(kwargs.get("dtype"), str) or not isinstance(kwargs.get("units"), str):
                raise TypeError("dtype and units must be strings")
            kwargs["clip_percentiles"] = tuple(float(p) for p in kwargs.get("clip_percentiles", DEFAULT_CLIP_PERCENTILES))
            kwargs["db_lo"] = float(kwargs["db_lo"])
            kwargs["db_hi"] = float(kwargs["db_hi"])
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError, OverflowError, BadInputError) as exc:
            raise CorruptFileError(f"malformed preprocessing_params: {exc}") from None


def default_invalid_fill(units: str, nodata: float | None) -> float:
    """What the inverse writes where pixels were invalid (see PreprocessingParams.invalid_fill)."""
    if nodata is not None:
        return float(nodata)
    return float("nan") if units == "db" else 0.0


def make_params(
    units: str,
    dtype: np.dtype[Any] | str,
    db_lo: float,
    db_hi: float,
    *,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
    clip_scope: str = "image",
    nodata: float | None = None,
) -> PreprocessingParams:
    """Build params with the default invalid fill for these units and nodata."""
    if db_hi <= db_lo:  # a constant image: widen to keep the scale invertible
        db_hi = db_lo + 1.0
    return PreprocessingParams(
        units=units,
        dtype=str(np.dtype(dtype)),
        db_lo=float(db_lo),
        db_hi=float(db_hi),
        clip_percentiles=(float(clip_percentiles[0]), float(clip_percentiles[1])),
        clip_scope=clip_scope,
        nodata=None if nodata is None else float(nodata),
        invalid_fill=default_invalid_fill(units, nodata),
    )


def check_percentiles(percentiles: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(percentiles[0]), float(percentiles[1])
    if not (0.0 <= lo < hi <= 100.0):
        raise BadInputError(f"clip percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
    return lo, hi


class DbHistogram:
    """Streaming histogram of dB values for exact-to-0.001-dB percentiles of rasters of any size."""

    def __init__(self) -> None:
        self.counts = np.zeros(_HIST_BINS, dtype=np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, db: npt.ArrayLike, valid: npt.ArrayLike | None = None,
            counts: npt.NDArray[np.int64] | None = None) -> None:
        """Add dB values (invalid or NaN values are ignored), each once or ``counts`` times."""
        values = np.asarray(db, dtype=np.float64)
        keep = np.isfinite(values) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(values))
        values = values[keep]
        if values.size == 0:
            return
        idx = np.floor((values - _HIST_MIN_DB) / _HIST_BIN_DB).astype(np.int64)
        np.clip(idx, 0, _HIST_BINS - 1, out=idx)
        if counts is None:
            self.counts += np.bincount(idx, minlength=_HIST_BINS)
        else:  # float weights: exact for counts below 2**53
            self.counts += np.bincount(idx, weights=counts[keep], minlength=_HIST_BINS).astype(np.int64)

    def merge(self, other: DbHistogram) -> None:
        self.counts += other.counts

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in dB, to bin precision. Raises BadInputError when empty."""
        total = self.total
        if total == 0:
            raise BadInputError("no valid pixels (all NaN, Inf, nodata or <= 0)")
        cdf = np.cumsum(self.counts)
        # numpy's default ("linear") rule on the order statistics, each known to its bin centre
        rank = q / 100.0 * (total - 1)
        below, frac = int(math.floor(rank)), rank - math.floor(rank)
        bins = np.searchsorted(cdf, [below, min(below + 1, total - 1)], side="right")
        centres = _HIST_MIN_DB + (bins.astype(np.float64) + 0.5) * _HIST_BIN_DB
        return float(centres[0] + frac * (centres[1] - centres[0]))

    def clip_bounds(self, percentiles: tuple[float, float]) -> tuple[float, float]:
        lo, hi = check_percentiles(percentiles)
        return self.percentile(lo), self.percentile(hi)


_COUNT_CHUNK = 1 << 19  # values per np.bincount call: 2^19 counted 1.7x as fast as 5 M (10k scene's blocks) here


def db_histogram(blocks: Iterable[npt.NDArray[Any]], units: str, nodata: float | None = None) -> DbHistogram:
    """Histogram of the valid dB values of raw blocks (e.g. a raster's row blocks): one streaming pass.

    8- and 16-bit integer rasters (GRD DN) are counted by raw value first and each distinct value is converted
    once: the same dB of the same values, so the same histogram, ~20x faster than converting every pixel."""
    hist = DbHistogram()
    by_value: dict[str, npt.NDArray[np.int64]] = {}  # counts of each raw value, per integer dtype
    for block in blocks:
        arr = np.asarray(block)
        if _tabulable(arr.dtype, units):
            key = arr.dtype.str
            if key not in by_value:
                by_value[key] = np.zeros(1 << (8 * arr.dtype.itemsize), np.int64)
            counts = by_value[key]
            codes = value_codes(arr).ravel()
            for start in range(0, codes.size, _COUNT_CHUNK):  # bincount's intp copy of a chunk stays in cache
                counts += np.bincount(codes[start:start + _COUNT_CHUNK], minlength=counts.size)
        else:
            db, valid = to_db(arr, units, nodata)
            hist.add(db, valid)
    for key, counts in by_value.items():
        table = db_lookup(key, units, nodata)  # the dB of each value, indexed by its bit pattern as ``counts``
        assert table is not None
        present = counts > 0
        hist.add(table[0][present], table[1][present], counts=counts[present])
    return hist


# -------------------------------------------------------------------- forward / inverse
def forward(
    values: npt.NDArray[Any], params: PreprocessingParams
) -> tuple[npt.NDArray[np.float32], BoolArray]:
    """Raw raster values -> ``(x_norm, valid)``; invalid pixels get the noise floor (x_norm = 0)."""
    db, valid = to_db(values, params.units, params.nodata)
    return normalize_db(db, params.db_lo, params.db_hi), valid


def inverse(
    x_norm: npt.ArrayLike, params: PreprocessingParams, valid: npt.ArrayLike | None = None
) -> npt.NDArray[Any]:
    """x_norm -> raw values in the input's units and dtype (integers rounded and clipped to range).

    Exact within the clip range up to float precision; where ``valid`` is False the params'
    ``invalid_fill`` is written.
    """
    return inverse_db(denormalize_db(x_norm, params.db_lo, params.db_hi), params, valid)


def inverse_db(
    db: npt.ArrayLike, params: PreprocessingParams, valid: npt.ArrayLike | None = None
) -> npt.NDArray[Any]:
    """dB of intensity (any value, no clipping) -> raw values in the input's units and dtype (integers rounded
    and clipped to the dtype's range; in linear units at least 1, as 0 has no dB and reads as invalid, e.g. a
    Sentinel-1 GRD's nodata); where ``valid`` is False the params' ``invalid_fill`` is written."""
    return _raw_values(db_to_units(db, params.units), params, valid)


def inverse_intensity(
    intensity: FloatArray, params: PreprocessingParams, valid: npt.ArrayLike | None = None
) -> npt.NDArray[Any]:
    """:func:`inverse_db` of ``10*log10(intensity)`` without the logarithm and its power of ten where the
    input's units are linear (a float64 ``intensity`` >= 0; it may be overwritten): the same values within float
    rounding."""
    values = (intensity_to_db(intensity) if params.units == "db"
              else _intensity_to_units(intensity, params.units, scratch=True))
    return _raw_values(values, params, valid, scratch=True)


def _raw_values(values: npt.NDArray[Any], params: PreprocessingParams, valid: npt.ArrayLike | None,
                scratch: bool = False) -> npt.NDArray[Any]:
    """Values in the input's units (float64/complex128) -> its dtype (integers rounded and clipped, floats
    saturated), ``invalid_fill`` where ``valid`` is False; with ``scratch``, rounded and clipped in place."""
    dtype = np.dtype(params.dtype)
    out_arg = values if scratch and values.dtype == np.float64 else None
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = info.min if params.units == "db" else max(1, info.min)
        values = np.clip(np.rint(np.real(values), out=out_arg), low, info.max, out=out_arg)
    elif np.issubdtype(dtype, np.floating):
        finfo = np.finfo(dtype)  # dB beyond the dtype's range saturate instead of overflowing to inf
        values = np.clip(values, -finfo.max, finfo.max, out=out_arg)
    out = np.asarray(values).astype(dtype)
    if valid is not None:
        out[~np.asarray(valid, dtype=bool)] = fill_value(params)
    return out


def fill_value(params: PreprocessingParams) -> float:
    """What is written where pixels are invalid: the params' ``invalid_fill`` (NaN becomes 0 in integer dtypes)."""
    fill = params.invalid_fill
    if fill is None:
        fill = default_invalid_fill(params.units, params.nodata)
    if np.issubdtype(np.dtype(params.dtype), np.integer) and math.isnan(fill):
        fill = 0.0
    return float(fill)


def params_for_array(
    values: npt.NDArray[Any],
    units: str | None = None,
    *,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
    nodata: float | None = None,
) -> PreprocessingParams:
    """Per-image params for an in-memory array (units inferred when None)."""
    if units is None:
        units, _ = infer_units(values.dtype, np.asarray(values).ravel()[:65536])
    hist = DbHistogram()
    db, valid = to_db(values, units, nodata)
    hist.add(db, valid)
    lo, hi = hist.clip_bounds(clip_percentiles)
    return make_params(units, values.dtype, lo, hi, clip_percentiles=clip_percentiles, clip_scope="image", nodata=nodata)
