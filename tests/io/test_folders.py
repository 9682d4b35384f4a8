"""Results folders are written into only when new, empty or an earlier run's (a mistyped -o replaced files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarcodec.errors import OutputError
from sarcodec.io.folders import results_folder


def test_results_folder_accepts_new_empty_and_earlier_runs_only(tmp_path: Path) -> None:
    assert results_folder(tmp_path / "new" / "deep", "results.json", "benchmark").is_dir()
    assert results_folder(tmp_path / "new" / "deep", "results.json", "benchmark").is_dir()  # empty: fine
    (tmp_path / "new" / "deep" / "results.json").write_text("{}")
    (tmp_path / "new" / "deep" / "report.md").write_text("old")
    assert results_folder(tmp_path / "new" / "deep", "results.json", "benchmark").is_dir()  # an earlier run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my report")
    with pytest.raises(OutputError, match="not an earlier benchmark's results"):
        results_folder(mine, "results.json", "benchmark")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        results_folder(tmp_path / "file", "results.json", "benchmark")
    with pytest.raises(OutputError, match="cannot be created"):
        results_folder(tmp_path / "file" / "sub", "results.json", "benchmark")
    with pytest.raises(OutputError, match="empty"):
        results_folder("", "results.json", "benchmark")
    assert (mine / "report.md").read_text() == "my report"
