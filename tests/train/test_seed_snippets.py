"""The seed plan's (04-04-PLAN.md) two verification snippets run unchanged, bar ``src.`` -> ``sarcodec.``.

They read ``notebooks/checkpoints/residual_v1_c16/best.pth`` relative to the working directory, so the test
trains a tiny checkpoint of exactly that architecture (configs/residual_v1_c16.yaml: 16 latent channels,
base 64) for one batch into a temporary directory and runs the snippets there.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from sarcodec.train import load_config, train

REPO = Path(__file__).resolve().parents[2]
SEED_PLAN = REPO.parent / "shared" / "seed" / "04-04-PLAN.md"

# Task 1 and Task 2 <verify> blocks of the plan, with "src." replaced by "sarcodec." and nothing else changed.
SNIPPET_1 = """\
import torch
from sarcodec.models import ResidualAutoencoder

checkpoint = torch.load("notebooks/checkpoints/residual_v1_c16/best.pth", weights_only=False)
model = ResidualAutoencoder(latent_channels=16, base_channels=64)
model.load_state_dict(checkpoint['model_state_dict'])
print(f"Epoch: {checkpoint['epoch']}, Best val loss: {checkpoint['best_val_loss']:.4f}")
assert 'preprocessing_params' in checkpoint
"""

SNIPPET_2 = """\
# Quick metrics verification
import torch
from sarcodec.models import ResidualAutoencoder
from sarcodec.losses.combined import CombinedLoss

checkpoint = torch.load("notebooks/checkpoints/residual_v1_c16/best.pth", weights_only=False)
model = ResidualAutoencoder(latent_channels=16, base_channels=64)
model.load_state_dict(checkpoint['model_state_dict'])
model.eval()

# Get history if available
if 'history' in checkpoint:
    final = checkpoint['history'][-1]
    print(f"Final val PSNR: {final.get('val_psnr', 'N/A')}")
    print(f"Final val SSIM: {final.get('val_ssim', 'N/A')}")

print(f"Parameters: {model.count_parameters()['total']:,}")
"""


@pytest.mark.slow
def test_seed_snippets_run(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(REPO / "configs" / "residual_v1_c16.yaml", [
        ("data.root", str(tiny_dataset)), ("output_dir", "notebooks/checkpoints/residual_v1_c16"),
        ("epochs", 1), ("limit_batches", 1), ("data.batch_size", 4), ("device", "cpu"), ("num_sample_images", 1),
    ])
    monkeypatch.chdir(tmp_path)
    train(config, log=lambda msg: None)
    assert Path("notebooks/checkpoints/residual_v1_c16/best.pth").exists()  # the plan's first check
    capsys.readouterr()

    exec(compile(SNIPPET_1, "seed-snippet-1", "exec"), {})
    exec(compile(SNIPPET_2, "seed-snippet-2", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"Epoch: 1, Best val loss: \d+\.\d{4}", out)
    assert re.search(r"Final val PSNR: \d+\.\d+", out) and re.search(r"Final val SSIM: [-\d.]+", out)
    assert "Parameters: 14,748,113" in out


@pytest.mark.shared_data
def test_snippets_are_the_seed_plans() -> None:
    if not SEED_PLAN.is_file():
        pytest.skip(f"seed plan not found at {SEED_PLAN}")
    blocks = re.findall(r"```python\n(.*?)```", SEED_PLAN.read_text(), flags=re.S)
    loading = [textwrap.dedent(b).replace("src.", "sarcodec.") for b in blocks if "torch.load(" in b]
    assert loading == [SNIPPET_1, SNIPPET_2]
