"""sarcodec batch on a real Dask cluster: one task per scene (and band), failures isolated, resumable (verified
outputs skipped, damaged ones redone), the manifest, decompression, and one-line errors on bad input."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

import sarcodec
from sarcodec.deploy.batch import BatchError, plan_jobs, raise_for_failures, run_batch
from sarcodec.errors import BadInputError
from tests.conftest import speckle_intensity, write_geotiff
from tests.test_cli import assert_one_line_error, run_cli, stop_once_writing

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples" / "opera").glob("*.tif"))
SAMPLE_SHAPE = (100, 100)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One local cluster of 2 worker processes for the module (starting one takes seconds)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _inputs(root: Path, n: int = 2) -> Path:
    """A folder with copies of ``n`` bundled samples and a text file named bad.tif."""
    folder = root / "in"
    folder.mkdir()
    for sample in SAMPLES[:n]:
        shutil.copy(sample, folder / sample.name)
    (folder / "bad.tif").write_text("not a raster")
    return folder


def _manifest(outdir: Path) -> dict[str, dict[str, str]]:
    with open(outdir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["input", "band", "output", "status", "bytes", "bpp", "seconds", "error"]
    return {Path(row["input"]).name: row for row in rows}


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_compress_resume_redo_and_decompress(tmp_path: Path, scheduler: str) -> None:
    folder, out = _inputs(tmp_path), tmp_path / "out"
    good = [p.name for p in SAMPLES[:2]]
    logged: list[str] = []
    rows = run_batch([folder], out, scheduler=scheduler, connect_timeout=60, options={"quality": 3}, log=logged.append)

    assert sorted((Path(r["input"]).name, r["status"]) for r in rows) == sorted(
        [(good[0], "done"), (good[1], "done"), ("bad.tif", "failed")])
    assert len(logged) == 1 and logged[0].startswith("batch: 2 done, 0 skipped, 1 failed of 3 scene(s)"), logged
    assert "scenes/min" in logged[0]
    # no temporary files left: the outputs and the manifest only
    assert sorted(p.name for p in out.iterdir()) == sorted([Path(g).with_suffix(".sarc").name for g in good]
                                                           + ["manifest.csv"])
    manifest = _manifest(out)
    assert set(manifest) == {*good, "bad.tif"}
    for name in good:
        row = manifest[name]
        output = Path(row["output"])
        assert output == out.absolute() / Path(name).with_suffix(".sarc").name
        assert (row["status"], row["band"], row["error"]) == ("done", "1", "")
        assert int(row["bytes"]) == output.stat().st_size > 100
        assert float(row["bpp"]) == pytest.approx(int(row["bytes"]) * 8 / (100 * 100), abs=1e-6)
        assert float(row["seconds"]) > 0
        assert sarcodec.read_info(output)["quality"] == 3
        decoded = sarcodec.decompress(output).array
        assert decoded is not None and decoded.shape == SAMPLE_SHAPE
    bad = manifest["bad.tif"]
    assert bad["status"] == "failed" and "not a readable raster" in bad["error"]
    assert bad["bytes"] == bad["bpp"] == "" and not Path(bad["output"]).exists()
    with pytest.raises(BatchError, match="1 of 3 scene") as failure:
        raise_for_failures(rows, out / "manifest.csv")
    assert failure.value.exit_code == 6

    # rerun: the verified outputs are skipped (not rewritten), the bad scene fails again
    first, second = (out / Path(g).with_suffix(".sarc").name for g in good)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (first, second)}
    rows = run_batch([folder], out, scheduler=scheduler, connect_timeout=60, options={"quality": 3}, log=logged.append)
    assert {Path(r["input"]).name: r["status"] for r in rows} == {good[0]: "skipped", good[1]: "skipped",
                                                                 "bad.tif": "failed"}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (first, second)} == before
    manifest = _manifest(out)
    assert [manifest[g]["status"] for g in good] == ["skipped", "skipped"]
    assert int(manifest[good[0]]["bytes"]) == first.stat().st_size
    assert logged[-1].startswith("batch: 0 done, 2 skipped, 1 failed")

    # a damaged output (checksum fails) is redone; the intact one is still skipped
    _flip_byte(first)
    with pytest.raises(sarcodec.CorruptFileError):
        sarcodec.read_info(first)
    rows = run_batch([folder], out, scheduler=scheduler, connect_timeout=60, options={"quality": 3}, log=logged.append)
    assert {Path(r["input"]).name: r["status"] for r in rows} == {good[0]: "done", good[1]: "skipped",
                                                                 "bad.tif": "failed"}
    assert first.read_bytes() == before[first][1]  # the same scene and options code to the same bytes
    assert second.stat().st_mtime_ns == before[second][0]

    # --decompress of the outputs (the manifest beside them is not an input): GeoTIFFs of the samples' shape
    dec = tmp_path / "dec"
    rows = run_batch([out], dec, decompress=True, scheduler=scheduler, connect_timeout=60, options={}, log=logged.append)
    assert [r["status"] for r in rows] == ["done", "done"]
    manifest = _manifest(dec)
    for name in good:
        row = manifest[Path(name).with_suffix(".sarc").name]
        tif = Path(row["output"])
        assert tif == dec.absolute() / name and int(row["bytes"]) == tif.stat().st_size
        with rasterio.open(tif) as ds, rasterio.open(folder / name) as original:
            assert ds.shape == SAMPLE_SHAPE and ds.crs == original.crs and ds.transform == original.transform
    # and again: both skipped
    rows = run_batch([out], dec, decompress=True, scheduler=scheduler, connect_timeout=60, options={}, log=logged.append)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    # a GeoTIFF cut short (a copy, or a write on a full disk) still opens with the right shape: redone, not skipped
    cut = dec / good[0]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 6 // 10])
    with rasterio.open(cut) as ds:
        assert ds.shape == SAMPLE_SHAPE
    rows = run_batch([out], dec, decompress=True, scheduler=scheduler, connect_timeout=60, options={}, log=logged.append)
    assert [r["status"] for r in rows] == ["done", "skipped"]


@pytest.mark.slow
def test_one_task_per_band_of_multiband_rasters(tmp_path: Path, scheduler: str) -> None:
    bands = np.stack([speckle_intensity((48, 64), seed=s) for s in (1, 2)])
    folder = tmp_path / "in"
    folder.mkdir()
    write_geotiff(folder / "pair.tif", bands)
    out = tmp_path / "out"
    rows = run_batch([folder], out, scheduler=scheduler, connect_timeout=60, options={"quality": 2}, log=lambda line: None)
    assert [(Path(r["output"]).name, r["band"], r["status"]) for r in rows] == [
        ("pair_b1.sarc", 1, "done"), ("pair_b2.sarc", 2, "done")]
    for k in (1, 2):
        info = sarcodec.read_info(out / f"pair_b{k}.sarc")
        assert (info["band"], info["height"], info["width"]) == (k, 48, 64)
    only = tmp_path / "only"
    rows = run_batch([folder], only, scheduler=scheduler, connect_timeout=60, options={"quality": 2, "band": 2}, log=lambda line: None)
    assert [(Path(r["output"]).name, r["status"]) for r in rows] == [("pair_b2.sarc", "done")]
    assert (only / "pair_b2.sarc").read_bytes() == (out / "pair_b2.sarc").read_bytes()


@pytest.mark.slow
def test_cli_default_local_cluster(tmp_path: Path) -> None:
    folder, out = _inputs(tmp_path, n=1), tmp_path / "out"
    proc = run_cli("batch", str(folder), "-o", str(out), "--workers", "2", "--quality", "2")
    assert proc.returncode == 6, proc.stderr
    assert_one_line_error(proc, "1 of 2 scene(s) failed")  # and no progress bar: stderr is not a terminal
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batch: 1 done, 0 skipped, 1 failed of 2 scene(s)"), proc.stdout
    manifest = _manifest(out)
    assert manifest[SAMPLES[0].name]["status"] == "done" and manifest["bad.tif"]["status"] == "failed"
    assert (out / SAMPLES[0].with_suffix(".sarc").name).is_file()


def test_cli_bad_input_one_line_nothing_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "afile").write_text("I am a file")
    sample = str(SAMPLES[0])
    out = str(tmp_path / "out")
    cases = [
        (["batch", str(empty), "-o", out], "no raster files"),
        (["batch", str(tmp_path / "nope"), "-o", out], "no such file"),
        (["batch", sample, "-o", str(tmp_path / "afile")], "not a directory"),
        (["batch", sample, "-o", out, "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"],
         "cannot reach the Dask scheduler"),
        (["batch", "--decompress", str(empty), "-o", out], "no .sarc files"),
        (["batch", "--decompress", sample, "-o", out, "--quality", "3"], "quality: not an option of decompress"),
        (["batch", "--decompress", sample, "-o", out, "--runtime", "onnx"], "runtime: not an option of decompress"),
        # checked before a cluster starts (before 0.7.11: every scene failed, exit 6, OUTDIR and a manifest written)
        (["batch", sample, "-o", out, "-q", "9"], "quality must be between 1 and 8"),
        (["batch", sample, "-o", out, "--max-error", "0"], "maximum error in dB must be at least"),
        (["batch", sample, "-o", out, "--bpp", "0"], "must be a positive number"),
        (["batch", sample, "-o", out, "--max-error-units", "input"], "needs max_error"),
        (["batch", sample, "-o", out, "--lossless", "--speckle"], "speckle synthesis is for lossy files"),
        (["batch", "--decompress", sample, "-o", out, "--speckle"], "--speckle is an option of compress"),
        (["batch", sample, "-o", out, "--no-speckle"], "--no-speckle is an option of --decompress"),
    ]
    for args, needle in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_one_line_error(proc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty"]
    assert (tmp_path / "afile").read_text() == "I am a file"


def test_runtime_option_is_checked_before_a_cluster_starts() -> None:
    from sarcodec.deploy.batch import _checked_options

    assert _checked_options({"runtime": "onnx", "quality": 2.0, "band": None}, decompress=False) == {
        "runtime": "onnx", "quality": 2.0}
    with pytest.raises(BadInputError, match="runtime must be one of"):
        _checked_options({"runtime": "tflite"}, decompress=False)


def test_plan_refuses_two_inputs_writing_one_output(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(SAMPLES[0], tmp_path / folder / "scene.tif")
    jobs = plan_jobs([tmp_path / "a", tmp_path / "a" / "scene.tif"], tmp_path / "out")  # one file twice: one job
    assert [(j.source, j.band, j.output.name) for j in jobs] == [(tmp_path / "a" / "scene.tif", 1, "scene.sarc")]
    with pytest.raises(BadInputError, match="would both write"):
        plan_jobs([tmp_path / "a", tmp_path / "b"], tmp_path / "out")


def test_a_stopped_batch_leaves_no_partial_scenes(tmp_path: Path) -> None:
    """SIGTERM while the local cluster's workers write: closing the cluster kills them before their writers clean
    up, so the batch removes its outputs' temporary files itself; the manifest (empty: nothing finished) stays."""
    import signal

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        write_geotiff(inputs / f"{name}.tif", speckle_intensity((2048, 2048), seed=len(name)))
    outdir = tmp_path / "out"
    code, stderr = stop_once_writing(["batch", str(inputs), "-o", str(outdir)], outdir, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and stderr.strip().splitlines()[-1] == "sarcodec batch: stopped by SIGTERM"
    assert sorted(p.name for p in outdir.iterdir()) == ["manifest.csv"]


def test_ctrl_c_stops_a_batch_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group, the cluster's workers included: the workers ignore it
    (each printed a KeyboardInterrupt traceback) and Dask's warnings about the workers it then stops are off, so
    the command's line is all that stderr holds; nothing of the scenes is left."""
    import signal

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        write_geotiff(inputs / f"{name}.tif", speckle_intensity((2048, 2048), seed=len(name)))
    outdir = tmp_path / "out"
    code, stderr = stop_once_writing(["batch", str(inputs), "-o", str(outdir)], outdir, signal.SIGINT, group=True)
    assert code == 130 and stderr.strip().splitlines() == ["sarcodec batch: interrupted"], stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["manifest.csv"]


def test_files_sarcodec_did_not_write_are_never_replaced(tmp_path: Path) -> None:
    """An existing file at an output's name is replaced only when sarcodec wrote it and it is damaged: a user's
    file of that name (any content, the complete .sarc of another raster, the original GeoTIFF beside its .sarc, a
    folder) fails its scene with one line and stays as it was; so does a manifest.csv that a batch did not write."""
    from sarcodec.deploy.batch import Job, run_job

    source, other = SAMPLES[0], SAMPLES[1]
    out = tmp_path / "out"
    out.mkdir()
    target = out / source.with_suffix(".sarc").name
    job = Job(source.absolute(), 1, target)
    rows = []
    for content, needle in ((b"my notes", "is not a .sarc file"), (None, "is the .sarc of another raster")):
        if content is None:
            sarcodec.compress(write_geotiff(tmp_path / "other.tif", speckle_intensity((40, 30))), target,
                              overwrite=True)
        else:
            target.write_bytes(content)
        before = target.read_bytes()
        row = run_job(job, False, {"quality": 2})
        assert row["status"] == "failed" and needle in row["error"] and "remove it" in row["error"], row
        assert target.read_bytes() == before
        rows.append(row)
    target.unlink()
    target.mkdir()
    assert "is not a regular file" in run_job(job, False, {"quality": 2})["error"]

    sarc = tmp_path / "s.sarc"
    sarcodec.compress(source, sarc, quality=2)
    original = tmp_path / source.name  # decoding next to the original: the same name and the same shape
    shutil.copy(source, original)
    row = run_job(Job(sarc, None, original), True, {})
    assert row["status"] == "failed" and "not written by sarcodec" in row["error"], row
    assert original.read_bytes() == source.read_bytes()
    decoded = tmp_path / "dec.tif"  # its own output: skipped, and redone once damaged
    assert run_job(Job(sarc, None, decoded), True, {})["status"] == "done"
    assert run_job(Job(sarc, None, decoded), True, {})["status"] == "skipped"
    decoded.write_bytes(decoded.read_bytes()[: decoded.stat().st_size * 6 // 10])
    assert run_job(Job(sarc, None, decoded), True, {})["status"] == "done"
    link = tmp_path / "link.tif"  # a link to a verified output is skipped (git-annex, DVC layouts) ...
    link.symlink_to(decoded)
    assert run_job(Job(sarc, None, link), True, {})["status"] == "skipped"
    small = tmp_path / "small.sarc"  # ... but a complete decoded GeoTIFF of another .sarc is not replaced
    sarcodec.compress(write_geotiff(tmp_path / "small.tif", speckle_intensity((40, 30))), small, quality=1)
    row = run_job(Job(small, None, decoded), True, {})
    assert row["status"] == "failed" and "decoded GeoTIFF of another .sarc (100 x 100)" in row["error"], row
    with rasterio.open(decoded) as ds:
        assert ds.shape == SAMPLE_SHAPE

    # a good .sarc whose source cannot be read now (a mount gone) is not called "of another raster"
    copy = tmp_path / source.name
    kept = out / "kept.sarc"
    sarcodec.compress(copy, kept, quality=2)
    copy.unlink()
    row = run_job(Job(copy, 1, kept), False, {"quality": 2})
    assert row["status"] == "failed" and "another raster" not in row["error"] and str(copy) in row["error"], row
    assert sarcodec.read_info(kept)["height"] == 100
    newer = out / "newer.sarc"  # a format this version does not read is not taken for a damaged file
    newer.write_bytes(kept.read_bytes()[:8] + (99).to_bytes(2, "little") + kept.read_bytes()[10:])
    row = run_job(Job(source.absolute(), 1, newer), False, {"quality": 2})
    assert row["status"] == "failed" and "format version 99" in row["error"], row

    manifest = out / "manifest.csv"
    manifest.write_text("my,own,table\n1,2,3\n")
    with pytest.raises(sarcodec.OutputError, match="not a sarcodec batch manifest"):
        run_batch([other], out, options={"quality": 2}, log=lambda _: None)
    assert manifest.read_text() == "my,own,table\n1,2,3\n" and not (out / other.with_suffix(".sarc").name).exists()
