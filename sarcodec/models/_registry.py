"""Model registry: stable string names -> autoencoder classes, and the one factory that builds them.

Private machinery: the public entry points are ``sarcodec.models.create_model`` and ``list_models``.
Names are part of the checkpoint and .sarc formats (they identify the architecture), so never rename one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from sarcodec.errors import IncompatibleModelError
from sarcodec.models.base import AutoencoderBase

_MODELS: dict[str, type[AutoencoderBase]] = {}

ModelClass = TypeVar("ModelClass", bound=type[AutoencoderBase])


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: register an autoencoder under ``name`` and set its ``model_name``."""

    def decorate(cls: ModelClass) -> ModelClass:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].__qualname__}")
        cls.model_name = name
        _MODELS[name] = cls
        return cls

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, /, **cfg: Any) -> AutoencoderBase:
    """Build the autoencoder registered as ``name`` with keyword arguments ``cfg``.

    Raises:
        IncompatibleModelError: unknown ``name``, or ``cfg`` holds arguments the model does not take
            (e.g. a checkpoint written by another architecture or version).
    """
    try:
        cls = _MODELS[name]
    except KeyError:
        raise IncompatibleModelError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}"
        ) from None
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise IncompatibleModelError(
            f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**cfg)
