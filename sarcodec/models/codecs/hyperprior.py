"""The mean-scale hyperprior codec (Ballé et al. 2018; means as in Minnen et al. 2018), with its deterministic
probability path: the exact integer hyper-decoder when the weights carry one (``sarcodec.models.codecs.integer``),
otherwise a float64 CPU copy of the hyper-decoder (weights of sarcodec 0.4 and earlier)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import constriction
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.entropy.models import FactorizedDensity, GaussianConditional
from sarcodec.models._registry import register_model
from sarcodec.models.codecs.base import DEFAULT_LAMBDAS, Keep, RDCodec, ste_round
from sarcodec.models.codecs.integer import IntegerHyperSynthesis, z_limit_of
from sarcodec.models.layers import conv, deconv

__all__ = ["HyperpriorCodec", "RoundFn", "round_around"]

_PROBABILITY_PATH_LOCK = threading.Lock()

#: Quantizes a latent around its means: ``ste_round`` in training, :func:`round_around` in evaluation.
RoundFn = Callable[[Tensor, Tensor], Tensor]


def round_around(y: Tensor, means: Tensor) -> Tensor:
    """``round(y - means) + means``: the latent the decoder sees (evaluation)."""
    return torch.round(y - means) + means


@register_model("hyperprior", kind="codec")
class HyperpriorCodec(RDCodec):
    """Mean-scale hyperprior (Ballé et al. 2018; means as in Minnen et al. 2018): z describes y's local statistics."""

    #: The hyper-decoder too: it maps the rounded hyper-latents to means and scales (it decides the tables the
    #: symbols are coded with, and the means the latents are rounded around, not the hyper-latents).
    AFTER_QUANTIZATION = (*RDCodec.DECODER_ONLY, "hyper_synthesis")

    def __init__(
        self,
        channels: int = 64,
        latent_channels: int = 48,
        hyper_channels: int = 64,
        hyper_latent_channels: int = 32,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        synthesis_channels: int | None = None,
        hyper_synthesis_channels: int | None = None,
    ) -> None:
        super().__init__(channels, latent_channels, lambdas, synthesis_channels)
        self.config.update(hyper_channels=hyper_channels, hyper_latent_channels=hyper_latent_channels)
        if hyper_synthesis_channels is not None:  # recorded only when given (earlier weights: the hyper-analysis')
            self.config["hyper_synthesis_channels"] = hyper_synthesis_channels
        hc, zc = hyper_channels, hyper_latent_channels
        hs = hc if hyper_synthesis_channels is None else hyper_synthesis_channels
        self.hyper_analysis = nn.Sequential(
            conv(latent_channels, hc, kernel=3, stride=1), nn.LeakyReLU(inplace=True),
            conv(hc, hc), nn.LeakyReLU(inplace=True), conv(hc, zc),
        )  # fmt: skip
        self.hyper_synthesis = nn.Sequential(
            deconv(zc, hs), nn.LeakyReLU(inplace=True), deconv(hs, hs), nn.LeakyReLU(inplace=True),
            conv(hs, 2 * latent_channels, kernel=3, stride=1),
        )  # fmt: skip
        self.hyper_density = FactorizedDensity(zc)
        self.conditional = GaussianConditional()
        #: The exact integer hyper-decoder (:meth:`integerize`, or loaded with weights that carry one), or None.
        self.integer_hyper: IntegerHyperSynthesis | None = None

    def add_integer_hyper(self) -> IntegerHyperSynthesis:
        """Give the model an (uncalibrated) integer hyper-decoder, e.g. to load weights that carry one."""
        self.integer_hyper = IntegerHyperSynthesis(self.hyper_synthesis, len(self.conditional.scale_table))
        return self.integer_hyper

    @torch.no_grad()
    def integerize(self, images: Iterable[Tensor]) -> dict[str, float]:
        """Quantize the hyper-decoder into its exact integer form (after :meth:`update_tables`), with activation
        ranges from ``images`` ((1, 1, H, W) in [0, 1]: training or validation images) at every quality level.
        From then on, files written with these weights use the integer probability path."""
        samples = []
        for x in images:
            y = self.analyze(x).y
            for level in range(1, self.num_levels + 1):
                gain, _ = self.gains(torch.tensor([float(level)], device=y.device))
                samples.append(self.hyper_density.coded_values(self.hyper_analysis(y * gain)))
        integer = IntegerHyperSynthesis(self.hyper_synthesis, len(self.conditional.scale_table))
        limit = z_limit_of(self.hyper_density.table_offsets, self.hyper_density.table_lengths)
        summary = integer.calibrate(samples, limit, self.conditional.scale_table)
        self.integer_hyper = integer.to(self._device())
        return summary

    def downsampling_factor_total(self) -> int:  # noqa: D102
        return self.downsampling_factor * 4

    def entropy_parameters(self, y: Tensor, hyper: Tensor, round_fn: RoundFn) -> tuple[Tensor, Tensor, Tensor]:
        """Means, scales and the quantized latent of ``y`` (training and validation) from the hyper-decoder's
        output ``hyper`` (means and raw scales, ``2M`` channels); ``round_fn(y, means)`` quantizes around the means.
        Context models override this."""
        means, raw = hyper.chunk(2, dim=1)
        return means, F.softplus(raw), round_fn(y, means)

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Any]:  # noqa: D102
        gain, _ = self.gains(quality.to(x.device))
        y = self.analysis(x) * gain
        z = self.hyper_analysis(y)
        z_tilde, z_likelihoods = self.hyper_density(z)
        round_fn = ste_round if self.training else round_around
        means, scales, y_hat = self.entropy_parameters(y, self.hyper_synthesis(z_tilde), round_fn)
        _, y_likelihoods = self.conditional(y, scales, means)
        return {"x_hat": self._synthesize(y_hat, quality), "likelihoods": [y_likelihoods, z_likelihoods]}

    def _hyper_synthesis_float64(self) -> nn.Module:
        """A float64 CPU copy of the hyper-decoder, made once per state of the weights (an optimizer step bumps
        the parameters' version counters and so makes a new copy): copying it for every tile took ~30 % of coding."""
        key = tuple(p._version for p in self.hyper_synthesis.parameters()) + (id(self.hyper_synthesis),)
        cached = getattr(self, "_hyper64", None)
        if cached is None or cached[0] != key:
            copy_ = copy.deepcopy(self.hyper_synthesis).to("cpu", torch.float64).requires_grad_(False)
            object.__setattr__(self, "_hyper64", (key, copy_))  # not a submodule: stays out of state_dict
            return copy_
        module: nn.Module = cached[1]
        return module

    def _probability_path(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Means and scale indices (on the CPU) from z_hat: the exact integer hyper-decoder (on the model's device)
        when the weights have one, otherwise a float64 copy of the hyper-decoder on CPU (native kernels).

        Encoder and decoder must agree on every scale index. The integer path gives the same integers on every
        machine; float64 on CPU makes a disagreement (a predicted scale within float64 rounding of a table
        boundary) practically impossible across machines and devices.
        """
        if self.integer_hyper is not None:  # exact anywhere: on a CUDA GPU it runs there (in float64)
            device = self._device() if self._device().type == "cuda" else torch.device("cpu")  # MPS: no float64
            means, indices = self.integer_hyper.to(device)(z_hat.detach().to(device))
            return means.cpu(), indices.cpu()
        hyper = self._hyper_synthesis_float64()
        # float64 never reaches oneDNN: these are PyTorch's native kernels (never toggle the global oneDNN flag
        # here: tiles run concurrently and another tile's synthesis would switch kernels mid-way). One tile at a
        # time: its float64 convolutions unfold ~0.5 GB per 1024 px tile (the others meanwhile run their synthesis
        # or entropy coding).
        with _PROBABILITY_PATH_LOCK:
            means, scales = hyper(z_hat.detach().to("cpu", torch.float64)).chunk(2, dim=1)
        return means.float(), self.conditional.scale_indices(F.softplus(scales)).cpu()

    def _encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        gain, _ = self.gains(quality.to(y.device))
        y = y * gain
        z = self.hyper_analysis(y).cpu()
        z_hat = self.hyper_density.coded_values(z)
        if keep_z is not None:
            z_hat = torch.where(torch.from_numpy(keep_z)[None, None], z_hat, self.hyper_density.default_values(z.shape))
        means, indices = self._probability_path(z_hat)
        # Stack coder: push y first, then z, so the decoder pops z (needed to decode y) first.
        symbols = self.conditional.encode(coder, y.cpu(), indices, means, keep_y)
        self.hyper_density.encode(coder, z, keep_z)
        return self.conditional.dequantize(symbols, means)

    def _decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int], quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        m = self.downsampling_factor_total()
        z_hat = self.hyper_density.decode(coder, (shape[0] // m, shape[1] // m), keep_z)
        means, indices = self._probability_path(z_hat)
        symbols = self.conditional.decode(coder, indices, keep_y)
        return self.conditional.dequantize(symbols, means)
