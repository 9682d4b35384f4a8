"""Fixtures for the trainer tests: a tiny scene-split dataset (32 px patches) and tiny model configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sarcodec.data.prepare import PrepareConfig, prepare_dataset
from sarcodec.train import TrainConfig, config_from_dict

# residual (pre-activation blocks, BatchNorm, bilinear upsampling) at 8 base channels: ~0.1 M parameters,
# milliseconds per 32 px batch on a CPU; the default train split holds 72 patches -> 9 batches of 8.
TINY_CONFIG: dict[str, Any] = {
    "run_name": "tiny",
    "model": {"name": "residual", "latent_channels": 4, "base_channels": 8, "blocks_per_stage": 1},
    "data": {"batch_size": 8, "num_workers": 0},
    "optim": {"lr": 1.0e-3, "warmup_epochs": 1, "schedule": "cosine", "min_lr": 1.0e-5},
    "epochs": 1,
    "device": "cpu",
    "log_every_n_steps": 2,
    "num_sample_images": 2,
}


@pytest.fixture
def tiny_dataset(scene_dir: Path, tmp_path: Path) -> Path:
    """72 train / 18 val / 18 test patches of 32 px from the six synthetic scenes, split by scene."""
    out = tmp_path / "ds"
    prepare_dataset([scene_dir], out, PrepareConfig(patch_size=32))
    return out


@pytest.fixture
def make_config(tiny_dataset: Path, tmp_path: Path) -> Callable[..., TrainConfig]:
    """``make_config(run, "optim.lr=1e-2", epochs=2)``: the tiny config writing to ``tmp_path/run``."""

    def make(run: str = "run", *sets: str, **top: Any) -> TrainConfig:
        pairs: list[Any] = [("data.root", str(tiny_dataset)), ("output_dir", str(tmp_path / run)), *sets,
                            *top.items()]
        return config_from_dict(TINY_CONFIG, pairs)

    return make


@pytest.fixture
def tiny_config_file(tiny_dataset: Path, tmp_path: Path) -> Path:
    """The tiny config as a YAML file, with its dataset filled in."""
    path = tmp_path / "tiny.yaml"
    raw = {**TINY_CONFIG, "data": {**TINY_CONFIG["data"], "root": str(tiny_dataset)}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
