"""``compress`` and ``decompress``: whole scenes of any size, in tiles, streamed through rasterio windows.

Tiling. The image is cut into a grid of ``tile_size`` x ``tile_size`` cores; each tile is coded with ``overlap``
extra pixels on every side that has a neighbour. The decoder blends neighbouring tiles across the shared
``2 * overlap`` strip with linear ramps that sum to one, so there are no seams (tested: PSNR next to seams within
0.2 dB of the rest). Tile rows are processed as bands: the encoder reads one band (plus overlap) at a time, the
decoder keeps one band of accumulated pixels and writes rows as soon as no later tile can touch them, so memory
is bounded by the scene width, never its height.

Units. The input is mapped to the working representation with per-scene clip bounds from a streaming histogram
(``sarcodec.preprocess``); the exact inverse brings the decoded image back to the input's units and dtype, and
invalid pixels (from the losslessly coded validity mask) to the input's nodata value.

Fidelity in original units (format version 2). Each tile carries side information
(``sarcodec.codec.sidelayer``): the pixels beyond the clip range and the point targets (restored within half a
quantization step), and a radiometric correction map that keeps the mean intensity of every 32 x 32 block. Tiles
without a valid pixel are not coded at all, latents far from every valid pixel are not coded either, and invalid
pixels are filled smoothly before analysis (``sarcodec.codec.tiling.fill_invalid``); a tile whose valid pixels
all have one value is stored as that value.

Determinism. The bitstream decodes to the same symbols everywhere (integer tables, CPU probability path, see
``sarcodec.models.codecs``); the synthesis transform runs in float32 with a fixed order of operations for a
given device, so the pixels are identical across CPU thread counts (tested).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import struct
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sarcodec.version import __version__
from sarcodec.codec import bounded, sidelayer
from sarcodec.codec.bounded import Bound
from sarcodec.io.sarc import (
    FORMAT_VERSION,
    LOSSY_VERSION,
    MAX_BAND_PIXELS,
    MAX_SIDE,
    MAX_TILE,
    SarcHeader,
    SarcReader,
    SarcWriter,
    decode_mask,
    deflate_header,
    encode_mask,
    framing_bytes,
    tile_grid,
    within_limits,
)
from sarcodec.codec.info import params_of
from sarcodec.codec.registry import DEFAULT_CODEC, RUNTIMES, LoadedCodec, load_codec, resolve_codec
from sarcodec.codec.tiling import Blender, extended, fill_invalid, ramp
from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, OutputError, SarcodecError
from sarcodec.io.raster import RasterInfo, open_raster
from sarcodec.jsonfloat import float_from_json, float_to_json
from sarcodec.preprocess import (
    DEFAULT_CLIP_PERCENTILES,
    PreprocessingParams,
    check_percentiles,
    check_units,
    db_histogram,
    FloatArray,
    db_to_intensity,
    denormalize_db,
    fill_value,
    infer_units,
    inverse_db,
    make_params,
    normalize_db,
    to_db,
)

if TYPE_CHECKING:  # PyTorch loads in the background while compress reads the scene (see _load_codec_async)
    import torch

    from sarcodec.models.codecs import Analysis
    from sarcodec.codec.pipeline import Band, TilePool

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_QUALITY",
    "DEFAULT_TILE",
    "CompressResult",
    "DecompressResult",
    "compress",
    "decompress",
    ]

DEFAULT_QUALITY = 4
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 16
_HIST_ROWS = 512


@dataclass
class CompressResult:
    """What :func:`compress` wrote."""

    path: Path
    bytes: int
    bpp: float
    quality: float | None  # None in the bounded modes
    model: str  # "" in the bounded modes
    height: int
    width: int
    units: str
    seconds: float
    note: str = ""
    units_rule: str = "given"  # how ``units`` was chosen (the inference rule when not given)
    mode: str = "lossy"  # or "near-lossless", "lossless"
    max_error: float | None = None  # the bound of a near-lossless file (its units: the header's bound)


@dataclass
class DecompressResult:
    """What :func:`decompress` produced: ``array`` when no output path was given, else ``path``."""

    array: npt.NDArray[Any] | None
    path: Path | None
    height: int
    width: int
    dtype: str
    seconds: float


class _ArraySource:
    """An in-memory 2-D array with the reader interface of ``sarcodec.io.raster.RasterReader``."""

    def __init__(self, array: npt.NDArray[Any], nodata: float | None) -> None:
        if array.ndim != 2 or array.size == 0:
            raise BadInputError(f"expected a non-empty 2-D array (H, W), got shape {array.shape}")
        if array.dtype.kind not in "uifc":
            raise BadInputError(f"unsupported array dtype {array.dtype}")
        self.array = array
        h, w = array.shape
        self.info = RasterInfo("<array>", int(h), int(w), 1, 1, str(array.dtype), None, None, nodata)

    def read(self, window: tuple[int, int, int, int] | None = None) -> npt.NDArray[Any]:
        row, col, h, w = window if window is not None else (0, 0, *self.array.shape)
        return np.asarray(self.array[row : row + h, col : col + w])

    def sample(self, max_pixels: int = 65536) -> npt.NDArray[Any]:
        step = max(1, int(math.ceil(math.sqrt(self.array.size / max_pixels))))
        return np.asarray(self.array[::step, ::step]).ravel()

    def close(self) -> None:
        pass


def _device(device: str | None) -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BadInputError(f"unknown device {device!r}") from None


def _load_codec_async(model: str | Path, device: str | None, runtime: str = "torch") -> Future[LoadedCodec]:
    """Load ``model`` on a thread (importing PyTorch takes ~2 s on a small CPU) while the caller reads the scene;
    an unknown model name or runtime fails here, at once."""
    resolve_codec(model)
    if runtime not in RUNTIMES:
        raise BadInputError(f"unknown runtime {runtime!r}: give one of {', '.join(RUNTIMES)}")
    loader = ThreadPoolExecutor(1, thread_name_prefix="sarcodec-load")
    future = loader.submit(lambda: load_codec(model, _device(device), runtime))
    loader.shutdown(wait=False)
    return future


def _check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    for source in inputs:
        with contextlib.suppress(OSError):
            if output.resolve() == source.resolve():
                raise OutputError(f"{output}: the output would overwrite the input")
    if output.is_dir():
        raise OutputError(f"{output}: is a directory")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (pass overwrite=True to replace it)")
    if not output.parent.is_dir():
        raise OutputError(f"{output.parent}: no such directory")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"{output.parent}: not writable")


def _check_nodata(nodata: float | None, dtype: str) -> None:
    """An integer raster's nodata must be an integer its dtype can hold (else it could never be written back)."""
    dt = np.dtype(dtype)
    if nodata is None or dt.kind not in "ui":
        return
    info = np.iinfo(dt)
    if not (math.isfinite(nodata) and nodata == int(nodata) and info.min <= nodata <= info.max):
        raise BadInputError(f"nodata {nodata} cannot be stored in {dt} (range {info.min}..{info.max})")


def _scene_params(source: Any, units: str | None, nodata: float | None,
                  percentiles: tuple[float, float]) -> tuple[PreprocessingParams, str]:
    """Per-scene params from a streaming dB histogram, and how the units were chosen."""
    info = source.info
    rule = "given"
    if units is None:
        units, rule = infer_units(np.dtype(info.dtype), source.sample())
    units = check_units(units)
    blocks = (source.read((row, 0, min(_HIST_ROWS, info.height - row), info.width))
              for row in range(0, info.height, _HIST_ROWS))
    hist = db_histogram(blocks, units, nodata)
    if hist.total == 0:
        raise BadInputError(f"{info.path}: no valid pixels (all NaN, non-positive or nodata)")
    lo, hi = hist.clip_bounds(check_percentiles(percentiles))
    lo, hi = round(lo, 4), round(hi, 4)  # 0.0001 dB is far below the histogram's 0.001 dB bins; short headers
    params = make_params(units, info.dtype, lo, hi, clip_percentiles=percentiles, clip_scope="image", nodata=nodata)
    return params, rule


def _coder_version() -> str:
    from importlib.metadata import version

    return version("constriction")


_SIDE_DEFAULTS = {"step_hi": sidelayer.STEP_HI_DB, "step_lo": sidelayer.STEP_LO_DB,
                  "bias_block": sidelayer.BIAS_BLOCK, "bias_step": sidelayer.BIAS_STEP_DB}
_U32 = struct.Struct("<I")
_F32 = struct.Struct("<f")
TAG_CONSTANT = 1
TAG_CODED = 2
TAG_BOUNDED = 3


def _band_rows(source: Any, params: PreprocessingParams, r0: int, r1: int, overlap: int
               ) -> tuple[int, FloatArray, npt.NDArray[np.bool_]]:
    """dB and validity of the extended rows of the band with core rows [r0, r1); returns the first row too."""
    h, w = source.info.height, source.info.width
    e0, e1 = extended(r0, r1, h, overlap)
    db, valid = to_db(source.read((e0, 0, e1 - e0, w)), params.units, params.nodata)
    return e0, db.astype(np.float32), valid  # float32: two bands of a 10 000 px wide scene in flight, 160 MB less


@dataclass
class _PreparedTile:
    """The quality-independent part of a tile record: a finished ``record`` (no valid pixel, or constant), or the
    side information, the network's analysis and what the correction is fitted against."""

    record: bytes | None
    side: sidelayer.TileSide | None = None
    analysis: Analysis | None = None
    core: tuple[slice, slice] = (slice(None), slice(None))
    inlier: npt.NDArray[np.bool_] | None = None  # core pixels whose decoded value the network gives
    target: FloatArray | None = None  # original intensity at ``inlier`` (0 elsewhere)


def _prepare_region(codec: LoadedCodec, db: FloatArray, valid: npt.NDArray[np.bool_], core: tuple[slice, slice],
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
    analysis = codec.model.analyze(_to_tensor(fill_invalid(x, valid & ~in_side)), valid=valid)
    inlier = core_valid & ~in_side[core]  # the correction is fitted where the network's pixels are kept
    return _PreparedTile(None, side, analysis, core, inlier, db_to_intensity(np.where(inlier, core_db, 0.0)))


def _code_region(codec: LoadedCodec, tile: _PreparedTile, quality: float, params: PreprocessingParams,
                 side_cfg: dict[str, Any]) -> bytes:
    """One tile record of format version 2 (see ``sarcodec.io.sarc``) at ``quality``."""
    if tile.record is not None:
        return tile.record
    assert tile.analysis is not None and tile.side is not None and tile.inlier is not None and tile.target is not None
    words, x_hat = codec.model.encode_analysis(tile.analysis, quality)
    assert x_hat is not None
    decoded_db = denormalize_db(x_hat[0, 0].numpy()[tile.core], params.db_lo, params.db_hi)
    correction = sidelayer.fit_correction(tile.target, decoded_db, tile.inlier, side_cfg["bias_block"])
    side = dataclasses.replace(tile.side, correction=correction)
    return bytes([TAG_CODED]) + _U32.pack(len(words)) + words + sidelayer.encode_side(side)


def _encode_region(codec: LoadedCodec, quality: float, db: FloatArray, valid: npt.NDArray[np.bool_],
                   core: tuple[slice, slice], params: PreprocessingParams, side_cfg: dict[str, Any]) -> bytes:
    """One tile record of format version 2 from the dB of its extended region."""
    return _code_region(codec, _prepare_region(codec, db, valid, core, params, side_cfg), quality, params, side_cfg)


def _tile_regions(db_band: FloatArray, valid_band: npt.NDArray[np.bool_], e0: int, r0: int, r1: int,
                  width: int, tile: int, overlap: int
                  ) -> Iterator[tuple[FloatArray, npt.NDArray[np.bool_], tuple[slice, slice]]]:
    """Per tile of a band (left to right): dB and validity of its extended region, and where its core lies."""
    rows = slice(r0 - e0, r1 - e0)
    for c0, c1 in tile_grid(width, tile):
        f0, f1 = extended(c0, c1, width, overlap)
        yield db_band[:, f0:f1], valid_band[:, f0:f1], (rows, slice(c0 - f0, c1 - f0))


def _to_tensor(x: npt.NDArray[np.float32]) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]


def _fixed_bytes(source: Any, params: PreprocessingParams, header: dict[str, Any], tile: int, overlap: int) -> int:
    """Bytes of a file that do not depend on the quality: preamble, deflated header, masks, record lengths,
    checksum (the validity masks are read and coded for this, band by band)."""
    info = source.info
    rows, cols = tile_grid(info.height, tile), tile_grid(info.width, tile)
    masks = 0
    for r0, r1 in rows:
        _, _, valid = _band_rows(source, params, r0, r1, overlap)
        masks += len(encode_mask(valid))
    return framing_bytes(len(deflate_header(header)), len(rows), len(cols)) + masks


def _choose_quality(codec: LoadedCodec, pool: TilePool[Any, Any], source: Any, params: PreprocessingParams,
                    target: float, fixed: int, tile: int, overlap: int, side_cfg: dict[str, Any]
                    ) -> tuple[float, str]:
    """Highest quality whose file on a sample of up to 6 tiles is <= ``target`` bpp (bisection, 8 steps).

    ``fixed`` bytes (header, masks, record lengths) are counted in full; the tiles' records (payload and side
    information) are extrapolated from the sample to the whole image. The side layer and the analysis of the
    sample are computed once; each step only entropy-codes and synthesizes."""
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

    def bpp(q: float) -> float:
        coded = [functools.partial(_code_region, codec, t, q, params, side_cfg) for t in prepared]
        tiles = sum(len(r) for band in pool.run([(None, coded)]) for r in band.results())
        return float((fixed + tiles * pixels / sampled) * 8 / pixels)

    lo, hi = 1.0, float(codec.num_levels)
    smallest = bpp(lo)
    if smallest > target:
        return lo, (f"target {target:g} bpp is below the smallest size this model reaches on this image (about "
                    f"{smallest:.3f} bpp at quality 1); wrote quality 1")
    largest = bpp(hi)
    if largest <= target:
        return hi, (f"target {target:g} bpp is above the largest size this model reaches on this image (about "
                    f"{largest:.3f} bpp at quality {codec.num_levels:g}); wrote quality {codec.num_levels:g}")
    for _ in range(8):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if bpp(mid) <= target else (lo, mid)
    return math.floor(lo * 1e4) / 1e4, ""


def compress(
    source: str | Path | npt.NDArray[Any],
    output: str | Path,
    *,
    quality: float | None = None,
    bpp: float | None = None,
    max_error: float | None = None,
    max_error_units: str = "db",
    lossless: bool = False,
    model: str | Path = DEFAULT_CODEC,
    units: str | None = None,
    band: int | None = None,
    nodata: float | None = None,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
    tile_size: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    device: str | None = "auto",
    runtime: str = "torch",
    overwrite: bool = False,
    progress: bool = False,
) -> CompressResult:
    """Compress a raster file (GeoTIFF, ``.npy``) or a 2-D array into a ``.sarc`` file.

    Args:
        source: path of a raster, or a 2-D NumPy array (units inferred from its dtype unless ``units`` given).
        output: the ``.sarc`` path (not overwritten unless ``overwrite``).
        quality: 1 (smallest) .. number of levels (best); fractional values interpolate. Default 4.
        bpp: target bits per pixel instead of ``quality`` (the highest quality that fits, estimated on up to
            6 tiles).
        max_error: near-lossless instead: every valid pixel decodes within ``max_error`` dB of the original
            (``max_error_units="db"``, the same bound as a relative error on intensity) or within ``max_error`` in
            the raster's own units (``"input"``); guaranteed and checked (``sarcodec.codec.bounded``).
        lossless: the exact values back (integer rasters, e.g. uint16 amplitude DN).
        model: a shipped codec name (``sarcodec.codec.registry.shipped_codecs()``) or a ``.safetensors`` path
            (lossy modes).
        units, band, nodata, clip_percentiles: input interpretation (see ``sarcodec.preprocess``).
        tile_size, overlap: tiling (core size and overlap in pixels; bounded modes do not overlap tiles).
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``...
        runtime: ``"torch"``, or ``"onnx"``: the analysis transform under ONNX Runtime on the CPU (faster; the
            file decodes exactly as any other, see ``sarcodec.codec.onnx``).
    """
    start = time.monotonic()
    if runtime == "onnx" and device in (None, "auto"):
        device = "cpu"
    if quality is not None and bpp is not None:
        raise BadInputError("give either a quality or a target bpp, not both")
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise BadInputError(f"target bpp must be a positive number, got {bpp}")
    bound = _bound_of(max_error, max_error_units, lossless, quality is not None or bpp is not None)
    if bound is not None:
        overlap = 0
    if not 16 <= tile_size <= MAX_TILE or not 0 <= overlap <= tile_size // 2:
        raise BadInputError(f"tile size must be 16..{MAX_TILE} and overlap 0..tile/2, got {tile_size} and {overlap}")
    out = Path(output)
    inputs: tuple[Path, ...] = () if isinstance(source, np.ndarray) else (Path(source),)
    _check_output(out, overwrite, inputs)
    loading = _load_codec_async(model, device, runtime) if bound is None else None
    reader: Any = _ArraySource(source, nodata) if isinstance(source, np.ndarray) else open_raster(source, band)
    try:
        info = reader.info
        if nodata is None:
            nodata = info.nodata
        _check_nodata(nodata, info.dtype)
        if not within_limits(info.height, info.width, tile_size, overlap):
            raise BadInputError(f"{info.height} x {info.width} pixels with {tile_size} px tiles is beyond the format's "
                                f"limits (sides up to {MAX_SIDE}, width x tile rows up to {MAX_BAND_PIXELS}): use "
                                "smaller tiles")
        if bound is not None:
            _check_bounded_input(bound, np.dtype(info.dtype))
        params, units_rule = _scene_params(reader, units, nodata, clip_percentiles)
        rows, cols = tile_grid(info.height, tile_size), tile_grid(info.width, tile_size)
        header: dict[str, Any] = {
            "created_by": f"sarcodec {__version__}",
            "model": None,
            "quality": None,
            "preprocessing_params": params.to_dict(),
            "height": info.height,
            "width": info.width,
            "dtype": info.dtype,
            "units": params.units,
            "band": info.band,
            "crs": info.crs,
            "transform": None if info.transform is None else list(info.transform),
            "nodata": float_to_json(nodata),
            "gcps": reader.gcps() if info.transform is None and hasattr(reader, "gcps") else None,
            "tile": {"size": tile_size, "overlap": overlap},
            "n_tiles": len(rows) * len(cols),
            "coder": f"constriction {_coder_version()}",
        }
        bar = tqdm(total=len(rows) * len(cols), desc="compress", unit="tile", disable=None if progress else True, leave=False)
        try:
            if bound is None:
                assert loading is not None
                codec = loading.result()
                q, note = _compress_lossy(codec, reader, params, header, out, quality, bpp, bar)
                model_name, mode = codec.name, "lossy"
            else:
                header["bound"] = bound.to_json()
                header["crs"] = _compact_crs(header["crs"])  # format 3 readers take 'EPSG:n' as well as WKT
                if header["gcps"]:
                    header["gcps"]["crs"] = _compact_crs(header["gcps"]["crs"])
                _compress_bounded(reader, params, header, out, bound, bar)
                q, note, model_name = None, "", ""
                mode = "lossless" if bound.lossless else "near-lossless"
        except OSError as exc:
            raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
        finally:
            bar.close()
        size = out.stat().st_size
    finally:
        reader.close()
    return CompressResult(out, size, size * 8 / (info.height * info.width), q, model_name, info.height,
                          info.width, params.units, time.monotonic() - start, note, units_rule, mode,
                          None if bound is None else bound.max_error)


def _compact_crs(wkt: str | None) -> str | None:
    """'EPSG:n' when that names exactly the CRS of ``wkt`` (~20 bytes instead of ~600: 4 % of a 100 x 100
    near-lossless file), else the WKT."""
    if wkt is None:
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        crs = CRS.from_wkt(wkt)
        code = crs.to_epsg()
        return f"EPSG:{code}" if code is not None and CRS.from_epsg(code) == crs else wkt
    except CRSError:
        return wkt


def _bound_of(max_error: float | None, units: str, lossless: bool, rate_given: bool) -> Bound | None:
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


def _check_bounded_input(bound: Bound, dtype: np.dtype[Any]) -> None:
    if dtype.kind == "c":
        raise BadInputError("near-lossless and lossless modes take real-valued rasters, not complex ones")
    if bound.lossless and not (dtype.kind in "ui" and dtype.itemsize <= 4):
        raise BadInputError(f"lossless needs an integer raster of up to 32 bits (this one is {dtype}); for a float "
                            "raster give a maximum error")


def _write_bands(writer: SarcWriter, bands: Iterator[Band[bytes, bytes]], bar: Any) -> None:
    """Write finished bands in order: the mask, then the tile records."""
    for band in bands:
        writer.band(band.data)
        for record in band.results():
            writer.tile(record)
            bar.update()


def _torch_workers() -> int:
    """Tiles coded at once by the networks: one per thread PyTorch was given (``OMP_NUM_THREADS``)."""
    import torch

    return torch.get_num_threads()


def _cpu_workers() -> int:
    """Tiles coded at once without networks: one per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _compress_lossy(codec: LoadedCodec, reader: Any, params: PreprocessingParams, header: dict[str, Any], out: Path,
                    quality: float | None, bpp: float | None, bar: Any) -> tuple[float, str]:
    """Write a lossy file (format 2); returns the quality used and a note about a ``bpp`` target."""
    from sarcodec.codec.pipeline import TilePool

    if quality is not None:
        try:
            codec.model.check_quality(quality)
        except IncompatibleModelError as exc:
            raise BadInputError(str(exc)) from None
    info = reader.info
    tile_size, overlap = header["tile"]["size"], header["tile"]["overlap"]
    header.update(model={"name": codec.name, "sha256": codec.sha256, "codec": codec.model.codec_name},
                  quality=float(DEFAULT_QUALITY if quality is None else quality), side=dict(_SIDE_DEFAULTS))
    side_cfg: dict[str, Any] = header["side"]
    note = ""
    with TilePool[bytes, bytes](_torch_workers(), codec.device.type == "cpu") as pool:
        if bpp is not None:
            fixed = _fixed_bytes(reader, params, header, tile_size, overlap)
            header["quality"], note = _choose_quality(codec, pool, reader, params, bpp, fixed, tile_size, overlap,
                                                      side_cfg)
        q = float(header["quality"])

        def bands() -> Iterator[tuple[bytes, list[Callable[[], bytes]]]]:
            for r0, r1 in tile_grid(info.height, tile_size):
                e0, db_band, valid_band = _band_rows(reader, params, r0, r1, overlap)
                # version 2: the mask covers the extended rows (tiles skip latents by it)
                yield encode_mask(valid_band), [
                    functools.partial(_encode_region, codec, q, db, valid, core, params, side_cfg)
                    for db, valid, core in _tile_regions(db_band, valid_band, e0, r0, r1, info.width, tile_size,
                                                         overlap)]

        with SarcWriter(out, header, LOSSY_VERSION) as writer:
            _write_bands(writer, pool.run(bands()), bar)
    return q, note


def _valid_values(raw: npt.NDArray[Any], nodata: float | None) -> npt.NDArray[np.bool_]:
    """Pixels a bounded file keeps: finite and not nodata (zeros and negative values included)."""
    valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if nodata is not None:
        valid &= ~np.isnan(raw) if math.isnan(nodata) else raw != nodata
    return valid


def _bounded_record(values: npt.NDArray[Any], valid: npt.NDArray[np.bool_], bound: Bound, units: str) -> bytes:
    if not valid.any():
        return b""
    return bytes([TAG_BOUNDED]) + bounded.encode_tile(values, valid, bound, units)


def _compress_bounded(reader: Any, params: PreprocessingParams, header: dict[str, Any], out: Path, bound: Bound,
                      bar: Any) -> None:
    """Write a bounded file (format 3): tiles without overlap, coded in parallel, no network."""
    from sarcodec.codec.pipeline import TilePool

    info, tile_size = reader.info, header["tile"]["size"]

    def bands() -> Iterator[tuple[bytes, list[Callable[[], bytes]]]]:
        for r0, r1 in tile_grid(info.height, tile_size):
            raw = np.asarray(reader.read((r0, 0, r1 - r0, info.width)))
            valid = _valid_values(raw, params.nodata)
            yield encode_mask(valid), [
                functools.partial(_bounded_record, raw[:, c0:c1], valid[:, c0:c1], bound, params.units)
                for c0, c1 in tile_grid(info.width, tile_size)]

    with TilePool[bytes, bytes](_cpu_workers()) as pool, SarcWriter(out, header, FORMAT_VERSION) as writer:
        _write_bands(writer, pool.run(bands()), bar)


def _codec_for(header: SarcHeader, model: str | Path | None, device: torch.device) -> LoadedCodec:
    from sarcodec.codec.registry import shipped_codecs

    wanted = header.fields["model"]
    if model is None and wanted["name"] not in shipped_codecs():  # a header never picks a local file to load
        raise IncompatibleModelError(
            f"the file was written with model {wanted['name']!r} (sha256 {wanted['sha256'][:12]}...), which this "
            "installation does not ship; pass model=PATH with that .safetensors file"
        )
    try:
        codec = load_codec(model if model is not None else wanted["name"], device)
    except IncompatibleModelError:
        if model is not None:
            raise
        raise IncompatibleModelError(
            f"the file was written with model {wanted['name']!r} (sha256 {wanted['sha256'][:12]}...), which this "
            "installation does not ship; pass model=PATH with that .safetensors file"
        ) from None
    if codec.sha256 != wanted["sha256"]:
        raise IncompatibleModelError(
            f"the file needs model {wanted['name']!r} with sha256 {wanted['sha256'][:12]}..., but {codec.path} has "
            f"{codec.sha256[:12]}...; pass model=PATH with the exact weights that encoded it"
        )
    return codec


class _Output:
    """Where decoded rows go: an in-memory array, or a GeoTIFF written window by window (then renamed)."""

    def __init__(self, header: SarcHeader, path: Path | None, cog: bool) -> None:
        f = header.fields
        self.dtype = np.dtype(f["dtype"])
        self.path = path
        self.cog = cog
        self.array: npt.NDArray[Any] | None = None
        self._dataset: Any = None
        if path is None:
            self.array = np.empty((header.height, header.width), self.dtype)
            return
        import rasterio
        from rasterio.transform import Affine

        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial.tif")
        nodata = float_from_json(f.get("nodata"))
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": header.height,
            "width": header.width,
            "count": 1,
            "dtype": self.dtype.name,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
            # lossless DEFLATE with the predictor for the dtype (floating point: 3, integers: 2): any GDAL reads it
            "compress": "DEFLATE",
            **({"predictor": 3} if self.dtype.kind == "f" else {"predictor": 2} if self.dtype.kind in "ui" else {}),
        }
        try:
            if f.get("crs"):
                profile["crs"] = rasterio.crs.CRS.from_user_input(f["crs"])  # WKT, or 'EPSG:n' (format 3)
            if f.get("transform"):
                profile["transform"] = Affine(*[float(v) for v in f["transform"]])
            gcps = None
            if f.get("gcps"):
                from rasterio.control import GroundControlPoint

                points = [GroundControlPoint(row=r, col=c, x=x, y=y, z=z) for r, c, x, y, z in f["gcps"]["points"]]
                gcps = (points, rasterio.crs.CRS.from_user_input(f["gcps"]["crs"]))
        except (rasterio.errors.RasterioError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"the header's georeferencing cannot be used ({exc})") from None
        if nodata is not None:
            profile["nodata"] = nodata
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                self._dataset = rasterio.open(self._tmp, "w", **profile)
                if gcps is not None:
                    self._dataset.gcps = gcps
            except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
                self.abort()
                raise OutputError(f"{path}: cannot be written ({exc})") from None

    def write(self, row: int, values: npt.NDArray[Any]) -> None:
        if self.array is not None:
            self.array[row : row + values.shape[0]] = values
            return
        from rasterio.windows import Window

        self._dataset.write(values, 1, window=Window(0, row, values.shape[1], values.shape[0]))

    def finish(self) -> None:
        if self._dataset is None or self.path is None:
            return
        import rasterio.shutil

        self._dataset.close()
        if self.cog:
            cog_tmp = self._tmp.with_name(self._tmp.name + ".cog.tif")
            rasterio.shutil.copy(self._tmp, cog_tmp, driver="COG", compress="DEFLATE", BIGTIFF="IF_SAFER")
            self._tmp.unlink()
            self._tmp = cog_tmp
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self.path is not None:
            if self._dataset is not None:
                self._dataset.close()
            for tmp in (self._tmp, self._tmp.with_name(self._tmp.name + ".cog.tif")):
                tmp.unlink(missing_ok=True)


def _decode_region(codec: LoadedCodec, quality: float, payload: bytes, valid: npt.NDArray[np.bool_],
                   core: tuple[slice, slice], params: PreprocessingParams, side_cfg: dict[str, Any],
                   correction: npt.NDArray[np.float32], outliers: list[tuple[Any, ...]], col: int
                   ) -> npt.NDArray[np.float32] | None:
    """Decode one version-2 tile record: x_norm over the extended region whose validity is ``valid`` (None for an
    uncoded tile); writes the tile core's correction (dB) into ``correction`` and appends its outliers to
    ``outliers`` as (rows, columns, dB) in the band's coordinates (the core starts at column ``col``)."""
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
        side_blob, with_correction = rest[4:], False
    elif tag == TAG_CODED:
        if len(rest) < 4:
            raise CorruptFileError("a coded tile is truncated")
        (n_words,) = _U32.unpack_from(rest)
        if n_words == 0 or 4 + n_words > len(rest):
            raise CorruptFileError("a coded tile's word count is inconsistent with its record")
        x = codec.model.decompress_tile(rest[4 : 4 + n_words], shape[0], shape[1], quality, valid)[0, 0].numpy()
        side_blob, with_correction = rest[4 + n_words :], True
    else:
        raise CorruptFileError(f"unknown tile type {tag}")
    core_shape = core_valid.shape
    side = sidelayer.decode_side(side_blob, core_shape, with_correction, side_cfg["bias_block"])
    if side.correction is not None:
        correction[:] = sidelayer.interpolate_correction(side.correction * side_cfg["bias_step"], core_shape,
                                                         side_cfg["bias_block"])
    index = np.concatenate([side.above_index, side.below_index])
    if index.size:
        dbs = np.concatenate([params.db_lo + side.above_q * side_cfg["step_hi"],
                              params.db_lo - side.below_q * side_cfg["step_lo"]])
        outliers.append((index // core_shape[1], index % core_shape[1] + col, dbs.astype(np.float32)))
    return x


#: Rows converted to the output's units and written at a time (bounds the decoder's float64 temporaries).
_WRITE_ROWS = 128

_DecodedBand = tuple[int, int, int, npt.NDArray[np.bool_], npt.NDArray[np.float32], list[tuple[Any, ...]]]


def _decode_v1(codec: LoadedCodec, quality: float, payload: bytes, height: int, width: int
               ) -> npt.NDArray[np.float32]:
    """Decode one tile record of format version 1 (the network's payload only)."""
    x: npt.NDArray[np.float32] = codec.model.decompress_tile(payload, height, width, quality)[0, 0].numpy()
    return x


def decompress(
    path: str | Path,
    output: str | Path | None = None,
    *,
    model: str | Path | None = None,
    cog: bool = False,
    device: str | None = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> DecompressResult:
    """Decode a ``.sarc`` file to a GeoTIFF at ``output`` (CRS, transform, nodata, units and dtype restored),
    or, without ``output``, to a NumPy array (``result.array``).

    ``cog=True`` writes a Cloud-Optimized GeoTIFF (DEFLATE). The file is checked whole (checksum) before any
    pixel is decoded; any damage raises CorruptFileError and nothing is written.
    """
    start = time.monotonic()
    src = Path(path)
    out = Path(output) if output is not None else None
    if out is not None:
        _check_output(out, overwrite, (src,))
    with SarcReader(src) as reader:
        header = reader.header
        params = params_of(header)
        if header.fields.get("bound") is not None:
            bound = Bound.from_json(header.fields["bound"])
            if header.overlap != 0 or (bound.lossless and np.dtype(params.dtype).kind not in "ui"):
                raise CorruptFileError(f"{src}: a bounded file with overlapping tiles or a lossless float raster")
            run: Callable[[Any, _Output, Any], None] = functools.partial(_decode_bounded_bands, header, params, bound)
        else:
            codec = _codec_for(header, model, _device(device))
            try:
                quality = codec.model.check_quality(float(header.fields["quality"]))
            except IncompatibleModelError as exc:
                raise CorruptFileError(f"{src}: the header's {exc}") from None
            run = functools.partial(_decode_lossy_bands, header, params, codec, quality)
        sink = _Output(header, out, cog)
        bar = tqdm(total=int(header.fields["n_tiles"]), desc="decompress", unit="tile", disable=None if progress else True, leave=False)
        try:
            run(reader, sink, bar)
            reader.check_end()
            sink.finish()
        except SarcodecError:
            sink.abort()
            raise
        except OSError as exc:
            sink.abort()
            raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
        except BaseException:
            sink.abort()
            raise
        finally:
            bar.close()
    return DecompressResult(sink.array, out, header.height, header.width, str(sink.dtype), time.monotonic() - start)


def _decode_lossy_bands(header: SarcHeader, params: PreprocessingParams, codec: LoadedCodec, quality: float,
                        reader: SarcReader, sink: _Output, bar: Any) -> None:
    """Decode, blend and write the bands of a lossy file (format 1 or 2), tiles in parallel."""
    from sarcodec.codec.pipeline import TilePool

    h, w, overlap = header.height, header.width, header.overlap
    col_grid = header.cols()
    blender = Blender(w)
    side_cfg: dict[str, Any] | None = header.fields["side"] if reader.version >= 2 else None
    pending: list[tuple[int, npt.NDArray[np.bool_], npt.NDArray[np.float32], list[tuple[Any, ...]]]] = []

    def finish(band: Band[_DecodedBand, npt.NDArray[np.float32] | None]) -> None:
        """Blend a band's decoded tiles and write the rows no later tile touches."""
        nonlocal pending
        r0, r1, e0, valid, correction, outliers = band.data
        row_weight = ramp(r0, r1, h, overlap)[:, None]
        for (c0, c1), x in zip(col_grid, band.results()):
            if x is not None:
                blender.add(e0, extended(c0, c1, w, overlap)[0], x, row_weight * ramp(c0, c1, w, overlap)[None, :])
            bar.update()
        pending.append((r0, valid, correction, outliers))
        done = h if r1 == h else r1 - overlap
        first = blender.start
        x_rows = blender.pop(done)
        for b0, b_valid, b_correction, b_outliers in pending:  # rows [first, done) lie in one or two bands
            for a in range(max(first, b0), min(done, b0 + b_valid.shape[0]), _WRITE_ROWS):
                z = min(a + _WRITE_ROWS, done, b0 + b_valid.shape[0])  # float64 temporaries of a few rows
                db = denormalize_db(x_rows[a - first : z - first], params.db_lo, params.db_hi)
                db += b_correction[a - b0 : z - b0]
                for rows, cols, values in b_outliers:
                    here = (rows >= a - b0) & (rows < z - b0)
                    db[rows[here] - (a - b0), cols[here]] = values[here]
                sink.write(a, inverse_db(db, params, b_valid[a - b0 : z - b0]))
        pending = [p for p in pending if p[0] + p[1].shape[0] > done]

    def bands() -> Iterator[tuple[_DecodedBand, list[Callable[[], npt.NDArray[np.float32] | None]]]]:
        for (r0, r1), (mask_bytes, payloads) in zip(header.rows(), reader.bands()):
            e0, e1 = extended(r0, r1, h, overlap)
            if side_cfg is None:
                valid_ext = None
                valid = decode_mask(mask_bytes, (r1 - r0, w))
            else:  # version 2 masks cover the band's extended rows
                valid_ext = decode_mask(mask_bytes, (e1 - e0, w))
                valid = valid_ext[r0 - e0 : r1 - e0]
            correction = np.zeros((r1 - r0, w), np.float32)
            outliers: list[tuple[Any, ...]] = []  # appended by the tiles (thread-safe)
            jobs: list[Callable[[], npt.NDArray[np.float32] | None]] = []
            for (c0, c1), payload in zip(col_grid, payloads):
                f0, f1 = extended(c0, c1, w, overlap)
                core = (slice(r0 - e0, r1 - e0), slice(c0 - f0, c1 - f0))
                if side_cfg is None or valid_ext is None:
                    jobs.append(functools.partial(_decode_v1, codec, quality, payload, e1 - e0, f1 - f0))
                else:
                    jobs.append(functools.partial(_decode_region, codec, quality, payload, valid_ext[:, f0:f1],
                                                  core, params, side_cfg, correction[:, c0:c1], outliers, c0))
            yield (r0, r1, e0, valid, correction, outliers), jobs

    with TilePool[_DecodedBand, npt.NDArray[np.float32] | None](_torch_workers(), codec.device.type == "cpu") as pool:
        for band in pool.run(bands()):
            finish(band)  # the previous band, while the next one decodes


def _decode_bounded_tile(payload: bytes, valid: npt.NDArray[np.bool_], bound: Bound, units: str,
                         dtype: np.dtype[Any], fill: float) -> npt.NDArray[Any]:
    if not payload:
        if valid.any():
            raise CorruptFileError("a tile with valid pixels has no coded data")
        return np.full(valid.shape, fill, dtype)
    if not valid.any() or payload[0] != TAG_BOUNDED:
        raise CorruptFileError("a bounded file's tile record has the wrong type for its mask")
    return bounded.decode_tile(payload[1:], valid, bound, units, dtype, fill)


def _decode_bounded_bands(header: SarcHeader, params: PreprocessingParams, bound: Bound, reader: SarcReader,
                          sink: _Output, bar: Any) -> None:
    """Decode and write the bands of a bounded file, tiles in parallel (no network, no blending)."""
    from sarcodec.codec.pipeline import TilePool

    dtype, fill = np.dtype(params.dtype), fill_value(params)

    def bands() -> Iterator[tuple[int, list[Callable[[], npt.NDArray[Any]]]]]:
        for (r0, r1), (mask_bytes, payloads) in zip(header.rows(), reader.bands()):
            valid = decode_mask(mask_bytes, (r1 - r0, header.width))
            yield r0, [functools.partial(_decode_bounded_tile, payload, valid[:, c0:c1], bound, params.units, dtype,
                                         fill) for (c0, c1), payload in zip(header.cols(), payloads)]

    with TilePool[int, npt.NDArray[Any]](_cpu_workers()) as pool:
        for band in pool.run(bands()):
            tiles = band.results()
            sink.write(band.data, np.concatenate(tiles, axis=1))
            bar.update(len(tiles))
