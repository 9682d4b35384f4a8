"""The ``.sarc`` file: a versioned binary container for one compressed raster band.

Layout (all integers little-endian)::

    magic        8 bytes  b"SARC\\x00\\r\\n\\x1a"   (the \\r\\n and \\x1a catch text-mode and truncation damage)
    version      u16      FORMAT_VERSION
    header_len   u32
    header       JSON, UTF-8, deflated (zlib) with the version's preset dictionary (HEADER_DICTIONARIES): model {name,
                 sha256, codec}, quality, preprocessing_params, height, width, dtype, units, band, crs (WKT or
                 null), transform (6 floats or null), gcps, nodata, tile {size, overlap}, n_tiles; version 2
                 adds side {step_hi, step_lo, bias_block, bias_step} (dB steps and block size) and coder
                 (the entropy coder and its version, e.g. 'constriction 0.5.0'); version 3 (bounded files) has
                 bound {units: 'db' or 'input', max_error} and model, quality null, no side, and its crs may be
                 'EPSG:n' instead of WKT; version 4 (any file with ground control points) stores gcps as {crs,
                 count} and the points themselves packed (``sarcodec.io.gcps``) right after the deflate stream,
                 inside header_len; version 5 (lossy files written with ``--speckle``) adds side.speckle (1);
                 version 6 (lossy files of more than one tile) has side.speckle only with ``--speckle``
    records      one per tile row band, in order:
                   mask_len u32, mask (zlib of np.packbits of the band's validity mask; empty = all valid;
                   version 1: the band's rows, version 2: its rows with their overlap, which tiles need to know
                   which latents were coded)
                 then one per tile of that band, left to right:
                   payload_len u32, payload: version 1: constriction ANS words; version 2: empty when the
                   tile core has no valid pixel (nothing coded), else a tag byte: 1 = constant tile (float32
                   x_norm value, side blob), 2 = coded tile (u32 word count, ANS words, side blob); the side
                   blob holds the outliers and the radiometric correction (``sarcodec.codec.sidelayer``; version 5:
                   and the speckle map of a coded tile; version 6: the same records, but the decoder blends the
                   tiles with their corrections in linear intensity across the overlap, see BLEND_VERSION);
                   version 3: tag 3 = bounded tile (``sarcodec.codec.bounded``)
    checksum     u32      CRC-32 of every byte before it

Readers check the magic, the version, every length against the bytes left, and the checksum over the whole
file before any pixel is decoded; any inconsistency raises :class:`~sarcodec.errors.CorruptFileError` with the
problem named. Files are written to a temporary sibling and renamed into place, so a failed write never leaves
a partial ``.sarc`` behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.io.gcps import pack_points, unpack_points
from sarcodec.jsonfloat import SPECIAL_FLOATS

__all__ = [
    "BLEND_VERSION",
    "FORMAT_VERSION",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "DICTIONARY_OVERLAP",
    "GCP_VERSION",
    "SPECKLE_VERSION",
    "HEADER_DICTIONARIES",
    "HEADER_DICTIONARY",
    "LOSSY_VERSION",
    "MAGIC",
    "MAX_BAND",
    "MAX_BAND_PIXELS",
    "MAX_SIDE",
    "MAX_TILE",
    "READ_VERSIONS",
    "SarcHeader",
    "SarcReader",
    "SarcWriter",
    "decode_mask",
    "deflate_header",
    "encode_mask",
    "framing_bytes",
    "stored_version",
    "tile_grid",
    "within_limits",
]

MAGIC = b"SARC\x00\r\n\x1a"
FORMAT_VERSION = 3
#: Versions this reader decodes. Version 1 (sarcodec 0.1): tile payloads are bare rANS words, pixels outside the
#: clip range are lost. Version 2: tagged tile payloads with side information (``sarcodec.codec.sidelayer``),
#: uncoded tiles where nothing is valid, constant tiles. Version 3: bounded (near-lossless, lossless) files, whose
#: header has ``bound`` instead of ``model``/``quality``/``side`` and whose tiles are tag 3 records
#: (``sarcodec.codec.bounded``). Version 4: either kind with its ground control points packed after the header
#: (``sarcodec.io.gcps``: ~2.4 KB instead of ~6.5 KB for a Sentinel-1 GRD product's 210 points).
READ_VERSIONS = (1, 2, 3, 4, 5, 6)
#: One-tile lossy files without ground control points or speckle maps are still written as version 2 (nothing in
#: them changed: sarcodec 0.2 reads them); a writer stamps the lowest version that can read its file
#: (:func:`stored_version`).
LOSSY_VERSION = 2
#: Files with ground control points are written as version 4 at least, whatever their kind (sarcodec 0.5 cannot
#: read them).
GCP_VERSION = 4
#: Lossy files whose tiles carry a speckle map (``compress --speckle``, header ``side.speckle``) are version 5
#: (sarcodec 0.7.12 cannot read them) unless they are version 6.
SPECKLE_VERSION = 5
#: Lossy files of more than one tile (and an overlap) are version 6 (sarcodec 0.8.1 cannot read them), with or
#: without speckle maps or ground control points:
#: the same records as before, but the decoder extends each tile's radiometric correction over the tile's overlap
#: (constant beyond the core, as inside it past the last block centre) and blends the corrected tiles in linear
#: intensity. Before version 6 the network outputs were blended in dB, which darkened the strips (a geometric mean
#: of intensities), and each core's correction was added after, stepping at the core's edge (seams at low rates;
#: ``results/codec/seams/``). A one-tile file has no overlap to blend and keeps its version.
BLEND_VERSION = 6
_MAX_HEADER = 64 << 20
_HEADER_DICTIONARY_V1 = (
    b'"gcps":null,"tile":{"size":1024,"overlap":16},"n_tiles":1}"crs":null,"transform":null,"nodata":null,'
    b'"height":256,"width":256,"dtype":"float32","units":"intensity","band":1,"amplitude","uint16","db",'
    b'"clip_percentiles":[0.1,99.9],"clip_scope":"image","nodata":null,"invalid_fill":0.0,"version":1,"extra":{}},'
    b'{"created_by":"sarcodec 0.1.0","model":{"name":"hyperprior","sha256":"","codec":"hyperprior"},"quality":4.0,'
    b'"preprocessing_params":{"units":"intensity","dtype":"float32","db_lo":'
)
#: Preset dictionaries of the header's deflate stream, per format version (part of each format: never change
#: one). They hold the field names and values every header repeats, so a 256 x 256 image's header costs ~150 bytes
#: instead of ~560 (0.02 instead of 0.07 bpp).
HEADER_DICTIONARIES = {
    1: _HEADER_DICTIONARY_V1,
    2: b'"side":{"step_hi":0.5,"step_lo":1.0,"bias_block":32,"bias_step":0.01},"coder":"constriction 0.5.0"}'
       + _HEADER_DICTIONARY_V1.replace(b"sarcodec 0.1.0", b"sarcodec 0.2.0"),
    3: b'"bound":{"units":"input","max_error":0.0},"bound":{"units":"db","max_error":0.5},"coder":"constriction 0.5.0"}'
       + _HEADER_DICTIONARY_V1.replace(b"sarcodec 0.1.0", b"sarcodec 0.3.0").replace(
           b'"model":{"name":"hyperprior","sha256":"","codec":"hyperprior"},"quality":4.0,', b'"model":null,"quality":null,'),
}
# version 4: either kind (bounded or lossy) and the compact gcps field
HEADER_DICTIONARIES[4] = (HEADER_DICTIONARIES[3][: HEADER_DICTIONARIES[3].index(b'"coder"')]
                          + HEADER_DICTIONARIES[2].replace(b"sarcodec 0.2.0", b"sarcodec 0.6.0")
                          .replace(b'"gcps":null,', b'"gcps":{"crs":"EPSG:4326","count":210},'))
# version 5: version 4's (lossy files with speckle maps; the header adds side.speckle)
HEADER_DICTIONARIES[5] = HEADER_DICTIONARIES[4]
# version 6: version 5's with the tiling a multi-tile file has (overlap 8 since sarcodec 0.8.1, more than one tile)
HEADER_DICTIONARIES[6] = (HEADER_DICTIONARIES[5].replace(b'"overlap":16},"n_tiles":1}', b'"overlap":8},"n_tiles":')
                          .replace(b"sarcodec 0.6.0", b"sarcodec 0.8.2"))
HEADER_DICTIONARY = HEADER_DICTIONARIES[FORMAT_VERSION]


def framing_bytes(header_bytes: int, n_rows: int, n_cols: int) -> int:
    """Bytes of a file besides its masks and tile records' contents: magic, version, header length, the stored
    header, one length field per record (a mask and ``n_cols`` tiles per tile row band) and the checksum."""
    return len(MAGIC) + _U16.size + _U32.size + header_bytes + _U32.size * n_rows * (1 + n_cols) + _U32.size


def stored_version(fields: dict[str, Any], version: int) -> int:
    """The version a file of kind ``version`` is written as (the lowest version that can read it):
    :data:`BLEND_VERSION` for a lossy file of more than one tile with an overlap (strips to blend), else
    :data:`SPECKLE_VERSION` when its tiles carry speckle maps, else :data:`GCP_VERSION` when it has ground control
    points."""
    side = fields.get("side")
    if side and fields.get("n_tiles", 1) > 1 and (fields.get("tile") or {}).get("overlap", 0) > 0:
        return max(version, BLEND_VERSION)
    if (side or {}).get("speckle"):
        return max(version, SPECKLE_VERSION)
    return max(version, GCP_VERSION) if fields.get("gcps") else version


def deflate_header(fields: dict[str, Any], version: int = FORMAT_VERSION) -> bytes:
    """The header as stored: compact JSON deflated with the format version's preset dictionary; from version 4,
    ground control points as {crs, count} in the JSON and packed after the deflate stream."""
    packed = b""
    if version >= GCP_VERSION and fields.get("gcps"):
        points = fields["gcps"]["points"]
        fields = {**fields, "gcps": {"crs": fields["gcps"]["crs"], "count": len(points)}}
        packed = pack_points(points)
    text = json.dumps(fields, separators=(",", ":"), allow_nan=False).encode()
    deflate = zlib.compressobj(9, zdict=HEADER_DICTIONARIES[version])
    return deflate.compress(text) + deflate.flush() + packed


#: Resource limits, checked on the header before anything is allocated. A tile core of at most MAX_TILE pixels
#: square (plus overlap) bounds the synthesis of one tile to ~2.5 GB (64 float32 channels at full resolution, two
#: at a time); MAX_BAND_PIXELS bounds the decoder's rolling band (width x tile rows: accumulated values, weights,
#: mask, correction and outliers, ~17 bytes a pixel: ~2.3 GB); MAX_SIDE bounds height and width.
MAX_TILE = 2048
#: The encoder's default tiling: 1024 px cores coded with 8 px of overlap on each side that has a neighbour
#: (interior tiles 1040 px, a multiple of the hyperprior's 16 px; 16 px before sarcodec 0.8.1: 3 % more pixels coded
#: a tile, no better seams, ``results/codec/overlap/``). Each file records its own tiling, so any overlap decodes.
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 8
#: The overlap the header dictionaries of formats 1-5 carry (``"tile":{"size":1024,"overlap":16}``): a one-tile
#: lossy file, whose overlap changes no pixel, records it, and its header deflates 4-5 bytes smaller than with 8.
DICTIONARY_OVERLAP = 16
MAX_SIDE = 1 << 20
MAX_BAND_PIXELS = 1 << 27
MAX_BAND = 65535
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def within_limits(height: int, width: int, tile_size: int, overlap: int) -> bool:
    """Whether an image of ``height`` x ``width`` coded in tiles of ``tile_size`` with ``overlap`` fits the
    format's resource limits (the encoder refuses, the decoder's header check rejects what does not)."""
    return (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and 16 <= tile_size <= MAX_TILE
            and 0 <= overlap <= tile_size // 2
            and width * (min(tile_size, height) + 2 * overlap) <= MAX_BAND_PIXELS)


def tile_grid(length: int, size: int) -> list[tuple[int, int]]:
    """Core intervals ``(start, stop)`` of the tiles covering ``[0, length)``."""
    return [(start, min(start + size, length)) for start in range(0, length, size)]


def encode_mask(valid: npt.NDArray[np.bool_]) -> bytes:
    """Lossless mask coding: empty bytes when all pixels are valid, else zlib(packbits(mask))."""
    if bool(valid.all()):
        return b""
    return zlib.compress(np.packbits(valid.astype(bool), axis=None).tobytes(), 9)


def decode_mask(data: bytes, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`encode_mask` for a mask of ``shape``."""
    if not data:
        return np.ones(shape, dtype=bool)
    n = shape[0] * shape[1]
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data, (n + 7) // 8)  # never inflate more than the band's mask can hold
    except zlib.error as exc:
        raise CorruptFileError(f"validity mask is damaged ({exc})") from None
    if inflate.unconsumed_tail or not inflate.eof or inflate.unused_data:
        raise CorruptFileError("validity mask is damaged or larger than its tile band")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits.size < n or bits.size > n + 7:
        raise CorruptFileError("validity mask has the wrong size for its tile band")
    return bits[:n].reshape(shape).astype(bool)


@dataclass(frozen=True)
class SarcHeader:
    """The decoded JSON header (see the module docstring for the fields)."""

    fields: dict[str, Any]
    version: int = FORMAT_VERSION

    @property
    def height(self) -> int:
        return int(self.fields["height"])

    @property
    def width(self) -> int:
        return int(self.fields["width"])

    @property
    def tile_size(self) -> int:
        return int(self.fields["tile"]["size"])

    @property
    def overlap(self) -> int:
        return int(self.fields["tile"]["overlap"])

    def rows(self) -> list[tuple[int, int]]:
        return tile_grid(self.height, self.tile_size)

    def cols(self) -> list[tuple[int, int]]:
        return tile_grid(self.width, self.tile_size)

    def validate(self) -> None:
        """Raise CorruptFileError unless every field the decoder and ``info`` rely on is present and sane."""
        f = self.fields
        try:
            bounded = self.version >= 3 and f.get("bound") is not None
            ok = (
                (_valid_bound(f["bound"]) and f.get("model") is None and f.get("quality") is None if bounded else
                 isinstance(f["model"], dict)
                 and all(isinstance(f["model"].get(k), str) for k in ("name", "sha256", "codec"))
                 and isinstance(f["quality"], int | float) and math.isfinite(f["quality"]))
                and isinstance(f["preprocessing_params"], dict)
                and _is_int(f["height"]) and _is_int(f["width"]) and _is_int(f["n_tiles"]) and _is_int(f["band"])
                and isinstance(f["tile"], dict) and _is_int(f["tile"].get("size")) and _is_int(f["tile"].get("overlap"))
                and within_limits(self.height, self.width, self.tile_size, self.overlap)
                and 1 <= f["band"] <= MAX_BAND
                and f["n_tiles"] == len(self.rows()) * len(self.cols())
                and isinstance(f["dtype"], str) and isinstance(f["units"], str)
                and (f["crs"] is None or isinstance(f["crs"], str))
                and (f["transform"] is None or (isinstance(f["transform"], list) and len(f["transform"]) == 6
                                                and all(_is_finite(v) for v in f["transform"])))
                and (f["nodata"] is None or _is_finite(f["nodata"]) or f["nodata"] in SPECIAL_FLOATS)
                and (f.get("gcps") is None or _valid_gcps(f["gcps"]))
            )
            if ok:
                dtype = np.dtype(f["dtype"])
                ok = dtype.kind in "uifc"
            if ok:  # the header's nodata is the one its preprocessing params write back
                params_nodata = f["preprocessing_params"].get("nodata")
                ok = _same_float(params_nodata, f["nodata"])
            if ok and self.version >= 2 and not bounded:
                side = f["side"]
                ok = (isinstance(side, dict) and all(_is_finite(side.get(k)) and 0 < side[k] <= 100
                                                     for k in ("step_hi", "step_lo", "bias_step"))
                      and _is_int(side.get("bias_block")) and 4 <= side["bias_block"] <= MAX_TILE
                      and isinstance(f.get("coder", ""), str)
                      # speckle synthesis 1 (sarcodec.codec.sidelayer.speckle_db): in every version 5 file, in
                      # version 6 files written with --speckle, none before version 5
                      and ("speckle" not in side if self.version < SPECKLE_VERSION
                           else (_is_int(side.get("speckle")) and side["speckle"] == 1)
                           or (self.version >= BLEND_VERSION and "speckle" not in side)))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise CorruptFileError(f"header is missing or has a malformed field ({exc})") from None
        if not ok:
            raise CorruptFileError("header fields are missing, out of range or inconsistent (shape, tiles, band, "
                                   "quality, model, nodata or georeferencing)")



def _valid_bound(bound: Any) -> bool:
    """A bounded file's ``bound``: units 'db' or 'input' and a finite max_error >= 0 (0 only in input units)."""
    return (isinstance(bound, dict) and bound.get("units") in ("db", "input") and _is_finite(bound.get("max_error"))
            and bound["max_error"] >= 0 and (bound["max_error"] > 0 or bound["units"] == "input"))


def _same_float(a: Any, b: Any) -> bool:
    """Two JSON numbers (or 'nan'/'inf'/'-inf' strings, or None) denote the same value."""
    if a is None or b is None:
        return a is None and b is None
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return (math.isnan(x) and math.isnan(y)) or x == y


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _valid_gcps(gcps: Any) -> bool:
    return (isinstance(gcps, dict) and isinstance(gcps.get("crs"), str) and isinstance(gcps.get("points"), list)
            and all(isinstance(p, list) and len(p) == 5 and all(_is_finite(v) for v in p) for p in gcps["points"]))


class SarcWriter:
    """Write a ``.sarc`` file atomically: ``with SarcWriter(path, header) as w: w.band(mask); w.tile(payload)...``."""

    def __init__(self, path: str | Path, header: dict[str, Any], version: int = FORMAT_VERSION) -> None:
        """``version``: the kind of file (2 lossy, 3 bounded; 1 for tests that rebuild old files), written as the
        lowest version that can read it (:func:`stored_version`: 4 with ground control points, 5 with speckle maps,
        6 for a lossy file of several tiles)."""
        self.path = Path(path)
        version = stored_version(header, version)
        data = deflate_header(header, version)  # before any file exists: a header JSON cannot hold fails here
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._file: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 (closed in close/abort)
        self._crc = 0
        self.bytes_written = 0
        try:  # nobody holds this writer yet: a failure or a signal (cli.Stopped) here must remove the file itself
            self._write(MAGIC + _U16.pack(version) + _U32.pack(len(data)) + data)
        except BaseException:
            self.abort()
            raise

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self.bytes_written += len(data)

    def band(self, mask: bytes) -> None:
        """Start a tile row band with its coded validity mask."""
        self._write(_U32.pack(len(mask)) + mask)

    def tile(self, payload: bytes) -> None:
        """Append one tile's entropy-coded payload."""
        self._write(_U32.pack(len(payload)) + payload)

    def close(self) -> None:
        """Finish: checksum, flush, rename into place (on any failure the partial file is removed)."""
        try:
            self._file.write(_U32.pack(self._crc))
            self.bytes_written += 4
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial file."""
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SarcWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SarcReader:
    """Read a ``.sarc`` file: validates magic, version and checksum on open, then streams the records."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.size = self.path.stat().st_size
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed in close)
        except OSError as exc:  # a missing or unreadable input is bad input (exit 2), like for every command
            raise BadInputError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        head = self._file.read(len(MAGIC) + 6)
        if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
            raise CorruptFileError(f"{self.path}: not a .sarc file (bad magic bytes)")
        if len(head) < len(MAGIC) + 6:
            raise CorruptFileError(f"{self.path}: truncated .sarc file (ends inside the preamble)")
        (version,) = _U16.unpack_from(head, len(MAGIC))
        if version not in READ_VERSIONS:
            raise CorruptFileError(f"{self.path}: .sarc format version {version}; this sarcodec reads versions "
                                   f"{', '.join(map(str, READ_VERSIONS))}")
        self.version = version
        (header_len,) = _U32.unpack_from(head, len(MAGIC) + 2)
        if header_len > min(_MAX_HEADER, self.size - len(head) - 4):
            raise CorruptFileError(f"{self.path}: truncated or damaged .sarc file (header length {header_len})")
        self._verify_checksum()
        self._file.seek(len(head))
        try:
            inflate = zlib.decompressobj(zdict=HEADER_DICTIONARIES[version])
            text = inflate.decompress(self._file.read(header_len), _MAX_HEADER)
            packed = inflate.unused_data if version >= GCP_VERSION else b""
            if not inflate.eof or inflate.unconsumed_tail or (inflate.unused_data and not packed):
                raise CorruptFileError(f"{self.path}: header is damaged (its deflate stream is incomplete)")
            fields = json.loads(text.decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CorruptFileError(f"{self.path}: header is not valid JSON ({exc})") from None
        if not isinstance(fields, dict):
            raise CorruptFileError(f"{self.path}: header is not a JSON object")
        if version >= GCP_VERSION:
            fields = self._unpack_gcps(fields, packed)
        self.header = SarcHeader(fields, version)
        self.header.validate()
        self._end = self.size - 4
        records = len(self.header.rows()) * (1 + len(self.header.cols()))
        if self._file.tell() + 4 * records > self._end:
            raise CorruptFileError(f"{self.path}: truncated .sarc file ({records} records announced, too few bytes)")

    def _unpack_gcps(self, fields: dict[str, Any], packed: bytes) -> dict[str, Any]:
        """A version-4 header's fields with the packed ground control points in place (as version 3 holds them)."""
        gcps = fields.get("gcps")
        if gcps is None:
            if packed:
                raise CorruptFileError(f"{self.path}: header is damaged (bytes after it, but no ground control points)")
            return fields
        if not (isinstance(gcps, dict) and isinstance(gcps.get("crs"), str) and _is_int(gcps.get("count"))
                and packed):
            raise CorruptFileError(f"{self.path}: header has malformed ground control points")
        try:
            points = unpack_points(packed, gcps["count"])
        except CorruptFileError as exc:
            raise CorruptFileError(f"{self.path}: {exc}") from None
        return {**fields, "gcps": {"crs": gcps["crs"], "points": points}}

    def _verify_checksum(self) -> None:
        if self.size < len(MAGIC) + 10:
            raise CorruptFileError(f"{self.path}: truncated .sarc file")
        self._file.seek(0)
        crc = 0
        remaining = self.size - 4
        while remaining:
            chunk = self._file.read(min(remaining, 1 << 22))
            if not chunk:
                raise CorruptFileError(f"{self.path}: truncated .sarc file")
            crc = zlib.crc32(chunk, crc)
            remaining -= len(chunk)
        (stored,) = _U32.unpack(self._file.read(4))
        if stored != crc:
            raise CorruptFileError(f"{self.path}: checksum mismatch: the file is damaged or truncated")

    def _record(self) -> bytes:
        raw = self._file.read(4)
        if len(raw) < 4 or self._file.tell() > self._end:
            raise CorruptFileError(f"{self.path}: truncated .sarc file (a tile record is missing)")
        (length,) = _U32.unpack(raw)
        if self._file.tell() + length > self._end:
            raise CorruptFileError(f"{self.path}: damaged .sarc file (a record runs past the end)")
        return self._file.read(length)

    def bands(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Yield ``(mask_bytes, [tile payloads])`` per tile row band, top to bottom."""
        n_cols = len(self.header.cols())
        for _ in self.header.rows():
            mask = self._record()
            yield mask, [self._record() for _ in range(n_cols)]
        self.check_end()

    def check_end(self) -> None:
        """Raise CorruptFileError unless every record has been read and nothing but the checksum follows."""
        if self._file.tell() != self._end:
            raise CorruptFileError(f"{self.path}: damaged .sarc file (unexpected bytes after the last tile)")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SarcReader:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()
