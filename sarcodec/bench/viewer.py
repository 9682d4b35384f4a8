"""The comparison viewer: one offline HTML page per benchmark (or per ``decompress --compare``) that shows the
original, sarcodec and JPEG 2000 at the same file size in dB, side by side or with a swipe, with synchronized zoom
and pan down to full resolution, adjustable dB limits, the difference image, the numbers, and the tiles with the
largest error first.

Layout on disk: ``NAME.html`` (page, script, style and data inline; no network) and ``NAME_files/`` with an image
pyramid per layer: 256 x 256 tiles at full resolution and at every factor of 2 down to one tile. A tile holds the
dB of linear intensity as uint16 codes (``(dB + 200) * 100``, 0 = invalid), zlib-compressed, base64 in a small
script (``SARV.tile(key, w, h, data)``) so that the page also works from ``file://``, where a browser would not
let a script read pixels of a PNG next to it. The browser inflates tiles with ``DecompressionStream`` and colours
them itself, so the dB limits can change without reloading anything. Coarser levels average linear intensity
over the valid pixels (multi-looking), as a radar viewer does.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import OutputError
from sarcodec.io.folders import nearest_existing
from sarcodec.jsonfloat import float_to_json

TILE = 256
DB_OFFSET = 200.0  # code = round((dB + DB_OFFSET) * CODES_PER_DB); dB in [-200, 455] at 0.01 dB
CODES_PER_DB = 100.0
HARDEST = 10  # tiles listed per operating point
GENERATOR = "sarcodec report"

#: Metric columns of the page's tables: (key, header, decimals), the order of ``decompress --compare``.
METRIC_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("bytes", "bytes", 0), ("bpp", "bpp", 3), ("psnr", "PSNR x_norm (dB)", 2), ("ssim", "SSIM", 3),
    ("enl_ratio", "ENL ratio", 2), ("epi", "EPI", 3), ("rmse_db", "RMSE (dB)", 2), ("bias_db", "bias (dB)", 3),
    ("hom_bias_db", "hom. bias (dB)", 3), ("peak_db", "point-target err (dB)", 2), ("cfar_f1", "CFAR F1", 2))

FloatArray = npt.NDArray[np.float64]


@dataclass
class ViewPoint:
    """One operating point of an image: sarcodec and JPEG 2000 at the same bpp, with their measured rows."""

    label: str  # e.g. "q4 (0.98 bpp)"
    sarc: FloatArray  # linear intensity of each reconstruction
    j2k: FloatArray
    rows: Sequence[Mapping[str, Any]]  # [sarcodec row, JPEG 2000 row]: METRIC_COLUMNS keys (+ codec)
    row_labels: tuple[str, str] = ("sarcodec", "JPEG 2000 (full range, same bpp)")


@dataclass
class ViewImage:
    """One scene of the page: the original's linear intensity, its validity mask and operating points."""

    name: str
    group: str
    intensity: FloatArray
    valid: npt.NDArray[np.bool_]
    db_lo: float
    db_hi: float
    points: list[ViewPoint] = field(default_factory=list)


def format_value(value: Any, digits: int) -> str:
    """The text the page shows for a number (``n/a`` for NaN): what the tests compare against the JSON."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    v = float(value)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def db_codes(intensity: npt.NDArray[Any], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint16]:
    """dB of linear intensity as the tiles' uint16 codes (0 = invalid; intensities <= 0 get the lowest code)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(np.maximum(np.asarray(intensity, dtype=np.float64), 1e-30))
    codes = np.clip(np.rint((db + DB_OFFSET) * CODES_PER_DB), 1, 65535)
    return np.where(valid & np.isfinite(db), codes, 0).astype(np.uint16)


def _halve(intensity: FloatArray, valid: npt.NDArray[np.bool_]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """2 x 2 mean of linear intensity over valid pixels (odd edges keep their last row/column alone)."""
    h, w = intensity.shape
    ph, pw = h + (h & 1), w + (w & 1)
    vals = np.zeros((ph, pw), dtype=np.float64)
    counts = np.zeros((ph, pw), dtype=np.float64)
    vals[:h, :w] = np.where(valid, intensity, 0.0)
    counts[:h, :w] = valid
    s = vals.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    n = counts.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    ok = n > 0
    return np.where(ok, s / np.maximum(n, 1), 0.0), ok


def pyramid_levels(height: int, width: int) -> list[tuple[int, int]]:
    """(height, width) of every pyramid level, full resolution first, down to one tile."""
    levels = [(height, width)]
    while max(levels[-1]) > TILE:
        h, w = levels[-1]
        levels.append(((h + 1) // 2, (w + 1) // 2))
    return levels


def _pyramid(intensity: FloatArray, valid: npt.NDArray[np.bool_]) -> Iterator[npt.NDArray[np.uint16]]:
    level, ok = np.asarray(intensity, dtype=np.float64), valid
    yield db_codes(level, ok)
    while max(level.shape) > TILE:
        level, ok = _halve(level, ok)
        yield db_codes(level, ok)


def _write_layer(files: Path, key: str, intensity: FloatArray, valid: npt.NDArray[np.bool_]) -> None:
    for z, codes in enumerate(_pyramid(intensity, valid)):
        folder = files / key / str(z)
        folder.mkdir(parents=True)
        for ty in range(0, codes.shape[0], TILE):
            for tx in range(0, codes.shape[1], TILE):
                tile = np.ascontiguousarray(codes[ty:ty + TILE, tx:tx + TILE]).astype("<u2")
                data = base64.b64encode(zlib.compress(tile.tobytes(), 6)).decode("ascii")
                name = f"{ty // TILE}_{tx // TILE}"
                (folder / f"{name}.js").write_text(
                    f'SARV.tile("{key}/{z}/{name}",{tile.shape[1]},{tile.shape[0]},"{data}");\n')


def hardest_tiles(original: FloatArray, valid: npt.NDArray[np.bool_], recon: FloatArray, other: FloatArray,
                  count: int = HARDEST) -> list[dict[str, Any]]:
    """The full-resolution 256 x 256 tiles with the largest RMSE in dB of ``recon`` against the original (valid
    pixels only), largest first, with ``other``'s RMSE on the same tile beside it."""
    def db(a: FloatArray) -> FloatArray:
        return 10.0 * np.log10(np.maximum(a, 1e-30))

    ref = db(original)
    e_rec = np.where(valid, db(recon) - ref, 0.0) ** 2
    e_oth = np.where(valid, db(other) - ref, 0.0) ** 2
    out = []
    h, w = original.shape
    for y in range(0, h, TILE):
        for x in range(0, w, TILE):
            n = int(valid[y:y + TILE, x:x + TILE].sum())
            if n:
                out.append({"x": x, "y": y, "w": min(TILE, w - x), "h": min(TILE, h - y),
                            "rmse_db": math.sqrt(float(e_rec[y:y + TILE, x:x + TILE].sum()) / n),
                            "other_rmse_db": math.sqrt(float(e_oth[y:y + TILE, x:x + TILE].sum()) / n)})
    out.sort(key=lambda t: -t["rmse_db"])
    for t in out[:count]:
        t["rmse_text"] = format_value(t["rmse_db"], 2)
        t["other_rmse_text"] = format_value(t["other_rmse_db"], 2)
    return out[:count]


def _cells(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": float_to_json(float(row[k])) if not isinstance(row[k], (int, np.integer))
             else int(row[k]), "text": format_value(row[k], d)} for k, _, d in METRIC_COLUMNS]


def rd_figure_svg(group: str, curves: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]]) -> str:
    """Inline SVG of a group's rate-distortion curves: ``curves[metric][codec] = [(bpp, value), ...]`` for
    ``psnr`` (x_norm) and ``rmse_db`` (original units)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"psnr": "PSNR x_norm (dB)", "rmse_db": "RMSE of dB (original units)"}
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.0), squeeze=False)
    for ax, (metric, per_codec) in zip(axes[0], curves.items()):
        for codec, points in sorted(per_codec.items()):
            pts = [(b, v) for b, v in points if math.isfinite(v)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=codec)
        ax.set_xscale("log")
        ax.set_xlabel("bpp")
        ax.set_ylabel(labels.get(metric, metric))
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{group}: group means", fontsize=9)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _asset(name: str) -> str:
    return (Path(__file__).with_name(name)).read_text()


def _is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return f'<meta name="generator" content="{GENERATOR}">' in fh.read(4096)
    except OSError:
        return False


def check_page_output(output: str | Path, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> None:
    """Refuse a page path that is one of ``inputs`` or holds one in its ``_files`` folder, an existing page file
    that this module did not write (unless ``overwrite``), a ``_files`` folder that this module did not write
    (even with ``overwrite``: the user named the page, not the folder, and its files would be deleted), and a
    page whose folder cannot be created or written. Called before any work so that bad paths fail first."""
    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{out}: the page must be an .html file")
    files = out.with_name(f"{out.stem}_files")
    for given in inputs:
        try:
            path = Path(given).resolve()
            if path == out.resolve() or files.resolve() in (path, *path.parents):
                raise OutputError(f"{out}: the page would overwrite an input")
        except OSError:
            pass
    for path in (out, files):
        if path.is_symlink() or (path.exists() and not (path.is_dir() if path is files else path.is_file())):
            raise OutputError(f"{path}: exists and is not a {'folder' if path is files else 'regular file'} "
                              "written by sarcodec; remove it or choose another page name")
    if out.exists() and not overwrite and not _is_ours(out):
        raise OutputError(f"{out}: exists and was not written by sarcodec; pass overwrite=True to replace it")
    if files.exists() and not (files / ".sarcodec-report").is_file():
        raise OutputError(f"{files}: exists and was not written by sarcodec (its files would be deleted); remove it "
                          "or choose another page name")
    parent = nearest_existing(out.absolute().parent)
    if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise OutputError(f"{out}: cannot be written ({parent} is not a writable folder)")


def write_page(output: str | Path, images: Sequence[ViewImage], *, title: str,
               groups: Sequence[tuple[str, str]] = (), bd_rows: Sequence[Mapping[str, Any]] = (),
               overwrite: bool = False) -> dict[str, Any]:
    """Write ``output`` (.html) and its ``_files`` folder; returns the data embedded in the page. A page this
    function wrote before is replaced; any other existing file only with ``overwrite``. Both are written under
    temporary names and moved into place at the end, so a failure leaves nothing half-written."""
    check_page_output(output, overwrite)
    out = Path(output)
    files_name = f"{out.stem}_files"
    files = out.with_name(files_name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.stem}-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    try:
        tmp_files = tmp / files_name
        tmp_files.mkdir()
        (tmp_files / ".sarcodec-report").write_text("written by sarcodec report; replaced when it runs again\n")
        data: dict[str, Any] = {"files": files_name, "tile": TILE, "db_offset": DB_OFFSET,
                                "codes_per_db": CODES_PER_DB, "columns": [[k, h] for k, h, _ in METRIC_COLUMNS],
                                "images": []}
        for i, image in enumerate(images):
            key = f"i{i}"
            h, w = image.intensity.shape
            _write_layer(tmp_files, f"{key}/orig", image.intensity, image.valid)
            entry: dict[str, Any] = {"id": key, "name": image.name, "group": image.group, "width": w, "height": h,
                                     "levels": pyramid_levels(h, w), "db_lo": round(image.db_lo, 2),
                                     "db_hi": round(image.db_hi, 2), "points": []}
            for j, point in enumerate(image.points):
                _write_layer(tmp_files, f"{key}/p{j}-sarc", point.sarc, image.valid)
                _write_layer(tmp_files, f"{key}/p{j}-j2k", point.j2k, image.valid)
                entry["points"].append({
                    "label": point.label,
                    "rows": [{"label": lab, "codec": str(r.get("codec", lab)), "setting": r.get("setting"),
                              "cells": _cells(r)} for lab, r in zip(point.row_labels, point.rows)],
                    "hardest": hardest_tiles(image.intensity, image.valid, point.sarc, point.j2k)})
            data["images"].append(entry)
        data["bd"] = [{"group": r["group"], "codec": r["codec"], "images": int(r["images"]),
                       "cells": [{"key": k, "value": float_to_json(float(r[k])), "text": format_value(r[k], d)}
                                 for k, d in (("bd_rate", 1), ("bd_psnr", 2))]} for r in bd_rows]
        page = _page(title, data, groups)
        (tmp / out.name).write_text(page, encoding="utf-8")
        if files.exists():
            shutil.rmtree(files)
        os.replace(tmp_files, files)
        os.replace(tmp / out.name, out)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


def _page(title: str, data: Mapping[str, Any], groups: Sequence[tuple[str, str]]) -> str:
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    rd = "\n".join(f'<figure class="rd" data-group="{html.escape(g)}">{svg}</figure>' for g, svg in groups)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{GENERATOR}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
{_asset("viewer.css")}
</style>
</head>
<body data-pending="0" data-rendered="0">
<header><h1>{html.escape(title)}</h1>
<p class="note">Offline page: keep it next to its <code>{html.escape(str(data["files"]))}/</code> folder.
dB of linear intensity; sarcodec and JPEG 2000 (the image's full range, run at the sarcodec file's bpp) at the
same file size. Wheel or +/&minus; to zoom, drag to pan: every view follows.</p></header>
<section id="viewer">
  <div class="controls">
    <label>image <select id="image"></select></label>
    <label>operating point <select id="point"></select></label>
    <span class="group" role="group" aria-label="mode">
      <button id="mode-side" class="on">side by side</button><button id="mode-swipe">swipe</button></span>
    <span class="group" role="group" aria-label="zoom">
      <button id="zoom-in" title="zoom in">+</button><button id="zoom-out" title="zoom out">&minus;</button>
      <button id="zoom-fit">fit</button><button id="zoom-1">1:1</button></span>
    <label>dB from <input id="lo" type="number" step="0.5"></label>
    <label>to <input id="hi" type="number" step="0.5"></label>
    <canvas id="colorbar" width="256" height="12" title="dB colour scale"></canvas>
    <label>difference &plusmn; <input id="diff" type="number" step="0.5" min="0.1" value="3"> dB</label>
    <label>difference of <select id="diff-of"><option value="sarc">sarcodec</option>
      <option value="j2k">JPEG 2000</option></select></label>
  </div>
  <div class="controls swipe-controls">
    <label>left <select id="swipe-a"></select></label>
    <input id="swipe" type="range" min="0" max="1" step="0.001" value="0.5" aria-label="swipe position">
    <label>right <select id="swipe-b"></select></label>
  </div>
  <div id="panels" class="side"></div>
  <div class="numbers">
    <table id="metrics"></table>
    <div><h3>Hardest tiles (largest sarcodec RMSE of dB first; click to zoom)</h3><ol id="hardest"></ol></div>
  </div>
</section>
<section id="rd"><h2>Rate-distortion per group</h2>
<table id="bd"></table>
{rd}
</section>
<script id="sarv-data" type="application/json">{payload}</script>
<script>
{_asset("viewer.js")}
</script>
</body>
</html>
"""
