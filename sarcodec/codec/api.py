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

Layout. This module holds the orchestration (options, header, files, the sink decoded rows go to); the lossy
tiles, their side information and the decoder's blending are ``sarcodec.codec.lossy``, the bounded modes'
tiles ``sarcodec.codec.bounded``, the pool of workers ``sarcodec.codec.pipeline``.

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
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sarcodec.version import __version__
from sarcodec.codec import bounded, lossy
from sarcodec.codec.bounded import Bound
from sarcodec.codec.lossy import DEFAULT_QUALITY
from sarcodec.io.sarc import (DEFAULT_OVERLAP, DEFAULT_TILE, DICTIONARY_OVERLAP, MAX_BAND_PIXELS, MAX_SIDE, MAX_TILE,
                              SarcHeader, SarcReader, tile_grid, within_limits)
from sarcodec.codec.info import params_of
from sarcodec.codec.lite import LiteCodec, load_lite
from sarcodec.codec.registry import DEFAULT_CODEC, LoadedCodec, load_codec, resolve_codec
from sarcodec.codec.tiling import Region
from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, OutputError, SarcodecError
from sarcodec.io.gcps import check_points
from sarcodec.io.raster import RasterInfo, compact_crs, open_raster
from sarcodec.jsonfloat import float_from_json, float_to_json
from sarcodec.preprocess import (
    DEFAULT_CLIP_PERCENTILES,
    PreprocessingParams,
    check_percentiles,
    check_units,
    db_histogram,
    infer_units,
    make_params,
)

if TYPE_CHECKING:  # PyTorch loads in the background while compress reads the scene (see _load_codec_async)
    import torch


__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_QUALITY",
    "DEFAULT_TILE",
    "CompressResult",
    "DecompressResult",
    "compress",
    "decompress",
    ]

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


#: Coding runtimes (compress and decompress): ``auto`` (on the CPU without PyTorch when the weights allow it, see
#: ``sarcodec.codec.lite``), ``torch`` (always PyTorch), ``onnx`` (the PyTorch-free path, or an error).
RUNTIMES = ("auto", "torch", "onnx")


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of RUNTIMES, else BadInputError."""
    if runtime not in RUNTIMES:
        raise BadInputError(f"unknown runtime {runtime!r}: give one of {', '.join(RUNTIMES)}")
    return runtime


def _gpu_possible() -> bool:
    """Whether PyTorch could find a GPU, answered without importing it (2-4 s) where that is certain: on Linux a
    CUDA or ROCm GPU has its device node."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/kfd")


def _device(device: str | None) -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise BadInputError(f"unknown device {device!r}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():  # else PyTorch asserts deep inside the loading
        raise BadInputError(f"device {device!r}: no CUDA GPU is available to PyTorch here; use the CPU (device 'cpu')")
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise BadInputError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA GPU(s) here")
    return chosen


def _load(model: str | Path, device: str | None, runtime: str) -> LoadedCodec | LiteCodec:
    """The codec ``model`` for ``runtime``: without PyTorch on the CPU when the runtime and the weights allow it
    (``sarcodec.codec.lite``), else PyTorch's on ``device`` (``"auto"``: a GPU when there is one)."""
    if device in (None, "auto") and not _gpu_possible():
        device = "cpu"
    if runtime != "torch" and device == "cpu":
        lite = load_lite(*resolve_codec(model))
        if lite is not None:
            return lite
    if runtime == "onnx":
        raise BadInputError("the onnx runtime runs on the CPU, for weights with the integer hyper-decoder (sarcodec "
                            ">= 0.5), with onnx and onnxruntime installed: use runtime='torch'")
    return load_codec(model, _device(device))


def _load_codec_async(model: str | Path, device: str | None, runtime: str) -> Future[LoadedCodec | LiteCodec]:
    """Load ``model`` on a thread while the caller reads the scene (importing PyTorch takes ~2 s on a small CPU,
    importing ONNX Runtime and building its sessions ~0.4 s); an unknown model name or runtime fails here, at once."""
    resolve_codec(model)
    if check_runtime(runtime) == "onnx" and device not in (None, "auto", "cpu"):
        raise BadInputError("the onnx runtime runs on the CPU: use device='cpu' with it")
    loader = ThreadPoolExecutor(1, thread_name_prefix="sarcodec-load")
    loader.submit(_coder_version)  # for the header, off the main thread
    future = loader.submit(_load, model, device, runtime)
    loader.shutdown(wait=False)
    return future


def check_rate_options(quality: float | None, bpp: float | None, max_error: float | None,
                       max_error_units: str, lossless: bool, model: str | Path | None = None,
                       speckle: bool = False) -> Bound | None:
    """BadInputError unless the rate options of :func:`compress` go together and are in range (``speckle`` only
    with a lossy mode); returns the bound of a near-lossless or lossless request (None for the lossy modes). With
    ``model``, a quality is checked against that codec's levels too (read from its weights' metadata, without
    loading the network): for callers that check before any work, such as ``sarcodec batch``; :func:`compress`
    checks it on the loaded codec."""
    if quality is not None and bpp is not None:
        raise BadInputError("give either a quality or a target bpp, not both")
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise BadInputError(f"target bpp must be a positive number, got {bpp}")
    bound = bounded.bound_of(max_error, max_error_units, lossless, quality is not None or bpp is not None)
    if speckle and bound is not None:
        raise BadInputError("speckle synthesis is for lossy files: a near-lossless or lossless file keeps the "
                            "original's speckle itself")
    if quality is not None and bound is None and model is not None:
        levels = _levels_of(resolve_codec(model)[1])
        if not (math.isfinite(quality) and 1 <= quality <= (levels or math.inf)):
            top = levels or "the model's number of levels"
            raise BadInputError(f"quality must be between 1 and {top}, got {quality!r}")
    return bound


def _levels_of(weights: Path) -> int | None:
    """The number of quality levels recorded in a codec file's metadata (None when it does not say)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="np") as handle:
            config = json.loads((handle.metadata() or {}).get("config", "{}"))
        return len(config["lambdas"]) or None
    except Exception:  # noqa: BLE001 (an unreadable file: the codec's loading reports it)
        return None


#: The start of the TIFF Software tag of the GeoTIFFs that ``decompress`` writes.
SOFTWARE_PREFIX = "sarcodec "


def _check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    for source in inputs:
        with contextlib.suppress(OSError):
            if output.resolve() == source.resolve():
                raise OutputError(f"{output}: the output would overwrite the input")
    if output.is_dir():
        raise OutputError(f"{output}: is a directory")
    if output.exists() and not output.is_file():  # overwrite renames over it: /dev/null, as root, would be replaced
        raise OutputError(f"{output}: exists and is not a regular file (a device, pipe or socket)")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (pass overwrite=True to replace it)")
    if not output.parent.is_dir():
        raise OutputError(f"{output.parent}: no such directory")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"{output.parent}: not writable")


def _check_dtype_and_nodata(nodata: float | None, dtype: str) -> float | None:
    """The nodata of a raster the decoder can write back: a dtype GeoTIFF holds (not float16), and a nodata its
    dtype can hold (an integer in range for integer rasters; for floating-point ones the value as the dtype holds
    it, so -3.4028235e+38, float32's lowest as printed, is its lowest; NaN and inf are fine). Both were accepted
    before 0.7.11 and gave files that compressed but did not decode."""
    dt = np.dtype(dtype)
    if dt == np.float16:
        raise BadInputError("float16 rasters are not supported (a GeoTIFF cannot hold them): convert to float32")
    if nodata is None:
        return None
    if dt.kind in "ui":
        info = np.iinfo(dt)
        if not (math.isfinite(nodata) and nodata == int(nodata) and info.min <= nodata <= info.max):
            raise BadInputError(f"nodata {nodata} cannot be stored in {dt} (range {info.min}..{info.max})")
    elif dt.kind in "fc" and math.isfinite(nodata):
        with np.errstate(over="ignore"):
            held = float(np.array(nodata).astype(np.finfo(dt).dtype))
        if not math.isfinite(held):
            raise BadInputError(f"nodata {nodata:g} cannot be stored in {dt} (largest {float(np.finfo(dt).max):g})")
        return held
    return nodata


def _read_ahead(source: Any, windows: list[tuple[int, int, int, int]]) -> Iterator[npt.NDArray[Any]]:
    """``source.read`` of each window, the next one read on a thread while the caller works on this one (GDAL
    reads without the GIL: the histogram pass over a 10 000^2 uint16 scene overlaps its reading and counting)."""
    if not windows:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="sarcodec-read") as reader:
        pending = reader.submit(source.read, windows[0])
        for window in windows[1:]:
            block = pending.result()
            pending = reader.submit(source.read, window)
            yield block
        yield pending.result()


def _scene_params(source: Any, units: str | None, nodata: float | None,
                  percentiles: tuple[float, float]) -> tuple[PreprocessingParams, str]:
    """Per-scene params from a streaming dB histogram, and how the units were chosen."""
    info = source.info
    rule = "given"
    if units is None:
        dtype = np.dtype(info.dtype)  # only floats need a look at the values (dB or linear?)
        units, rule = infer_units(dtype, source.sample() if dtype.kind == "f" else None)
    units = check_units(units)
    if (np.dtype(info.dtype).kind == "c") != (units == "complex"):  # a complex raster's other parts were dropped
        raise BadInputError(f"units {units!r} do not fit a {info.dtype} raster: complex values take units 'complex' "
                            "(intensity |z|^2), and only they do")
    windows = [(row, 0, min(_HIST_ROWS, info.height - row), info.width) for row in range(0, info.height, _HIST_ROWS)]
    hist = db_histogram(_read_ahead(source, windows), units, nodata)
    if hist.total == 0:
        raise BadInputError(f"{info.path}: no valid pixels (all NaN, non-positive or nodata)")
    lo, hi = hist.clip_bounds(check_percentiles(percentiles))
    lo, hi = round(lo, 4), round(hi, 4)  # 0.0001 dB is far below the histogram's 0.001 dB bins; short headers
    params = make_params(units, info.dtype, lo, hi, clip_percentiles=percentiles, clip_scope="image", nodata=nodata)
    return params, rule


@functools.lru_cache(maxsize=1)
def _coder_version() -> str:
    from importlib.metadata import version  # ~40 ms of imports: compress asks for it on the loader thread first

    return version("constriction")


class _NoProgress:
    """What compress and decompress report progress to when not asked to (tqdm is not even imported)."""

    def update(self, n: int = 1) -> None:  # noqa: D102
        pass

    def close(self) -> None:  # noqa: D102
        pass


def _progress_bar(total: int, desc: str, progress: bool) -> Any:
    """A tqdm bar over ``total`` tiles on stderr when ``progress`` and stderr is a terminal (what tqdm's
    ``disable=None`` would decide), else :class:`_NoProgress`."""
    if not (progress and sys.stderr.isatty()):
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="tile", leave=False)


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
    runtime: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
    speckle: bool = False,
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
        runtime: ``"auto"``: on the CPU without PyTorch when the weights allow it (``sarcodec.codec.lite``: the
            same symbols as PyTorch's encoder, tested; the correction fitted against the decoder's own pixels);
            ``"torch"``: PyTorch; ``"onnx"``: only without PyTorch.
        speckle: also store the speckle the codec smooths away (a few bytes per 32 x 32 block; ``.sarc`` format 5,
            6 with several tiles), which ``decompress`` synthesizes back by default (``sarcodec.codec.sidelayer``):
            decoded images keep the original's speckle statistics (ENL) at a cost in squared error. Lossy modes
            only.
    """
    start = time.monotonic()
    if runtime == "onnx" and device in (None, "auto"):
        device = "cpu"
    bound = check_rate_options(quality, bpp, max_error, max_error_units, lossless, speckle=speckle)
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
        nodata = _check_dtype_and_nodata(nodata, info.dtype)
        if max(info.height, info.width) > MAX_SIDE:
            raise BadInputError(f"{info.height} x {info.width} pixels: the format holds sides up to {MAX_SIDE}; "
                                "split the raster into parts")
        if not within_limits(info.height, info.width, tile_size, overlap):
            raise BadInputError(f"{info.height} x {info.width} pixels with {tile_size} px tiles is beyond the format's "
                                f"limits (sides up to {MAX_SIDE}, width x tile rows up to {MAX_BAND_PIXELS}): use "
                                "smaller tiles")
        if bound is not None:
            bounded.check_bounded_input(bound, np.dtype(info.dtype))
        params, units_rule = _scene_params(reader, units, nodata, clip_percentiles)
        if bound is not None and np.dtype(info.dtype).kind == "f" and nodata is None:
            # a bounded file keeps every finite value (zeros and negatives too): its invalid pixels are the NaN and
            # Inf ones, and NaN gives them back as such (0, the lossy files' fill, read as a valid value)
            params = dataclasses.replace(params, invalid_fill=math.nan)
        rows, cols = tile_grid(info.height, tile_size), tile_grid(info.width, tile_size)
        if bound is None and len(rows) * len(cols) == 1 and DICTIONARY_OVERLAP <= tile_size // 2:
            overlap = DICTIONARY_OVERLAP  # no neighbour to overlap: the same pixels, a smaller header
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
        if header["gcps"]:  # such files are format 4 (sarcodec.io.gcps), whose readers take 'EPSG:n' as well
            try:
                check_points(header["gcps"]["points"])
            except ValueError as exc:
                raise BadInputError(f"the raster's ground control points cannot be stored: {exc}") from None
            header["gcps"]["crs"] = compact_crs(header["gcps"]["crs"])
        bar = _progress_bar(len(rows) * len(cols), "compress", progress)
        try:
            if bound is None:
                assert loading is not None
                codec = loading.result()
                q, note = lossy.compress_lossy(codec, reader, params, header, out, quality, bpp, bar, speckle)
                model_name, mode = codec.name, "lossy"
            else:
                header["bound"] = bound.to_json()
                header["crs"] = compact_crs(header["crs"])  # format 3 readers take 'EPSG:n' as well as WKT
                bounded.compress_bounded(reader, params, header, out, bound, bar)
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



def _codec_for(header: SarcHeader, model: str | Path | None, device: str | None, runtime: str = "torch"
               ) -> LoadedCodec | Any:
    """The decoder of a lossy file: the weights its header names (or ``model``), PyTorch's (on ``device``) or, by
    ``runtime`` (one of RUNTIMES, checked by the caller), the PyTorch-free one (``sarcodec.codec.lite``: on
    the CPU, for weights with the integer hyper-decoder)."""
    from sarcodec.codec.registry import shipped_codec_with_sha, shipped_codecs

    wanted = header.fields["model"]
    if model is None:  # the shipped weights with the header's SHA-256, whatever their name now
        model = shipped_codec_with_sha(wanted["sha256"])
    if model is None and wanted["name"] not in shipped_codecs():  # a header never picks a local file to load
        raise IncompatibleModelError(
            f"the file was written with model {wanted['name']!r} (sha256 {wanted['sha256'][:12]}...), which this "
            "installation does not ship; pass model=PATH with that .safetensors file"
        )
    name_or_path = model if model is not None else wanted["name"]
    try:
        codec = _load(name_or_path, device, runtime)
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

    def __init__(self, header: SarcHeader, path: Path | None, cog: bool, region: Region | None = None) -> None:
        f = header.fields
        self.dtype = np.dtype(f["dtype"])
        self.path = path
        self.cog = cog
        self.array: npt.NDArray[Any] | None = None
        self._dataset: Any = None
        region = region or Region.whole(header.height, header.width)
        if path is None:
            self.array = np.empty((region.height, region.width), self.dtype)
            return
        import rasterio
        from rasterio.transform import Affine

        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial.tif")
        nodata = float_from_json(f.get("nodata"))
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": region.height,
            "width": region.width,
            "count": 1,
            "dtype": self.dtype.name,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
            # lossless DEFLATE with the predictor for the dtype (floating point: 3, integers: 2): any GDAL reads it
            "compress": "DEFLATE",
            # GDAL compresses the blocks it holds when the file closes: on every core instead of one (same bytes)
            "num_threads": "ALL_CPUS",
            # every block written, even all-nodata ones (GDAL's default; raster.tiff_complete relies on it)
            "sparse_ok": False,
            **({"predictor": 3} if self.dtype.kind == "f" else {"predictor": 2} if self.dtype.kind in "ui" else {}),
        }
        try:
            if f.get("crs"):
                profile["crs"] = rasterio.crs.CRS.from_user_input(f["crs"])  # WKT, or 'EPSG:n' (format 3)
            if f.get("transform"):  # a region starts at its own first pixel, as gdal_translate -srcwin does
                profile["transform"] = (Affine(*[float(v) for v in f["transform"]])
                                        @ Affine.translation(region.col0, region.row0))
            gcps = None
            if f.get("gcps"):
                from rasterio.control import GroundControlPoint

                points = [GroundControlPoint(row=r - region.row0, col=c - region.col0, x=x, y=y, z=z)
                          for r, c, x, y, z in f["gcps"]["points"]]
                gcps = (points, rasterio.crs.CRS.from_user_input(f["gcps"]["crs"]))
        except (rasterio.errors.RasterioError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"the header's georeferencing cannot be used ({exc})") from None
        if nodata is not None:
            profile["nodata"] = nodata
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                self._dataset = rasterio.open(self._tmp, "w", **profile)
                # who wrote it: a batch resumes or rewrites only the GeoTIFFs sarcodec wrote (deploy.batch)
                self._dataset.update_tags(TIFFTAG_SOFTWARE=f"{SOFTWARE_PREFIX}{__version__}")
                if gcps is not None:
                    self._dataset.gcps = gcps
            except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
                self.abort()
                raise OutputError(f"{path}: cannot be written ({exc})") from None
            except BaseException:  # a signal (cli.Stopped) after GDAL created the file: nobody else can remove it
                self.abort()
                raise

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
        self._check_complete(self._tmp)
        if self.cog:
            cog_tmp = self._tmp.with_name(self._tmp.name + ".cog.tif")
            rasterio.shutil.copy(self._tmp, cog_tmp, driver="COG", compress="DEFLATE", BIGTIFF="IF_SAFER",
                                 num_threads="ALL_CPUS", sparse_ok=False)
            self._tmp.unlink()
            self._tmp = cog_tmp
            self._check_complete(self._tmp)
        os.replace(self._tmp, self.path)

    def _check_complete(self, tmp: Path) -> None:
        """OutputError unless GDAL wrote all of ``tmp`` (``raster.tiff_complete``): without this check a full disk
        gave exit 0 and an empty or truncated GeoTIFF (GDAL only prints its write errors)."""
        from sarcodec.io.raster import tiff_complete

        if not tiff_complete(tmp):
            raise OutputError(f"{self.path}: cannot be written (GDAL could not write all of the GeoTIFF: "
                              "is the disk full?)")

    def abort(self) -> None:
        if self.path is not None:
            try:
                if self._dataset is not None:
                    self._dataset.close()
            finally:
                for tmp in (self._tmp, self._tmp.with_name(self._tmp.name + ".cog.tif")):
                    tmp.unlink(missing_ok=True)


def decompress(
    path: str | Path,
    output: str | Path | None = None,
    *,
    model: str | Path | None = None,
    cog: bool = False,
    device: str | None = "cpu",
    runtime: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
    srcwin: tuple[int, int, int, int] | None = None,
    speckle: bool = True,
) -> DecompressResult:
    """Decode a ``.sarc`` file to a GeoTIFF at ``output`` (CRS, transform, nodata, units and dtype restored),
    or, without ``output``, to a NumPy array (``result.array``).

    ``cog=True`` writes a Cloud-Optimized GeoTIFF (DEFLATE). The file is checked whole (checksum) before any
    pixel is decoded; any damage raises CorruptFileError and nothing is written. ``runtime``: ``"auto"`` decodes
    on the CPU without PyTorch when the weights allow it (``sarcodec.codec.lite``: the same symbols, pixels within
    float rounding of PyTorch's), ``"torch"`` always with PyTorch, ``"onnx"`` only without it. ``srcwin``:
    ``(xoff, yoff, xsize, ysize)``, as ``gdal_translate -srcwin``: decode only the tiles that part of the raster
    needs and return (or write, georeferenced at its own first pixel) just that part, pixel for pixel what the
    whole file decodes to there. ``speckle=False``: a file written with ``compress(..., speckle=True)`` decodes
    without its synthesized speckle (the smooth image, with the same block means; other files are unchanged by it).
    """
    start = time.monotonic()
    check_runtime(runtime)
    src = Path(path)
    out = Path(output) if output is not None else None
    if out is not None:
        _check_output(out, overwrite, (src,))
    with SarcReader(src) as reader:
        header = reader.header
        params = params_of(header)
        region = None if srcwin is None else Region.from_srcwin(srcwin, header.height, header.width)
        if header.fields.get("bound") is not None:
            bound = Bound.from_json(header.fields["bound"])
            if header.overlap != 0 or (bound.lossless and np.dtype(params.dtype).kind not in "ui"):
                raise CorruptFileError(f"{src}: a bounded file with overlapping tiles or a lossless float raster")
            run: Callable[[Any, _Output, Any], None] = functools.partial(bounded.decode_bounded_bands, header, params,
                                                                         bound, region=region)
        else:
            codec = _codec_for(header, model, device, runtime)
            try:
                quality = codec.model.check_quality(float(header.fields["quality"]))
            except IncompatibleModelError as exc:
                raise CorruptFileError(f"{src}: the header's {exc}") from None
            run = functools.partial(lossy.decode_lossy_bands, header, params, codec, quality, region=region,
                                    speckle=speckle)
        sink = _Output(header, out, cog, region)
        bar = _progress_bar(_tiles_decoded(header, region), "decompress", progress)
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
    shape = (header.height, header.width) if region is None else (region.height, region.width)
    return DecompressResult(sink.array, out, *shape, str(sink.dtype), time.monotonic() - start)


def _tiles_decoded(header: SarcHeader, region: Region | None) -> int:
    """How many tiles decoding ``region`` (None: all) takes: those whose extended extent meets it."""
    if region is None:
        return int(header.fields["n_tiles"])
    overlap = 0 if header.fields.get("bound") else header.overlap  # bounded tiles do not blend
    rows, cols = region.tiles(header.rows(), header.cols(), header.height, header.width, overlap)
    return sum(rows) * len(cols)


