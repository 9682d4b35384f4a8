"""``sarcodec report RESULTS_DIR`` (and ``benchmark --html``): the viewer page of a benchmark run.

The numbers on the page are the benchmark's own (``results.json``: the sarcodec row of each operating point and the
full-range JPEG 2000 row the benchmark ran at that file's bpp); the pictures are made again here from the sources
that ``results.json`` names (or ``inputs``), with the same codec calls, and checked to give files of the same size.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sarcodec.bench.viewer import ViewImage, ViewPoint, check_page_output, rd_figure_svg, write_page
from sarcodec.errors import BadInputError, CorruptFileError

#: bpp of the operating points shown per image: the sarcodec setting nearest to each.
DEFAULT_TARGETS: tuple[float, ...] = (0.5, 1.0, 2.0)
_REQUIRED = ("image", "group", "codec", "setting", "bytes", "bpp")


def load_results(results_dir: str | Path) -> dict[str, Any]:
    """``results.json`` of a benchmark run, checked for the fields the page needs."""
    path = Path(results_dir) / "results.json"
    if not path.is_file():
        raise BadInputError(f"{results_dir}: no results.json (run `sarcodec benchmark INPUTS -o {results_dir}` first)")
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path}: not a benchmark results file ({exc})") from None
    rows = results.get("rows") if isinstance(results, dict) else None
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and all(k in r for k in _REQUIRED) for r in rows):
        raise CorruptFileError(f"{path}: not a benchmark results file (no rows with {', '.join(_REQUIRED)})")
    checked: dict[str, Any] = results
    return checked


def _pick(rows: Sequence[Mapping[str, Any]], targets: Sequence[float]) -> list[Mapping[str, Any]]:
    picked: dict[float, Mapping[str, Any]] = {}
    for t in targets:
        best = min(rows, key=lambda r: abs(math.log(max(r["bpp"], 1e-9) / t)))
        picked[best["setting"]] = best
    return sorted(picked.values(), key=lambda r: r["bpp"])


def _group_svgs(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Per group, the RD figure of the group means (the benchmark's own :func:`mean_curves`)."""
    from sarcodec.bench.plots import mean_curves
    from sarcodec.bench.sweep import BenchRow

    bench_rows = [BenchRow(**r) for r in rows]
    curves = {metric: mean_curves(bench_rows, metric) for metric in ("psnr", "rmse_db")}
    return [(group, rd_figure_svg(group, {metric: {codec: points for (g, codec), points in per.items() if g == group}
                                          for metric, per in curves.items()}))
            for group in sorted({r["group"] for r in rows}, key=lambda g: (g != "sentinel1", g))]


def report_from_results(results_dir: str | Path, *, inputs: Sequence[str | Path] = (),
                        output: str | Path | None = None, targets: Sequence[float] = DEFAULT_TARGETS,
                        model: str | None = None, overwrite: bool = False,
                        log: Callable[[str], None] = print) -> Path:
    """Write the viewer page of a benchmark run (default ``RESULTS_DIR/report.html``) for the learned codec
    ``model`` (default: the shipped default model when the run has it); returns the page's path."""
    from sarcodec.bench.classical import FULLRANGE, jpeg2000_fullrange_roundtrip
    from sarcodec.bench.sweep import learned_roundtrip
    from sarcodec.evaluate import load_reference
    from sarcodec.io.raster import find_rasters

    results = load_results(results_dir)
    out = Path(output) if output is not None else Path(results_dir) / "report.html"
    check_page_output(out, overwrite)
    rows: list[dict[str, Any]] = results["rows"]
    learned = sorted({r["codec"] for r in rows if str(r["codec"]).startswith("sarcodec-")})
    if not learned:
        raise BadInputError(f"{results_dir}: results.json has no sarcodec rows to show")
    from sarcodec.codec.registry import DEFAULT_CODEC

    wanted = f"sarcodec-{model or DEFAULT_CODEC}"
    if model is not None and wanted not in learned:
        raise BadInputError(f"{results_dir}: results.json has no rows of {wanted} (it has {', '.join(learned)})")
    codec = wanted if wanted in learned else learned[0]
    sources: dict[str, str] = dict(results.get("sources") or {})
    found: dict[str, Path] = {}
    if inputs:
        for path in find_rasters(list(inputs)):
            found.setdefault(path.name, path)
            found.setdefault(f"{path.parent.name}/{path.name}", path)
    names = list(dict.fromkeys(r["image"] for r in rows))
    missing = [n for n in names if n not in found and not (n in sources and Path(sources[n]).is_file())]
    if missing:
        raise BadInputError(f"{results_dir}: the source of {len(missing)} image(s) is not found ({missing[0]}"
                            f"{', ...' if len(missing) > 1 else ''}); pass the benchmark's inputs with --inputs")
    anchors = {(r["image"], float(r["setting"])): r for r in rows if r["codec"] == FULLRANGE}
    roundtrip = learned_roundtrip(codec)
    images = []
    with tempfile.TemporaryDirectory(prefix="sarcodec-report-") as scratch:
        for i, name in enumerate(names, 1):
            src = found.get(name) or Path(sources[name])
            image = load_reference(src, results.get("units"), name=name)
            pixels = {round(int(r["bytes"]) * 8 / float(r["bpp"])) for r in rows
                      if r["image"] == name and float(r.get("bpp") or 0) > 0}
            if pixels and image.intensity.size not in pixels:  # another image under the same name
                raise BadInputError(f"{src}: {image.intensity.shape[0]} x {image.intensity.shape[1]} pixels, but "
                                    f"results.json scored {name} with {min(pixels)}: not the benchmark's image")
            log(f"[{i}/{len(names)}] {name}")
            view = ViewImage(name, image.group, image.intensity, image.valid, image.params.db_lo,
                             image.params.db_hi)
            for row in _pick([r for r in rows if r["image"] == name and r["codec"] == codec], targets):
                anchor = anchors.get((name, float(row["bpp"])))
                if anchor is None:
                    raise CorruptFileError(f"{results_dir}: results.json has no {FULLRANGE} row at {name}'s "
                                           f"{row['bpp']:.4f} bpp")
                nbytes, _, sarc, _, _ = roundtrip(image, float(row["setting"]), Path(scratch))
                n_j2k, _, j2k, _, _ = jpeg2000_fullrange_roundtrip(image, float(row["bpp"]))
                for what, got, want in (("sarcodec", nbytes, row["bytes"]), ("JPEG 2000", n_j2k, anchor["bytes"])):
                    if got != want:
                        log(f"  warning: {what} gives {got} bytes here, {want} in results.json (other version or "
                            "machine); the page shows results.json's numbers")
                view.points.append(ViewPoint(f"q{float(row['setting']):g} ({row['bpp']:.2f} bpp)", sarc, j2k,
                                             [row, anchor]))
            images.append(view)
    write_page(out, images, title=f"sarcodec benchmark: {Path(results_dir).resolve().name}",
               groups=_group_svgs(rows), bd_rows=results.get("bd") or [], overwrite=overwrite)
    return out
