"""Variant B: pre-activation residual autoencoder (He et al. 2016 identity-mapping blocks).

The two builders here are shared with Variant C (``attention.py``), which only adds CBAM after each stage.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from sarcodec.errors import BadInputError
from sarcodec.models._registry import register_model
from sarcodec.models.base import AutoencoderBase
from sarcodec.models.blocks import PreActBlock, UpsampleConv

__all__ = ["ResidualAutoencoder", "build_preact_decoder", "build_preact_encoder"]

#: Returns the module appended after a stage of the given width (identity for Variant B, CBAM for Variant C).
StageTail = Callable[[int], nn.Module]


def _no_tail(width: int) -> nn.Module:
    return nn.Identity()


def _check_blocks(blocks_per_stage: int) -> None:
    if not isinstance(blocks_per_stage, int) or isinstance(blocks_per_stage, bool) or blocks_per_stage < 1:
        raise BadInputError(f"blocks_per_stage must be a positive integer, got {blocks_per_stage!r}")


def build_preact_encoder(
    in_channels: int, latent_channels: int, base_channels: int, blocks_per_stage: int, tail: StageTail = _no_tail
) -> nn.Sequential:
    """Analysis transform: ``(N, in_channels, H, W) -> (N, latent_channels, H/16, W/16)`` (H, W multiples of 16).

    7x7 stem to ``b``; four stages of ``blocks_per_stage`` pre-activation blocks at widths ``b, 2b, 4b, 8b``, the
    first block of each with stride 2 and a projection shortcut; ``tail(width)`` after each stage; a final
    BN-ReLU (pre-activation blocks leave the residual stream un-normalized) and a 3x3 convolution to the latent.
    """
    _check_blocks(blocks_per_stage)
    b = base_channels
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    # No BN/ReLU after the stem: the first block pre-activates its input itself.
    layers["stem"] = nn.Conv2d(in_channels, b, 7, padding=3)
    width_in = b
    for i, width in enumerate((b, 2 * b, 4 * b, 8 * b), start=1):
        blocks: list[nn.Module] = [PreActBlock(width_in, width, stride=2)]
        blocks += [PreActBlock(width, width) for _ in range(blocks_per_stage - 1)]
        blocks.append(tail(width))
        layers[f"stage{i}"] = nn.Sequential(*blocks)
        width_in = width
    layers["norm"] = nn.Sequential(nn.BatchNorm2d(width_in), nn.ReLU(inplace=True))
    layers["latent"] = nn.Conv2d(width_in, latent_channels, 3, padding=1)
    return nn.Sequential(layers)


def build_preact_decoder(
    out_channels: int, latent_channels: int, base_channels: int, blocks_per_stage: int, tail: StageTail = _no_tail
) -> nn.Sequential:
    """Synthesis transform: ``(N, latent_channels, h, w) -> (N, out_channels, 16h, 16w)`` in [0, 1].

    3x3 convolution from the latent to ``8b``; four stages, each bilinear x2 + 1x1 convolution to widths
    ``4b, 2b, b, b`` then ``blocks_per_stage`` pre-activation blocks and ``tail(width)``; a final BN-ReLU,
    a 7x7 output convolution and a sigmoid.
    """
    _check_blocks(blocks_per_stage)
    b = base_channels
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width_in = 8 * b
    layers["entry"] = nn.Conv2d(latent_channels, width_in, 3, padding=1)
    for i, width in enumerate((4 * b, 2 * b, b, b), start=1):
        blocks: list[nn.Module] = [UpsampleConv(width_in, width)]
        blocks += [PreActBlock(width, width) for _ in range(blocks_per_stage)]
        blocks.append(tail(width))
        layers[f"stage{i}"] = nn.Sequential(*blocks)
        width_in = width
    layers["norm"] = nn.Sequential(nn.BatchNorm2d(width_in), nn.ReLU(inplace=True))
    layers["output"] = nn.Conv2d(width_in, out_channels, 7, padding=3)
    layers["sigmoid"] = nn.Sigmoid()
    return nn.Sequential(layers)


@register_model("residual")
class ResidualAutoencoder(AutoencoderBase):
    """Variant B: pre-activation residual autoencoder.

    See :func:`build_preact_encoder` and :func:`build_preact_decoder` for the layer layout. The encoder is the
    heavier half (its last stage runs two blocks at ``8b``; the decoder leaves ``8b`` at its first upsampling).

    Args:
        latent_channels: channels of the latent at 1/16 resolution.
        base_channels: stem width ``b`` (the seed study used 64).
        blocks_per_stage: pre-activation blocks per stage, in the encoder and in the decoder (seed: 2).
    """

    def __init__(self, latent_channels: int = 16, base_channels: int = 64, blocks_per_stage: int = 2) -> None:
        super().__init__(
            {"latent_channels": latent_channels, "base_channels": base_channels, "blocks_per_stage": blocks_per_stage}
        )
        self.encoder = build_preact_encoder(self.in_channels, latent_channels, base_channels, blocks_per_stage)
        self.decoder = build_preact_decoder(self.in_channels, latent_channels, base_channels, blocks_per_stage)
