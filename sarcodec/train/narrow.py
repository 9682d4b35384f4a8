"""A narrower synthesis started from a wider one: the first step of training a lighter decoder for a trained codec.

A codec's synthesis is ``conv(M -> C), IGDN(C), deconv(C -> C), IGDN(C), deconv(C -> 1)``. A synthesis of ``C' < C``
channels starts as the wider one restricted to the ``C'`` hidden channels that carry the most signal: per hidden
layer, the channels with the largest mean square activation on sample patches, over every quality level, with the
latents the decoder sees (``round(y - means) + means`` from the rounded hyper-latents, times the inverse gain).
Each kept channel keeps its weights, bias and its rows and columns of the IGDN matrix. That start is far from
trained (the dropped channels' share of the output is gone: 17.4-18.8 dB on the validation patches against the
default's 19.0-33.1 at qualities 1-8, for 32 of its 64 channels) but trains fast: ten minutes later it was within
0.02 dB of the default at qualities 1-4 (``results/codec/light_synthesis/``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sarcodec.models.codecs.base import RDCodec
from sarcodec.models.codecs.hyperprior import HyperpriorCodec, round_around
from sarcodec.models.layers import GDN

__all__ = ["decoder_latents", "narrow_synthesis"]


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
    s, t = _layers(source), _layers(target)
    energy = [torch.zeros(s[1].beta.numel()), torch.zeros(s[3].beta.numel())]
    for level in range(1, source.num_levels + 1):
        h = s[1](s[0](decoder_latents(source, images, torch.full((len(images),), float(level)))))
        energy[0] += (h**2).mean(dim=(0, 2, 3)).cpu()
        energy[1] += (s[3](s[2](h)) ** 2).mean(dim=(0, 2, 3)).cpu()
    first, second = (torch.argsort(e, descending=True)[: t[i].beta.numel()].sort().values
                     for e, i in zip(energy, (1, 3)))
    for i, weight, bias in ((0, s[0].weight[first], s[0].bias[first]),
                            (2, s[2].weight[first][:, second], s[2].bias[second]),  # ConvTranspose2d: (C_in, C_out, ..)
                            (4, s[4].weight[second], s[4].bias)):
        if t[i].weight.shape != weight.shape or t[i].bias.shape != bias.shape:
            raise ValueError(f"cannot narrow {tuple(weight.shape)} into {t[i]}")
        t[i].weight.copy_(weight)
        t[i].bias.copy_(bias)
    for i, kept in ((1, first), (3, second)):
        t[i].beta.copy_(s[i].beta[kept])
        t[i].gamma.copy_(s[i].gamma[kept][:, kept])
    return first, second


def _layers(codec: RDCodec) -> list[Any]:
    """The synthesis' five layers (conv, IGDN, deconv, IGDN, deconv)."""
    layers = list(codec.synthesis)
    if len(layers) != 5 or not all(isinstance(layer, kind) for layer, kind in
                                   zip(layers, (nn.Conv2d, GDN, nn.ConvTranspose2d, GDN, nn.ConvTranspose2d))):
        raise ValueError("not a conv, IGDN, deconv, IGDN, deconv synthesis")
    return layers
