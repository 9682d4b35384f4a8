"""The tile pool: order, errors, PyTorch's thread count; and start-up without PyTorch where it is not needed."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sarcodec
from sarcodec.codec.pipeline import TilePool
from sarcodec.errors import CorruptFileError


def _job(value: int, delay: float) -> int:
    time.sleep(delay)
    assert torch.get_num_threads() == 1  # every tile computes on one thread
    return value


def test_bands_come_back_in_order_with_their_tiles_in_order() -> None:
    threads = torch.get_num_threads()
    seen: list[tuple[str, list[int]]] = []
    with TilePool[str, int](3, torch_cpu=True) as pool:
        for b in range(4):
            jobs = [lambda v=v, d=d: _job(v, d) for v, d in zip(range(b * 10, b * 10 + 5), (0.03, 0, 0.02, 0, 0.01))]
            seen += [(band.data, band.results()) for band in pool.submit(f"band{b}", jobs)]
            assert len(seen) == b  # the previous band is handed back once the next one is queued
        seen += [(band.data, band.results()) for band in pool.drain()]
    assert seen == [(f"band{b}", list(range(b * 10, b * 10 + 5))) for b in range(4)]
    assert torch.get_num_threads() == threads  # restored


def test_a_failing_tile_raises_in_the_caller_and_the_pool_stops() -> None:
    started = threading.Event()

    def bad() -> int:
        started.set()
        raise CorruptFileError("tile 3 is damaged")

    threads = torch.get_num_threads()
    with pytest.raises(CorruptFileError, match="tile 3"):
        with TilePool[None, int](2, torch_cpu=True) as pool:
            for band in pool.submit(None, [bad]):
                band.results()
            for band in pool.drain():
                band.results()
    assert started.is_set() and torch.get_num_threads() == threads


def test_the_heap_is_trimmed_once_when_a_pool_closes_and_not_per_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles reuse what earlier tiles freed (per-tile trimming cost 1.2-1.4x in page faults); the pool hands the
    arenas' free memory back once, as it closes, also when a tile failed."""
    from sarcodec.codec import pipeline

    trims: list[int] = []

    def malloc_trim(pad: int) -> int:
        trims.append(pad)
        return 1

    monkeypatch.setattr(pipeline, "_MALLOC_TRIM", malloc_trim)
    with TilePool[None, int](2) as pool:
        results = [band.results() for band in pool.run((None, [lambda v=v: v for v in range(4)]) for _ in range(3))]
        assert trims == []
    assert results == [[0, 1, 2, 3]] * 3 and trims == [0]
    with pytest.raises(ValueError, match="tile"):
        with TilePool[None, int](2) as pool:
            for band in pool.run([(None, [lambda: int("tile")])]):
                band.results()
    assert trims == [0, 0]


def test_compress_and_decompress_use_every_worker_with_identical_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = (rng.exponential(1.0, (150, 170)) * np.linspace(1, 30, 170)).astype(np.float32)
    outs = []
    for workers in ("1", "3"):
        code = ("import sys, numpy as np, torch, sarcodec; torch.set_num_threads(int(sys.argv[1]));"
                "x = np.load(sys.argv[2]); sarcodec.compress(x, sys.argv[3], tile_size=64, overlap=8, units='intensity');"
                "np.save(sys.argv[4], sarcodec.decompress(sys.argv[3]).array)")
        np.save(tmp_path / "x.npy", image)
        subprocess.run([sys.executable, "-c", code, workers, str(tmp_path / "x.npy"), str(tmp_path / f"{workers}.sarc"),
                        str(tmp_path / f"{workers}.npy")], check=True)
        outs.append(((tmp_path / f"{workers}.sarc").read_bytes(), np.load(tmp_path / f"{workers}.npy")))
    assert outs[0][0] == outs[1][0]  # 9 tiles on 1 or 3 workers: the same file...
    np.testing.assert_array_equal(outs[0][1], outs[1][1])  # ...and the same pixels


def test_info_does_not_import_pytorch(tmp_path: Path) -> None:
    sarc = tmp_path / "a.sarc"
    sarcodec.compress(np.full((40, 50), 3.0, np.float32), sarc, units="intensity")
    code = ("import sys; from sarcodec.cli import main; rc = main(['info', sys.argv[1]]);"
            "assert 'torch' not in sys.modules, 'info imported torch'; raise SystemExit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(sarc)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "40" in done.stdout and "50" in done.stdout


def test_bounded_decompress_does_not_import_pytorch(tmp_path: Path) -> None:
    sarc = tmp_path / "b.sarc"
    sarcodec.compress(np.arange(1, 2001, dtype=np.float32).reshape(40, 50), sarc, max_error=0.5, units="intensity")
    code = ("import sys; from sarcodec.cli import main; rc = main(['decompress', sys.argv[1], '-o', sys.argv[2]]);"
            "assert 'torch' not in sys.modules, 'a bounded decode imported torch'; raise SystemExit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(sarc), str(tmp_path / "b.tif")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_set_cpu_workers_caps_the_bounded_pool() -> None:
    from sarcodec.codec.pipeline import cpu_workers, set_cpu_workers

    cores = cpu_workers()
    try:
        set_cpu_workers(1)
        assert cpu_workers() == 1
        set_cpu_workers(cores + 5)  # a cap above the cores changes nothing
        assert cpu_workers() == cores
    finally:
        set_cpu_workers(None)
    assert cpu_workers() == cores


@pytest.mark.parametrize("dtype, units, nodata", [(np.uint16, "amplitude", 0.0), (np.int16, "intensity", -1.0),
                                                  (np.uint8, "db", None), (np.int8, "amplitude", 3.0),
                                                  (np.float32, "amplitude", 0.0)])
def test_band_rows_give_each_tile_the_db_of_its_columns(dtype: type, units: str, nodata: float | None) -> None:
    """Integer bands keep their raw values and each tile converts its own columns (on its worker): the same float32
    dB and validity as converting the whole band."""
    from sarcodec.codec import api, lossy
    from sarcodec.preprocess import make_params, to_db

    values = np.random.default_rng(5).integers(0, 120, (70, 90)).astype(dtype)
    values[3, :7] = 0 if nodata is None else nodata
    params = make_params(units, np.dtype(dtype).name, -5.0, 40.0, nodata=nodata)
    source = api._ArraySource(values, nodata)
    table = lossy._db_table(np.dtype(dtype).name, params)
    assert (table is None) == (np.dtype(dtype).kind == "f")
    band = lossy._band_rows(source, params, 16, 48, 8, table)
    want_db, want_valid = to_db(values[8:56], units, nodata)
    assert band.first == 8
    np.testing.assert_array_equal(band.valid, want_valid)
    for cols in (slice(0, 40), slice(24, 90)):
        db = band.db(cols)
        assert db.dtype == np.float32
        np.testing.assert_array_equal(db, want_db[:, cols].astype(np.float32))


def test_compress_timeline_script_reaches_the_first_tile() -> None:
    """scripts/compress_timeline.py probes private steps of compress by name: it must still find them all."""
    repo = Path(__file__).resolve().parents[2]
    sample = sorted((repo / "samples" / "ssl4eo").glob("*/VV.tif"))[0]
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "compress_timeline.py"), str(sample), "--runs", "1",
                           "--", "--quality", "2", "--tile-size", "128"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    labels = [line.split(maxsplit=3)[-1] for line in proc.stdout.splitlines()[1:]]
    assert labels[-1] == "FIRST TILE"
    for step in ("sarcodec imported", "open end", "histogram end", "model end", "band rows end", "mask end"):
        assert step in labels


def test_checkout_comparison_scripts_compare_a_checkout_with_itself() -> None:
    """scripts/same_files.py and benchmarks/checkout_ab.py, the tools behind the README's "the same files" and
    alternating-run claims: against this very checkout they find the same files and pixels, and refuse a folder
    that is not a checkout with one line and exit status 2."""
    repo = Path(__file__).resolve().parents[2]
    sample = sorted((repo / "samples" / "opera").glob("*.tif"))[0]
    same = subprocess.run([sys.executable, str(repo / "scripts" / "same_files.py"), str(repo), str(sample),
                           "--qualities", "2"], capture_output=True, text=True, timeout=300)
    assert same.returncode == 0, same.stderr
    assert "file the same, pixels the same" in same.stdout and "0 of 1 cases differ" in same.stdout
    ab = subprocess.run([sys.executable, str(repo / "benchmarks" / "checkout_ab.py"), str(repo), "--size", "256",
                         "--runs", "1"], capture_output=True, text=True, timeout=300)
    assert ab.returncode == 0, ab.stderr
    assert "files: the same" in ab.stdout and "largest difference 0" in ab.stdout
    for args in (["scripts/same_files.py", "samples", str(sample)], ["benchmarks/checkout_ab.py", "samples"]):
        bad = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "not a sarcodec checkout" in bad.stderr


def test_band_rows_convert_rows_of_another_dtype_directly() -> None:
    """A reader handing back another dtype than its raster info says: no table lookup (it would index the wrong
    table), the values are converted directly."""
    from sarcodec.codec import api, lossy
    from sarcodec.preprocess import make_params, to_db

    values = np.random.default_rng(6).integers(-50, 120, (40, 30)).astype(np.int16)
    params = make_params("amplitude", "uint16", -5.0, 40.0, nodata=0.0)
    table = lossy._db_table("uint16", params)
    band = lossy._band_rows(api._ArraySource(values, 0.0), params, 0, 40, 0, table)
    assert band.db_of is None
    want_db, want_valid = to_db(values, "amplitude", 0.0)
    np.testing.assert_array_equal(band.valid, want_valid)
    np.testing.assert_array_equal(band.db(slice(None)), want_db.astype(np.float32))


def test_cli_compress_imports_neither_pytorch_nor_tqdm_without_a_terminal(tmp_path: Path) -> None:
    """The CLI asks for progress bars, but without a terminal on stderr none would show: tqdm is not imported (nor
    PyTorch, on this CPU-only machine's default runtime, nor the onnx package, which the ONNX graphs are built
    without), and the file is the same as the API's."""
    source = tmp_path / "a.npy"
    np.save(source, np.random.default_rng(0).gamma(1.0, 100.0, (70, 90)).astype(np.float32))
    code = ("import sys; from sarcodec.cli import main; rc = main(['compress', sys.argv[1], '-o', sys.argv[2], "
            "'--units', 'intensity', '--device', 'cpu']); loaded = [m for m in ('torch', 'tqdm', 'onnx', 'ml_dtypes') if m in sys.modules];"
            "assert not loaded, loaded; raise SystemExit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(source), str(tmp_path / "cli.sarc")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    sarcodec.compress(source, tmp_path / "api.sarc", units="intensity", device="cpu")
    assert (tmp_path / "cli.sarc").read_bytes() == (tmp_path / "api.sarc").read_bytes()


def _sizes(side: dict[float, float]):  # type: ignore[no-untyped-def]
    """A sample's records at quality q: a payload growing with q and side bytes ``side`` (interpolated)."""
    qs = sorted(side)

    def side_bytes(q: float) -> float:
        return float(np.interp(q, qs, [side[k] for k in qs]))

    def payload(q: float) -> int:
        return int(1000 * 1.5 ** q)

    return payload, side_bytes


@pytest.mark.parametrize("target", [3000.0, 9000.0, 20000.0])
def test_bpp_search_decides_far_steps_on_estimates_and_finds_what_the_full_search_finds(target: float) -> None:
    """``--bpp``'s bisection: steps whose estimate (exact payload, side bytes interpolated between qualities coded
    in full) is more than 3 % from the target skip the synthesis; the quality found is the full search's, also
    when the side bytes bulge between the known qualities (here far more than the 30-37 kB of the 3072^2 scene,
    so that estimates mislead) and when the payload estimate is wrong: the full search is then redone."""
    from sarcodec.codec import lossy

    for side in ({1.0: 300.0, 8.0: 300.0}, {1.0: 300.0, 4.0: 900.0, 8.0: 280.0}):
        payload, side_bytes = _sizes(side)
        calls: list[float] = []

        def coded(q: float) -> tuple[int, int]:
            calls.append(q)
            return int(payload(q) + side_bytes(q)), payload(q)

        def run(margin: float, pay=payload) -> float:  # type: ignore[no-untyped-def]
            calls.clear()
            full = {1.0: coded(1.0), 8.0: coded(8.0)}
            return lossy._bisect_quality(1.0, 8.0, target, full, coded, pay, float, margin)

        exact = run(math.inf)
        assert len(calls) == 2 + 8
        assert run(0.03) == exact
        if len(side) == 2:  # side bytes as interpolated: fewer steps coded in full
            assert len(calls) < 2 + 8
        # an estimate that misleads (payload under-estimated by half): the result is still the full search's
        assert run(0.03, pay=lambda q: payload(q) // 2) == exact
