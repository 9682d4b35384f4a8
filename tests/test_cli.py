"""The command line: every bad input is one line on stderr, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import speckle_intensity, write_geotiff


def _env() -> dict[str, str]:
    """This environment without SARCODEC_DEBUG (errors must be one line)."""
    return {k: v for k, v in os.environ.items() if k != "SARCODEC_DEBUG"}


def run_cli(*args: str, cwd: Path | None = None, preexec_fn: Callable[[], Any] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sarcodec", *args], capture_output=True, text=True, cwd=cwd,
                          env=_env(), timeout=120, preexec_fn=preexec_fn)


def stop_once_writing(args: list[str], folder: Path, signum: int, group: bool = False) -> tuple[int, str]:
    """Start ``sarcodec ARGS``, send ``signum`` once its hidden partial output exists (with ``group``, to its whole
    process group, as Ctrl-C in a terminal does), wait for it; its exit code and stderr."""
    # the signal's default disposition in the child, whatever this process was given (nohup ignores SIGHUP)
    proc = subprocess.Popen([sys.executable, "-m", "sarcodec", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
                            start_new_session=group)
    deadline = time.monotonic() + 60
    while not (folder.is_dir() and any(".partial" in p.name for p in folder.iterdir())):
        assert proc.poll() is None, f"ended before writing: {proc.communicate()}"
        assert time.monotonic() < deadline, "no partial output within 60 s"
        time.sleep(0.01)
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    stderr = proc.communicate(timeout=60)[1]
    return proc.returncode, stderr


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and needle in lines[0], lines[0]


def _good(tmp: Path) -> Path:
    return write_geotiff(tmp / "good.tif", speckle_intensity((64, 64), seed=1))


BAD_INPUTS = {
    "missing file": (lambda d: [str(d / "nope.tif")], "no such file"),
    "text file named .tif": (lambda d: [(d / "fake.tif").write_text("hello") and str(d / "fake.tif")], "not a readable raster"),
    "empty raster": (lambda d: [np.save(d / "empty.npy", np.zeros((0, 0), np.float32)) or str(d / "empty.npy")], "empty raster"),
    "multi-band without band": (
        lambda d: [str(write_geotiff(d / "two.tif", np.stack([speckle_intensity((32, 32))] * 2)))], "choose one with --band"),
    "all-NaN raster": (
        lambda d: [str(write_geotiff(d / "nan.tif", np.full((32, 32), np.nan, np.float32)))], "no valid pixels"),
    "unknown units": (lambda d: [str(_good(d)), "--units", "watts"], "invalid choice: 'watts'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_prepare_bad_input(case: str, tmp_path: Path) -> None:
    make, needle = BAD_INPUTS[case]
    args = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli("prepare", *args, "-o", str(tmp_path / "out"))
    assert_one_line_error(proc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_prepare_unwritable_output(tmp_path: Path) -> None:
    good = _good(tmp_path)
    (tmp_path / "afile").write_text("I am a file")
    # the output's parent is a regular file: cannot be created (permission bits do not stop root)
    proc = run_cli("prepare", str(good), "-o", str(tmp_path / "afile" / "ds"))
    assert_one_line_error(proc, "cannot create")
    proc = run_cli("prepare", str(good), "-o", "/proc/sarcodec-ds")
    assert_one_line_error(proc, "sarcodec prepare: error")
    assert (tmp_path / "afile").read_text() == "I am a file"


def test_prepare_then_info_with_preview(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = run_cli("prepare", str(scene_dir), "-o", str(out), "--patch-size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "scenes shared between splits: 0" in proc.stdout
    assert "units: intensity" in proc.stderr  # the inference rule is printed
    proc = run_cli("info", str(out), "--preview", str(tmp_path / "p.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert_one_line_error(run_cli("info", str(tmp_path)), "not a sarcodec dataset")
    # a missing folder is said so (was "not a sarcodec dataset"); a raster is not read as a checkpoint
    assert_one_line_error(run_cli("info", str(tmp_path / "gone") + "/"), "no such file or folder")
    raster = next(scene_dir.rglob("*.tif"))
    assert_one_line_error(run_cli("info", str(raster)), "not rasters")


def test_help_and_usage_errors() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0 and "prepare" in proc.stdout
    assert run_cli("prepare", "--help").returncode == 0
    assert_one_line_error(run_cli("prepare"), "required")
    assert_one_line_error(run_cli("frobnicate"), "invalid choice")


def test_the_installed_version_is_the_packages() -> None:
    """pyproject.toml takes the version from sarcodec/version.py (0.7.8 shipped with 0.7.7 in pip's metadata)."""
    from importlib.metadata import version

    from sarcodec import __version__

    assert version("sarcodec") == __version__
    assert run_cli("--version").stdout.strip() == f"sarcodec {__version__}"
