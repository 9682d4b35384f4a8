"""Variant C: the pre-activation residual autoencoder of Variant B with CBAM after every stage."""

from __future__ import annotations

from torch import nn

from sarcodec.errors import BadInputError
from sarcodec.models._registry import register_model
from sarcodec.models.base import AutoencoderBase
from sarcodec.models.blocks import CBAM
from sarcodec.models.residual import build_preact_decoder, build_preact_encoder

__all__ = ["AttentionAutoencoder"]


@register_model("attention")
class AttentionAutoencoder(AutoencoderBase):
    """Variant C: Variant B (:class:`~sarcodec.models.residual.ResidualAutoencoder`) plus CBAM attention.

    A CBAM module (channel then spatial attention, Woo et al. 2018) follows each of the four encoder stages and
    each of the four decoder stages. Everything else is Variant B's layout.

    Args:
        latent_channels: channels of the latent at 1/16 resolution.
        base_channels: stem width ``b`` (the seed study used 64).
        blocks_per_stage: pre-activation blocks per stage (seed: 2).
        reduction: CBAM channel-MLP reduction; the hidden width is ``max(1, width // reduction)``.
        spatial_kernel: odd kernel size of CBAM's spatial attention convolution.
    """

    def __init__(
        self,
        latent_channels: int = 16,
        base_channels: int = 64,
        blocks_per_stage: int = 2,
        reduction: int = 16,
        spatial_kernel: int = 7,
    ) -> None:
        super().__init__(
            {
                "latent_channels": latent_channels,
                "base_channels": base_channels,
                "blocks_per_stage": blocks_per_stage,
                "reduction": reduction,
                "spatial_kernel": spatial_kernel,
            }
        )
        if reduction < 1:
            raise BadInputError(f"reduction must be a positive integer, got {reduction!r}")
        if spatial_kernel < 1 or spatial_kernel % 2 == 0:
            raise BadInputError(f"spatial_kernel must be a positive odd integer, got {spatial_kernel!r}")

        def cbam(width: int) -> nn.Module:
            return CBAM(width, reduction=reduction, spatial_kernel=spatial_kernel)

        self.encoder = build_preact_encoder(self.in_channels, latent_channels, base_channels, blocks_per_stage, cbam)
        self.decoder = build_preact_decoder(self.in_channels, latent_channels, base_channels, blocks_per_stage, cbam)
