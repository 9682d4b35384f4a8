"""Near-lossless and lossless tiles: every valid pixel within a stated bound of the original (``.sarc`` format 3).

Quantization. ``Bound("db", E)``: the pixel's dB value (intensity, amplitude or dB input) is quantized with a
uniform step of ``2E`` (index ``k = round(dB / 2E)``), so the decoded dB is within ``E`` of the original: the same
bound as a relative error of ``10**(E/10)`` on intensity. ``Bound("input", E)``: the value itself, in the raster's
units, with step ``2E``; ``E = 0`` on an integer raster is lossless (``k`` is the value). 8- and 16-bit integer
rasters (uint16 amplitude DN) are quantized with bins of integers instead (:func:`_integer_bins`): a value whose dB
step is finer than one DN stays exact, and every other value maps to a representative integer within the bound.

Exactness. The decoder computes every pixel with IEEE-754 operations that are correctly rounded on every machine
(multiplication, addition, ``ldexp``, the cast to the dtype): in input units a pixel is ``k * 2E``; in dB its
value is ``10**(k * 2E / 10)`` (or ``/ 20`` for amplitude) evaluated by :func:`exp10` (a fixed polynomial, not the
platform's ``exp``, whose last bit differs between libm and SIMD implementations). The encoder computes the same
values and checks every pixel against the bound before writing; a pixel that misses it (an integer rounded onto
the wrong side, a non-positive intensity that has no dB, a bound finer than the dtype resolves) is stored as an
exception with its exact value. So the bound holds on every machine by construction, and is checked.

Prediction and coding (no network: the networks' pixels differ between CPUs and GPUs by float rounding, and a
residual against them would not decode to the same pixels everywhere). The index field ``k`` is coded
coarse-to-fine like an interlaced image: every 16th pixel of every 16th row first (differences in raster
order), then at each level the centres of the known lattice's squares from their four diagonal neighbours and
then the edge midpoints from their four axial neighbours, each predicted by the integer mean of its four
neighbours. The prediction error is entropy coded (``constriction`` ANS) with a table per context, the
neighbours' range (their local activity, in 11 classes on a log scale; plus the level where the indices are the
values). The tables are the tile's own counts (two-pass, semi-static), stored with it on a log scale; classes with
few errors share a table; errors beyond a table's range are escaped. Uncoded pixels (nodata, exceptions, the padding of the lattice) take their prediction, which
the decoder computes the same way, so they cost nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import constriction
import numpy as np
import numpy.typing as npt

from sarcodec.io import packing
from sarcodec.codec.pipeline import RowSink, TilePool, cpu_workers, write_bands
from sarcodec.codec.tiling import Region, RegionSink
from sarcodec.entropy.tables import decode_grouped, encode_grouped, quantize_pmf
from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.io.sarc import FORMAT_VERSION, SarcHeader, SarcReader, SarcWriter, decode_mask, encode_mask, tile_grid
from sarcodec.preprocess import PreprocessingParams, fill_value

__all__ = ["Bound", "db_of", "decode_tile", "encode_tile", "exp10"]

IntArray = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

#: Spacing of the coarsest lattice (pixels) and the activity classes' upper limits (the class of an activity a is
#: the number of limits <= a).
_COARSE = 16
_ACTIVITY = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=np.int64)
#: Where the index is the value itself (lossless, input units), its level joins the activity (level >> 4): the
#: noise of amplitude DN grows with the signal (-1.5 % on the GRD DN of extra/, none in dB).
_LEVEL_SHIFT = 4
_CLASSES = len(_ACTIVITY) + 1
#: Tables: one per activity class, then the coarse lattice's differences (separate tables for centre and edge
#: points cost more in stored counts than they saved on 256 x 256 images).
_TABLES = _CLASSES + 1
#: Most symbols in one table besides the escape (errors farther from the table's median are escaped).
_TABLE_SPAN = 1024
#: Smallest bound in dB (a finer one would need more codebook entries than a tile has pixels).
MIN_DB_ERROR = 1e-3
#: Largest |index| (values beyond 2**52 steps cannot be told apart in float64).
_MAX_INDEX = 1 << 52


@dataclass(frozen=True)
class Bound:
    """The guaranteed error: ``max_error`` in dB (``units="db"``) or in the raster's units (``"input"``); 0 in
    input units is lossless (integer rasters)."""

    units: str
    max_error: float

    def __post_init__(self) -> None:
        if self.units not in ("db", "input"):
            raise BadInputError(f"the bound's units must be 'db' or 'input', got {self.units!r}")
        e = self.max_error
        if not (isinstance(e, int | float) and math.isfinite(e) and e >= 0):
            raise BadInputError(f"the maximum error must be a finite number >= 0, got {e!r}")
        if self.units == "db" and e < MIN_DB_ERROR:
            raise BadInputError(f"the maximum error in dB must be at least {MIN_DB_ERROR} (for exact values of an "
                                "integer raster use lossless)")

    @property
    def lossless(self) -> bool:
        return self.units == "input" and self.max_error == 0

    @property
    def step(self) -> float:
        return 2.0 * float(self.max_error)

    def to_json(self) -> dict[str, Any]:
        return {"units": self.units, "max_error": float(self.max_error)}

    @classmethod
    def from_json(cls, value: Any) -> Bound:
        """The header's bound (CorruptFileError when malformed)."""
        try:
            return cls(str(value["units"]), float(value["max_error"]))
        except (KeyError, TypeError, ValueError, BadInputError) as exc:
            raise CorruptFileError(f"the header's bound is malformed ({exc})") from None


# ------------------------------------------------------------------------------------------------ quantization
def _db_factor(units: str) -> float:
    """dB per decade of a value in ``units`` (amplitude 20, intensity 10)."""
    return 20.0 if units == "amplitude" else 10.0


def db_of(values: npt.NDArray[Any], units: str) -> npt.NDArray[np.float64]:
    """dB (float64) of values in ``units`` (NaN where there is none: non-positive intensity or amplitude)."""
    v = np.asarray(values, np.float64)
    if units == "db":
        return v
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = _db_factor(units) * np.log10(np.where(v > 0, v, np.nan))
    return out


#: Taylor coefficients of exp(z), highest first: 14 terms reach float64 precision for |z| <= ln(2) / 2.
_EXP_TAYLOR = [1.0 / math.factorial(i) for i in range(14, -1, -1)]


def exp10(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``10 ** x`` to float64 precision, the same bits on every machine: range reduction to ``2**n * 2**f`` with
    ``|f| <= 1/2`` and a Horner polynomial, using only correctly rounded operations (no libm)."""
    t = np.asarray(x, np.float64) * math.log2(10.0)
    n = np.floor(t + 0.5)
    z = (t - n) * math.log(2.0)
    p = np.full(z.shape, _EXP_TAYLOR[0])
    for c in _EXP_TAYLOR[1:]:
        p = p * z + c
    with np.errstate(over="ignore"):  # beyond float64: inf, as 10.0 ** x gives (a bound far above the values)
        out: npt.NDArray[np.float64] = np.ldexp(p, np.clip(n, -1100, 1100).astype(np.int32))
    return out


def _cast(values: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Values in the raster's dtype as the decoder writes them (integers rounded and clipped, floats saturated)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    finfo = np.finfo(dtype)
    return np.clip(values, -finfo.max, finfo.max).astype(dtype)


@functools.lru_cache(maxsize=32)
def _integer_bins(units: str, bound_units: str, max_error: float, dtype_name: str) -> tuple[IntArray, IntArray]:
    """Bins covering every value of an 8- or 16-bit integer dtype, each holding the integers within the bound of
    its representative: (first value, representative) per bin, greedily from the dtype's minimum. In dB on
    intensity or amplitude the bins grow geometrically (values <= 0, which have no dB, are bins of one value);
    otherwise (input units, or integers that are dB) they are ``2 floor(E) + 1`` values wide. Only correctly rounded
    operations: every machine builds the same bins."""
    info = np.iinfo(np.dtype(dtype_name))
    relative = bound_units == "db" and units != "db"
    factor = float(exp10(np.array([max_error / _db_factor(units)]))[0])
    width = math.floor(max_error)
    starts, reps = [], []
    a = int(info.min)
    while a <= info.max:
        if not relative:
            r, b = a + width, a + 2 * width
        elif a <= 0:
            r = b = a
        else:
            r = max(a, math.floor(a * factor))
            b = max(r, math.floor(r * factor))
        starts.append(a)
        reps.append(min(r, int(info.max)))
        a = b + 1
    return np.array(starts, np.int64), np.array(reps, np.int64)


def _binned(dtype: np.dtype[Any], bound: Bound) -> bool:
    """Whether an integer dtype is quantized with :func:`_integer_bins` (8 and 16 bits; wider ones on the float
    path, where values rounded out of the bound become exceptions)."""
    return dtype.kind in "ui" and dtype.itemsize <= 2 and not bound.lossless


def _values(k: IntArray, bound: Bound, units: str, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """What the decoder writes for indices ``k``."""
    if bound.lossless:
        return k.astype(dtype)
    if _binned(dtype, bound):
        _, reps = _integer_bins(units, bound.units, bound.max_error, dtype.name)
        return reps[k].astype(dtype)
    x: npt.NDArray[np.float64] = (k * bound.step).astype(np.float64)
    if bound.units == "db" and units != "db":
        x = exp10(x / _db_factor(units))
    return _cast(x, dtype)


def _quantize(values: npt.NDArray[Any], valid: Mask, bound: Bound, units: str) -> tuple[IntArray, Mask]:
    """Indices ``k`` (valid pixels) and the valid pixels that miss the bound (exceptions)."""
    v = values.astype(np.float64)
    k = np.zeros(values.shape, np.int64)
    if bound.lossless:
        k[valid] = values[valid].astype(np.int64)
        return k, np.zeros(values.shape, bool)
    source = v if bound.units == "input" else db_of(v, units)
    if _binned(values.dtype, bound):
        starts, _ = _integer_bins(units, bound.units, bound.max_error, values.dtype.name)
        usable = valid & (np.isfinite(source) | (v <= 0))
        k[usable] = np.searchsorted(starts, values[usable].astype(np.int64), side="right") - 1
    else:
        scaled = source / bound.step
        usable = valid & np.isfinite(scaled) & (np.abs(scaled) < _MAX_INDEX)
        k[usable] = np.rint(scaled[usable]).astype(np.int64)

    decoded = _values(k[usable], bound, units, values.dtype).astype(np.float64)
    decoded_source = db_of(decoded, units) if bound.units == "db" else decoded
    ok = np.abs(decoded_source - source[usable]) <= bound.max_error  # NaN (e.g. rounded to 0) is not ok
    if _binned(values.dtype, bound) and bound.units == "db":  # bins of one value <= 0 hold it exactly
        ok |= decoded == v[usable]
    exceptions = valid.copy()
    exceptions[usable] = ~ok
    return k, exceptions


# ------------------------------------------------------------------------------------------------ prediction
def _linear(bound: Bound) -> bool:
    """Whether the indices are proportional to the values (lossless, input units)."""
    return bound.units == "input"


def _padded(h: int, w: int) -> tuple[int, int]:
    """The lattice's size: the smallest ``16 n + 1 >= h`` (n >= 1) rows, and the same for columns."""
    return (_COARSE * max(1, math.ceil((h - 1) / _COARSE)) + 1, _COARSE * max(1, math.ceil((w - 1) / _COARSE)) + 1)


def _context(n: list[IntArray], linear: bool) -> tuple[IntArray, IntArray]:
    """Prediction (integer mean of the four neighbours) and activity class of points with neighbours ``n``
    (``linear``: the indices are the values, see ``_LEVEL_SHIFT``)."""
    stack = np.stack(n)
    prediction = (stack.sum(axis=0) + 2) // 4
    activity = stack.max(axis=0) - stack.min(axis=0)
    if linear:
        activity = activity + (np.abs(prediction) >> _LEVEL_SHIFT)
    return prediction, np.searchsorted(_ACTIVITY, activity, side="right")


class _Field:
    """The padded index field, filled coarse to fine; yields each pass's points for the caller to code."""

    def __init__(self, shape: tuple[int, int], coded: Mask) -> None:
        self.k = np.zeros(_padded(*shape), np.int64)
        self.coded = np.zeros(self.k.shape, bool)
        self.coded[: shape[0], : shape[1]] = coded

    def passes(self) -> list[tuple[tuple[slice, slice], list[tuple[slice, slice] | str], tuple[slice, slice]]]:
        """Per pass: the points (a strided view), where the four neighbours are
        (strided views of the field, or 'up'/'down'/'left'/'right': the level's centres, padded by edge) and the
        level's centres."""
        out: list[tuple[tuple[slice, slice], list[tuple[slice, slice] | str], tuple[slice, slice]]] = []
        s = _COARSE
        while s > 1:
            t = s // 2
            lat, mid = slice(0, None, s), slice(t, None, s)
            low, high = slice(0, -1, s), slice(s, None, s)
            centres = (mid, mid)
            out.append((centres, [(low, low), (low, high), (high, low), (high, high)], centres))
            out.append(((lat, mid), [(lat, low), (lat, high), "up", "down"], centres))
            out.append(((mid, lat), [(low, lat), (high, lat), "left", "right"], centres))
            s = t
        return out

    def neighbours(self, spec: list[tuple[slice, slice] | str], centre: tuple[slice, slice]) -> list[IntArray]:
        c = self.k[centre]
        out = []
        for n in spec:
            if n == "up" or n == "down":
                padded = np.concatenate([c[:1], c, c[-1:]], axis=0)
                out.append(padded[:-1] if n == "up" else padded[1:])
            elif n == "left" or n == "right":
                padded = np.concatenate([c[:, :1], c, c[:, -1:]], axis=1)
                out.append(padded[:, :-1] if n == "left" else padded[:, 1:])
            else:
                assert isinstance(n, tuple)
                out.append(self.k[n])
        return out


def _coarse_fill(values: IntArray, coded: Mask, base: int) -> IntArray:
    """The coarse lattice with its uncoded points set to the last coded value before them in raster order
    (``base`` before the first)."""
    flat, keep = values.ravel().copy(), coded.ravel()
    last = np.maximum.accumulate(np.where(keep, np.arange(flat.size), -1))
    out = np.where(last >= 0, flat[np.maximum(last, 0)], base)
    return out.reshape(values.shape)


# ------------------------------------------------------------------------------------------------ tables
#: Fewest errors an activity class needs for a table of its own; smaller classes share their neighbour's (a table
#: costs its stored counts: on a 100 x 100 image eight tables were 4 % of the file).
_MIN_CLASS_SAMPLES = 8192


def _merge_classes(sizes: IntArray) -> IntArray:
    """The table of each activity class: runs of adjacent classes with fewer than ``_MIN_CLASS_SAMPLES`` errors
    are merged (the last run joins the one before it when it is too small)."""
    merge = np.zeros(sizes.size, np.int64)
    table, filled = 0, 0
    for c, n in enumerate(sizes.tolist()):
        if filled >= _MIN_CLASS_SAMPLES:
            table, filled = table + 1, 0
        merge[c], filled = table, filled + n
    if filled < _MIN_CLASS_SAMPLES and table > 0:
        merge[merge == table] = table - 1
    return merge


def _tables(symbols: list[IntArray], groups: list[IntArray]) -> tuple[IntArray, IntArray, list[IntArray]]:
    """Per table: its lowest error, its span and its counts (span + 1: the last is the escape)."""
    all_d = np.concatenate(symbols) if symbols else np.zeros(0, np.int64)
    all_g = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    lows, spans, counts = np.zeros(_TABLES, np.int64), np.ones(_TABLES, np.int64), []
    for g in range(_TABLES):
        d = all_d[all_g == g]
        if d.size:
            median = int(np.median(d))
            lo = max(int(d.min()), median - _TABLE_SPAN // 2)
            hi = min(int(d.max()), lo + _TABLE_SPAN - 1)
            lows[g], spans[g] = lo, hi - lo + 1
            inside = d[(d >= lo) & (d <= hi)] - lo
            counts.append(np.append(np.bincount(inside, minlength=spans[g]), d.size - inside.size))
        else:
            counts.append(np.zeros(2, np.int64))
    return lows, spans, counts


#: Counts are stored on a log scale, 4 steps per octave (a count's code q stands for round(2 ** (q / 4)) - 1):
#: the model's probabilities move by at most 9 %, which costs ~0.01 bit a symbol, and the tables shrink ~3x.
_COUNT_LEVELS = 160
_COUNT_VALUES = np.rint(exp10(np.arange(_COUNT_LEVELS) / 4 * math.log10(2.0))).astype(np.int64) - 1


def _count_code(counts: IntArray) -> IntArray:
    codes: IntArray = np.minimum(np.rint(4 * np.log2(counts + 1.0)), _COUNT_LEVELS - 1).astype(np.int64)
    return codes


def _count_value(codes: IntArray) -> IntArray:
    values: IntArray = _COUNT_VALUES[codes]
    return values


# ------------------------------------------------------------------------------------------------ tile records
def encode_tile(values: npt.NDArray[Any], valid: Mask, bound: Bound, units: str) -> bytes:
    """The bounded record of a tile (the raster's values, its validity): a u32 length and the LZMA2 blob of its
    tables, exceptions and escapes, then the ANS words. Every valid pixel decodes within the bound."""
    k, exceptions = _quantize(values, valid, bound, units)
    linear = _linear(bound)
    coded = valid & ~exceptions
    field = _Field(values.shape, coded)
    field.k[: k.shape[0], : k.shape[1]] = k
    lattice = (slice(0, None, _COARSE), slice(0, None, _COARSE))
    coarse, coarse_coded = field.k[lattice], field.coded[lattice]
    seq = coarse[coarse_coded]
    base = int(seq[0]) if seq.size else 0
    field.k[lattice] = _coarse_fill(coarse, coarse_coded, base)
    symbols, groups = [np.diff(seq, prepend=base)], [np.full(seq.size, _TABLES - 1, np.int64)]
    for points, spec, centres in field.passes():
        prediction, table = _context(field.neighbours(spec, centres), linear)
        here = field.coded[points]
        symbols.append((field.k[points] - prediction)[here])
        groups.append(table[here])
        field.k[points] = np.where(here, field.k[points], prediction)
    merge = _merge_classes(np.bincount(np.concatenate(groups), minlength=_TABLES)[:_CLASSES])
    groups = [np.where(g < _CLASSES, merge[np.minimum(g, _CLASSES - 1)], g) for g in groups]
    lows, spans, exact_counts = _tables(symbols, groups)
    stored = [_count_code(c) for c in exact_counts]
    counts = [_count_value(q) for q in stored]
    # Symbols in table coordinates; escapes (outside the span) coded as the escape symbol, their errors listed.
    coder = constriction.stream.stack.AnsCoder()
    tables = [quantize_pmf(c.astype(np.float64)) for c in counts]
    escapes = []
    coded_symbols = []
    for d, g in zip(symbols, groups):
        s = d - lows[g]
        out = (s < 0) | (s >= spans[g])
        escapes.append(d[out])
        coded_symbols.append(np.where(out, spans[g], s))
    for s, g in zip(reversed(coded_symbols), reversed(groups)):  # a stack: the decoder pops the first pass first
        if s.size:
            encode_grouped(coder, s, g, tables)
    words = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
    exception_index = np.flatnonzero(exceptions.ravel())
    ints = [np.array([base]), merge, lows, spans, *stored, np.diff(exception_index, prepend=-1) - 1, np.concatenate(escapes)]
    blob = _pack(ints, values[exceptions].astype(values.dtype.newbyteorder("<")).tobytes())
    return len(blob).to_bytes(4, "little") + blob + words


def _pack(ints: list[IntArray], raw: bytes) -> bytes:
    lengths = np.array([a.size for a in ints], np.int64)
    body = packing.varints(lengths) + packing.varints(packing.zigzag(np.concatenate(ints).astype(np.int64)))
    return packing.compress(body + raw)


def decode_tile(record: bytes, valid: Mask, bound: Bound, units: str, dtype: np.dtype[Any],
                fill: float) -> npt.NDArray[Any]:
    """Inverse of :func:`encode_tile` for a tile whose validity is ``valid``: the tile in ``dtype``, ``fill`` (a
    value the dtype holds) where invalid. CorruptFileError on any inconsistency."""
    h, w = valid.shape
    pixels = h * w
    if len(record) < 4:
        raise CorruptFileError("a bounded tile is truncated")
    n_blob = int.from_bytes(record[:4], "little")
    if 4 + n_blob > len(record):
        raise CorruptFileError("a bounded tile's table length is inconsistent with its record")
    cap = 64 + 30 * pixels + 2 * pixels * dtype.itemsize + 64 * _TABLES * _TABLE_SPAN
    raw = packing.inflate(record[4 : 4 + n_blob], cap, "a bounded tile's tables")
    n_ints = 4 + _TABLES + 2
    lengths, pos = packing.read_varints(raw, n_ints, 0)
    if int(lengths.sum()) > 8 * pixels + 64 * _TABLE_SPAN:
        raise CorruptFileError("a bounded tile's tables are larger than the tile")
    flat, pos = packing.read_varints(raw, int(lengths.sum()), pos)
    parts = np.split(packing.unzigzag(flat), np.cumsum(lengths)[:-1])
    base_a, merge, lows, spans = parts[:4]
    counts = parts[4 : 4 + _TABLES]
    gaps, escapes = parts[4 + _TABLES :]
    if (base_a.size != 1 or merge.size != _CLASSES or (merge < 0).any() or (merge >= _CLASSES).any()
            or lows.size != _TABLES or spans.size != _TABLES or (spans < 1).any()
            or (spans > _TABLE_SPAN).any() or any(c.size != s + 1 for c, s in zip(counts, spans))
            or any((c < 0).any() for c in counts)):
        raise CorruptFileError("a bounded tile's tables are malformed")
    exception_index = np.cumsum(gaps + 1) - 1
    if exception_index.size and (gaps.min() < 0 or exception_index[-1] >= pixels):
        raise CorruptFileError("a bounded tile's exceptions point outside the tile")
    if len(raw) - pos != exception_index.size * dtype.itemsize:
        raise CorruptFileError("a bounded tile's exact values have the wrong length")
    exact = np.frombuffer(raw, dtype.newbyteorder("<"), exception_index.size, pos).astype(dtype)

    exceptions = np.zeros(pixels, bool)
    exceptions[exception_index] = True
    exceptions = exceptions.reshape(h, w)
    if (exceptions & ~valid).any():
        raise CorruptFileError("a bounded tile lists an exception at an invalid pixel")
    coded = valid & ~exceptions
    if len(record[4 + n_blob :]) % 4:
        raise CorruptFileError("a bounded tile's coded data is not a whole number of 32-bit words")
    words = np.frombuffer(record[4 + n_blob :], dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except Exception as exc:
        raise CorruptFileError(f"a bounded tile's coded data is damaged ({exc})") from None
    if any(c.max(initial=0) >= _COUNT_LEVELS for c in counts):
        raise CorruptFileError("a bounded tile's tables are malformed")
    tables = [quantize_pmf(_count_value(c).astype(np.float64)) for c in counts]
    escapes_left = [escapes]

    def pop(groups: IntArray) -> IntArray:
        s = decode_grouped(coder, groups, tables) if groups.size else np.zeros(0, np.int64)
        d = s + lows[groups]
        out = s == spans[groups]
        n = int(out.sum())
        if n > escapes_left[0].size:
            raise CorruptFileError("a bounded tile has fewer escaped values than escapes")
        d[out], escapes_left[0] = escapes_left[0][:n], escapes_left[0][n:]
        return d

    linear = _linear(bound)
    field = _Field((h, w), coded)
    lattice = (slice(0, None, _COARSE), slice(0, None, _COARSE))
    coarse_coded = field.coded[lattice]
    base = int(base_a[0])
    seq = base + np.cumsum(pop(np.full(int(coarse_coded.sum()), _TABLES - 1, np.int64)))
    coarse = np.zeros(coarse_coded.shape, np.int64)
    coarse[coarse_coded] = seq
    field.k[lattice] = _coarse_fill(coarse, coarse_coded, base)
    for points, spec, centres in field.passes():
        prediction, table = _context(field.neighbours(spec, centres), linear)
        here = field.coded[points]
        values = prediction.copy()
        values[here] = prediction[here] + pop(merge[table[here]])
        field.k[points] = values
        if np.abs(values).max(initial=0) >= _MAX_INDEX:
            raise CorruptFileError("a bounded tile decodes to indices out of range")
    if not coder.is_empty() or escapes_left[0].size:
        raise CorruptFileError("a bounded tile's coded data does not match its tables and mask")
    k = field.k[:h, :w]
    out = np.full((h, w), fill, dtype)
    kc = k[coded]
    if _binned(dtype, bound) and kc.size and (kc.min() < 0 or kc.max() >= _integer_bins(
            units, bound.units, bound.max_error, dtype.name)[0].size):
        raise CorruptFileError("a bounded tile decodes to indices outside its dtype's bins")
    if bound.lossless and kc.size:
        info = np.iinfo(dtype) if dtype.kind in "ui" else None
        if info is None or kc.min() < info.min or kc.max() > info.max:
            raise CorruptFileError("a lossless tile decodes to values outside its dtype")
    out[coded] = _values(kc, bound, units, dtype)
    out[exceptions] = exact
    return out


# ---------------------------------------------------------------------------------------------------- scenes
# Bounded scene files (format version 3): tiles without overlap, coded in parallel, no network;
# ``sarcodec.codec.api`` orchestrates (header, files, options).

TAG_BOUNDED = 3


def bound_of(max_error: float | None, units: str, lossless: bool, rate_given: bool) -> Bound | None:
    """The bound of a near-lossless or lossless request (None for the lossy modes)."""
    if not lossless and max_error is None:
        return None
    if rate_given:
        raise BadInputError("a quality or target bpp does not apply to near-lossless or lossless compression")
    if lossless:
        if max_error is not None and max_error != 0:
            raise BadInputError("give either lossless or a maximum error, not both")
        return Bound("input", 0.0)
    assert max_error is not None
    return Bound(units, max_error)


def check_bounded_input(bound: Bound, dtype: np.dtype[Any]) -> None:
    if dtype.kind == "c":
        raise BadInputError("near-lossless and lossless modes take real-valued rasters, not complex ones")
    if bound.lossless and not (dtype.kind in "ui" and dtype.itemsize <= 4):
        raise BadInputError(f"lossless needs an integer raster of up to 32 bits (this one is {dtype}); for a float "
                            "raster give a maximum error")


def _valid_values(raw: npt.NDArray[Any], nodata: float | None) -> npt.NDArray[np.bool_]:
    """Pixels a bounded file keeps: finite and not nodata (zeros and negative values included)."""
    valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if nodata is not None:
        valid &= ~np.isnan(raw) if math.isnan(nodata) else raw != nodata
    return valid


def bounded_record(values: npt.NDArray[Any], valid: npt.NDArray[np.bool_], bound: Bound, units: str) -> bytes:
    if not valid.any():
        return b""
    return bytes([TAG_BOUNDED]) + encode_tile(values, valid, bound, units)


def compress_bounded(reader: Any, params: PreprocessingParams, header: dict[str, Any], out: Path, bound: Bound,
                      bar: Any) -> None:
    """Write a bounded file (format 3): tiles without overlap, coded in parallel, no network."""
    info, tile_size = reader.info, header["tile"]["size"]

    def bands() -> Iterator[tuple[bytes, list[Callable[[], bytes]]]]:
        for r0, r1 in tile_grid(info.height, tile_size):
            raw = np.asarray(reader.read((r0, 0, r1 - r0, info.width)))
            valid = _valid_values(raw, params.nodata)
            yield encode_mask(valid), [
                functools.partial(bounded_record, raw[:, c0:c1], valid[:, c0:c1], bound, params.units)
                for c0, c1 in tile_grid(info.width, tile_size)]

    with TilePool[bytes, bytes](cpu_workers()) as pool, SarcWriter(out, header, FORMAT_VERSION) as writer:
        write_bands(writer, pool.run(bands()), bar)


def decode_bounded_tile(payload: bytes, valid: npt.NDArray[np.bool_], bound: Bound, units: str,
                         dtype: np.dtype[Any], fill: float) -> npt.NDArray[Any]:
    if not payload:
        if valid.any():
            raise CorruptFileError("a tile with valid pixels has no coded data")
        return np.full(valid.shape, fill, dtype)
    if not valid.any() or payload[0] != TAG_BOUNDED:
        raise CorruptFileError("a bounded file's tile record has the wrong type for its mask")
    return decode_tile(payload[1:], valid, bound, units, dtype, fill)


def decode_bounded_bands(header: SarcHeader, params: PreprocessingParams, bound: Bound, reader: SarcReader,
                         sink: RowSink, bar: Any, region: Region | None = None) -> None:
    """Decode and write the bands of a bounded file, tiles in parallel (no network, no blending); with ``region``,
    only the tiles that meet it (``sink`` gets the region's pixels, its row 0 the region's first row)."""
    dtype, fill = np.dtype(params.dtype), fill_value(params)
    region = region or Region.whole(header.height, header.width)
    meet, cols = region.tiles(header.rows(), header.cols(), header.height, header.width, 0)  # no blending
    out = RegionSink(sink, region, cols[0][0])

    def bands() -> Iterator[tuple[int, list[Callable[[], npt.NDArray[Any]]]]]:
        for (r0, r1), wanted, (mask_bytes, payloads) in zip(header.rows(), meet, reader.bands()):
            if not wanted:
                continue
            valid = decode_mask(mask_bytes, (r1 - r0, header.width))
            tiles = dict(zip(header.cols(), payloads))
            yield r0, [functools.partial(decode_bounded_tile, tiles[c0, c1], valid[:, c0:c1], bound, params.units,
                                         dtype, fill) for c0, c1 in cols]

    with TilePool[int, npt.NDArray[Any]](cpu_workers()) as pool:
        for band in pool.run(bands()):
            tiles = band.results()
            out.write(band.data, np.concatenate(tiles, axis=1))
            bar.update(len(tiles))
