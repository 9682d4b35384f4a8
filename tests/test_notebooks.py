"""The notebooks run end to end on a tiny budget (the bundled sample, 1 epoch of 2 batches) so they cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train_residual.ipynb", "train_resnet.ipynb"])
def test_notebook_runs_on_tiny_budget(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SARCODEC_NOTEBOOK_BUDGET", "tiny")
    monkeypatch.setenv("SARCODEC_NOTEBOOK_SCRATCH", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=dict(os.environ))
    outputs = "\n".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "budget: tiny" in outputs
    assert "vs baseline_c16 on 3 evaluation images" in outputs
    assert "scenes shared between train and val/test: 0" in outputs
