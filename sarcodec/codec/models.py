"""Rate-distortion codecs: a factorized prior and a mean-scale hyperprior, both variable-rate.

Both take ``(N, 1, H, W)`` images in the working representation ([0, 1], normalized dB, see
``sarcodec.preprocess``) and are trained on ``lambda * MSE + bits per pixel`` (``sarcodec train
configs/codec/hyperprior.yaml``: ``sarcodec.train.objectives``, objective ``rd``).

Transforms. The seed study's lesson (SPEC, "What we know") is that fidelity on speckle at high rates needs many
latent values per pixel. The analysis transform here downsamples only twice (stride 4) into ``latent_channels``
channels: 48 channels keep 3 latent values per pixel, against 0.375 for a 96-channel stride-16 hyperprior. At low
rates most channels quantize to zero and cost almost nothing. GDN/IGDN nonlinearities (Ballé et al. 2016).

Variable rate. One network serves every quality level: the latent is multiplied by a learned per-channel gain
vector of the level before quantization and by a learned inverse gain after (Cui et al. 2021, "asymmetric gained
VAE"); the training loss draws a level per sample and uses its lambda. Fractional qualities interpolate the gains
geometrically, which is how ``--bpp`` hits a target rate.

Determinism. ``compress_tile``/``decompress_tile`` run the probability path (hyper-decoder -> means and scale
indices) on CPU in float64 whatever device the transforms use, and the entropy tables are stored integers
(``sarcodec.codec.entropy``), so every machine decodes the same symbols. On the CPU every tile is coded on one
thread (callers run tiles in parallel instead): oneDNN changes its order of summation with the thread count, not
on one thread, so the pixels are identical whatever the process's thread count (tested with 1, 2 and 16), and the
transforms can use oneDNN in channels-last (about 1.5-2x faster than PyTorch's native kernels). On a GPU the
symbols are the same, the synthesis is not bit-identical to the CPU's (float rounding, about 1e-6 of the range);
decode with ``device="cpu"`` for bit-exact pixels.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import constriction
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.codec.entropy import FactorizedDensity, GaussianConditional, lower_bound
from sarcodec.codec.pipeline import single_thread
from sarcodec.errors import CorruptFileError, IncompatibleModelError
from sarcodec.models.base import pad_to_multiple

__all__ = [
    "DEFAULT_LAMBDAS",
    "FactorizedPriorCodec",
    "GDN",
    "HyperpriorCodec",
    "RDCodec",
    "create_codec",
    "list_codecs",
]

#: Lambdas of the quality levels 1..8 (distortion = MSE on [0, 1], rate in bits per pixel).
DEFAULT_LAMBDAS: tuple[float, ...] = (24.0, 40.0, 65.0, 105.0, 170.0, 280.0, 600.0, 1600.0)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016); ``inverse=True`` gives IGDN."""

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(gamma_init * torch.eye(channels))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        beta = lower_bound(self.beta, 1e-6)
        gamma = lower_bound(self.gamma, 0.0)
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        if not torch.is_grad_enabled():  # inference: the same operations in place (two tile-sized buffers fewer)
            norm.sqrt_()
            return norm.mul_(x) if self.inverse else torch.div(x, norm, out=norm)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


#: Pixels: latents farther than this from every valid pixel are not coded. The synthesis reaches ~10 px, but its
#: outer taps are weak: with 8 px the valid part of a NaN-bordered image decodes as well as the part alone
#: (PSNR within 0.03 dB) and an 84 % NaN border costs 7-15 % of the valid part's bytes (benchmarks/nodata_cost.py).
SKIP_MARGIN = 8
Keep = npt.NDArray[np.bool_] | None  # latent positions to code (None: all)


def _near(mask: npt.NDArray[np.bool_], block: int, margin: int) -> npt.NDArray[np.bool_]:
    """Per ``block`` x ``block`` cell of ``mask`` (shape a multiple of ``block``): True when a True pixel lies in
    the cell or within ``margin`` cells of it."""
    from scipy import ndimage

    h, w = mask.shape
    cells = mask.reshape(h // block, block, w // block, block).any(axis=(1, 3))
    if margin:
        cells = ndimage.binary_dilation(cells, np.ones((2 * margin + 1, 2 * margin + 1), dtype=bool))
    return np.asarray(cells, dtype=bool)


_PROBABILITY_PATH_LOCK = threading.Lock()


def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


@dataclass
class Analysis:
    """What :meth:`RDCodec.analyze` computed for one tile: the analysis output ``y`` (before any quality's gain),
    the tile's unpadded size, and the latent positions to code (None: all)."""

    y: Tensor
    height: int
    width: int
    keep_y: Keep
    keep_z: Keep


_CODECS: dict[str, type[RDCodec]] = {}


def list_codecs() -> list[str]:
    """Registered codec architecture names."""
    return sorted(_CODECS)


def create_codec(name: str, /, **cfg: Any) -> RDCodec:
    """Build the codec architecture ``name`` with keyword arguments ``cfg``."""
    if name not in _CODECS:
        raise IncompatibleModelError(f"unknown codec architecture {name!r}; valid names: {', '.join(list_codecs())}")
    try:
        return _CODECS[name](**cfg)
    except TypeError as exc:
        raise IncompatibleModelError(f"codec {name!r} cannot be built from this config: {exc}") from None


class RDCodec(nn.Module):
    """Shared machinery: transforms, gains per quality level, padding, and the tile coding entry points."""

    codec_name: ClassVar[str] = ""
    #: Inputs are padded (replicate, bottom/right) to a multiple of this.
    downsampling_factor: ClassVar[int] = 4

    def __init__(self, channels: int, latent_channels: int, lambdas: Sequence[float]) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "channels": channels,
            "latent_channels": latent_channels,
            "lambdas": [float(v) for v in lambdas],
        }
        self.lambdas = tuple(float(v) for v in lambdas)
        #: Runs the analysis transform when coding instead of ``self.analysis`` (ONNX Runtime, see
        #: sarcodec/codec/onnx.py); None: PyTorch. Not a submodule: stays out of state_dict.
        self.analysis_runner: Callable[[Tensor], Tensor] | None = None
        self.analysis = nn.Sequential(
            _conv(1, channels), GDN(channels), _conv(channels, channels), GDN(channels),
            _conv(channels, latent_channels, kernel=3, stride=1),
        )  # fmt: skip
        self.synthesis = nn.Sequential(
            _conv(latent_channels, channels, kernel=3, stride=1), GDN(channels, inverse=True),
            _deconv(channels, channels), GDN(channels, inverse=True), _deconv(channels, 1),
        )  # fmt: skip
        # Gains per level, initialised to the high-rate rule step ~ 1 / sqrt(lambda).
        ref = math.sqrt(self.lambdas[0] * self.lambdas[-1])
        init = torch.tensor([0.5 * math.log(v / ref) for v in self.lambdas]).view(-1, 1)
        self.log_gain = nn.Parameter(init.repeat(1, latent_channels))
        self.log_inverse_gain = nn.Parameter(-init.repeat(1, latent_channels))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.codec_name:
            _CODECS[cls.codec_name] = cls

    @property
    def num_levels(self) -> int:
        """Number of trained quality levels (qualities are 1..num_levels)."""
        return len(self.lambdas)

    def gains(self, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain ``(N, C, 1, 1)`` for qualities in [1, num_levels] (fractional: interpolated)."""
        q = (quality.to(self.log_gain.dtype) - 1).clamp(0, self.num_levels - 1)
        lo = q.floor().long().clamp_max(self.num_levels - 2) if self.num_levels > 1 else q.long() * 0
        t = (q - lo).unsqueeze(1)
        hi = (lo + 1).clamp_max(self.num_levels - 1)
        log_gain = self.log_gain[lo] * (1 - t) + self.log_gain[hi] * t
        log_inverse = self.log_inverse_gain[lo] * (1 - t) + self.log_inverse_gain[hi] * t
        return torch.exp(log_gain)[:, :, None, None], torch.exp(log_inverse)[:, :, None, None]

    def check_quality(self, quality: float) -> float:
        """``quality`` as a float, or IncompatibleModelError when it is outside [1, num_levels]."""
        if not (isinstance(quality, int | float) and math.isfinite(quality) and 1 <= quality <= self.num_levels):
            raise IncompatibleModelError(f"quality must be between 1 and {self.num_levels}, got {quality!r}")
        return float(quality)

    # --- training --------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Any]:
        """Training/validation pass: ``x_hat`` and the latents' ``likelihoods`` (a list of tensors)."""
        raise NotImplementedError

    def aux_loss(self) -> Tensor:
        """Loss of the factorized densities' tail quantiles (trained by a separate optimizer)."""
        return sum((m.aux_loss() for m in self.modules() if isinstance(m, FactorizedDensity)), torch.zeros(()))

    def update_tables(self) -> None:
        """Compute the integer coding tables of every entropy model (after training, before coding)."""
        for m in self.modules():
            if isinstance(m, FactorizedDensity | GaussianConditional):
                m.update_tables()

    # --- coding ----------------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.analysis.parameters()).device

    @torch.no_grad()
    def compress_tile(self, x: Tensor, quality: float) -> bytes:
        """Entropy-code one image ``(1, 1, H, W)`` in [0, 1]; any H, W >= 1."""
        return self.encode_tile(x, quality, reconstruct=False)[0]

    def _keep_masks(self, valid: npt.NDArray[np.bool_] | None, shape: tuple[int, int]
                    ) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
        """Which latent positions are coded, given the validity of the (unpadded) tile; None = all.

        A latent of y is coded when a valid pixel lies within ``SKIP_MARGIN`` pixels of its footprint; a
        hyper-latent of z when a coded y lies within one y position of its footprint. Encoder and decoder derive
        both from the validity mask; uncoded latents take their predicted mean (y) or 0 (z)."""
        if valid is None or valid.all():
            return None, None
        padded = np.zeros(shape, dtype=bool)
        padded[: valid.shape[0], : valid.shape[1]] = valid
        m = self.downsampling_factor
        keep_y = _near(padded, m, SKIP_MARGIN // m)
        if self.downsampling_factor_total() == m:
            return keep_y, None
        return keep_y, _near(keep_y, self.downsampling_factor_total() // m, 1)

    def _coding_threads(self) -> contextlib.AbstractContextManager[None]:
        """Coding on the CPU runs each tile on one thread (see :func:`single_thread`); callers code tiles in
        parallel instead (``sarcodec.codec.api``)."""
        return single_thread() if self._device().type == "cpu" else contextlib.nullcontext()

    @torch.no_grad()
    def analyze(self, x: Tensor, valid: npt.NDArray[np.bool_] | None = None) -> Analysis:
        """The quality-independent part of coding an image ``(1, 1, H, W)`` in [0, 1]: the analysis transform
        (before the gain of a quality level) and the latent positions to code. ``valid`` (H, W): latents far from
        every valid pixel are not coded (see :meth:`_keep_masks`); the decoder must be given the same mask."""
        height, width = x.shape[-2:]
        padded, _ = pad_to_multiple(x.to(self._device(), torch.float32), self.downsampling_factor_total())
        keep_y, keep_z = self._keep_masks(valid, (int(padded.shape[-2]), int(padded.shape[-1])))
        # The analysis may use oneDNN: only the symbols it produces must be reproducible, and the decoder
        # recomputes nothing from it. Channels-last is ~1.5x faster on the CPU.
        with self._coding_threads():
            if self.analysis_runner is not None:
                y = self.analysis_runner(padded.contiguous()).to(padded.device)
            else:
                y = self.analysis(padded.contiguous(memory_format=torch.channels_last)).contiguous()
        return Analysis(y, int(height), int(width), keep_y, keep_z)

    @torch.no_grad()
    def encode_analysis(self, analysis: Analysis, quality: float, reconstruct: bool = True
                        ) -> tuple[bytes, Tensor | None]:
        """Entropy-code an analysed image at ``quality``; with ``reconstruct``, also what the decoder will
        reconstruct from these symbols ((1, 1, H, W) on CPU), computed from the coded latents without decoding."""
        q = torch.tensor([self.check_quality(quality)])
        coder = constriction.stream.stack.AnsCoder()
        with self._coding_threads():
            y_hat = self._encode(coder, analysis.y, q, analysis.keep_y, analysis.keep_z)
            x_hat = self._synthesize_exact(y_hat.to(self._device()), q)[..., : analysis.height, : analysis.width]\
                .clamp(0, 1).cpu() if reconstruct else None
        return np.asarray(coder.get_compressed(), dtype="<u4").tobytes(), x_hat

    def encode_tile(self, x: Tensor, quality: float, reconstruct: bool = True,
                    valid: npt.NDArray[np.bool_] | None = None) -> tuple[bytes, Tensor | None]:
        """:meth:`analyze` then :meth:`encode_analysis`."""
        return self.encode_analysis(self.analyze(x, valid), quality, reconstruct)

    @torch.no_grad()
    def decompress_tile(self, payload: bytes, height: int, width: int, quality: float,
                        valid: npt.NDArray[np.bool_] | None = None) -> Tensor:
        """Decode what :meth:`encode_tile` wrote for an image of ``height`` x ``width`` (with the same ``valid``);
        (1, 1, H, W) on CPU."""
        if len(payload) % 4 or not payload:
            raise CorruptFileError("an entropy-coded tile is empty or not a whole number of 32-bit words")
        q = torch.tensor([self.check_quality(quality)])
        m = self.downsampling_factor_total()
        shape = (math.ceil(height / m) * m, math.ceil(width / m) * m)
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        try:
            coder = constriction.stream.stack.AnsCoder(words)
        except Exception as exc:
            raise CorruptFileError(f"an entropy-coded tile is damaged ({exc})") from None
        keep = self._keep_masks(valid, shape)
        with self._coding_threads():
            y_hat = self._decode(coder, shape, q, *keep)
            # Every word must be consumed by exactly the symbols of this shape; checked before the costly synthesis.
            if not coder.is_empty():
                raise CorruptFileError("an entropy-coded tile does not match the shape and model in the header")
            x_hat = self._synthesize_exact(y_hat.to(self._device()), q)
        return x_hat[..., :height, :width].clamp(0, 1).cpu()

    def downsampling_factor_total(self) -> int:
        """Padding multiple of the whole model (the hyperprior's z is 4x coarser than y)."""
        return self.downsampling_factor

    def _encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        """Push the latents of the analysis output ``y`` (before the gain; only the positions in
        ``keep_y``/``keep_z`` when given); return the quantized latent ``y_hat`` the decoder will see."""
        raise NotImplementedError

    def _decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int], quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        """Pop what :meth:`_encode` pushed for a padded image of ``shape``; return the latent ``y_hat`` (CPU)."""
        raise NotImplementedError

    def _synthesize(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        """The synthesis transform (training and validation)."""
        _, inverse_gain = self.gains(quality.to(y_hat.device))
        x_hat: Tensor = self.synthesis(y_hat * inverse_gain.to(y_hat.device))
        return x_hat

    def _synthesize_exact(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        """The synthesis as coding runs it. On the CPU it runs on one thread (inside :meth:`_coding_threads`),
        where oneDNN's order of operations is fixed, so the pixels are the same whatever the thread count of the
        process (tested with 1, 2 and 16); channels-last with oneDNN is ~1.8x faster than the native kernels."""
        if y_hat.device.type != "cpu":  # GPUs: same symbols, pixels within float rounding of the CPU's
            return self._synthesize(y_hat, quality)
        assert torch.get_num_threads() == 1, "coding synthesis outside a single-thread section"
        # the gain's product keeps the channels-last layout
        return self._synthesize(y_hat.contiguous(memory_format=torch.channels_last), quality).contiguous()


def _ste_round(y: Tensor, means: Tensor | None = None) -> Tensor:
    """Quantized value with a straight-through gradient (decoder input in training, Minnen & Singh 2020)."""
    centred = y - means if means is not None else y
    q = centred + (torch.round(centred) - centred).detach()
    return q + means if means is not None else q


class FactorizedPriorCodec(RDCodec):
    """Ballé et al. 2018's factorized prior: one learned density per latent channel, no side information."""

    codec_name = "factorized"

    def __init__(self, channels: int = 64, latent_channels: int = 48, lambdas: Sequence[float] = DEFAULT_LAMBDAS):
        super().__init__(channels, latent_channels, lambdas)
        self.density = FactorizedDensity(latent_channels)

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Any]:  # noqa: D102
        gain, _ = self.gains(quality.to(x.device))
        y = self.analysis(x) * gain
        _, likelihoods = self.density(y)
        y_hat = _ste_round(y) if self.training else torch.round(y)
        return {"x_hat": self._synthesize(y_hat, quality), "likelihoods": [likelihoods]}

    def _encode(self, coder: constriction.stream.stack.AnsCoder, y: Tensor, quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        gain, _ = self.gains(quality.to(y.device))
        return self.density.encode(coder, (y * gain).cpu(), keep_y)

    def _decode(self, coder: constriction.stream.stack.AnsCoder, shape: tuple[int, int], quality: Tensor,
                keep_y: Keep = None, keep_z: Keep = None) -> Tensor:
        m = self.downsampling_factor
        return self.density.decode(coder, (shape[0] // m, shape[1] // m), keep_y)


class HyperpriorCodec(RDCodec):
    """Mean-scale hyperprior (Ballé et al. 2018; means as in Minnen et al. 2018): z describes y's local statistics."""

    codec_name = "hyperprior"

    def __init__(
        self,
        channels: int = 64,
        latent_channels: int = 48,
        hyper_channels: int = 64,
        hyper_latent_channels: int = 32,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    ) -> None:
        super().__init__(channels, latent_channels, lambdas)
        self.config.update(hyper_channels=hyper_channels, hyper_latent_channels=hyper_latent_channels)
        hc, zc = hyper_channels, hyper_latent_channels
        self.hyper_analysis = nn.Sequential(
            _conv(latent_channels, hc, kernel=3, stride=1), nn.LeakyReLU(inplace=True),
            _conv(hc, hc), nn.LeakyReLU(inplace=True), _conv(hc, zc),
        )  # fmt: skip
        self.hyper_synthesis = nn.Sequential(
            _deconv(zc, hc), nn.LeakyReLU(inplace=True), _deconv(hc, hc), nn.LeakyReLU(inplace=True),
            _conv(hc, 2 * latent_channels, kernel=3, stride=1),
        )  # fmt: skip
        self.hyper_density = FactorizedDensity(zc)
        self.conditional = GaussianConditional()

    def downsampling_factor_total(self) -> int:  # noqa: D102
        return self.downsampling_factor * 4

    def _hyper_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        means, scales = self.hyper_synthesis(z_hat).chunk(2, dim=1)
        return means, F.softplus(scales)

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Any]:  # noqa: D102
        gain, _ = self.gains(quality.to(x.device))
        y = self.analysis(x) * gain
        z = self.hyper_analysis(y)
        z_tilde, z_likelihoods = self.hyper_density(z)
        means, scales = self._hyper_params(z_tilde)
        _, y_likelihoods = self.conditional(y, scales, means)
        y_hat = _ste_round(y, means) if self.training else torch.round(y - means) + means
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
        """Means and scale indices from z_hat: a float64 copy of the hyper-decoder on CPU (native kernels).

        Encoder and decoder must agree on every scale index; float64 on CPU makes a disagreement (a predicted
        scale within float64 rounding of a table boundary) practically impossible across machines and devices.
        """
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
