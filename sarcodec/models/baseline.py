"""The seed study's baseline: a plain strided-convolution autoencoder (about 2.26 M parameters at 16 channels)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from sarcodec.models._registry import register_model
from sarcodec.models.base import AutoencoderBase

__all__ = ["SARAutoencoder"]


def _down(in_channels: int, out_channels: int) -> nn.Conv2d:
    # 5x5 kernel, stride 2, padding 2: exactly halves even sizes.
    return nn.Conv2d(in_channels, out_channels, kernel_size=5, stride=2, padding=2)


def _up(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    # output_padding=1 makes the transposed convolution exactly double the size (the mirror of `_down`).
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=5, stride=2, padding=2, output_padding=1)


@register_model("baseline")
class SARAutoencoder(AutoencoderBase):
    """Baseline autoencoder: four stride-2 5x5 convolutions down, four stride-2 5x5 transposed convolutions up.

    Encoder ``1 -> b -> 2b -> 4b -> latent_channels`` with BatchNorm and LeakyReLU(0.2), none on the last layer
    (the latent is an unconstrained code); decoder ``latent_channels -> 4b -> 2b -> b -> 1`` with BatchNorm and
    ReLU, sigmoid output. Convolutions keep their biases, as in the seed study, so parameter counts match it.

    Args:
        latent_channels: channels of the latent at 1/16 resolution (16 -> 16 pixels per latent value).
        base_channels: width ``b`` of the first layer; the seed used 64 (64/128/256).
    """

    def __init__(self, latent_channels: int = 16, base_channels: int = 64) -> None:
        super().__init__({"latent_channels": latent_channels, "base_channels": base_channels})
        b = base_channels
        widths = (b, 2 * b, 4 * b)

        encoder: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = self.in_channels
        for i, width in enumerate(widths, start=1):
            encoder[f"conv{i}"] = _down(in_channels, width)
            encoder[f"bn{i}"] = nn.BatchNorm2d(width)
            encoder[f"act{i}"] = nn.LeakyReLU(0.2, inplace=True)
            in_channels = width
        encoder["latent"] = _down(in_channels, latent_channels)
        self.encoder = nn.Sequential(encoder)

        decoder: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = latent_channels
        for i, width in enumerate(reversed(widths), start=1):
            decoder[f"deconv{i}"] = _up(in_channels, width)
            decoder[f"bn{i}"] = nn.BatchNorm2d(width)
            decoder[f"act{i}"] = nn.ReLU(inplace=True)
            in_channels = width
        decoder["output"] = _up(in_channels, self.in_channels)
        decoder["sigmoid"] = nn.Sigmoid()
        self.decoder = nn.Sequential(decoder)
