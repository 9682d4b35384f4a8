"""The factorized-prior codec (Ballé et al. 2018): one learned density per latent channel, no side information."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import constriction
import torch
from torch import Tensor

from sarcodec.entropy.models import FactorizedDensity
from sarcodec.models._registry import register_model
from sarcodec.models.codecs.base import DEFAULT_LAMBDAS, Keep, RDCodec, ste_round

__all__ = ["FactorizedPriorCodec"]


@register_model("factorized", kind="codec")
class FactorizedPriorCodec(RDCodec):
    """Ballé et al. 2018's factorized prior: one learned density per latent channel, no side information."""

    def __init__(self, channels: int = 64, latent_channels: int = 48, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
                 synthesis_channels: int | None = None):
        super().__init__(channels, latent_channels, lambdas, synthesis_channels)
        self.density = FactorizedDensity(latent_channels)

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Any]:  # noqa: D102
        gain, _ = self.gains(quality.to(x.device))
        y = self.analysis(x) * gain
        _, likelihoods = self.density(y)
        y_hat = ste_round(y) if self.training else torch.round(y)
        return {"x_hat": self._synthesize(y_hat, quality), "likelihoods": [likelihoods]}

    def _encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        gain, _ = self.gains(quality.to(y.device))
        return self.density.encode(coder, (y * gain).cpu(), keep_y)

    def _decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int], quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        m = self.downsampling_factor
        return self.density.decode(coder, (shape[0] // m, shape[1] // m), keep_y)
