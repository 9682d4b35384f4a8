"""Autoencoder architectures and the factory that builds them.

``create_model(name, **cfg)`` is the one way to build a model from a name and a config (e.g. from a checkpoint:
``create_model(ckpt["model_name"], **ckpt["model_config"])``). Registered names: ``"baseline"``,
``"resnet_lite"``, ``"residual"``, ``"attention"`` (see ``list_models()``).

Every model maps ``(N, 1, H, W)`` float images in [0, 1] (normalized dB) to a latent
``(N, latent_channels, ceil(H/16), ceil(W/16))`` and back; any H, W works.
"""

from __future__ import annotations

# Importing the architecture modules registers them; keep these imports even though they look unused.
from sarcodec.models._registry import create_model, list_models
from sarcodec.models.attention import AttentionAutoencoder
from sarcodec.models.base import AutoencoderBase, pad_to_multiple
from sarcodec.models.baseline import SARAutoencoder
from sarcodec.models.residual import ResidualAutoencoder
from sarcodec.models.resnet_lite import ResNetAutoencoder

__all__ = [
    "AttentionAutoencoder",
    "AutoencoderBase",
    "ResNetAutoencoder",
    "ResidualAutoencoder",
    "SARAutoencoder",
    "create_model",
    "list_models",
    "pad_to_multiple",
]
