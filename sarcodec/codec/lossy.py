"""Lossy scene coding (format versions 1 and 2): tiles with overlap through the network, their side information,
and the decoder's blending; ``sarcodec.codec.api`` orchestrates (header, files, the pool of workers).

A version-2 tile record (``sarcodec.io.sarc``) is empty (no valid core pixel), ``TAG_CONSTANT`` + the value, or
``TAG_CODED`` + the network's words + the side layer (``sarcodec.codec.sidelayer``: pixels beyond the clip range,
point targets and the radiometric correction fitted against what the decoder will reconstruct).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sarcodec.codec import sidelayer
from sarcodec.codec.lite import LiteCodec
from sarcodec.codec.pipeline import Band, RowSink, TilePool, cpu_workers, torch_workers, write_bands
from sarcodec.codec.registry import LoadedCodec
from sarcodec.codec.tiling import Blender, Region, RegionSink, extended, fill_invalid, ramp
from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError
from sarcodec.io.sarc import BLEND_VERSION, LOSSY_VERSION, SarcHeader, SarcReader, SarcWriter, decode_mask, \
    deflate_header, encode_mask, framing_bytes, stored_version, tile_grid
from sarcodec.preprocess import (
    FloatArray,
    PreprocessingParams,
    db_lookup,
    db_to_intensity,
    denormalize_db,
    inverse_db,
    inverse_intensity,
    normalize_db,
    to_db,
    value_codes,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEFAULT_QUALITY", "TAG_CODED", "TAG_CONSTANT", "compress_lossy", "decode_lossy_bands", "decode_region",
           "encode_region"]

DEFAULT_QUALITY = 4

#: A codec as loaded for coding: PyTorch's (``sarcodec.codec.registry``) or the PyTorch-free one (``sarcodec.codec.lite``).
Codec = LoadedCodec | LiteCodec


SIDE_DEFAULTS = {"step_hi": sidelayer.STEP_HI_DB, "step_lo": sidelayer.STEP_LO_DB,
                  "bias_block": sidelayer.BIAS_BLOCK, "bias_step": sidelayer.BIAS_STEP_DB}


#: The speckle synthesis a format-5 file's ``side.speckle`` names (``sarcodec.codec.sidelayer.speckle_db``: quarter-
#: octave steps of relative variance per correction block, gamma noise from NumPy's frozen RandomState seeded by the
#: tile's words).
SPECKLE_SYNTHESIS = 1  # the one value ``sarcodec.io.sarc`` accepts

_U32 = struct.Struct("<I")


_F32 = struct.Struct("<f")


TAG_CONSTANT = 1


TAG_CODED = 2


@dataclass
class _BandRows:
    """The extended rows of a band (from row ``first``): their validity, and their dB (float32: two bands of a
    10 000 px wide scene in flight, 160 MB less) or, for 8- and 16-bit rasters, their raw values and the dB of every
    value (``preprocess.db_lookup``), each tile then converting its own columns on its worker."""

    first: int
    valid: npt.NDArray[np.bool_]
    values: npt.NDArray[Any]  # dB, or value codes when ``db_of`` is given
    db_of: npt.NDArray[np.float32] | None = None

    def db(self, cols: slice) -> npt.NDArray[np.float32]:
        """dB of the columns ``cols`` (NaN where invalid)."""
        block = self.values[:, cols]
        return block if self.db_of is None else self.db_of[block]


@dataclass(frozen=True)
class _DbTable:
    """dB (float32) and validity of every value of an 8- or 16-bit integer ``dtype`` (``preprocess.db_lookup``)."""

    dtype: np.dtype[Any]
    db: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]


def _db_table(dtype: str, params: PreprocessingParams) -> _DbTable | None:
    """The :class:`_DbTable` of rasters of ``dtype``; None for other rasters."""
    table = db_lookup(dtype, params.units, params.nodata)
    return None if table is None else _DbTable(np.dtype(dtype), table[0].astype(np.float32), table[1])


def _band_rows(source: Any, params: PreprocessingParams, r0: int, r1: int, overlap: int,
               table: _DbTable | None) -> _BandRows:
    """The extended rows of the band with core rows [r0, r1); ``table``: :func:`_db_table` of the raster's dtype
    (used only when the rows read have that dtype)."""
    h, w = source.info.height, source.info.width
    e0, e1 = extended(r0, r1, h, overlap)
    raw = source.read((e0, 0, e1 - e0, w))
    if table is not None and raw.dtype == table.dtype:
        codes = value_codes(raw)
        return _BandRows(e0, table.valid[codes], codes, table.db)
    db, valid = to_db(raw, params.units, params.nodata)
    return _BandRows(e0, valid, db.astype(np.float32))


@dataclass
class _PreparedTile:
    """The quality-independent part of a tile record: a finished ``record`` (no valid pixel, or constant), or the
    side information, the network's analysis and what the correction is fitted against."""

    record: bytes | None
    side: sidelayer.TileSide | None = None
    analysis: Any = None  # the codec's own: sarcodec.models.codecs.Analysis or sarcodec.codec.lite.LiteAnalysis
    core: tuple[slice, slice] = (slice(None), slice(None))
    inlier: npt.NDArray[np.bool_] | None = None  # core pixels whose decoded value the network gives
    target: FloatArray | None = None  # original intensity at ``inlier`` (0 elsewhere)


def _prepare_region(codec: Codec, db: FloatArray, valid: npt.NDArray[np.bool_], core: tuple[slice, slice],
                    params: PreprocessingParams, side_cfg: dict[str, Any]) -> _PreparedTile:
    """Side layer and analysis of the extended region ``db`` (they do not depend on the quality)."""
    core_valid = valid[core]
    if not core_valid.any():
        return _PreparedTile(b"")  # nothing to code: the mask says so
    lo, hi = params.db_lo, params.db_hi
    core_db = db[core]
    targets = sidelayer.point_targets(db_to_intensity(np.where(valid, db, -np.inf)), valid)
    side = sidelayer.find_outliers(core_db, core_valid, lo, hi, side_cfg["step_lo"], side_cfg["step_hi"], targets[core])
    x = normalize_db(db, lo, hi)
    x_valid = x[valid]
    if x_valid.min() == x_valid.max():  # e.g. a constant image: no network needed
        return _PreparedTile(bytes([TAG_CONSTANT]) + _F32.pack(float(x_valid[0])) + sidelayer.encode_side(side))
    # The side layer restores its pixels: the network codes a smooth fill there instead of spikes.
    in_side = sidelayer.side_mask(db, valid, lo, hi, side_cfg["step_lo"], side_cfg["step_hi"], targets)
    analysis = codec.model.analyze(_network_input(codec, fill_invalid(x, valid & ~in_side)), valid=valid)
    inlier = core_valid & ~in_side[core]  # the correction is fitted where the network's pixels are kept
    return _PreparedTile(None, side, analysis, core, inlier, db_to_intensity(np.where(inlier, core_db, 0.0)))


def _code_region(codec: Codec, tile: _PreparedTile, quality: float, params: PreprocessingParams,
                 side_cfg: dict[str, Any]) -> bytes:
    """One tile record of format version 2 (5 with ``side_cfg["speckle"]``; the same records in version 6, see
    ``sarcodec.io.sarc``) at ``quality``."""
    if tile.record is not None:
        return tile.record
    assert tile.analysis is not None and tile.side is not None and tile.inlier is not None and tile.target is not None
    words, x_hat = codec.model.encode_analysis(tile.analysis, quality)
    assert x_hat is not None
    decoded_db = denormalize_db(np.asarray(x_hat[0, 0])[tile.core], params.db_lo, params.db_hi)
    seed = sidelayer.speckle_seed(words) if side_cfg.get("speckle") else None
    side = _close_side(tile.side, tile.target, tile.inlier, decoded_db, params, side_cfg, seed)
    return bytes([TAG_CODED]) + _U32.pack(len(words)) + words + sidelayer.encode_side(side)


def _close_side(side: sidelayer.TileSide, target: FloatArray, inlier: npt.NDArray[np.bool_], decoded_db: FloatArray,
                params: PreprocessingParams, side_cfg: dict[str, Any], seed: int | None = None
                ) -> sidelayer.TileSide:
    """The side layer of a tile core with its radiometric correction fitted against the network's ``decoded_db``,
    and with the pixels that would decode as point targets though the original has none there.

    The encoder knows what the decoder will give. Where the network blurs a bright patch that is no target and the
    correction lifts the blur to restore the block's mean intensity, pixels can stand out from their background by
    the side layer's target contrast: a CA-CFAR detector on the decoded image would report targets that are not
    there. Those pixels are stored like point targets (their own dB within half a step) and the correction is
    fitted again without them. One round: a second one, after the refit, added ~0.06 % to the bits and changed no
    dev image's CFAR F1 (``results/codec/false_targets/``). Only the encoder does this; the format and the decoder
    are unchanged. ``target`` is the original intensity at ``inlier`` (the core pixels the network gives).

    With a ``seed`` (``compress --speckle``) the speckle map is measured against the corrected decode, and the
    correction and the false targets are then fitted and found on the decode with the decoder's speckle (drawn
    with ``seed``, as the decoder draws it). The noise's block means are taken over the pixels the network gives
    (:func:`sidelayer.network_pixels`), so once false targets are stored it is drawn again as the decoder will
    draw it, without them; the correction fitted with it then keeps block means with and without the noise."""
    block = side_cfg["bias_block"]
    correction = sidelayer.fit_correction(target, decoded_db, inlier, block)
    side = dataclasses.replace(side, correction=correction)
    core_valid = inlier | side.stored(inlier.shape)
    network_db = decoded_db  # the network's decode, without speckle

    def with_speckle(side: sidelayer.TileSide) -> FloatArray:
        """The network's decode with the speckle the decoder draws for ``side``."""
        assert seed is not None and side.speckle is not None
        return network_db + sidelayer.speckle_db(side.speckle, network_db, seed, block,
                                                 sidelayer.network_pixels(side, core_valid))

    if seed is not None:
        decoded = sidelayer.reconstruct_db(decoded_db, side, params.db_lo, side_cfg["step_lo"], side_cfg["step_hi"],
                                           side_cfg["bias_step"], block)
        side = dataclasses.replace(side, speckle=sidelayer.fit_speckle(target, decoded, inlier, block))
        decoded_db = with_speckle(side)  # what the correction is fitted against from here on
        side = dataclasses.replace(side, correction=sidelayer.fit_correction(target, decoded_db, inlier, block))
    decoded = sidelayer.reconstruct_db(decoded_db, side, params.db_lo, side_cfg["step_lo"], side_cfg["step_hi"],
                                       side_cfg["bias_step"], block)
    # false targets above the clip's floor (the side layer stores bright pixels from db_lo up)
    false = sidelayer.point_targets(db_to_intensity(decoded), core_valid) & inlier
    false &= target > db_to_intensity(params.db_lo)
    if not false.any():
        return side
    false_db = np.full(false.shape, -np.inf)
    false_db[false] = 10.0 * np.log10(target[false])  # the original's dB, only where it is stored
    side = dataclasses.replace(sidelayer.add_targets(side, false_db, false, params.db_lo, side_cfg["step_hi"]),
                               speckle=side.speckle)
    inlier = inlier & ~false
    if seed is not None:  # the decoder's noise: its block means are taken without the new targets too
        decoded_db = with_speckle(side)
    correction = sidelayer.fit_correction(np.where(inlier, target, 0.0), decoded_db, inlier, block)
    return dataclasses.replace(side, correction=correction)


def encode_region(codec: Codec, quality: float, db: FloatArray, valid: npt.NDArray[np.bool_],
                   core: tuple[slice, slice], params: PreprocessingParams, side_cfg: dict[str, Any]) -> bytes:
    """One tile record of format version 2 from the dB of its extended region."""
    return _code_region(codec, _prepare_region(codec, db, valid, core, params, side_cfg), quality, params, side_cfg)


def _encode_band_tile(codec: Codec, quality: float, band: _BandRows, cols: slice, core: tuple[slice, slice],
                      params: PreprocessingParams, side_cfg: dict[str, Any]) -> bytes:
    """:func:`encode_region` of the tile of ``band`` over the columns ``cols`` of its extended region."""
    return encode_region(codec, quality, band.db(cols), band.valid[:, cols], core, params, side_cfg)


def _tile_regions(band: _BandRows, r0: int, r1: int, width: int, tile: int, overlap: int
                  ) -> Iterator[tuple[slice, tuple[slice, slice]]]:
    """Per tile of a band (left to right): the columns of its extended region, and where its core lies in it."""
    rows = slice(r0 - band.first, r1 - band.first)
    for c0, c1 in tile_grid(width, tile):
        f0, f1 = extended(c0, c1, width, overlap)
        yield slice(f0, f1), (rows, slice(c0 - f0, c1 - f0))


def _network_input(codec: Codec, x: npt.NDArray[np.float32]) -> Any:
    """``x`` (H, W) as the codec's ``analyze`` takes it: (1, 1, H, W), a tensor for PyTorch's."""
    x = np.ascontiguousarray(x, dtype=np.float32)[None, None]
    if isinstance(codec, LiteCodec):
        return x
    import torch

    return torch.from_numpy(x)


@contextlib.contextmanager
def _tile_pool(codec: Codec) -> Iterator[TilePool[Any, Any]]:
    """The pool tiles are coded in. PyTorch: one tile per PyTorch thread, each on one thread; without PyTorch: one
    tile per core, each on one thread (its ONNX Runtime sessions have one)."""
    if isinstance(codec, LiteCodec):
        with TilePool[Any, Any](cpu_workers()) as pool:
            yield pool
    else:
        with TilePool[Any, Any](torch_workers(), codec.device.type == "cpu") as pool:
            yield pool


def _fixed_bytes(source: Any, params: PreprocessingParams, header: dict[str, Any], tile: int, overlap: int,
                 table: _DbTable | None) -> int:
    """Bytes of a file that do not depend on the quality: preamble, deflated header, masks, record lengths,
    checksum (the validity masks are read and coded for this, band by band; ``table``: :func:`_db_table`)."""
    info = source.info
    rows, cols = tile_grid(info.height, tile), tile_grid(info.width, tile)
    masks = sum(len(encode_mask(_band_rows(source, params, r0, r1, overlap, table).valid)) for r0, r1 in rows)
    # the quality written is not known yet: the longest of a few of its four-decimal values (the header grew by the
    # digits of the bisected quality, and --bpp files came out a few bytes over the target)
    stored_header = max(len(deflate_header({**header, "quality": q}, stored_version(header, LOSSY_VERSION)))
                        for q in (1.2345, 4.5678, 7.8901))
    return framing_bytes(stored_header, len(rows), len(cols)) + masks


#: An estimated size this far (relative) from the ``--bpp`` target decides a bisection step without coding the
#: sample in full; the estimate's error was ~1 % of the file on real and generated scenes (its side-layer part).
_ESTIMATE_MARGIN = 0.03


def _choose_quality(codec: Codec, pool: TilePool[Any, Any], source: Any, params: PreprocessingParams,
                    target: float, fixed: int, tile: int, overlap: int, side_cfg: dict[str, Any]
                    ) -> tuple[float, str]:
    """Highest quality whose file on a sample of up to 6 tiles is <= ``target`` bpp (bisection, 8 steps).

    ``fixed`` bytes (header, masks, record lengths) are counted in full; the tiles' records (payload and side
    information) are extrapolated from the sample to the whole image. The side layer and the analysis of the
    sample are computed once. A step far from the target is decided on an estimate (:func:`_bisect_quality`):
    the entropy-coded payload exactly (no synthesis), the side layer's bytes interpolated between the qualities
    coded in full; steps near the target, and qualities 1 and 8, code the sample in full."""
    info = source.info
    rows, cols = tile_grid(info.height, tile), tile_grid(info.width, tile)
    cells = [(r, c) for r in range(len(rows)) for c in range(len(cols))]
    picked = [cells[i] for i in np.unique(np.linspace(0, len(cells) - 1, min(6, len(cells))).round().astype(int))]
    jobs = []
    sampled = 0
    for r, c in picked:
        (r0, r1), (c0, c1) = rows[r], cols[c]
        e0, e1 = extended(r0, r1, info.height, overlap)
        f0, f1 = extended(c0, c1, info.width, overlap)
        db, valid = to_db(source.read((e0, f0, e1 - e0, f1 - f0)), params.units, params.nodata)
        core = (slice(r0 - e0, r1 - e0), slice(c0 - f0, c1 - f0))
        jobs.append(functools.partial(_prepare_region, codec, db, valid, core, params, side_cfg))
        sampled += (r1 - r0) * (c1 - c0)
    prepared = [t for band in pool.run([(None, jobs)]) for t in band.results()]
    pixels = info.height * info.width

    def to_bpp(tile_bytes: float) -> float:
        return float((fixed + tile_bytes * pixels / sampled) * 8 / pixels)

    def coded(q: float) -> tuple[int, int]:
        """The sample's records in full, and their entropy-coded payloads' part."""
        jobs = [functools.partial(_code_region, codec, t, q, params, side_cfg) for t in prepared]
        records = [r for band in pool.run([(None, jobs)]) for r in band.results()]
        return sum(len(r) for r in records), sum(_payload_length(r) for r in records)

    def payload(q: float) -> int:
        jobs = [functools.partial(_payload_bytes, codec, t, q) for t in prepared]
        return sum(n for band in pool.run([(None, jobs)]) for n in band.results())

    lo, hi = 1.0, float(codec.num_levels)
    full: dict[float, tuple[int, int]] = {lo: coded(lo)}
    smallest = to_bpp(full[lo][0])
    if smallest > target:
        return lo, (f"target {target:g} bpp is below the smallest size this model reaches on this image (about "
                    f"{smallest:.3f} bpp at quality 1); wrote quality 1")
    full[hi] = coded(hi)
    largest = to_bpp(full[hi][0])
    if largest <= target:
        return hi, (f"target {target:g} bpp is above the largest size this model reaches on this image (about "
                    f"{largest:.3f} bpp at quality {codec.num_levels:g}); wrote quality {codec.num_levels:g}")
    return _bisect_quality(lo, hi, target, full, coded, payload, to_bpp), ""


def _bisect_quality(lo: float, hi: float, target: float, full: dict[float, tuple[int, int]],
                    coded: Callable[[float], tuple[int, int]], payload: Callable[[float], int],
                    to_bpp: Callable[[float], float], margin: float = _ESTIMATE_MARGIN) -> float:
    """The bisection of :func:`_choose_quality` between ``lo`` (<= ``target`` bpp) and ``hi`` (above it), 8
    steps, ``full`` the qualities coded in full so far (records' bytes, payload bytes). A step whose estimate (the
    exact payload, plus the side layer's bytes interpolated linearly in quality between the nearest qualities
    coded in full) lies more than ``margin`` (relative) from the target is decided on it; the others code in full,
    and so do all steps after the first such (the interval only narrows around the target from there).
    Should the result, coded in full, exceed the target after all, the bisection is redone in full."""
    a, b = lo, hi
    near = math.isinf(margin)  # from the first step coded in full on, no more estimates
    for _ in range(8):
        # on the header's 4-decimal grid: the quality tried is the one written (with --speckle the file's size is
        # not monotonic in the quality at that scale: the noise, seeded by the coded words, moves false targets)
        mid = math.floor((lo + hi) / 2 * 1e4) / 1e4
        if not near:
            known = sorted(full)
            below, above = max(q for q in known if q <= mid), min(q for q in known if q >= mid)
            side_below, side_above = (full[q][0] - full[q][1] for q in (below, above))
            t = 0.0 if above == below else (mid - below) / (above - below)
            guess = to_bpp(payload(mid) + side_below + t * (side_above - side_below))
            near = abs(guess - target) <= margin * target
        if near:
            full[mid] = coded(mid)
            fits = to_bpp(full[mid][0]) <= target
        else:
            fits = guess <= target
        lo, hi = (mid, hi) if fits else (lo, mid)
    # ``lo`` not coded in full: it was last moved on an estimate (a step's quality is never visited again)
    if lo not in full and to_bpp(coded(lo)[0]) > target:  # an estimate misled a step (not seen): bisect in full
        return _bisect_quality(a, b, target, full, coded, payload, to_bpp, margin=math.inf)
    return lo


def _payload_bytes(codec: Codec, tile: _PreparedTile, quality: float) -> int:
    """The entropy-coded bytes of a prepared tile at ``quality`` without the synthesis (0 for a tile not coded)."""
    if tile.record is not None:
        return 0
    words, _ = codec.model.encode_analysis(tile.analysis, quality, reconstruct=False)
    return len(words)


def _payload_length(record: bytes) -> int:
    """The entropy-coded bytes of a tile record written by :func:`_code_region` (0 for other records)."""
    return int(_U32.unpack_from(record, 1)[0]) if record[:1] == bytes([TAG_CODED]) else 0


def compress_lossy(codec: Codec, reader: Any, params: PreprocessingParams, header: dict[str, Any], out: Path,
                    quality: float | None, bpp: float | None, bar: Any, speckle: bool = False) -> tuple[float, str]:
    """Write a lossy file (format 2; 5 with ``speckle``: each coded tile carries its speckle map; 6 with more than
    one tile, see ``sarcodec.io.sarc.stored_version``); returns the quality used and a note about a ``bpp``
    target."""
    if quality is not None:
        try:
            codec.model.check_quality(quality)
        except IncompatibleModelError as exc:
            raise BadInputError(str(exc)) from None
    info = reader.info
    tile_size, overlap = header["tile"]["size"], header["tile"]["overlap"]
    header.update(model={"name": codec.name, "sha256": codec.sha256, "codec": codec.model.codec_name},
                  quality=float(DEFAULT_QUALITY if quality is None else quality), side=dict(SIDE_DEFAULTS))
    side_cfg: dict[str, Any] = header["side"]
    if speckle:
        side_cfg["speckle"] = SPECKLE_SYNTHESIS
    note = ""
    table = _db_table(info.dtype, params)
    with _tile_pool(codec) as pool:
        if bpp is not None:
            fixed = _fixed_bytes(reader, params, header, tile_size, overlap, table)
            header["quality"], note = _choose_quality(codec, pool, reader, params, bpp, fixed, tile_size, overlap,
                                                      side_cfg)
        q = float(header["quality"])

        def bands() -> Iterator[tuple[bytes, list[Callable[[], bytes]]]]:
            for r0, r1 in tile_grid(info.height, tile_size):
                band = _band_rows(reader, params, r0, r1, overlap, table)
                # version 2: the mask covers the extended rows (tiles skip latents by it)
                yield encode_mask(band.valid), [
                    functools.partial(_encode_band_tile, codec, q, band, cols, core, params, side_cfg)
                    for cols, core in _tile_regions(band, r0, r1, info.width, tile_size, overlap)]

        with SarcWriter(out, header, LOSSY_VERSION) as writer:
            write_bands(writer, pool.run(bands()), bar)
    return q, note


def decode_region(codec: Codec, quality: float, payload: bytes, valid: npt.NDArray[np.bool_],
                   core: tuple[slice, slice], params: PreprocessingParams, side_cfg: dict[str, Any],
                   correction: npt.NDArray[np.float32] | None, outliers: list[tuple[Any, ...]], col: int,
                   speckle: bool = True, blend: bool = False) -> npt.NDArray[np.float32] | None:
    """Decode one tile record of version 2, 4, 5 or 6: x_norm over the extended region whose validity is ``valid``
    (None for an uncoded tile); writes the tile core's correction (dB; with ``speckle``, plus the synthesized speckle
    of a file that carries it) into ``correction`` and appends its outliers to ``outliers`` as (rows, columns, dB)
    in the band's coordinates (the core starts at column ``col``). With ``blend`` (version 6) the correction is not
    written; the tile's decode with its correction over the whole extended region is returned as intensity relative
    to the middle of the clip range (:func:`_relative_intensity`), for the decoder to blend in linear intensity;
    the speckle still goes into ``correction``, which is None when nothing goes there (version 6 without
    speckle to synthesize)."""
    shape = valid.shape
    core_valid = valid[core]
    if not payload:
        if core_valid.any():
            raise CorruptFileError("a tile with valid pixels has no coded data")
        return None
    if not core_valid.any():
        raise CorruptFileError("a tile without valid pixels carries coded data")
    tag, rest = payload[0], payload[1:]
    if tag == TAG_CONSTANT:
        if len(rest) < 4:
            raise CorruptFileError("a constant tile is truncated")
        (value,) = _F32.unpack_from(rest)
        if not 0.0 <= value <= 1.0:
            raise CorruptFileError("a constant tile's value is out of range")
        x = np.full(shape, value, np.float32)
        side_blob, with_correction, words = rest[4:], False, b""
    elif tag == TAG_CODED:
        if len(rest) < 4:
            raise CorruptFileError("a coded tile is truncated")
        (n_words,) = _U32.unpack_from(rest)
        if n_words == 0 or 4 + n_words > len(rest):
            raise CorruptFileError("a coded tile's word count is inconsistent with its record")
        words = rest[4 : 4 + n_words]
        x = np.asarray(codec.model.decompress_tile(words, shape[0], shape[1], quality, valid)[0, 0])
        side_blob, with_correction = rest[4 + n_words :], True
    else:
        raise CorruptFileError(f"unknown tile type {tag}")
    core_shape = core_valid.shape
    side = sidelayer.decode_side(side_blob, core_shape, with_correction, side_cfg["bias_block"],
                                 with_speckle=bool(side_cfg.get("speckle")))
    correction_db = side.correction_db(core_shape, side_cfg["bias_step"], side_cfg["bias_block"])
    if correction_db is not None:
        if not blend:
            assert correction is not None
            correction[:] = correction_db
        if speckle and side.speckle is not None:
            assert correction is not None
            decoded_db = denormalize_db(x[core], params.db_lo, params.db_hi)  # as the encoder's (_code_region)
            correction += sidelayer.speckle_db(side.speckle, decoded_db, sidelayer.speckle_seed(words),
                                               side_cfg["bias_block"], sidelayer.network_pixels(side, core_valid))
    index, dbs = side.outliers(params.db_lo, side_cfg["step_lo"], side_cfg["step_hi"])
    if index.size:
        outliers.append((index // core_shape[1], index % core_shape[1] + col, dbs.astype(np.float32)))
    if blend:  # version 6: the tile's intensity with its correction over the whole extended region, to be blended
        # (constant beyond the core, as inside it past the last block centre)
        db = np.clip(x, np.float32(0.0), np.float32(1.0)) * np.float32(params.db_hi - params.db_lo)
        db += np.float32((params.db_lo - params.db_hi) / 2)  # dB from the middle of the range
        if correction_db is not None:
            pad = ((core[0].start, shape[0] - core[0].stop), (core[1].start, shape[1] - core[1].stop))
            db += np.pad(correction_db, pad, mode="edge")
        return _relative_intensity(db)
    return x


#: Version 6 blends intensity relative to the middle of the clip range, exp(dB * ln(10) / 10) in float32: exponents
#: are clipped to +-80 (float32 overflows at 88.7), which only a clip range wider than ~650 dB (with the
#: correction's +-20 dB) would reach; the encoder's ranges lie within +-200 dB.
_BLEND_EXPONENT = 80.0


def _relative_intensity(db: FloatArray) -> npt.NDArray[np.float32]:
    """10^(db / 10) in float32, ``db`` (float32, from the middle of the clip range) as far as
    :data:`_BLEND_EXPONENT` allows."""
    e: npt.NDArray[np.float32] = db * np.float32(math.log(10.0) / 10.0)
    np.clip(e, -_BLEND_EXPONENT, _BLEND_EXPONENT, out=e)
    np.exp(e, out=e)
    return e


def _blended_db(relative: npt.NDArray[np.float32], params: PreprocessingParams) -> FloatArray:
    """dB (float64) of blended :func:`_relative_intensity` values (a row no tile touched comes out as ~-347 dB from
    the middle of the range, never -inf)."""
    out: FloatArray = np.log(np.maximum(relative.astype(np.float64), math.exp(-_BLEND_EXPONENT)))
    out *= 10.0 / math.log(10.0)
    out += (params.db_lo + params.db_hi) / 2
    return out


def _blended_intensity(relative: npt.NDArray[np.float32], params: PreprocessingParams) -> FloatArray:
    """Intensity (float64) of blended :func:`_relative_intensity` values: ``10**(_blended_db / 10)`` within float
    rounding, without the logarithm and the power (for outputs in linear units)."""
    out: FloatArray = np.maximum(relative.astype(np.float64), math.exp(-_BLEND_EXPONENT))
    with np.errstate(over="ignore"):  # a clip range past ~3080 dB: inf, as db_to_intensity gives it
        out *= np.power(10.0, (params.db_lo + params.db_hi) / 20)
    return out


#: Rows converted to the output's units and written at a time (bounds the decoder's float64 temporaries).
_WRITE_ROWS = 128


#: A band being decoded: its core rows, extended start, validity and correction (columns from the band's first
#: decoded column; None when no tile writes one) and outliers.
_DecodedBand = tuple[int, int, int, npt.NDArray[np.bool_], npt.NDArray[np.float32] | None, list[tuple[Any, ...]]]


def _decode_v1(codec: Codec, quality: float, payload: bytes, height: int, width: int
               ) -> npt.NDArray[np.float32]:
    """Decode one tile record of format version 1 (the network's payload only)."""
    x: npt.NDArray[np.float32] = np.asarray(codec.model.decompress_tile(payload, height, width, quality)[0, 0])
    return x


def decode_lossy_bands(header: SarcHeader, params: PreprocessingParams, codec: Codec, quality: float,
                       reader: SarcReader, sink: RowSink, bar: Any, region: Region | None = None,
                       speckle: bool = True) -> None:
    """Decode, blend and write the bands of a lossy file (format 1, 2, 4, 5 or 6), tiles in parallel. With
    ``region``, only the tiles whose extended extent meets it are decoded and ``sink`` gets the region's pixels (its
    row 0 is the region's first row): the same pixels as decoding the whole file, since every tile that blends into
    the region is decoded. ``speckle=False`` leaves out the speckle a file written with ``--speckle`` carries."""
    h, w, overlap = header.height, header.width, header.overlap
    region = region or Region.whole(h, w)
    row_grid, col_grid = region.tiles(header.rows(), header.cols(), h, w, overlap)
    left = extended(*col_grid[0], w, overlap)[0]  # columns [left, right) are decoded
    right = extended(*col_grid[-1], w, overlap)[1]
    first_row = extended(*header.rows()[row_grid.index(True)], h, overlap)[0]
    side_cfg: dict[str, Any] | None = header.fields["side"] if reader.version >= 2 else None
    blend = side_cfg is not None and reader.version >= BLEND_VERSION  # tiles blended in intensity (decode_region)
    linear = blend and params.units != "db"  # ... and written without going through dB
    blender = Blender(right - left, first_row)
    pending: list[tuple[int, npt.NDArray[np.bool_], npt.NDArray[np.float32] | None, list[tuple[Any, ...]]]] = []
    # a band's correction map: before version 6 the tiles' corrections, in version 6 only synthesized speckle
    with_correction = not blend or (speckle and bool(side_cfg and side_cfg.get("speckle")))
    out = sink if region == Region.whole(h, w) else RegionSink(sink, region, left)

    def finish(band: Band[_DecodedBand, npt.NDArray[np.float32] | None]) -> None:
        """Blend a band's decoded tiles and write the rows no later tile touches."""
        nonlocal pending
        r0, r1, e0, valid, correction, outliers = band.data
        row_weight = ramp(r0, r1, h, overlap)[:, None]
        for (c0, c1), x in zip(col_grid, band.results()):
            if x is not None:
                blender.add(e0, extended(c0, c1, w, overlap)[0] - left, x,
                            row_weight * ramp(c0, c1, w, overlap)[None, :])
            bar.update()
        pending.append((r0, valid, correction, outliers))
        done = h if r1 == h else r1 - overlap
        first = blender.start
        x_rows = blender.pop(done)
        for b0, b_valid, b_correction, b_outliers in pending:  # rows [first, done) lie in one or two bands
            for a in range(max(first, b0), min(done, b0 + b_valid.shape[0]), _WRITE_ROWS):
                z = min(a + _WRITE_ROWS, done, b0 + b_valid.shape[0])  # float64 temporaries of a few rows
                values_ab = x_rows[a - first : z - first]  # x_norm, or relative intensity in version 6
                if linear:  # version 6 to linear units: intensity throughout, outliers and speckle as factors
                    v = _blended_intensity(values_ab, params)
                    if b_correction is not None:
                        v *= db_to_intensity(b_correction[a - b0 : z - b0])
                else:
                    v = _blended_db(values_ab, params) if blend else denormalize_db(values_ab, params.db_lo,
                                                                                     params.db_hi)
                    if b_correction is not None:
                        v += b_correction[a - b0 : z - b0]
                for rows, columns, values in b_outliers:
                    here = (rows >= a - b0) & (rows < z - b0)
                    v[rows[here] - (a - b0), columns[here]] = db_to_intensity(values[here]) if linear else values[here]
                valid_ab = b_valid[a - b0 : z - b0]
                out.write(a, inverse_intensity(v, params, valid_ab) if linear else inverse_db(v, params, valid_ab))
        pending = [p for p in pending if p[0] + p[1].shape[0] > done]

    def bands() -> Iterator[tuple[_DecodedBand, list[Callable[[], npt.NDArray[np.float32] | None]]]]:
        for (r0, r1), wanted, (mask_bytes, payloads) in zip(header.rows(), row_grid, reader.bands()):
            if not wanted:
                continue
            e0, e1 = extended(r0, r1, h, overlap)
            if side_cfg is None:
                valid_ext = None
                valid = decode_mask(mask_bytes, (r1 - r0, w))
            else:  # version 2 masks cover the band's extended rows
                valid_ext = decode_mask(mask_bytes, (e1 - e0, w))
                valid = valid_ext[r0 - e0 : r1 - e0]
            correction = np.zeros((r1 - r0, right - left), np.float32) if with_correction else None
            outliers: list[tuple[Any, ...]] = []  # appended by the tiles (thread-safe)
            jobs: list[Callable[[], npt.NDArray[np.float32] | None]] = []
            tiles = dict(zip(header.cols(), payloads))
            for c0, c1 in col_grid:
                payload = tiles[c0, c1]
                f0, f1 = extended(c0, c1, w, overlap)
                core = (slice(r0 - e0, r1 - e0), slice(c0 - f0, c1 - f0))
                if side_cfg is None or valid_ext is None:
                    jobs.append(functools.partial(_decode_v1, codec, quality, payload, e1 - e0, f1 - f0))
                else:
                    jobs.append(functools.partial(decode_region, codec, quality, payload, valid_ext[:, f0:f1], core,
                                                  params, side_cfg,
                                                  None if correction is None else correction[:, c0 - left : c1 - left],
                                                  outliers,
                                                  c0 - left, speckle, blend))
            yield (r0, r1, e0, valid[:, left:right], correction, outliers), jobs

    with _tile_pool(codec) as pool:
        for band in pool.run(bands()):
            finish(band)  # the previous band, while the next one decodes
