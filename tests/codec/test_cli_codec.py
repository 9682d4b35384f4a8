"""compress / decompress / info / benchmark on the command line: outputs, and one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import speckle_intensity, write_geotiff
from tests.test_cli import assert_one_line_error, run_cli

REPO = Path(__file__).resolve().parents[2]
OPERA = sorted((REPO / "samples" / "opera").glob("*.tif"))[0]


def test_compress_info_decompress_compare(tmp_path: Path) -> None:
    sarc, tif = tmp_path / "o.sarc", tmp_path / "o.tif"
    proc = run_cli("compress", str(OPERA), "-o", str(sarc), "--quality", "5")
    assert proc.returncode == 0, proc.stderr
    assert "bpp" in proc.stdout and "units: intensity" in proc.stderr
    proc = run_cli("info", str(sarc))
    assert proc.returncode == 0 and "quality 5" in proc.stdout and "EPSG:32611" in proc.stdout
    proc = run_cli("decompress", str(sarc), "-o", str(tif), "--compare", str(OPERA))
    assert proc.returncode == 0, proc.stderr
    assert "jpeg2000" in proc.stdout and "ENL ratio" in proc.stdout
    with rasterio.open(tif) as ds, rasterio.open(OPERA) as orig:
        assert ds.crs == orig.crs and ds.shape == orig.shape


def test_cli_bad_inputs_one_line_nothing_written(tmp_path: Path) -> None:
    good = write_geotiff(tmp_path / "good.tif", speckle_intensity((48, 48), seed=2))
    nan = write_geotiff(tmp_path / "nan.tif", np.full((32, 32), np.nan, np.float32))
    (tmp_path / "fake.tif").write_text("hello")
    (tmp_path / "taken.sarc").write_bytes(b"keep")
    cases = [
        (["compress", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "a.sarc")], "no such file"),
        (["compress", str(tmp_path / "fake.tif"), "-o", str(tmp_path / "a.sarc")], "not a readable raster"),
        (["compress", str(nan), "-o", str(tmp_path / "a.sarc")], "no valid pixels"),
        (["compress", str(good), "-o", str(tmp_path / "a.sarc"), "--quality", "0"], "quality must be between"),
        (["compress", str(good), "-o", str(tmp_path / "a.sarc"), "--bpp", "-1"], "positive number"),
        (["compress", str(good), "-o", str(tmp_path / "taken.sarc")], "exists"),
        (["compress", str(good), "-o", str(tmp_path / "a.sarc"), "--model", "nope"], "unknown model"),
        (["decompress", str(tmp_path / "taken.sarc"), "-o", str(tmp_path / "a.tif")], "not a .sarc file"),
        (["decompress", str(tmp_path / "missing.sarc"), "-o", str(tmp_path / "a.tif")], "cannot be read"),
        (["info", str(tmp_path / "taken.sarc")], "not a .sarc file"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(*args), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.tif", "good.tif", "nan.tif", "taken.sarc"]
    assert (tmp_path / "taken.sarc").read_bytes() == b"keep"


def test_decompress_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    sarc = tmp_path / "x.sarc"
    assert run_cli("compress", str(OPERA), "-o", str(sarc)).returncode == 0
    before = sarc.read_bytes()
    assert_one_line_error(run_cli("decompress", str(sarc), "-o", str(sarc), "--overwrite"), "overwrite the input")
    assert sarc.read_bytes() == before


@pytest.mark.slow
def test_benchmark_command_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = run_cli("benchmark", str(OPERA), "-o", str(out), "--codecs", "jpeg2000", "htj2k", "--models", "hyperprior")
    assert proc.returncode == 0, proc.stderr
    for name in ("results.csv", "results.json", "report.md", "rd_psnr.png", "rd_ssim.png", "rd_enl_ratio.png"):
        assert (out / name).is_file(), name
    assert "BD-rate" in proc.stdout and "sarcodec-hyperprior" in proc.stdout
