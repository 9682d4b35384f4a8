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

Determinism. The bitstream decodes to the same symbols everywhere (integer tables, CPU probability path, see
``sarcodec.codec.models``); the synthesis transform runs in float32 with a fixed order of operations for a
given device, so the pixels are identical across CPU thread counts (tested).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm

from sarcodec import __version__
from sarcodec.codec.container import (
    MAX_TILE,
    SarcHeader,
    float_from_json,
    float_to_json,
)
from sarcodec.codec.container import SarcReader, SarcWriter, decode_mask, encode_mask, tile_grid
from sarcodec.codec.registry import DEFAULT_CODEC, LoadedCodec, load_codec
from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, OutputError, SarcodecError
from sarcodec.io.raster import RasterInfo, open_raster
from sarcodec.preprocess import (
    DEFAULT_CLIP_PERCENTILES,
    PreprocessingParams,
    check_percentiles,
    check_units,
    db_histogram,
    forward,
    infer_units,
    inverse,
    make_params,
)

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_QUALITY",
    "DEFAULT_TILE",
    "CompressResult",
    "DecompressResult",
    "compress",
    "decompress",
    "read_info",
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
    quality: float
    model: str
    height: int
    width: int
    units: str
    seconds: float
    note: str = ""
    units_rule: str = "given"  # how ``units`` was chosen (the inference rule when not given)


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
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BadInputError(f"unknown device {device!r}") from None


def _extended(start: int, stop: int, length: int, overlap: int) -> tuple[int, int]:
    return max(0, start - overlap), min(length, stop + overlap)


def _ramp(start: int, stop: int, length: int, overlap: int) -> npt.NDArray[np.float32]:
    """Blend weights over the extended interval of core [start, stop): linear ramps over the 2*overlap strips."""
    e0, e1 = _extended(start, stop, length, overlap)
    p = np.arange(e0, e1, dtype=np.float64) + 0.5
    w = np.ones(e1 - e0)
    if overlap > 0:
        if start > 0:
            w *= np.clip((p - (start - overlap)) / (2 * overlap), 0, 1)
        if stop < length:
            w *= np.clip(((stop + overlap) - p) / (2 * overlap), 0, 1)
    return w.astype(np.float32)


def _check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    for source in inputs:
        with contextlib.suppress(OSError):
            if output.resolve() == source.resolve():
                raise OutputError(f"{output}: the output would overwrite the input")
    if output.is_dir():
        raise OutputError(f"{output}: is a directory")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: exists (pass --overwrite to replace it)")
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


def _bands(source: Any, params: PreprocessingParams, tile: int, overlap: int) -> Iterator[tuple[int, int, npt.NDArray[np.float32], npt.NDArray[np.bool_]]]:
    """Per tile row band: (core start, core stop, x_norm of the extended rows, validity of the core rows)."""
    h, w = source.info.height, source.info.width
    for r0, r1 in tile_grid(h, tile):
        e0, e1 = _extended(r0, r1, h, overlap)
        x, valid = forward(source.read((e0, 0, e1 - e0, w)), params)
        yield r0, r1, x, valid[r0 - e0 : r1 - e0]


def _tiles_of_band(x_band: npt.NDArray[np.float32], width: int, tile: int, overlap: int) -> Iterator[npt.NDArray[np.float32]]:
    for c0, c1 in tile_grid(width, tile):
        e0, e1 = _extended(c0, c1, width, overlap)
        yield x_band[:, e0:e1]


def _to_tensor(x: npt.NDArray[np.float32]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]


def _choose_quality(codec: LoadedCodec, source: Any, params: PreprocessingParams, target: float, tile: int, overlap: int) -> tuple[float, str]:
    """Highest quality whose bitrate on a sample of up to 6 tiles is <= ``target`` bpp (bisection, 8 steps)."""
    info = source.info
    rows, cols = tile_grid(info.height, tile), tile_grid(info.width, tile)
    cells = [(r, c) for r in range(len(rows)) for c in range(len(cols))]
    picked = [cells[i] for i in np.unique(np.linspace(0, len(cells) - 1, min(6, len(cells))).round().astype(int))]
    samples = []
    for r, c in picked:
        (r0, r1), (c0, c1) = rows[r], cols[c]
        e0, e1 = _extended(r0, r1, info.height, overlap)
        f0, f1 = _extended(c0, c1, info.width, overlap)
        x, _ = forward(source.read((e0, f0, e1 - e0, f1 - f0)), params)
        samples.append((_to_tensor(x), (r1 - r0) * (c1 - c0)))
    pixels = sum(n for _, n in samples)

    def rate(q: float) -> float:
        return float(sum(len(codec.model.compress_tile(t, q)) for t, _ in samples) * 8 / pixels)

    lo, hi = 1.0, float(codec.num_levels)
    lowest = rate(lo)
    if lowest > target:
        return lo, f"the lowest quality already needs about {lowest:.3f} bpp for its tiles > target {target:.3f}"
    if rate(hi) <= target:
        return hi, ""
    for _ in range(8):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) <= target else (lo, mid)
    return math.floor(lo * 1e4) / 1e4, ""


def compress(
    source: str | Path | npt.NDArray[Any],
    output: str | Path,
    *,
    quality: float | None = None,
    bpp: float | None = None,
    model: str | Path = DEFAULT_CODEC,
    units: str | None = None,
    band: int | None = None,
    nodata: float | None = None,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
    tile_size: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    device: str | None = "auto",
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
        model: a shipped codec name (``sarcodec.codec.registry.shipped_codecs()``) or a ``.safetensors`` path.
        units, band, nodata, clip_percentiles: input interpretation (see ``sarcodec.preprocess``).
        tile_size, overlap: tiling (core size and overlap in pixels).
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``...
    """
    start = time.monotonic()
    if quality is not None and bpp is not None:
        raise BadInputError("give either a quality or a target bpp, not both")
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise BadInputError(f"target bpp must be a positive number, got {bpp}")
    if not 16 <= tile_size <= MAX_TILE or not 0 <= overlap <= tile_size // 2:
        raise BadInputError(f"tile size must be 16..{MAX_TILE} and overlap 0..tile/2, got {tile_size} and {overlap}")
    out = Path(output)
    inputs: tuple[Path, ...] = () if isinstance(source, np.ndarray) else (Path(source),)
    _check_output(out, overwrite, inputs)
    codec = load_codec(model, _device(device))
    if quality is not None:
        codec.model.check_quality(quality)
    reader: Any = _ArraySource(source, nodata) if isinstance(source, np.ndarray) else open_raster(source, band)
    try:
        info = reader.info
        if nodata is None:
            nodata = info.nodata
        _check_nodata(nodata, info.dtype)
        params, units_rule = _scene_params(reader, units, nodata, clip_percentiles)
        rows, cols = tile_grid(info.height, tile_size), tile_grid(info.width, tile_size)
        header: dict[str, Any] = {
            "created_by": f"sarcodec {__version__}",
            "model": {"name": codec.name, "sha256": codec.sha256, "codec": codec.model.codec_name},
            "quality": float(DEFAULT_QUALITY if quality is None else quality),
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
        }
        note = ""
        if bpp is not None:
            # Header, record lengths and checksum are part of the bitrate; the tiles get what is left.
            fixed = len(json.dumps(header, separators=(",", ":"))) + 16 + 4 * len(rows) * (1 + len(cols)) + 4
            header["quality"], note = _choose_quality(codec, reader, params, bpp - fixed * 8 / (info.height * info.width),
                                                      tile_size, overlap)
        q = header["quality"]
        bar = tqdm(total=len(rows) * len(cols), desc="compress", unit="tile", disable=None if progress else True, leave=False)
        try:
            with SarcWriter(out, header) as writer:
                for _, _, x_band, valid in _bands(reader, params, tile_size, overlap):
                    writer.band(encode_mask(valid))
                    for x_tile in _tiles_of_band(x_band, info.width, tile_size, overlap):
                        writer.tile(codec.model.compress_tile(_to_tensor(x_tile), q))
                        bar.update()
        except OSError as exc:
            raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
        finally:
            bar.close()
        size = out.stat().st_size
    finally:
        reader.close()
    return CompressResult(out, size, size * 8 / (info.height * info.width), q, codec.name, info.height,
                          info.width, params.units, time.monotonic() - start, note, units_rule)


def read_info(path: str | Path) -> dict[str, Any]:
    """The header of a ``.sarc`` file (checksum verified) plus its size and bitrate."""
    with SarcReader(path) as reader:
        fields = dict(reader.header.fields)
        fields["preprocessing_params"] = _params_of(reader.header).to_dict()
        fields["file_bytes"] = reader.size
        fields["bpp"] = reader.size * 8 / (reader.header.height * reader.header.width)
        return fields


def _params_of(header: SarcHeader) -> PreprocessingParams:
    """The header's preprocessing params, checked well enough to invert with them (else CorruptFileError)."""
    params = PreprocessingParams.from_dict(header.fields["preprocessing_params"])
    try:
        fill = params.invalid_fill
        ok = np.dtype(params.dtype).kind in "uifc" and (fill is None or isinstance(fill, int | float))
    except TypeError:
        ok = False
    if not ok or params.dtype != header.fields["dtype"] or params.units != header.fields["units"]:
        raise CorruptFileError("the header's preprocessing_params are malformed or disagree with its dtype/units")
    return params


def _codec_for(header: SarcHeader, model: str | Path | None, device: torch.device) -> LoadedCodec:
    from sarcodec.codec.registry import shipped_codecs

    wanted = header.fields["model"]
    if model is None and wanted["name"] not in shipped_codecs():  # a header never picks a local file to load
        raise IncompatibleModelError(
            f"the file was written with model {wanted['name']!r} (sha256 {wanted['sha256'][:12]}...), which this "
            "installation does not ship; pass --model with that .safetensors file"
        )
    try:
        codec = load_codec(model if model is not None else wanted["name"], device)
    except IncompatibleModelError:
        if model is not None:
            raise
        raise IncompatibleModelError(
            f"the file was written with model {wanted['name']!r} (sha256 {wanted['sha256'][:12]}...), which this "
            "installation does not ship; pass --model with that .safetensors file"
        ) from None
    if codec.sha256 != wanted["sha256"]:
        raise IncompatibleModelError(
            f"the file needs model {wanted['name']!r} with sha256 {wanted['sha256'][:12]}..., but {codec.path} has "
            f"{codec.sha256[:12]}...; pass --model with the exact weights that encoded it"
        )
    return codec


class _Blender:
    """Accumulates weighted tiles over a rolling band of full-width rows and releases finished rows."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.start = 0
        self.values = np.zeros((0, width), np.float32)
        self.weights = np.zeros((0, width), np.float32)

    def add(self, row: int, col: int, tile: npt.NDArray[np.float32], weight: npt.NDArray[np.float32]) -> None:
        end = row + tile.shape[0]
        grow = end - (self.start + self.values.shape[0])
        if grow > 0:
            self.values = np.concatenate([self.values, np.zeros((grow, self.width), np.float32)])
            self.weights = np.concatenate([self.weights, np.zeros((grow, self.width), np.float32)])
        r = row - self.start
        self.values[r : r + tile.shape[0], col : col + tile.shape[1]] += tile * weight
        self.weights[r : r + tile.shape[0], col : col + tile.shape[1]] += weight

    def pop(self, until: int) -> npt.NDArray[np.float32]:
        n = until - self.start
        out = (self.values[:n] / np.maximum(self.weights[:n], np.float32(1e-12))).astype(np.float32)
        self.values, self.weights = self.values[n:], self.weights[n:]
        self.start = until
        return out


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
        }
        try:
            if f.get("crs"):
                profile["crs"] = rasterio.crs.CRS.from_wkt(f["crs"])
            if f.get("transform"):
                profile["transform"] = Affine(*[float(v) for v in f["transform"]])
            gcps = None
            if f.get("gcps"):
                from rasterio.control import GroundControlPoint

                points = [GroundControlPoint(row=r, col=c, x=x, y=y, z=z) for r, c, x, y, z in f["gcps"]["points"]]
                gcps = (points, rasterio.crs.CRS.from_wkt(f["gcps"]["crs"]))
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


def decompress(
    path: str | Path,
    output: str | Path | None = None,
    *,
    model: str | Path | None = None,
    cog: bool = False,
    device: str | None = "auto",
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
        params = _params_of(header)
        codec = _codec_for(header, model, _device(device))
        quality = codec.model.check_quality(float(header.fields["quality"]))
        h, w, overlap = header.height, header.width, header.overlap
        col_grid = header.cols()
        sink = _Output(header, out, cog)
        blender = _Blender(w)
        masks: list[tuple[int, npt.NDArray[np.bool_]]] = []
        bar = tqdm(total=int(header.fields["n_tiles"]), desc="decompress", unit="tile", disable=None if progress else True, leave=False)
        try:
            for (r0, r1), (mask_bytes, payloads) in zip(header.rows(), reader.bands()):
                masks.append((r0, decode_mask(mask_bytes, (r1 - r0, w))))
                e0, e1 = _extended(r0, r1, h, overlap)
                row_weight = _ramp(r0, r1, h, overlap)[:, None]
                for (c0, c1), payload in zip(col_grid, payloads):
                    f0, f1 = _extended(c0, c1, w, overlap)
                    x = codec.model.decompress_tile(payload, e1 - e0, f1 - f0, quality)[0, 0].numpy()
                    blender.add(e0, f0, x, row_weight * _ramp(c0, c1, w, overlap)[None, :])
                    bar.update()
                done = h if r1 == h else r1 - overlap
                first = blender.start
                x_rows = blender.pop(done)
                valid = np.concatenate([m for _, m in masks])[first - masks[0][0] : done - masks[0][0]]
                sink.write(first, inverse(x_rows, params, valid))
                masks = [(r, m) for r, m in masks if r + m.shape[0] > done]
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
    return DecompressResult(sink.array, out, h, w, str(sink.dtype), time.monotonic() - start)
