"""The mean-scale hyperprior with a checkerboard context model (He et al. 2021, "Checkerboard context model for
efficient learned image compression"): the latent positions split into anchors ((row + col) even) and the rest.
Anchors are coded with the hyperprior's means and scales as in ``hyperprior.py``; every other position gets a
correction of its mean and scale from the decoded anchors around it (a 5 x 5 convolution) and the hyperprior's
parameters at that position. Decoding stays parallel: two passes over the latent, not one per position.

The correction is residual and its last layer starts at zero, so a model initialised from hyperprior weights
(``rd.init``) starts as exactly that hyperprior and training can only move it where the rate-distortion loss
improves. This module is the training side (``sarcodec train configs/codec/hyperprior_checkerboard.yaml``, model
selection with ``scripts/compare_codecs_val.py``); coding files with it needs the context network in the exact
integer form of the probability path first (see the SPEC on deterministic decoding), which it does not have yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.errors import IncompatibleModelError
from sarcodec.models._registry import register_model
from sarcodec.models.codecs.base import DEFAULT_LAMBDAS, Keep
from sarcodec.models.codecs.hyperprior import HyperpriorCodec, RoundFn
from sarcodec.models.layers import conv

__all__ = ["CheckerboardHyperprior", "anchor_mask"]


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """(1, 1, H, W) float mask, 1 at the anchors ((row + col) even)."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    return ((rows + cols) % 2 == 0).float()[None, None]


@register_model("hyperprior_checkerboard", kind="codec")
class CheckerboardHyperprior(HyperpriorCodec):
    """Mean-scale hyperprior whose non-anchor latents are conditioned on the decoded anchors around them."""

    def __init__(
        self,
        channels: int = 64,
        latent_channels: int = 48,
        hyper_channels: int = 64,
        hyper_latent_channels: int = 32,
        context_channels: int = 48,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        synthesis_channels: int | None = None,
        hyper_synthesis_channels: int | None = None,
    ) -> None:
        super().__init__(channels, latent_channels, hyper_channels, hyper_latent_channels, lambdas, synthesis_channels,
                         hyper_synthesis_channels)
        self.config.update(context_channels=context_channels)
        m, cc = latent_channels, context_channels
        # Only anchors are non-zero in its input, so at a non-anchor position it sees the anchors around it only.
        self.context = conv(m, cc, kernel=5, stride=1)
        self.context_parameters = nn.Sequential(
            nn.Conv2d(cc + 2 * m, 2 * m, 1), nn.LeakyReLU(inplace=True), nn.Conv2d(2 * m, 2 * m, 1),
        )  # fmt: skip
        last = self.context_parameters[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def entropy_parameters(self, y: Tensor, hyper: Tensor, round_fn: RoundFn) -> tuple[Tensor, Tensor, Tensor]:
        """As ``HyperpriorCodec.entropy_parameters``, the non-anchors' means and scales corrected from the
        quantized anchors around them."""
        means_h, raw_h = hyper.chunk(2, dim=1)
        anchors = anchor_mask(y.shape[-2], y.shape[-1], y.device)
        y_anchor = round_fn(y, means_h) * anchors
        delta = self.context_parameters(torch.cat([self.context(y_anchor), hyper], dim=1)) * (1 - anchors)
        delta_means, delta_raw = delta.chunk(2, dim=1)
        means = means_h + delta_means
        scales = F.softplus(raw_h + delta_raw)
        # the quantized value's gradient with respect to the means is zero (straight-through): detached, a run
        # that trains only the context (rd.train_only) needs no backward pass through the synthesis
        return means, scales, round_fn(y, means.detach())

    def _encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        raise IncompatibleModelError("hyperprior_checkerboard weights are for training and model selection: "
                                     "its context network has no exact integer form for coding files yet")

    def _decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int], quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        raise IncompatibleModelError("hyperprior_checkerboard weights cannot decode files (no exact integer form)")
