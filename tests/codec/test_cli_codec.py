"""compress / decompress / info / benchmark on the command line: outputs, and one-line errors on bad input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import speckle_intensity, write_geotiff
from tests.test_cli import assert_one_line_error, run_cli, stop_once_writing

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


@pytest.mark.parametrize("name, blended", [("v2_opera_72x90_q3", False), ("v6_opera_72x90_q3", True)])
def test_info_says_how_a_multi_tile_file_is_blended(name: str, blended: bool) -> None:
    proc = run_cli("info", str(REPO / "tests" / "codec" / "golden" / f"{name}.sarc"))
    assert proc.returncode == 0, proc.stderr
    assert f"format {name[1]}:" in proc.stdout
    assert ("tiles blended with their corrections in linear intensity" in proc.stdout) == blended


def test_decompress_srcwin_writes_that_part_and_refuses_bad_windows_in_one_line(tmp_path: Path) -> None:
    sarc = REPO / "tests" / "codec" / "golden" / "v2_opera_72x90_q3.sarc"
    proc = run_cli("decompress", str(sarc), "-o", str(tmp_path / "w.tif"), "--srcwin", "10", "20", "30", "40")
    assert proc.returncode == 0, proc.stderr
    assert "w.tif: 40 x 30 float32" in proc.stdout
    with rasterio.open(tmp_path / "w.tif") as ds:
        assert ds.shape == (40, 30)
    for args, needle in [(["--srcwin", "80", "0", "11", "1"], "reaches beyond the 90 x 72 raster"),
                         (["--srcwin", "0", "0", "0", "1"], "sizes >= 1"),
                         (["--srcwin", "1", "2", "3"], "expected 4 arguments"),
                         (["--srcwin", "1", "2", "3", "4", "--compare", str(OPERA)], "use one")]:
        out = tmp_path / "bad.tif"
        assert_one_line_error(run_cli("decompress", str(sarc), "-o", str(out), *args), needle)
        assert not out.exists()


def test_info_names_ground_control_points(tmp_path: Path) -> None:
    """A GRD product is georeferenced by ground control points alone: info said "no CRS, no transform"."""
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    src = write_geotiff(tmp_path / "gcp.tif", speckle_intensity((24, 24), seed=3), georef=False)
    with rasterio.open(src, "r+") as ds:
        ds.gcps = ([GroundControlPoint(row=r, col=c, x=10 + c / 100, y=45 + r / 100, z=0.0)
                    for r in (0, 23) for c in (0, 23)], CRS.from_epsg(4326))
    sarc = tmp_path / "gcp.sarc"
    assert run_cli("compress", str(src), "-o", str(sarc), "--max-error", "0.5").returncode == 0
    proc = run_cli("info", str(sarc))
    assert proc.returncode == 0, proc.stderr
    assert "no CRS, no transform, 4 ground control points (EPSG:4326)" in proc.stdout


def test_a_reader_that_goes_away_is_not_an_internal_error(tmp_path: Path) -> None:
    """`sarcodec info F | head -1`: the pipe closes before the output is written. Quiet, exit 141 (128 + SIGPIPE)
    as for a command SIGPIPE ends, instead of "internal error: BrokenPipeError" and exit 1."""
    import subprocess
    import sys

    from tests.test_cli import _env

    sarc = tmp_path / "x.sarc"
    assert run_cli("compress", str(OPERA), "-o", str(sarc), "-q", "1").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "sarcodec", "info", str(sarc)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None
    proc.stdout.close()  # long before the interpreter starts: its first write finds no reader
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (141, b"")


def test_info_names_the_probability_path_of_a_codec() -> None:
    proc = run_cli("info", "hyperprior")
    assert proc.returncode == 0 and "exact integer hyper-decoder" in proc.stdout
    proc = run_cli("info", "hyperprior_v2")
    assert proc.returncode == 0 and "float64 hyper-decoder" in proc.stdout


def test_cli_bad_inputs_one_line_nothing_written(tmp_path: Path) -> None:
    good = write_geotiff(tmp_path / "good.tif", speckle_intensity((48, 48), seed=2))
    nan = write_geotiff(tmp_path / "nan.tif", np.full((32, 32), np.nan, np.float32))
    (tmp_path / "fake.tif").write_text("hello")
    (tmp_path / "taken.sarc").write_bytes(b"keep")
    cplx = tmp_path / "cplx.npy"
    np.save(cplx, (speckle_intensity((32, 32), seed=4) ** 0.5 * np.exp(1j * np.arange(32))).astype(np.complex64))
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
        # an empty -o took the default name; one ending in a slash wrote a file named like the folder
        (["compress", str(good), "-o", ""], "--output is empty"),
        (["compress", str(good), "-o", str(tmp_path / "newdir") + "/"], "output file's path"),
        (["compress", str(good), "-o", str(tmp_path / "newdir") + "/."], "output file's path"),
        (["decompress", str(tmp_path / "taken.sarc"), "-o", ""], "--output is empty"),
        (["benchmark", str(good), "-o", ""], "--output is empty"),
        (["benchmark", str(good), "-o", str(tmp_path / "b"), "--near-lossless", "--speckle"], "lossy benchmark"),
        (["benchmark", str(good), "-o", str(tmp_path / "b"), "--models", "--speckle"], "at least one model"),
        # units that do not fit the values: the imaginary part was dropped, or real values taken as complex
        (["compress", str(cplx), "-o", str(tmp_path / "a.sarc"), "--units", "intensity"], "do not fit a complex64"),
        (["compress", str(good), "-o", str(tmp_path / "a.sarc"), "--units", "complex"], "do not fit a float32"),
        # options that were silently ignored, and a GeoTIFF written under another format's name
        (["compress", str(good), "-o", str(tmp_path / "a.sarc"), "--max-error-units", "input"], "needs --max-error"),
        (["decompress", str(tmp_path / "taken.sarc"), "-o", str(tmp_path / "a.tif"), "--band", "2"], "needs --compare"),
        (["decompress", str(tmp_path / "taken.sarc"), "-o", str(tmp_path / "a.png")], "name it .tif"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(*args), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cplx.npy", "fake.tif", "good.tif", "nan.tif", "taken.sarc"]
    assert (tmp_path / "taken.sarc").read_bytes() == b"keep"


def test_decompress_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    sarc = tmp_path / "x.sarc"
    assert run_cli("compress", str(OPERA), "-o", str(sarc)).returncode == 0
    before = sarc.read_bytes()
    # the command refuses a GeoTIFF named .sarc first; the API, which takes any name, refuses the input itself
    assert_one_line_error(run_cli("decompress", str(sarc), "-o", str(sarc), "--overwrite"), "name it .tif")
    import sarcodec

    with pytest.raises(sarcodec.OutputError, match="overwrite the input"):
        sarcodec.decompress(sarc, sarc, overwrite=True)
    link = tmp_path / "link.tif"
    link.symlink_to(sarc)
    assert_one_line_error(run_cli("decompress", str(sarc), "-o", str(link), "--overwrite"), "overwrite the input")
    assert sarc.read_bytes() == before


@pytest.mark.slow
def test_benchmark_command_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = run_cli("benchmark", str(OPERA), "-o", str(out), "--codecs", "jpeg2000", "htj2k", "--models", "hyperprior")
    assert proc.returncode == 0, proc.stderr
    for name in ("results.csv", "results.json", "report.md", "rd_psnr.png", "rd_ssim.png", "rd_enl_ratio.png"):
        assert (out / name).is_file(), name
    assert "BD-rate" in proc.stdout and "sarcodec-hyperprior" in proc.stdout


def test_compare_never_overwrites_the_original(tmp_path: Path) -> None:
    original = tmp_path / "in.tif"
    original.write_bytes(OPERA.read_bytes())
    sarc = tmp_path / "x.sarc"
    assert run_cli("compress", str(original), "-o", str(sarc)).returncode == 0
    before = original.read_bytes()
    proc = run_cli("decompress", str(sarc), "-o", str(original), "--overwrite", "--compare", str(original))
    assert_one_line_error(proc, "compared against")
    assert proc.returncode == 5 and original.read_bytes() == before


def test_a_compare_that_fails_after_decoding_leaves_no_decoded_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that cannot be written after all (a full disk, a folder made read-only meanwhile) fails the command,
    and the GeoTIFF it decoded first goes too: it would make the rerun fail with "exists"."""
    import sarcodec
    from sarcodec.bench import compare, viewer

    sarc, out = tmp_path / "x.sarc", tmp_path / "x.tif"
    sarcodec.compress(OPERA, sarc, quality=2)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise sarcodec.OutputError("p.html: cannot be written (No space left on device)")

    monkeypatch.setattr(viewer, "write_page", full_disk)
    with pytest.raises(sarcodec.OutputError, match="No space left"):
        compare.decompress_and_compare(sarc, out, OPERA, html=tmp_path / "p.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sarc"]
    out.write_bytes(b"mine")  # an output that was there before (replaced with --overwrite) is not removed
    with pytest.raises(sarcodec.OutputError, match="No space left"):
        compare.decompress_and_compare(sarc, out, OPERA, html=tmp_path / "p.html", overwrite=True)
    assert out.exists()


def test_compare_uses_the_band_the_file_was_written_from(tmp_path: Path) -> None:
    bands = np.stack([speckle_intensity((40, 48), looks=2, seed=s) for s in (1, 2, 3)])
    src = write_geotiff(tmp_path / "multi.tif", bands)
    sarc, out = tmp_path / "b2.sarc", tmp_path / "b2.tif"
    assert run_cli("compress", str(src), "--band", "2", "-o", str(sarc)).returncode == 0
    proc = run_cli("decompress", str(sarc), "-o", str(out), "--compare", str(src))
    assert proc.returncode == 0, proc.stderr
    psnr_b2 = float(proc.stdout.split("| sarcodec |")[1].split("|")[2])
    proc = run_cli("decompress", str(sarc), "-o", str(tmp_path / "b3.tif"), "--compare", str(src), "--band", "3")
    assert proc.returncode == 0, proc.stderr
    assert psnr_b2 > float(proc.stdout.split("| sarcodec |")[1].split("|")[2]) + 3  # band 3 is another image


def test_compare_on_a_tiny_image_and_mismatched_shapes(tmp_path: Path) -> None:
    tiny = write_geotiff(tmp_path / "tiny.tif", speckle_intensity((7, 5), looks=2, seed=1))
    sarc, out = tmp_path / "t.sarc", tmp_path / "t.tif"
    assert run_cli("compress", str(tiny), "-o", str(sarc)).returncode == 0
    proc = run_cli("decompress", str(sarc), "-o", str(out), "--compare", str(tiny))
    assert proc.returncode == 0, proc.stderr
    assert "bias (dB)" in proc.stdout and "full range" in proc.stdout
    other = write_geotiff(tmp_path / "other.tif", speckle_intensity((9, 5), looks=2, seed=1))
    proc = run_cli("decompress", str(sarc), "-o", str(tmp_path / "u.tif"), "--compare", str(other))
    assert_one_line_error(proc, "differs")
    assert not (tmp_path / "u.tif").exists()  # checked before anything is written


def test_bpp_outside_the_reachable_range_is_said_and_counts_everything(tmp_path: Path) -> None:
    src = write_geotiff(tmp_path / "s.tif", speckle_intensity((96, 96), looks=1, seed=9))
    proc = run_cli("compress", str(src), "-o", str(tmp_path / "hi.sarc"), "--bpp", "100")
    assert proc.returncode == 0 and "above the largest size" in proc.stderr and "quality 8" in proc.stdout
    proc = run_cli("compress", str(src), "-o", str(tmp_path / "lo.sarc"), "--bpp", "0.01")
    assert proc.returncode == 0 and "below the smallest size" in proc.stderr and "quality 1," in proc.stdout


def test_decoded_geotiffs_are_losslessly_compressed(tmp_path: Path) -> None:
    src = write_geotiff(tmp_path / "s.tif", speckle_intensity((100, 100), looks=2, seed=5))
    assert run_cli("compress", str(src), "-o", str(tmp_path / "s.sarc")).returncode == 0
    assert run_cli("decompress", str(tmp_path / "s.sarc"), "-o", str(tmp_path / "d.tif")).returncode == 0
    with rasterio.open(tmp_path / "d.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE") | {"INTERLEAVE": ""} == {"COMPRESSION": "DEFLATE", "PREDICTOR": "3",
                                                                      "INTERLEAVE": ""}
    assert (tmp_path / "d.tif").stat().st_size < 50_000  # uncompressed 256 x 256 blocks took 262 KB


def test_one_exit_code_per_failure_family(tmp_path: Path) -> None:
    src = write_geotiff(tmp_path / "s.tif", speckle_intensity((32, 32), looks=2, seed=5))
    missing = [("compress", str(tmp_path / "nope.tif")), ("decompress", str(tmp_path / "nope.sarc")),
               ("info", str(tmp_path / "nope.sarc"))]
    for args in missing:
        assert run_cli(*args, "-o", str(tmp_path / "x")).returncode == 2 if args[0] != "info" \
            else run_cli(*args).returncode == 2
    assert run_cli("compress", str(src), "-o", str(tmp_path / "q.sarc"), "--quality", "9").returncode == 2
    assert run_cli("compress", str(src), "-o", str(tmp_path / "ok.sarc")).returncode == 0
    proc = run_cli("compress", str(src), "-o", str(tmp_path / "ok.sarc"))
    assert_one_line_error(proc, "--overwrite")  # the CLI names its flag, the API its keyword
    assert proc.returncode == 5


def test_sigterm_and_sighup_stop_a_command_and_leave_nothing_behind(tmp_path: Path) -> None:
    scene = write_geotiff(tmp_path / "scene.tif",
                          np.sqrt(speckle_intensity((2048, 2048), seed=4) * 1e6).clip(1, 65535).astype(np.uint16))
    proc = run_cli("compress", str(scene), "-o", str(tmp_path / "whole.sarc"), "--quality", "1")
    assert proc.returncode == 0, proc.stderr
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, signum in ((["compress", str(scene), "-o", str(tmp_path / "stopped.sarc")], signal.SIGTERM),
                         (["decompress", str(tmp_path / "whole.sarc"), "-o", str(tmp_path / "stopped.tif")],
                          signal.SIGHUP)):
        code, stderr = stop_once_writing(args, tmp_path, signum)
        assert code == 128 + signum
        assert stderr.strip() == f"sarcodec {args[0]}: stopped by {signal.Signals(signum).name}"
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no partial file


def test_signal_handling_in_process() -> None:
    """A signal the caller ignores (nohup's SIGHUP) stays ignored; the first SIGTERM raises Stopped and ignores
    further ones while cleanup runs; a forked child (DataLoader workers) gets the default back."""
    from sarcodec.cli import Stopped, _raise_stopped, _restore_signals, _stop_on_signals

    old = {s: signal.signal(s, h) for s, h in ((signal.SIGHUP, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_DFL))}
    try:
        replaced = _stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.SIGHUP not in replaced
        assert signal.getsignal(signal.SIGTERM) is _raise_stopped and signal.SIGTERM in replaced
        pid = os.fork()
        if pid == 0:  # the child: report whether SIGTERM is back to its default, and leave at once
            os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
        assert os.waitpid(pid, 0)[1] == 0
        with pytest.raises(Stopped):
            _raise_stopped(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # a second SIGTERM cannot cut the cleanup short
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        _restore_signals()  # as main does when a command ends
        for signum, handler in old.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("cog", [False, True])
def test_a_geotiff_gdal_could_not_finish_is_an_error_not_an_output(tmp_path: Path, cog: bool) -> None:
    """A full disk (here: a file-size limit, EFBIG, on the decoder's process) made GDAL print errors and write an
    empty or truncated GeoTIFF, and decompress exited 0 (rasterio does not raise on it); now exit 5, no output.
    With ``--cog`` the limit lies between the plain GeoTIFF's size and the COG's, so the COG copy is what fails."""
    import resource

    sarc = tmp_path / "o.sarc"
    assert run_cli("compress", str(OPERA), "-o", str(sarc)).returncode == 0
    out = tmp_path / "o.tif"
    assert run_cli("decompress", str(sarc), "-o", str(out)).returncode == 0
    plain = out.stat().st_size
    out.unlink()
    args = ["decompress", str(sarc), "-o", str(out), *(["--cog"] if cog else [])]
    if cog:
        assert run_cli(*args).returncode == 0
        whole = out.stat().st_size
        out.unlink()
        assert whole > plain + 1, (whole, plain)  # room for a limit between them
        limit = (plain + whole) // 2
    else:
        limit = plain // 2
    # every file the decoder writes limited to ``limit`` bytes (EFBIG beyond: a full disk's effect)
    proc = run_cli(*args, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"sarcodec decompress: error: {out}: cannot be written (GDAL could "
                                                    "not write all of the GeoTIFF: is the disk full?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.sarc"]


def test_extreme_bounds_and_constant_images_print_no_numpy_warnings(tmp_path: Path) -> None:
    """Two-line RuntimeWarnings on stderr: an error bound far beyond the values (10**x overflowing to inf, as
    meant) and --compare on a constant image (ENL infinite in every region)."""
    dn = tmp_path / "dn.npy"
    np.save(dn, (np.arange(64 * 64).reshape(64, 64) % 60000 + 1).astype(np.uint16))
    proc = run_cli("compress", str(dn), "-o", str(tmp_path / "dn.sarc"), "--max-error", "40000",
                   "--max-error-units", "input")
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    const = tmp_path / "const.npy"
    np.save(const, np.full((40, 40), 0.5, np.float32))
    assert run_cli("compress", str(const), "-o", str(tmp_path / "c.sarc")).returncode == 0
    proc = run_cli("decompress", str(tmp_path / "c.sarc"), "-o", str(tmp_path / "c.tif"), "--compare", str(const))
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
