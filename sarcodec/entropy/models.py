"""Learned entropy models (Ballé et al. 2018) and their coding with constriction's rANS coder.

Two models, both usable in training (differentiable likelihoods of noisy latents) and in coding (integer
symbols, fixed probability tables, ``constriction.stream.stack.AnsCoder``):

* :class:`FactorizedDensity` -- the non-parametric, per-channel cumulative density of Ballé et al. 2018
  (appendix 6.1), used for the hyper-latent ``z`` and for the factorized-prior codec's ``y``.
* :class:`GaussianConditional` -- a zero-mean Gaussian convolved with a unit box, with a scale per symbol
  predicted by the hyper-decoder (the scale hyperprior).

Determinism. Coding needs the encoder and decoder to use bit-identical probability tables. The tables are
computed once, after training (:meth:`FactorizedDensity.update_tables`, :meth:`GaussianConditional.update_tables`),
quantized to integer counts that sum to ``2**TABLE_PRECISION`` and stored with the weights; coding only ever sees
those integers (divided by a power of two, which is exact), so the tables cannot differ between machines.
The Gaussian scale of every symbol is snapped to an index into a fixed, log-spaced scale table; the
hyper-decoder that predicts it is an exact integer network (see ``sarcodec.models.codecs.integer``; float64 on the
CPU for weights of sarcodec <= 0.4).

Symbols outside a table's support are clamped to it by the encoder, which then reconstructs from the clamped
value too, so encoder and decoder always agree; with tails of 1e-9 probability this almost never happens.
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from sarcodec.entropy.tables import decode_values, encode_grouped, quantize_pmf

__all__ = ["FactorizedDensity", "GaussianConditional", "lower_bound"]

_TAIL_MASS = 1e-9
_LIKELIHOOD_BOUND = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when x is below the bound and the gradient pushes it up."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, bound: float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.bound = bound  # type: ignore[attr-defined]
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        pass_through = (x >= ctx.bound) | (grad < 0)  # type: ignore[attr-defined]
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: Tensor, bound: float) -> Tensor:
    """``max(x, bound)`` with the gradient of Ballé et al.'s ``LowerBound`` (never stuck below the bound)."""
    out: Tensor = _LowerBound.apply(x, bound)  # type: ignore[no-untyped-call]
    return out


class FactorizedDensity(nn.Module):
    """Per-channel learned density of Ballé et al. 2018 (appendix 6.1): a monotone MLP gives the CDF.

    ``forward(y)`` returns ``(y_tilde, likelihoods)``: in training ``y_tilde = y + U(-0.5, 0.5)``, in eval mode
    ``round(y)``; likelihoods are the probability mass of the unit interval around each value.
    """

    table_offsets: Tensor
    table_lengths: Tensor
    table_counts: Tensor
    _tail_target: Tensor

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # Tail quantiles (0: lower tail, 1: median, 2: upper tail), learned with aux_loss().
        target = torch.tensor([-init_scale, 0.0, init_scale])
        self.quantiles = nn.Parameter(target.repeat(channels, 1, 1))
        self.register_buffer("_tail_target", torch.tensor([-1.0, 0.0, 1.0]) * math.log(2 / _TAIL_MASS - 1))
        # Coding tables, filled by update_tables(): offsets[c] = lowest symbol, counts padded with zeros.
        self.register_buffer("table_offsets", torch.zeros(channels, dtype=torch.int64))
        self.register_buffer("table_lengths", torch.zeros(channels, dtype=torch.int64))
        self.register_buffer("table_counts", torch.zeros(channels, 1, dtype=torch.int64))

    def _logits_cumulative(self, x: Tensor, stop_gradient: bool = False) -> Tensor:
        """x: (C, 1, K) -> logits of the CDF at x, (C, 1, K); ``stop_gradient`` freezes the density's parameters."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def likelihood(self, values: Tensor) -> Tensor:
        """Probability mass of [v - 0.5, v + 0.5] for every value, ``values`` shaped (N, C, H, W)."""
        n, c, h, w = values.shape
        flat = values.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(flat - 0.5)
        upper = self._logits_cumulative(flat + 0.5)
        sign = -torch.sign(lower + upper).detach()
        mass = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        mass = lower_bound(mass, _LIKELIHOOD_BOUND)
        return mass.reshape(c, n, h, w).permute(1, 0, 2, 3)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        if self.training:
            y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            y_tilde = torch.round(y)
        return y_tilde, self.likelihood(y_tilde)

    def aux_loss(self) -> Tensor:
        """Loss that moves ``quantiles`` to the 1e-9 tails and the median of each channel's density."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self._tail_target.view(1, 1, 3)).sum()

    @torch.no_grad()
    def update_tables(self, radius: int = 4096) -> None:
        """Compute the integer coding tables from the learned density (call after training).

        Each channel's support is the integer range where its CDF lies within [1e-9/2, 1 - 1e-9/2], found on
        a grid of [-radius, radius] (so it does not depend on how well ``quantiles`` converged).
        """
        grid = torch.arange(-radius, radius + 1, dtype=torch.float32, device=self.quantiles.device)
        grid = grid.view(1, 1, -1).expand(self.channels, 1, -1)
        cdf = torch.sigmoid(self._logits_cumulative(grid + 0.5, stop_gradient=True))[:, 0].double().cpu()
        pmf_all = torch.diff(cdf, dim=1, prepend=torch.zeros(self.channels, 1, dtype=torch.float64))
        lo = torch.zeros(self.channels, dtype=torch.int64)
        hi = torch.zeros(self.channels, dtype=torch.int64)
        for c in range(self.channels):
            inside = torch.nonzero((cdf[c] >= _TAIL_MASS / 2) & (cdf[c] <= 1 - _TAIL_MASS / 2)).flatten()
            first = int(inside[0]) if inside.numel() else radius
            last = int(inside[-1]) + 1 if inside.numel() else radius
            lo[c], hi[c] = min(first, radius) - radius, max(last, radius) - radius
        lengths = (hi - lo + 1).clamp(1, 1 << 14)
        counts = torch.zeros(self.channels, int(lengths.max()), dtype=torch.int64)
        for c in range(self.channels):
            start = int(lo[c]) + radius
            pmf = pmf_all[c, start : start + int(lengths[c])].abs().numpy()
            counts[c, : int(lengths[c])] = torch.from_numpy(quantize_pmf(pmf))
        self.table_offsets = lo.to(self.table_offsets.device)
        self.table_lengths = lengths.to(self.table_offsets.device)
        self.table_counts = counts.to(self.table_offsets.device)

    def _tables(self) -> list[NDArray[np.int64]]:
        counts = self.table_counts.cpu().numpy()
        lengths = self.table_lengths.cpu().numpy()
        if lengths.size == 0 or int(lengths.min()) < 1:
            raise RuntimeError("coding tables are missing: call update_tables() after training")
        return [counts[c, : lengths[c]] for c in range(self.channels)]

    def coded_values(self, y: Tensor) -> Tensor:
        """``round(y)`` clamped to the tables' support, as float on CPU: what :meth:`encode` codes."""
        offsets = self.table_offsets.cpu().view(1, -1, 1, 1)
        lengths = self.table_lengths.cpu().view(1, -1, 1, 1)
        q = torch.round(y.detach().cpu().double()).long()
        return torch.maximum(torch.minimum(q, offsets + lengths - 1), offsets).float()

    def encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, keep: NDArray[np.bool_] | None = None
               ) -> Tensor:
        """Quantize ``y`` (1, C, H, W), clamp to the tables' support, push it; return the coded values (float).

        ``keep`` (H, W): only these positions are pushed; the others take :meth:`default_values` (what the decoder
        puts there), and the returned tensor holds those."""
        offsets = self.table_offsets.cpu().view(1, -1, 1, 1)
        q = self.coded_values(y).long()
        if keep is not None:
            q = torch.where(torch.from_numpy(keep)[None, None], q, self.default_values(q.shape).long())
        symbols = (q - offsets)[0].permute(1, 2, 0).reshape(-1).numpy()  # pixel-major, channel-minor
        groups = np.tile(np.arange(self.channels), symbols.size // self.channels)
        coded = None if keep is None else np.repeat(keep.ravel(), self.channels)
        encode_grouped(coder, symbols, groups, self._tables(), coded)
        return q.to(y.dtype)

    def default_values(self, shape: torch.Size | tuple[int, ...]) -> Tensor:
        """The value of positions that are not coded: 0 clamped to each channel's support (float, CPU)."""
        return self.coded_values(torch.zeros(shape))

    def decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int],
               keep: NDArray[np.bool_] | None = None) -> Tensor:
        """Pop a (1, C, *shape) tensor of values pushed by :meth:`encode` (with the same ``keep``)."""
        h, w = shape
        coded = None if keep is None else np.repeat(keep.ravel(), self.channels)  # pixel-major, channel-minor
        default = self.default_values((1, self.channels, 1, 1)).reshape(-1).numpy()
        values = decode_values(coder, np.tile(np.arange(self.channels), h * w), self._tables(),
                               -self.table_offsets.cpu().numpy(), coded, np.tile(default, h * w))
        return torch.from_numpy(values).view(h, w, self.channels).permute(2, 0, 1).unsqueeze(0).contiguous()


def default_scale_table(low: float = 0.11, high: float = 256.0, levels: int = 64) -> Tensor:
    """Log-spaced Gaussian scales that the hyper-decoder's predictions are snapped to (CompressAI's choice)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), levels, dtype=torch.float64))


class GaussianConditional(nn.Module):
    """Likelihood of latents under N(mean, scale^2) convolved with U(-0.5, 0.5); coding by scale-table index."""

    scale_table: Tensor
    table_lengths: Tensor
    table_counts: Tensor

    def __init__(self, scale_bound: float = 0.11) -> None:
        super().__init__()
        self.scale_bound = scale_bound
        self.register_buffer("scale_table", default_scale_table(low=scale_bound).float())
        self.register_buffer("table_lengths", torch.zeros(len(self.scale_table), dtype=torch.int64))
        self.register_buffer("table_counts", torch.zeros(len(self.scale_table), 1, dtype=torch.int64))

    def likelihood(self, values: Tensor, scales: Tensor, means: Tensor | None = None) -> Tensor:
        """Probability mass of the unit interval around ``values`` (same shape as ``scales``)."""
        centred = values - means if means is not None else values
        scales = lower_bound(scales, self.scale_bound)
        centred = torch.abs(centred)
        upper = 0.5 * torch.erfc(-(0.5 - centred) / (scales * math.sqrt(2)))
        lower = 0.5 * torch.erfc(-(-0.5 - centred) / (scales * math.sqrt(2)))
        return lower_bound(upper - lower, _LIKELIHOOD_BOUND)

    def forward(self, y: Tensor, scales: Tensor, means: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: D102
        if self.training:
            y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            y_tilde = self.dequantize(self.quantize(y, means), means)
        return y_tilde, self.likelihood(y_tilde, scales, means)

    @staticmethod
    def quantize(y: Tensor, means: Tensor | None = None) -> Tensor:
        """Integer symbols ``round(y - means)`` (float tensor)."""
        return torch.round(y - means if means is not None else y)

    @staticmethod
    def dequantize(symbols: Tensor, means: Tensor | None = None) -> Tensor:
        """Latent values from symbols: ``symbols + means``."""
        return symbols + means if means is not None else symbols

    @torch.no_grad()
    def update_tables(self) -> None:
        """Integer tables for every scale in the table: support [-R, R], R covering 1 - 1e-9 of the mass."""
        scales = self.scale_table.double().cpu()
        tail = -torch.special.ndtri(torch.tensor(_TAIL_MASS / 2, dtype=torch.float64))
        radii = torch.ceil(scales * tail).long()
        width = int(2 * radii.max() + 1)
        counts = torch.zeros(len(scales), width, dtype=torch.int64)
        for i, (s, r) in enumerate(zip(scales.tolist(), radii.tolist())):
            support = torch.arange(-r, r + 1, dtype=torch.float64)
            upper = 0.5 * torch.erfc(-(support + 0.5) / (s * math.sqrt(2)))
            lower = 0.5 * torch.erfc(-(support - 0.5) / (s * math.sqrt(2)))
            counts[i, : 2 * r + 1] = torch.from_numpy(quantize_pmf((upper - lower).numpy()))
        self.table_lengths = (2 * radii + 1).to(self.table_lengths.device)
        self.table_counts = counts.to(self.table_lengths.device)

    def scale_indices(self, scales: Tensor) -> Tensor:
        """Index of the smallest table scale >= each predicted scale (int64; the last index for larger ones)."""
        table = self.scale_table.to(scales.device, scales.dtype)
        return torch.searchsorted(table, scales.contiguous()).clamp_max(len(table) - 1)

    def _tables(self) -> list[NDArray[np.int64]]:
        counts = self.table_counts.cpu().numpy()
        lengths = self.table_lengths.cpu().numpy()
        if lengths.size == 0 or int(lengths.min()) < 1:
            raise RuntimeError("coding tables are missing: call update_tables() after training")
        return [counts[i, : lengths[i]] for i in range(len(lengths))]

    def encode(
        self, coder: constriction.stream.stack.AnsCoder, y: Tensor, indices: Tensor, means: Tensor | None = None,
        keep: NDArray[np.bool_] | None = None,
    ) -> Tensor:
        """Push ``round(y - means)`` clamped to each table's support; return the symbols (float, CPU).

        ``keep`` (H, W): only these positions are pushed; the others are symbol 0 (the latent takes its mean)."""
        radii = ((self.table_lengths.cpu() - 1) // 2)[indices.cpu()]
        mu = means.detach().cpu() if means is not None else None
        q = self.quantize(y.detach().cpu(), mu).long()
        q = torch.clamp(q, min=-radii, max=radii)
        if keep is not None:
            q = q * torch.from_numpy(keep)[None, None]
        symbols = (q + radii).reshape(-1).numpy()
        groups = indices.cpu().reshape(-1).numpy()
        coded = None if keep is None else np.tile(keep.ravel(), q.shape[0] * q.shape[1])  # (N, C, H, W) order
        encode_grouped(coder, symbols, groups, self._tables(), coded)
        return q.float()

    def decode(self, coder: constriction.stream.stack.AnsCoder, indices: Tensor,
               keep: NDArray[np.bool_] | None = None) -> Tensor:
        """Pop symbols pushed by :meth:`encode` (same ``indices`` and ``keep``); returns their values (each symbol
        less its table's radius; 0 where not coded) as a float tensor (CPU)."""
        idx = indices.cpu()
        coded = None if keep is None else np.tile(keep.ravel(), idx.shape[0] * idx.shape[1])  # (N, C, H, W) order
        radii = ((self.table_lengths.cpu() - 1) // 2).numpy()
        values = decode_values(coder, idx.reshape(-1).numpy(), self._tables(), radii, coded)
        return torch.from_numpy(values).view(idx.shape)
