"""Rate-distortion codecs: the ``RDCodec`` contract (transforms, gains per quality level, tile coding entry
points); the architectures are ``factorized.py`` and ``hyperprior.py`` beside this file.

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
indices) as an exact integer network when the weights carry one (``sarcodec.models.codecs.integer``; otherwise in
float64 on the CPU, weights of sarcodec <= 0.4), and the entropy tables are stored integers
(``sarcodec.entropy``), so every machine decodes the same symbols. On the CPU every tile is coded on one
thread (callers run tiles in parallel instead): oneDNN changes its order of summation with the thread count, not
on one thread, so the pixels are identical whatever the process's thread count (tested with 1, 2 and 16), and the
transforms can use oneDNN in channels-last (about 1.5-2x faster than PyTorch's native kernels). On a GPU the
symbols are the same, the synthesis is not bit-identical to the CPU's (float rounding, about 1e-6 of the range);
decode with ``device="cpu"`` for bit-exact pixels.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar

import constriction
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from sarcodec.entropy.keep import keep_masks
from sarcodec.entropy.models import FactorizedDensity, GaussianConditional
from sarcodec.errors import CorruptFileError, IncompatibleModelError
from sarcodec.models.base import pad_to_multiple
from sarcodec.models.layers import GDN, conv, deconv
from sarcodec.threads import single_thread

__all__ = [
    "DEFAULT_LAMBDAS",
    "Analysis",
    "RDCodec",
    "ste_round",
]

#: Lambdas of the quality levels 1..8 (distortion = MSE on [0, 1], rate in bits per pixel).
DEFAULT_LAMBDAS: tuple[float, ...] = (24.0, 40.0, 65.0, 105.0, 170.0, 280.0, 600.0, 1600.0)


Keep = npt.NDArray[np.bool_] | None  # latent positions to code (None: all)


@dataclass
class Analysis:
    """What :meth:`RDCodec.analyze` computed for one tile: the analysis output ``y`` (before any quality's gain),
    the tile's unpadded size, and the latent positions to code (None: all)."""

    y: Tensor
    height: int
    width: int
    keep_y: Keep
    keep_z: Keep


class RDCodec(nn.Module):
    """Shared machinery: transforms, gains per quality level, padding, and the tile coding entry points."""

    #: The parts that decide no symbol, only what the decoder makes of them (``rd.train_only`` within these keeps
    #: the symbols of ``rd.init``).
    DECODER_ONLY: ClassVar[tuple[str, ...]] = ("synthesis", "log_inverse_gain")
    #: The parts that run after every latent the encoder chooses is fixed (a run that trains only these runs the
    #: rest as coding runs it: rounded hyper-latents, the rate of the rounded latents).
    AFTER_QUANTIZATION: ClassVar[tuple[str, ...]] = DECODER_ONLY

    #: Registry name, set by ``register_model(name, kind="codec")``; recorded in weights files and .sarc headers.
    codec_name: ClassVar[str] = ""
    #: Inputs are padded (replicate, bottom/right) to a multiple of this.
    downsampling_factor: ClassVar[int] = 4

    def __init__(self, channels: int, latent_channels: int, lambdas: Sequence[float],
                 synthesis_channels: int | None = None) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "channels": channels,
            "latent_channels": latent_channels,
            "lambdas": [float(v) for v in lambdas],
        }
        if synthesis_channels is not None:  # recorded only when given (earlier weights lack it: the analysis' width)
            self.config["synthesis_channels"] = synthesis_channels
        self.lambdas = tuple(float(v) for v in lambdas)
        self.analysis = nn.Sequential(
            conv(1, channels), GDN(channels), conv(channels, channels), GDN(channels),
            conv(channels, latent_channels, kernel=3, stride=1),
        )  # fmt: skip
        sc = channels if synthesis_channels is None else synthesis_channels
        self.synthesis = nn.Sequential(
            conv(latent_channels, sc, kernel=3, stride=1), GDN(sc, inverse=True),
            deconv(sc, sc), GDN(sc, inverse=True), deconv(sc, 1),
        )  # fmt: skip
        # Gains per level, initialised to the high-rate rule step ~ 1 / sqrt(lambda).
        ref = math.sqrt(self.lambdas[0] * self.lambdas[-1])
        init = torch.tensor([0.5 * math.log(v / ref) for v in self.lambdas]).view(-1, 1)
        self.log_gain = nn.Parameter(init.repeat(1, latent_channels))
        self.log_inverse_gain = nn.Parameter(-init.repeat(1, latent_channels))

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
        """Which latent positions are coded, given the validity of the (unpadded) tile; None = all
        (``sarcodec.entropy.keep``)."""
        return keep_masks(valid, shape, self.downsampling_factor, self.downsampling_factor_total())

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

    def count_parameters(self) -> dict[str, int]:
        """``{"total", "encoder", "decoder", "trainable"}``: the encoder is the analysis (and hyper-analysis)
        transform, the rest (synthesis, hyper-synthesis, entropy models, gains) the decoder."""
        encoder = sum(p.numel() for n, p in self.named_parameters() if n.split(".")[0] in ("analysis", "hyper_analysis"))
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "encoder": encoder, "decoder": total - encoder,
                "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad)}

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


def ste_round(y: Tensor, means: Tensor | None = None) -> Tensor:
    """Quantized value with a straight-through gradient (decoder input in training, Minnen & Singh 2020)."""
    centred = y - means if means is not None else y
    q = centred + (torch.round(centred) - centred).detach()
    return q + means if means is not None else q
