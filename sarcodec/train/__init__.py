"""Training: YAML configs, the training loop, checkpoints, LR schedules and torchrun/DDP setup.

Typical use::

    from sarcodec.train import load_config, train, load_model_from_checkpoint

    config = load_config("configs/residual_v1_c16.yaml", ["data.root=/data/ds", "optim.lr=3e-4"])
    result = train(config)                      # writes runs/residual_v1_c16/{best,last}.pth, history.json, events
    model = load_model_from_checkpoint(result.output_dir / "best.pth")   # eval mode

The codecs train in the same loop with ``objective: rd`` (``configs/codec/hyperprior.yaml``), which also writes
the codec's ``.safetensors``.

Layout: ``config.py`` (dataclasses, YAML, overrides), ``trainer.py`` (the loop), ``objectives.py`` (what differs
between autoencoders and codecs: network, loss, validation metrics, the exported product), ``checkpoint.py``
(atomic save, ``weights_only`` load, RNG state), ``schedule.py`` (LR as a function of the step),
``distributed.py`` (torchrun).
"""

from __future__ import annotations

from sarcodec.train.checkpoint import load_checkpoint, load_model_from_checkpoint, save_checkpoint
from sarcodec.train.config import (
    DataConfig,
    EarlyStoppingConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RDConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from sarcodec.train.schedule import LRSchedule, PlateauTracker
from sarcodec.train.trainer import NonFiniteLossError, TrainResult, evaluate, train

__all__ = [
    "DataConfig",
    "EarlyStoppingConfig",
    "LRSchedule",
    "LossConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "PlateauTracker",
    "RDConfig",
    "TrainConfig",
    "TrainResult",
    "config_from_dict",
    "evaluate",
    "load_checkpoint",
    "load_config",
    "load_model_from_checkpoint",
    "save_checkpoint",
    "train",
]
