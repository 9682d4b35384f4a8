"""ResNet-Lite v2: post-activation residual autoencoder (about 5.6 M parameters at base 32, 16 channels)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from sarcodec.models._registry import register_model
from sarcodec.models.base import AutoencoderBase
from sarcodec.models.blocks import PostActBlock, PostActUpBlock

__all__ = ["ResNetAutoencoder"]


@register_model("resnet_lite")
class ResNetAutoencoder(AutoencoderBase):
    """Post-activation ("original ResNet") autoencoder with four downsampling stages.

    Encoder: 7x7 stem ``1 -> b`` (BN, ReLU); four stages of widths ``b, 2b, 4b, 8b``, each a stride-2 residual
    block (1x1 projection shortcut) followed by a residual block at the new width; a 3x3 convolution to
    ``latent_channels`` with no normalization or activation (unconstrained latent).

    Decoder, the mirror: 3x3 convolution ``latent_channels -> 8b`` (BN, ReLU); four stages, each a residual
    block followed by an upsampling residual block (bilinear x2) to widths ``4b, 2b, b, b``; 7x7 output
    convolution ``b -> 1`` and a sigmoid.

    Args:
        latent_channels: channels of the latent at 1/16 resolution.
        base_channels: stem width ``b``; 32 gives the seed's "ResNet-Lite v2" size (about 5.6 M parameters).
    """

    def __init__(self, latent_channels: int = 16, base_channels: int = 32) -> None:
        super().__init__({"latent_channels": latent_channels, "base_channels": base_channels})
        b = base_channels
        widths = (b, 2 * b, 4 * b, 8 * b)

        encoder: OrderedDict[str, nn.Module] = OrderedDict()
        encoder["stem"] = nn.Sequential(
            nn.Conv2d(self.in_channels, b, 7, padding=3, bias=False),
            nn.BatchNorm2d(b),
            nn.ReLU(inplace=True),
        )
        in_channels = b
        for i, width in enumerate(widths, start=1):
            encoder[f"stage{i}"] = nn.Sequential(
                PostActBlock(in_channels, width, stride=2),
                PostActBlock(width, width),
            )
            in_channels = width
        encoder["latent"] = nn.Conv2d(in_channels, latent_channels, 3, padding=1)
        self.encoder = nn.Sequential(encoder)

        decoder: OrderedDict[str, nn.Module] = OrderedDict()
        decoder["entry"] = nn.Sequential(
            nn.Conv2d(latent_channels, in_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
        )
        # Mirror of the encoder: the last stage returns to the stem width b at full resolution.
        for i, width in enumerate((4 * b, 2 * b, b, b), start=1):
            decoder[f"stage{i}"] = nn.Sequential(
                PostActBlock(in_channels, in_channels),
                PostActUpBlock(in_channels, width),
            )
            in_channels = width
        decoder["output"] = nn.Conv2d(in_channels, self.in_channels, 7, padding=3)
        decoder["sigmoid"] = nn.Sigmoid()
        self.decoder = nn.Sequential(decoder)
