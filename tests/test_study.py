"""The seed study's equal-epoch table (sarcodec.study.epoch_curves) from run histories."""

from __future__ import annotations

import json
from pathlib import Path

from sarcodec.study import StudyPaths, epoch_curves


def test_epoch_curves_line_up_runs_at_equal_epochs(tmp_path: Path) -> None:
    paths = StudyPaths(runs=tmp_path / "runs", residual_dir=tmp_path / "b")
    for run, n, offset in (("baseline_c16", 7, 0.0), ("residual_v1_c16", 4, 0.5)):
        folder = paths.run_dir(run)
        folder.mkdir(parents=True)
        history = [{"epoch": e, "val_psnr": 10.0 + e + offset, "val_ssim": 0.01 * e} for e in range(1, n + 1)]
        (folder / "history.json").write_text(json.dumps(history))
    table = epoch_curves(paths, ["baseline_c16", "residual_v1_c16", "attention_c16"], every=3).splitlines()
    assert table[0].startswith("| epoch | baseline_c16 val PSNR (dB) | residual_v1_c16 val PSNR (dB) |")
    rows = {line.split(" | ")[0].strip("| "): line for line in table[2:]}
    assert list(rows) == ["1", "3", "4", "6", "7"]  # 1, every 3rd, and each run's last epoch
    assert rows["3"].startswith("| 3 | 13.00 | 13.50 | +0.50 |")
    assert rows["6"].startswith("| 6 | 16.00 |  |  |")  # Variant B stopped at epoch 4
    assert "attention_c16" not in table[0]  # a run without history is left out
