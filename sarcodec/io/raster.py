"""Raster input: GeoTIFF (and anything GDAL reads) through rasterio, and NumPy ``.npy`` files.

Readers never load a whole raster unless asked: ``read(window)`` reads a window, so scenes of any size
stream through bounded memory. Georeferencing (CRS, affine transform, nodata) is carried along in
:class:`RasterInfo` as plain JSON-able values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError

RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".npy")

Window = tuple[int, int, int, int]
"""(row_off, col_off, height, width) in pixels."""


@dataclass(frozen=True)
class RasterInfo:
    """What a raster is, without its pixels. ``transform`` is the 6 GDAL-order affine coefficients
    (a, b, c, d, e, f as in ``affine.Affine``) or None; ``crs`` is WKT or None."""

    path: str
    height: int
    width: int
    band_count: int
    band: int
    dtype: str
    crs: str | None
    transform: tuple[float, ...] | None
    nodata: float | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["nodata"] is not None and math.isnan(out["nodata"]):
            out["nodata"] = "nan"
        out["transform"] = None if self.transform is None else list(self.transform)
        return out


def _choose_band(path: Path, band_count: int, band: int | None) -> int:
    """1-based band index; a multi-band raster requires an explicit choice."""
    if band is None:
        if band_count > 1:
            raise BadInputError(f"{path}: has {band_count} bands; choose one with band=N (1..{band_count})")
        return 1
    if not 1 <= band <= band_count:
        raise BadInputError(f"{path}: band {band} out of range 1..{band_count}")
    return band


class RasterReader:
    """Windowed reads of one band of a raster. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, band: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BadInputError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise BadInputError(f"{self.path}: is a directory, expected a raster file")
        self._dataset: Any = None
        self._array: npt.NDArray[Any] | None = None
        if self.path.suffix.lower() == ".npy":
            self.info = self._open_npy(band)
        else:
            self.info = self._open_gdal(band)
        if self.info.height == 0 or self.info.width == 0:
            self.close()
            raise BadInputError(f"{self.path}: empty raster ({self.info.height} x {self.info.width} pixels)")

    def _open_npy(self, band: int | None) -> RasterInfo:
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BadInputError(f"{self.path}: not a readable .npy array ({_short(exc)})") from None
        if arr.ndim == 2:
            band_count = 1
        elif arr.ndim == 3:
            band_count = arr.shape[0]
        else:
            raise BadInputError(f"{self.path}: expected a 2-D (H, W) or 3-D (bands, H, W) array, got shape {arr.shape}")
        if arr.dtype.kind not in "uifc":
            raise BadInputError(f"{self.path}: unsupported array dtype {arr.dtype}")
        chosen = _choose_band(self.path, band_count, band)
        self._array = arr if arr.ndim == 2 else arr[chosen - 1]
        h, w = self._array.shape
        return RasterInfo(str(self.path), int(h), int(w), band_count, chosen, str(arr.dtype), None, None, None)

    def _open_gdal(self, band: int | None) -> RasterInfo:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                ds = rasterio.open(self.path)
        except (RasterioError, OSError) as exc:
            raise BadInputError(f"{self.path}: not a readable raster ({_short(exc)})") from None
        self._dataset = ds
        try:
            chosen = _choose_band(self.path, ds.count, band)
        except BadInputError:
            self.close()
            raise
        dtype = ds.dtypes[chosen - 1]
        if dtype == "complex_int16":  # GDAL CInt16 (Sentinel-1 SLC): read as complex64
            dtype = "complex64"
        georef = ds.crs is not None or not ds.transform.is_identity
        nodata = ds.nodatavals[chosen - 1]
        return RasterInfo(
            path=str(self.path),
            height=int(ds.height),
            width=int(ds.width),
            band_count=int(ds.count),
            band=chosen,
            dtype=str(np.dtype(dtype)),
            crs=ds.crs.to_wkt() if ds.crs is not None else None,
            transform=tuple(float(v) for v in tuple(ds.transform)[:6]) if georef else None,
            nodata=None if nodata is None else float(nodata),
        )

    def read(self, window: Window | None = None) -> npt.NDArray[Any]:
        """Read ``window`` (row_off, col_off, height, width) of the chosen band, or the whole band."""
        row, col, h, w = window if window is not None else (0, 0, self.info.height, self.info.width)
        if self._array is not None:
            return np.array(self._array[row : row + h, col : col + w])
        from rasterio.errors import RasterioError
        from rasterio.windows import Window as RioWindow

        try:
            out: npt.NDArray[Any] = self._dataset.read(
                self.info.band, window=RioWindow(col, row, w, h), out_dtype=self.info.dtype
            )
        except (RasterioError, OSError) as exc:
            raise BadInputError(f"{self.path}: read failed ({_short(exc)})") from None
        return out

    def sample(self, max_pixels: int = 65536) -> npt.NDArray[Any]:
        """A small, spread-out sample of pixel values (a strided read), e.g. for unit inference."""
        h, w = self.info.shape
        step = max(1, int(math.ceil(math.sqrt(h * w / max_pixels))))
        rows = range(0, h, max(step, max(1, h // 64)))
        parts = [self.read((r, 0, 1, w))[0, ::step] for r in rows]
        return np.concatenate(parts)

    def iter_row_blocks(self, block_rows: int) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        """Yield ``(row_off, block)`` for full-width blocks of ``block_rows`` rows covering the band."""
        for row in range(0, self.info.height, block_rows):
            h = min(block_rows, self.info.height - row)
            yield row, self.read((row, 0, h, self.info.width))

    def gcps(self) -> dict[str, Any] | None:
        """Ground control points of a GCP-georeferenced raster (e.g. Sentinel-1 GRD from SAFE) as
        ``{"crs": WKT, "points": [[row, col, x, y, z], ...]}``, or None."""
        if self._dataset is None:
            return None
        points, crs = self._dataset.gcps
        if not points or crs is None:
            return None
        return {"crs": crs.to_wkt(), "points": [[float(p.row), float(p.col), float(p.x), float(p.y), float(p.z or 0.0)]
                                               for p in points]}

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None
        self._array = None

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_raster(path: str | Path, band: int | None = None) -> RasterReader:
    """Open one band of a GeoTIFF or ``.npy`` file for windowed reads (raises BadInputError)."""
    return RasterReader(path, band)


def find_rasters(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and directories (recursively, sorted) into raster files.

    A path that does not exist is an error; a directory with no raster files is an error. Inside directories,
    hidden folders and folders holding a ``manifest.json`` (sarcodec outputs, e.g. a dataset written into an input
    folder) are skipped.
    """
    return expand_paths(paths, lambda f, root: f.suffix.lower() in RASTER_SUFFIXES and not _skipped(f, root),
                        f"raster files ({', '.join(RASTER_SUFFIXES)})")


def expand_paths(paths: Sequence[str | Path], accept: Callable[[Path, Path], bool], what: str) -> list[Path]:
    """Files as given, and directories expanded (recursively, sorted) into their files ``accept(file, directory)``
    takes; a missing path, or a directory with none of them (``what`` names them in the error), is bad input."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise BadInputError(f"{p}: no such file or directory")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and accept(f, p))
            if not files:
                raise BadInputError(f"{p}: no {what} found")
            found.extend(files)
        else:
            found.append(p)
    return found


def _skipped(path: Path, root: Path) -> bool:
    """True for files below a hidden folder or a folder holding a manifest.json, relative to ``root``."""
    for folder in path.relative_to(root).parents:
        if folder.name.startswith(".") or (root / folder / "manifest.json").is_file():
            return True
    return False


def _short(exc: BaseException) -> str:
    """First line of an exception message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def compact_crs(wkt: str | None) -> str | None:
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


def tiff_complete(path: str | Path) -> bool:
    """Whether the TIFF at ``path`` opens and every block (tile or strip) of every band, overviews aside, has bytes
    that lie within the file: what a GeoTIFF that GDAL could not finish (a full disk, a quota, a copy cut short)
    lacks. GDAL reports a failed write only on stderr and rasterio (1.4.4) raises on it neither in ``write`` nor in
    ``close``. Reads the TIFF directory only (a 30 000^2 BigTIFF's ~14 000 blocks in ~0.05 s). A block GDAL left
    sparse counts as missing: write with ``SPARSE_OK=FALSE`` (GDAL's default)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        size = Path(path).stat().st_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                block_h, block_w = ds.block_shapes[0]
                for band in ds.indexes:
                    for y in range(-(-ds.height // block_h)):
                        for x in range(-(-ds.width // block_w)):
                            offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                            count = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                            if not offset or not count or int(offset) + int(count) > size:
                                return False
    except (RasterioError, OSError, ValueError):
        return False
    return True
