"""``sarcodec benchmark --near-lossless``: file size at a guaranteed error bound, against what SAR archives use.

Near-lossless, per image and bound E (dB): ``sarcodec compress --max-error E`` against GDAL's LERC_ZSTD and
LERC_DEFLATE (through rasterio) on the image's dB values in float32 with ``MAX_Z_ERROR = E`` (the same bound:
LERC bounds the absolute error of what it is given, here dB; it is checked against those float32 values, sarcodec
against the original's; LERC gets one float32 spacing of slack: it exceeds E by float32 rounding). Lossless, per integer image: ``sarcodec compress --lossless``
against GeoTIFF ZSTD and DEFLATE with the horizontal predictor (GDAL, highest levels), JPEG XL lossless and JPEG
2000 lossless (imagecodecs). Every decoded file is read back and checked against its bound on every valid pixel
(a violation stops the benchmark). Sizes are whole files (headers included, the GeoTIFFs with the source's CRS,
transform or GCPs, as sarcodec keeps them), in bits per pixel of the image.

Writes ``near_lossless.json`` (every row), ``near_lossless.csv`` and ``near_lossless.md`` (median size ratio to
LERC_ZSTD per group and bound, the lossless table, MP/s, and the check).
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.codec.bounded import db_of
from sarcodec.errors import BadInputError
from sarcodec.io.folders import results_folder
from sarcodec.evaluate import image_group
from sarcodec.io.raster import find_rasters, open_raster
from sarcodec.preprocess import infer_units

__all__ = ["DEFAULT_BOUNDS_DB", "SINGLE_LOOK_GROUPS", "run_bounded_benchmark"]

DEFAULT_BOUNDS_DB = (0.1, 0.25, 0.5, 1.0)
#: Groups of ../shared/data/sar/dev (1 to 2.7 looks, see its README); everything else is reported as multi-look.
SINGLE_LOOK_GROUPS = ("sentinel1", "airsar", "pisar", "mstar")


def _group(path: Path, root: Path) -> str:
    """The dev set's groups by file name; other files by the first folder below the input they came from."""
    group = image_group(path)
    if group != "other":
        return group
    relative = path.relative_to(root).parts if root.is_dir() else ()
    return relative[0] if len(relative) > 1 else (root.name if root.is_dir() else path.parent.name)


def _gdal_bytes(array: npt.NDArray[Any], nodata: float | None, georef: dict[str, Any],
                **creation: Any) -> tuple[int, npt.NDArray[Any]]:
    """Size of a GeoTIFF of ``array`` with the source's georeferencing (``georef``: crs, transform, gcps), written
    by GDAL with ``creation`` options, and what it reads back."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    profile = dict(driver="GTiff", height=array.shape[0], width=array.shape[1], count=1, dtype=array.dtype.name,
                   tiled=True, blockxsize=256, blockysize=256, **creation)
    if nodata is not None:
        profile["nodata"] = nodata
    with MemoryFile() as memfile:
        with memfile.open(**profile, **{k: v for k, v in georef.items() if k != "gcps"}) as dataset:
            dataset.write(array, 1)
            if georef.get("gcps"):
                dataset.gcps = georef["gcps"]
        size = len(memfile.read())
        with memfile.open() as dataset:
            back = dataset.read(1)
    return size, back


def _georef(path: Path) -> dict[str, Any]:
    """The source's CRS, transform and GCPs as rasterio profile entries (what any GeoTIFF copy of it would hold)."""
    import rasterio

    if path.suffix.lower() == ".npy":
        return {}
    with rasterio.open(path) as dataset:
        out: dict[str, Any] = {}
        if dataset.crs is not None:
            out["crs"] = dataset.crs
        if not dataset.transform.is_identity:
            out["transform"] = dataset.transform
        if dataset.gcps[0]:
            out["gcps"] = dataset.gcps
        return out


def _check_db(name: str, original_db: npt.NDArray[np.float64], decoded_db: npt.NDArray[np.float64],
              use: npt.NDArray[np.bool_], bound: float, slack: npt.NDArray[np.float64] | float = 0.0) -> float:
    error = np.abs(decoded_db[use] - original_db[use])
    worst = float(error.max(initial=0.0))
    if not np.all(error <= bound + (slack[use] if isinstance(slack, np.ndarray) else slack)):  # NaN fails too
        raise RuntimeError(f"{name}: bound {bound} dB violated (worst {worst})")
    return worst


def _lossless_anchors(georef: dict[str, Any]) -> dict[str, Callable[[npt.NDArray[Any]], tuple[int, npt.NDArray[Any]]]]:
    """The lossless references: GeoTIFFs with the source's georeferencing; JPEG XL and JPEG 2000 codestreams, which
    carry none (slightly in their favour)."""
    import imagecodecs

    def jxl(a: npt.NDArray[Any]) -> tuple[int, npt.NDArray[Any]]:
        data = imagecodecs.jpegxl_encode(a, lossless=True, effort=9)
        return len(data), imagecodecs.jpegxl_decode(data)

    def j2k(a: npt.NDArray[Any]) -> tuple[int, npt.NDArray[Any]]:
        data = imagecodecs.jpeg2k_encode(a, level=0, reversible=True)
        return len(data), imagecodecs.jpeg2k_decode(data)

    return {
        "gtiff-zstd-pred2": lambda a: _gdal_bytes(a, None, georef, compress="ZSTD", predictor=2, zstd_level=22),
        "gtiff-deflate-pred2": lambda a: _gdal_bytes(a, None, georef, compress="DEFLATE", predictor=2, zlevel=9),
        "jpegxl-lossless": jxl,
        "jpeg2000-lossless": j2k,
    }


def run_bounded_benchmark(inputs: Sequence[str | Path], output: str | Path, *,
                          bounds_db: Sequence[float] = DEFAULT_BOUNDS_DB,
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the near-lossless and lossless comparison; returns ``{"rows": [...], "summary": [...]}``."""
    from sarcodec.codec.api import compress, decompress

    out = Path(output)
    files = [(path, Path(root)) for root in inputs for path in find_rasters([root])]
    if not files:
        raise BadInputError("no rasters found in the given inputs")
    results_folder(out, "near_lossless.json", "near-lossless benchmark")
    rows: list[dict[str, Any]] = []
    names = [p.name for p, _ in files]  # images are keyed by name, same-named ones get their folder too
    with tempfile.TemporaryDirectory(prefix="sarcodec-bounded-") as scratch:
        for i, (path, root) in enumerate(files, 1):
            reader = open_raster(path)
            try:
                raw, info = reader.read(), reader.info
                units, _ = infer_units(np.dtype(info.dtype), reader.sample())
                georef = _georef(path)
            finally:
                reader.close()
            valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
            if info.nodata is not None:
                valid &= ~((raw == info.nodata) | (np.isnan(raw) if np.isnan(info.nodata) else False))
            pixels = raw.size
            group = _group(path, root)
            log(f"[{i}/{len(files)}] {path.name} ({group}, {raw.shape[0]} x {raw.shape[1]} {raw.dtype}, {units})")
            original_db = db_of(raw, units)
            has_db = valid & np.isfinite(original_db)
            label = path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"
            base = {"image": label, "group": group, "looks": "single" if group in SINGLE_LOOK_GROUPS else "multi",
                    "pixels": pixels, "dtype": str(raw.dtype), "units": units}
            sarc, rec = Path(scratch) / "x.sarc", Path(scratch) / "x.tif"
            for bound in bounds_db:
                t0 = time.perf_counter()
                compress(path, sarc, max_error=bound, units=units, overwrite=True)
                t1 = time.perf_counter()
                decoded = decompress(sarc, rec, overwrite=True)
                t2 = time.perf_counter()
                back = open_raster(rec).read()
                worst = _check_db(f"sarcodec {path.name}", original_db, db_of(back, units), has_db, bound)
                if not np.array_equal(back[valid & ~has_db], raw[valid & ~has_db]):
                    raise RuntimeError(f"sarcodec {path.name}: a pixel without dB was not kept exactly")
                assert decoded.path is not None
                rows.append({**base, "mode": "near-lossless", "bound_db": bound, "codec": "sarcodec",
                             "bytes": sarc.stat().st_size, "bpp": sarc.stat().st_size * 8 / pixels, "worst": worst,
                             "encode_mps": pixels / 1e6 / (t1 - t0), "decode_mps": pixels / 1e6 / (t2 - t1)})
                db32 = np.where(has_db, original_db, np.nan).astype(np.float32)
                for codec in ("LERC_ZSTD", "LERC_DEFLATE"):
                    t0 = time.perf_counter()
                    size, lerc_back = _gdal_bytes(db32, float("nan"), georef, compress=codec, max_z_error=bound)
                    seconds = time.perf_counter() - t0
                    # LERC bounds the error to what it was given, the dB values in float32, up to their rounding
                    # (measured: 0.1000004 at 0.1 dB): one float32 spacing of slack
                    worst = _check_db(f"{codec} {path.name}", db32.astype(np.float64), lerc_back.astype(np.float64),
                                      has_db, bound, np.spacing(np.abs(db32)).astype(np.float64))
                    rows.append({**base, "mode": "near-lossless", "bound_db": bound, "codec": codec.lower(),
                                 "bytes": size, "bpp": size * 8 / pixels, "worst": worst,
                                 "encode_mps": float("nan"), "decode_mps": float("nan"),
                                 "roundtrip_mps": pixels / 1e6 / seconds})
            if raw.dtype.kind in "ui" and raw.dtype.itemsize <= 2:
                t0 = time.perf_counter()
                compress(path, sarc, lossless=True, units=units, overwrite=True)
                t1 = time.perf_counter()
                decompress(sarc, rec, overwrite=True)
                t2 = time.perf_counter()
                if not np.array_equal(open_raster(rec).read()[valid], raw[valid]):
                    raise RuntimeError(f"sarcodec lossless {path.name}: not exact")
                rows.append({**base, "mode": "lossless", "codec": "sarcodec", "bytes": sarc.stat().st_size,
                             "bpp": sarc.stat().st_size * 8 / pixels, "encode_mps": pixels / 1e6 / (t1 - t0),
                             "decode_mps": pixels / 1e6 / (t2 - t1)})
                for name, anchor in _lossless_anchors(georef).items():
                    size, anchor_back = anchor(raw)
                    if not np.array_equal(np.asarray(anchor_back).reshape(raw.shape), raw):
                        raise RuntimeError(f"{name} {path.name}: not exact")
                    rows.append({**base, "mode": "lossless", "codec": name, "bytes": size, "bpp": size * 8 / pixels})
    summary = _summarize(rows)
    _write(out, rows, summary)
    return {"rows": rows, "summary": summary}


def _summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group and bound: median bpp of each codec and the median per-image size ratio sarcodec / LERC_ZSTD."""
    cells: dict[tuple[str, str, float], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    looks: dict[str, str] = {}
    for r in rows:
        if r["mode"] == "near-lossless":
            cells[(r["group"], r["mode"], r["bound_db"])][r["image"]][r["codec"]] = r["bpp"]
        else:
            cells[(r["group"], r["mode"], 0.0)][r["image"]][r["codec"]] = r["bpp"]
        looks[r["group"]] = r["looks"]
    summary = []
    for (group, mode, bound), images in sorted(cells.items()):
        codecs = sorted({c for per in images.values() for c in per})
        entry: dict[str, Any] = {"group": group, "looks": looks[group], "mode": mode, "bound_db": bound,
                                 "images": len(images)}
        for c in codecs:
            entry[f"{c}_bpp"] = float(np.median([per[c] for per in images.values() if c in per]))
        anchor = "lerc_zstd" if mode == "near-lossless" else None
        if anchor is None:  # lossless: against the best classical codec of each image
            ratios = [per["sarcodec"] / min(v for k, v in per.items() if k != "sarcodec") for per in images.values()]
        else:
            ratios = [per["sarcodec"] / per[anchor] for per in images.values()]
        entry["median_size_ratio"] = float(np.median(ratios))
        summary.append(entry)
    return summary


def _write(out: Path, rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]]) -> None:
    (out / "near_lossless.json").write_text(json.dumps({"rows": list(rows), "summary": list(summary)}, indent=1))
    keys = sorted({k for r in rows for k in r})
    with open(out / "near_lossless.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    near = [s for s in summary if s["mode"] == "near-lossless"]
    lossless = [s for s in summary if s["mode"] == "lossless"]
    lines = ["# Near-lossless and lossless: sarcodec against LERC and lossless codecs", "",
             "Sizes are whole files in bits per pixel (medians per group); every decoded pixel was checked against "
             "the bound.", "", "## Near-lossless (max error E dB on every valid pixel)", "",
             "| group | looks | images | E dB | sarcodec bpp | LERC_ZSTD bpp | LERC_DEFLATE bpp | sarcodec / LERC_ZSTD |",
             "|---|---|---|---|---|---|---|---|"]
    for s in near:
        lines.append(f"| {s['group']} | {s['looks']} | {s['images']} | {s['bound_db']:g} | {s['sarcodec_bpp']:.3f} | "
                     f"{s['lerc_zstd_bpp']:.3f} | {s['lerc_deflate_bpp']:.3f} | {s['median_size_ratio']:.3f} |")
    if lossless:
        names = [k[:-4] for k in lossless[0] if k.endswith("_bpp") and k != "sarcodec_bpp"]
        lines += ["", "## Lossless (integer rasters)", "",
                  "| group | images | sarcodec bpp | " + " | ".join(f"{n} bpp" for n in names) + " | sarcodec / best |",
                  "|---|---|---|" + "---|" * len(names) + "---|"]
        for s in lossless:
            lines.append(f"| {s['group']} | {s['images']} | {s['sarcodec_bpp']:.3f} | "
                         + " | ".join(f"{s.get(n + '_bpp', float('nan')):.3f}" for n in names)
                         + f" | {s['median_size_ratio']:.3f} |")
    speeds = [r for r in rows if r["codec"] == "sarcodec"]
    if speeds:
        lines += ["", f"sarcodec end to end (files, this machine): median compress "
                  f"{np.median([r['encode_mps'] for r in speeds]):.2f} MP/s, decompress "
                  f"{np.median([r['decode_mps'] for r in speeds]):.2f} MP/s over {len(speeds)} runs."]
    (out / "near_lossless.md").write_text("\n".join(lines) + "\n")
