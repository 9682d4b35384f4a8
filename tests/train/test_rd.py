"""Codec training (sarcodec.train.rd): a few steps produce a loadable, working codec; speckle augmentation."""

from __future__ import annotations

from pathlib import Path

import torch

from sarcodec.codec.registry import load_codec
from sarcodec.train.rd import RDTrainConfig, add_speckle, load_patches, patch_db_ranges, train_codec


def test_a_few_steps_make_a_loadable_codec(tiny_dataset: Path, tmp_path: Path) -> None:
    config = RDTrainConfig(
        name="tiny", codec="hyperprior", data=str(tiny_dataset), out=str(tmp_path),
        codec_config={"channels": 8, "latent_channels": 6, "hyper_channels": 8, "hyper_latent_channels": 4,
                      "lambdas": [20.0, 200.0]},
        batch_size=4, steps=3, warmup_steps=1, log_every=1, speckle_prob=0.5,
    )
    path = train_codec(config)
    codec = load_codec(path)
    assert codec.num_levels == 2 and codec.metadata["codec"] == "hyperprior"
    x = torch.rand(1, 1, 32, 40)
    assert codec.model.decompress_tile(codec.model.compress_tile(x, 2), 32, 40, 2).shape == (1, 1, 32, 40)
    # fine-tuning starts from those weights
    again = train_codec(RDTrainConfig(**{**config.__dict__, "name": "tiny2", "init": str(path), "steps": 1}))
    assert again.is_file()


def test_add_speckle_keeps_range_and_adds_variance(tiny_dataset: Path) -> None:
    x = load_patches(tiny_dataset, "train")[:6]
    spans = patch_db_ranges(tiny_dataset, "train")[:6]
    y = add_speckle(x, spans, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert spans.shape == (6,) and bool((spans > 0).all())
    hp = lambda t: (t[..., 1:, :] - t[..., :-1, :]).pow(2).mean()  # noqa: E731 (high-frequency energy)
    assert float(hp(y)) > float(hp(x))
