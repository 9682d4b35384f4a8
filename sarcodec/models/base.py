"""The contract every sarcodec autoencoder follows, and the padding helper it relies on.

Tensors are single-channel SAR images in the working representation: dB of intensity clipped and scaled to
[0, 1] (see ``sarcodec.preprocess``), shaped ``(N, 1, H, W)``, float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.errors import BadInputError

__all__ = ["AutoencoderBase", "pad_to_multiple"]


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Pad ``x`` on the bottom and right so that H and W are multiples of ``multiple``; return the pad's inverse too.

    Replicate padding, not reflect: reflect needs the pad to be smaller than the image (a 5x5 input padded to
    16x16 would fail) and its CUDA backward raises under ``torch.use_deterministic_algorithms(True)``.
    Padding only the bottom/right keeps the latent grid anchored at the top-left pixel, so latent cell
    ``(i, j)`` always covers pixels ``[16i, 16i + 16) x [16j, 16j + 16)`` whatever the image size.

    Args:
        x: ``(N, C, H, W)`` tensor, ``H, W >= 1``.
        multiple: positive integer (a model's ``downsampling_factor``).

    Returns:
        ``(x_padded, crop)``: ``x_padded`` is ``(N, C, ceil(H/m)*m, ceil(W/m)*m)`` (``x`` itself when no pad is
        needed); ``crop(y)`` returns ``y[..., :H, :W]``, undoing the pad on any tensor of the padded size.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    pad_bottom = -height % multiple
    pad_right = -width % multiple

    def crop(y: Tensor) -> Tensor:
        return y[..., :height, :width]

    if pad_bottom == 0 and pad_right == 0:
        return x, crop
    return F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate"), crop


class AutoencoderBase(nn.Module):
    """Base class of the autoencoders: two named halves, ``encoder`` and ``decoder``, and the shared contract.

    * ``encode(x)``: ``(N, 1, H, W)`` in [0, 1] -> latent ``(N, latent_channels, ceil(H/16), ceil(W/16))``, float,
      unbounded (nothing is quantized here). Inputs of any size are padded first (see :func:`pad_to_multiple`).
    * ``decode(z)``: latent ``(N, latent_channels, h, w)`` -> ``(N, 1, 16h, 16w)`` in [0, 1], i.e. the *padded*
      size; crop with the function :func:`pad_to_multiple` returned (``forward`` does it for you).
    * ``forward(x)``: the reconstruction, exactly ``x``'s shape, in [0, 1].

    Call ``model.eval()`` before inference: BatchNorm then uses its running statistics and the output depends
    on nothing random. In training mode, BatchNorm needs more than one value per channel at the bottleneck,
    i.e. ``N * ceil(H/16) * ceil(W/16) > 1``.

    Subclasses build ``self.encoder`` and ``self.decoder`` (every parameter lives in one of them) and pass their
    constructor arguments to ``__init__`` so ``create_model(model.model_name, **model.config)`` rebuilds them.
    """

    #: Registry name, set by ``register_model``; empty for classes that are not registered.
    model_name: ClassVar[str] = ""
    #: Spatial downsampling between the image and the latent grid (four stride-2 stages).
    downsampling_factor: ClassVar[int] = 16
    #: Image channels the models take: single-polarisation SAR.
    in_channels: ClassVar[int] = 1

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        for key in ("latent_channels", "base_channels"):
            value = config.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInputError(f"{key} must be a positive integer, got {value!r}")
        self._config: dict[str, Any] = dict(config)
        self.latent_channels: int = int(config["latent_channels"])
        self.base_channels: int = int(config["base_channels"])

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (a copy), plain Python values safe to store in a checkpoint."""
        return dict(self._config)

    @property
    def latent_ratio(self) -> float:
        """Input pixels per latent value: ``downsampling_factor**2 / latent_channels`` (16.0 at 16 channels).

        This counts float values, not bits: it is not a compression ratio until the latent is quantized and
        entropy coded.
        """
        return self.downsampling_factor**2 * self.in_channels / self.latent_channels

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(latent_channels, ceil(H/16), ceil(W/16))`` for an ``H x W`` image."""
        factor = self.downsampling_factor
        return self.latent_channels, math.ceil(height / factor), math.ceil(width / factor)

    def count_parameters(self) -> dict[str, int]:
        """Parameter counts (BatchNorm running statistics are buffers and are not counted).

        Returns:
            ``{"total", "encoder", "decoder", "trainable"}``; ``total == encoder + decoder``.
        """
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "encoder": sum(p.numel() for p in self.encoder.parameters()),
            "decoder": sum(p.numel() for p in self.decoder.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
        }

    def _check_image(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise BadInputError(
                f"{type(self).__name__} expects a (N, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}"
            )
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise BadInputError(f"empty image batch: shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise BadInputError(f"expected a float tensor in [0, 1], got dtype {x.dtype}")

    def encode(self, x: Tensor) -> Tensor:
        """Analysis transform.

        Args:
            x: ``(N, 1, H, W)`` float in [0, 1]; any ``H, W >= 1`` (padded to multiples of 16 internally).

        Returns:
            ``(N, latent_channels, ceil(H/16), ceil(W/16))`` float latent, unbounded.
        """
        self._check_image(x)
        x_padded, _ = pad_to_multiple(x, self.downsampling_factor)
        latent: Tensor = self.encoder(x_padded)
        return latent

    def decode(self, z: Tensor) -> Tensor:
        """Synthesis transform.

        Args:
            z: ``(N, latent_channels, h, w)`` float latent.

        Returns:
            ``(N, 1, 16h, 16w)`` in [0, 1]: the padded size. Crop to the image size with the function returned by
            :func:`pad_to_multiple`, or use ``forward``.
        """
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise BadInputError(
                f"{type(self).__name__} expects a (N, {self.latent_channels}, h, w) latent, got shape {tuple(z.shape)}"
            )
        x_hat: Tensor = self.decoder(z)
        return x_hat

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct ``x``: pad, encode, decode, crop.

        Args:
            x: ``(N, 1, H, W)`` float in [0, 1], any ``H, W >= 1``.

        Returns:
            ``(N, 1, H, W)`` reconstruction in [0, 1] (sigmoid output).
        """
        self._check_image(x)
        x_padded, crop = pad_to_multiple(x, self.downsampling_factor)
        return crop(self.decoder(self.encoder(x_padded)))
