"""The benchmark: JPEG 2000 rows checked against an independent computation, BD metrics, SPEC reference figures."""

from __future__ import annotations

import io
import math
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import rasterio
from PIL import Image

from sarcodec.bench.bd import bd_metrics
from sarcodec.bench.sweep import run_benchmark

REPO = Path(__file__).resolve().parents[1]
OPERA = sorted((REPO / "samples" / "opera").glob("*.tif"))[0]


def _independent_j2k(path: Path, bpp: float) -> tuple[int, float]:
    """bytes and PSNR computed from scratch: rasterio, numpy percentiles, Pillow encode, imagecodecs decode."""
    with rasterio.open(path) as ds:
        intensity = ds.read(1).astype(np.float64)
    valid = np.isfinite(intensity) & (intensity > 0)
    db = np.full(intensity.shape, np.nan)
    db[valid] = 10 * np.log10(intensity[valid])
    lo, hi = np.percentile(db[valid], [0.1, 99.9])
    x = np.clip((np.where(valid, db, lo) - lo) / (hi - lo), 0, 1)
    buf = io.BytesIO()
    Image.fromarray(np.rint(x * 65535).astype(np.uint16)).save(
        buf, format="JPEG2000", quality_mode="rates", quality_layers=[16 / bpp], irreversible=True)
    decoded = imagecodecs.jpeg2k_decode(buf.getvalue()).astype(np.float64) / 65535
    return len(buf.getvalue()), 10 * math.log10(1 / np.mean((decoded - x) ** 2))


def test_jpeg2000_rows_match_an_independent_computation(tmp_path: Path) -> None:
    result = run_benchmark([OPERA], tmp_path, codecs=["jpeg2000"], models=[], log=lambda _: None)
    rows = [r for r in result["rows"] if r["codec"] == "jpeg2000"]
    assert len(rows) == 11
    for row in rows:
        nbytes, psnr = _independent_j2k(OPERA, row["setting"])
        assert row["bytes"] == nbytes
        assert row["bpp"] == pytest.approx(nbytes * 8 / (100 * 100))
        assert row["psnr"] == pytest.approx(psnr, abs=0.02)  # percentile bins of 0.001 dB vs numpy's exact ones
    assert (tmp_path / "report.md").is_file() and (tmp_path / "results.csv").is_file()
    # the fixed-rate table: ENL ratio at 0.5 and 1 bpp (codec v2's target), interpolated in log-bpp
    lines = (tmp_path / "report.md").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if "ENL ratio@0.5" in line)
    names = [c.strip() for c in lines[header].strip("|").split("|")]
    cells = [c.strip() for c in next(line for line in lines[header + 2:] if "| jpeg2000 |" in line).strip("|").split("|")]
    bpp, enl = zip(*sorted((r["bpp"], r["enl_ratio"]) for r in rows))
    for rate in (0.5, 1.0):
        expected = np.interp(math.log(rate), np.log(bpp), enl)
        assert float(cells[names.index(f"ENL ratio@{rate:g}")]) == pytest.approx(expected, abs=0.006)


def test_bd_metrics_known_cases() -> None:
    anchor = [(0.25, 18.0), (0.5, 19.5), (1.0, 21.2), (2.0, 25.9)]
    same = bd_metrics(anchor, anchor)
    assert same[0] == pytest.approx(0.0, abs=1e-6) and same[1] == pytest.approx(0.0, abs=1e-6)
    half_rate = [(r / 2, p) for r, p in anchor]
    rate, psnr = bd_metrics(anchor, half_rate, bd_range=(0.1, 4.0))
    assert rate == pytest.approx(-50.0, abs=0.5) and psnr > 0
    assert all(math.isnan(v) for v in bd_metrics(anchor, [(3.0, 40.0), (4.0, 41.0)]))


def test_a_model_given_as_a_file_is_benchmarked(tmp_path: Path) -> None:
    """``--models PATH.safetensors``: files written with a model that is not shipped decode with that file."""
    import shutil

    from sarcodec.codec.registry import WEIGHTS_DIR

    weights = tmp_path / "candidate.safetensors"
    shutil.copy(WEIGHTS_DIR / "factorized.safetensors", weights)
    result = run_benchmark([OPERA], tmp_path / "out", codecs=["jpeg2000"], models=[str(weights)],
                           log=lambda _: None)
    rows = [r for r in result["rows"] if "candidate" in r["codec"]]
    assert rows and all(r["bpp"] > 0 and math.isfinite(r["psnr"]) for r in rows)


def test_the_speckle_variant_runs_beside_its_model(tmp_path: Path) -> None:
    """``benchmark --speckle``: each learned codec also as ``compress --speckle`` writes it (MODEL+speckle), decoded
    with its speckle, with the full-range JPEG 2000 anchor at its files' bpp; the viewer page rebuilds it."""
    from sarcodec.bench.classical import FULLRANGE
    from sarcodec.bench.html_report import report_from_results
    from sarcodec.codec.api import compress
    from sarcodec.errors import BadInputError
    from sarcodec.evaluate import load_reference

    out = tmp_path / "out"
    result = run_benchmark([OPERA], out, codecs=["jpeg2000"], models=["hyperprior"], speckle=True,
                           log=lambda _: None)
    rows = result["rows"]
    plain = {r["setting"]: r for r in rows if r["codec"] == "sarcodec-hyperprior"}
    synth = {r["setting"]: r for r in rows if r["codec"] == "sarcodec-hyperprior+speckle"}
    assert sorted(synth) == sorted(plain) == [float(q) for q in range(1, 9)]
    image = load_reference(OPERA)  # the benchmark compresses the raw array (no georeferencing in the header)
    compress(image.raw, tmp_path / "q1.sarc", quality=1, units=image.params.units, nodata=image.params.nodata,
             speckle=True, device="cpu")
    assert synth[1.0]["bytes"] == (tmp_path / "q1.sarc").stat().st_size > plain[1.0]["bytes"]
    anchors = {r["setting"] for r in rows if r["codec"] == FULLRANGE}
    assert all(r["bpp"] in anchors for r in synth.values())
    assert synth[1.0]["enl_ratio"] < plain[1.0]["enl_ratio"]  # the smooth decode has more looks
    assert "sarcodec-hyperprior+speckle" in (out / "report.md").read_text()
    page = report_from_results(out, model="hyperprior+speckle", targets=(0.5,), log=lambda _: None)
    assert "sarcodec-hyperprior+speckle" in page.read_text()
    with pytest.raises(BadInputError, match="give at least one model"):
        run_benchmark([OPERA], tmp_path / "none", codecs=["jpeg2000"], models=[], speckle=True, log=lambda _: None)
