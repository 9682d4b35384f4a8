"""The one network registry: stable string names -> architecture classes, and the factory that builds them.

Two kinds share it: the seed study's ``autoencoder``s (``sarcodec.models``; names set ``model_name``) and the
rate-distortion ``codec``s (``sarcodec.models.codecs``; names set ``codec_name``). Private machinery: the public
entry points are ``sarcodec.models.create_model``/``list_models`` and ``sarcodec.models.codecs.create_codec``/
``list_codecs``. Loading shipped weights is a separate, explicit step (``sarcodec.codec.registry``).
Names are part of the checkpoint, weights and .sarc formats (they identify the architecture), so never rename one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from sarcodec.errors import IncompatibleModelError
from sarcodec.models.base import AutoencoderBase

KINDS = ("autoencoder", "codec")
_NETWORKS: dict[str, dict[str, type[nn.Module]]] = {kind: {} for kind in KINDS}
_NAME_ATTRIBUTE = {"autoencoder": "model_name", "codec": "codec_name"}
_WHAT = {"autoencoder": "model", "codec": "codec architecture"}

NetworkClass = TypeVar("NetworkClass", bound=type[nn.Module])


def register_model(name: str, kind: str = "autoencoder") -> Callable[[NetworkClass], NetworkClass]:
    """Class decorator: register a network of ``kind`` under ``name`` and set its ``model_name``/``codec_name``."""
    registry = _NETWORKS[kind]

    def decorate(cls: NetworkClass) -> NetworkClass:
        if name in registry:
            raise ValueError(f"{kind} name {name!r} is already registered to {registry[name].__qualname__}")
        setattr(cls, _NAME_ATTRIBUTE[kind], name)
        registry[name] = cls
        return cls

    return decorate


def list_models(kind: str = "autoencoder") -> list[str]:
    """Registered names of one kind, sorted."""
    return sorted(_NETWORKS[kind])


def build(kind: str, name: str, cfg: dict[str, Any]) -> nn.Module:
    """Build the network of ``kind`` registered as ``name`` with keyword arguments ``cfg``.

    Raises:
        IncompatibleModelError: unknown ``name``, or ``cfg`` holds arguments the network does not take
            (e.g. a checkpoint written by another architecture or version).
    """
    what = _WHAT[kind]
    try:
        cls = _NETWORKS[kind][name]
    except KeyError:
        raise IncompatibleModelError(f"unknown {what} {name!r}; valid names: {', '.join(list_models(kind))}") from None
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise IncompatibleModelError(f"{what} {name!r} does not take {', '.join(unknown)}; it takes "
                                     f"{', '.join(accepted)}")
    return cls(**cfg)


def create_model(name: str, /, **cfg: Any) -> AutoencoderBase:
    """Build the autoencoder registered as ``name`` with keyword arguments ``cfg`` (see :func:`build`)."""
    model = build("autoencoder", name, cfg)
    assert isinstance(model, AutoencoderBase)
    return model
