"""Rate-distortion codec architectures: the ``RDCodec`` contract (``base.py``), the factorized prior
(``factorized.py``), the mean-scale hyperprior (``hyperprior.py``) and, for training only so far, the hyperprior
with a checkerboard context model (``checkerboard.py``), built by name with ``create_codec``.

Their entropy models are the low layer ``sarcodec.entropy``; tiling and compress/decompress of scenes are
``sarcodec.codec``; shipped weights load through ``sarcodec.codec.registry.load_codec``.
"""

from __future__ import annotations

from typing import Any

# Importing the architecture modules registers them (and exports their classes).
from sarcodec.models._registry import build, list_models
from sarcodec.models.codecs.base import DEFAULT_LAMBDAS, Analysis, RDCodec
from sarcodec.models.codecs.checkerboard import CheckerboardHyperprior
from sarcodec.models.codecs.factorized import FactorizedPriorCodec
from sarcodec.models.codecs.hyperprior import HyperpriorCodec

__all__ = [
    "DEFAULT_LAMBDAS",
    "Analysis",
    "CheckerboardHyperprior",
    "FactorizedPriorCodec",
    "HyperpriorCodec",
    "RDCodec",
    "create_codec",
    "list_codecs",
]


def list_codecs() -> list[str]:
    """Registered codec architecture names."""
    return list_models("codec")


def create_codec(name: str, /, **cfg: Any) -> RDCodec:
    """Build the codec architecture ``name`` with keyword arguments ``cfg`` (IncompatibleModelError when ``name``
    is unknown or ``cfg`` does not fit it)."""
    codec = build("codec", name, cfg)
    assert isinstance(codec, RDCodec)
    return codec
