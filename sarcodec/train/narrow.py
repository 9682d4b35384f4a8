"""A narrower synthesis or hyper-decoder started from a wider one: the first step of training a lighter decoder for a
trained codec.

A codec's synthesis is ``conv(M -> C), IGDN(C), deconv(C -> C), IGDN(C), deconv(C -> 1)``. A synthesis of ``C' < C``
channels starts as the wider one restricted to the ``C'`` hidden channels that carry the most signal: per hidden
layer, the channels with the largest mean square activation on sample patches, over every quality level, with the
latents the decoder sees (``round(y - means) + means`` from the rounded hyper-latents, times the inverse gain).
Each kept channel keeps its weights, bias and its rows and columns of the IGDN matrix. That start is far from
trained (the dropped channels' share of the output is gone: 17.4-18.8 dB on the validation patches against the
default's 19.0-33.1 at qualities 1-8, for 32 of its 64 channels) but trains fast: ten minutes later it was within
0.02 dB of the default at qualities 1-4 (``results/codec/light_synthesis/``).

A hyperprior's hyper-decoder (``deconv, LeakyReLU, deconv, LeakyReLU, conv(C -> 2M)``) narrows the same way, its
hidden channels chosen on the rounded hyper-latents the decoder sees.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sarcodec.models.codecs.base import RDCodec
from sarcodec.models.codecs.hyperprior import HyperpriorCodec, round_around
from sarcodec.models.layers import GDN

__all__ = ["decoder_latents", "narrow_hyper_synthesis", "narrow_synthesis"]

#: The layers of the stacks this narrows: two hidden layers of the same width, at 1 and 3.
_SYNTHESIS = (nn.Conv2d, GDN, nn.ConvTranspose2d, GDN, nn.ConvTranspose2d)
_HYPER_SYNTHESIS = (nn.ConvTranspose2d, nn.LeakyReLU, nn.ConvTranspose2d, nn.LeakyReLU, nn.Conv2d)


@torch.no_grad()
def decoder_latents(codec: RDCodec, x: Tensor, quality: Tensor) -> Tensor:
    """The synthesis' input for images ``x`` (N, 1, H, W) at ``quality`` (N,): the dequantized latents times the
    inverse gain, as decoding computes them (in float; means from the rounded hyper-latents for a hyperprior)."""
    gain, inverse = codec.gains(quality)
    y = codec.analysis(x) * gain
    if not isinstance(codec, HyperpriorCodec):  # a factorized prior: plain rounding
        return torch.round(y) * inverse
    hyper = codec.hyper_synthesis(torch.round(codec.hyper_analysis(y)))
    latents: Tensor = codec.entropy_parameters(y, hyper, round_around)[2] * inverse  # a context model's too
    return latents


@torch.no_grad()
def narrow_synthesis(source: RDCodec, target: RDCodec, images: Tensor) -> tuple[Tensor, Tensor]:
    """Load ``target``'s (narrower) synthesis from ``source``'s, keeping the most active hidden channels on
    ``images`` (N, 1, H, W) at every quality level of ``source``. Returns the kept channels of the two hidden
    layers."""
    s, t = _layers(source.synthesis, _SYNTHESIS), _layers(target.synthesis, _SYNTHESIS)
    energy = [torch.zeros(s[1].beta.numel()), torch.zeros(s[3].beta.numel())]
    for level in _levels(source):
        h = s[1](s[0](decoder_latents(source, images, level)))
        energy[0] += _energy(h)
        energy[1] += _energy(s[3](s[2](h)))
    first, second = _most_active(energy, (t[1].beta.numel(), t[3].beta.numel()))
    _copy_narrowed(s, t, first, second)
    for i, kept in ((1, first), (3, second)):  # each IGDN keeps its channels' rows and columns
        t[i].beta.copy_(s[i].beta[kept])
        t[i].gamma.copy_(s[i].gamma[kept][:, kept])
    return first, second


@torch.no_grad()
def narrow_hyper_synthesis(source: HyperpriorCodec, target: HyperpriorCodec, images: Tensor
                           ) -> tuple[Tensor, Tensor]:
    """Load ``target``'s (narrower) hyper-decoder (``deconv, LeakyReLU, deconv, LeakyReLU, conv``) from
    ``source``'s, keeping the hidden channels with the largest mean square activation on the rounded hyper-latents
    of ``images`` at every quality level of ``source``. Returns the kept channels of the two hidden layers."""
    s, t = _layers(source.hyper_synthesis, _HYPER_SYNTHESIS), _layers(target.hyper_synthesis, _HYPER_SYNTHESIS)
    energy = [torch.zeros(s[0].out_channels), torch.zeros(s[2].out_channels)]
    for level in _levels(source):
        gain, _ = source.gains(level)
        z_hat = source.hyper_density.coded_values(source.hyper_analysis(source.analysis(images) * gain))
        h = s[1](s[0](z_hat))
        energy[0] += _energy(h)
        energy[1] += _energy(s[3](s[2](h)))
    first, second = _most_active(energy, (t[0].out_channels, t[2].out_channels))
    _copy_narrowed(s, t, first, second)
    return first, second


def _levels(codec: RDCodec) -> list[Tensor]:
    return [torch.full((1,), float(level)) for level in range(1, codec.num_levels + 1)]


def _energy(h: Tensor) -> Tensor:
    """Each channel's mean square activation."""
    return (h**2).mean(dim=(0, 2, 3)).cpu()


def _most_active(energy: list[Tensor], widths: tuple[int, int]) -> tuple[Tensor, Tensor]:
    first, second = (torch.argsort(e, descending=True)[:width].sort().values for e, width in zip(energy, widths))
    return first, second


def _conv_part(layer: nn.Conv2d | nn.ConvTranspose2d, outputs: Tensor | None, inputs: Tensor | None
               ) -> tuple[Tensor, Tensor]:
    """``layer``'s weight and bias restricted to some output and input channels (None: all)."""
    weight = layer.weight if isinstance(layer, nn.Conv2d) else layer.weight.transpose(0, 1)  # -> (out, in, ...)
    bias = layer.bias
    assert bias is not None
    if outputs is not None:
        weight, bias = weight[outputs], bias[outputs]
    if inputs is not None:
        weight = weight[:, inputs]
    return (weight if isinstance(layer, nn.Conv2d) else weight.transpose(0, 1)), bias


def _copy_narrowed(s: list[Any], t: list[Any], first: Tensor, second: Tensor) -> None:
    """Fill the convolutions (0, 2, 4) of ``t`` with those of ``s`` restricted to the kept hidden channels."""
    for i, outputs, inputs in ((0, first, None), (2, second, first), (4, None, second)):
        weight, bias = _conv_part(s[i], outputs, inputs)
        if t[i].weight.shape != weight.shape or t[i].bias.shape != bias.shape:
            raise ValueError(f"cannot narrow {tuple(weight.shape)} into {t[i]}")
        t[i].weight.copy_(weight)
        t[i].bias.copy_(bias)


def _layers(stack: nn.Module, kinds: tuple[type, ...]) -> list[Any]:
    """The layers of ``stack``, checked against ``kinds``."""
    layers: list[Any] = list(stack.children())
    if len(layers) != len(kinds) or not all(isinstance(layer, kind) for layer, kind in zip(layers, kinds)):
        raise ValueError(f"not a {', '.join(k.__name__ for k in kinds)} stack")
    return layers
