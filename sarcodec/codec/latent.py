"""Real bitrates for the seed study's fixed-ratio autoencoders: quantize their latents and entropy-code them.

The seed autoencoders have no entropy model, so each image's latent ``y`` is coded with a simple, honest
scheme: uniform quantization with step ``s * std(y)`` (``s`` is the rate setting), then per channel a discretized
Laplace density whose scale is the channel's mean absolute symbol, coded with constriction's ANS coder. The bytes
counted are the ANS words plus all side information: a 12-byte header (step float32, symbol radius, channel
count) and one float16 scale per channel. Decoding rebuilds ``y_hat = symbols * step`` and runs the decoder.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import constriction
import numpy as np
import numpy.typing as npt
import torch

from sarcodec.entropy.tables import decode_grouped, encode_grouped, quantize_pmf
from sarcodec.errors import CorruptFileError
from sarcodec.models.base import AutoencoderBase

__all__ = ["LatentCoder"]

_HEADER = struct.Struct("<fHH")


def _laplace_table(scale: float, radius: int) -> npt.NDArray[np.int64]:
    b = max(float(scale), 0.05)
    edges = np.arange(-radius, radius + 2, dtype=np.float64) - 0.5
    cdf = np.where(edges < 0, 0.5 * np.exp(edges / b), 1 - 0.5 * np.exp(-edges / b))
    return quantize_pmf(np.diff(cdf))


class LatentCoder:
    """Entropy coding of a seed autoencoder's latents (see the module docstring)."""

    #: Quantization steps as fractions of the latent's standard deviation (coarse to fine).
    settings: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5, 0.25, 0.12, 0.06)

    def __init__(self, model: AutoencoderBase, name: str) -> None:
        self.model = model.eval()
        self.name = name

    @torch.no_grad()
    def encode(self, x: npt.NDArray[np.float32], setting: float) -> bytes:
        """Code the latent of ``x`` (H, W) in [0, 1]."""
        latent = self.model.encode(torch.from_numpy(np.ascontiguousarray(x))[None, None].float())[0].double()
        step = float(setting * max(float(latent.std()), 1e-6))
        q = torch.round(latent / step).long()
        radius = min(int(q.abs().max()), 65535)
        scales = q.abs().double().mean(dim=(1, 2)).numpy().astype(np.float16)
        tables = [_laplace_table(float(s), radius) for s in scales]
        channels = q.shape[0]
        symbols = (q.clamp(-radius, radius) + radius).permute(1, 2, 0).reshape(-1).numpy()
        groups = np.tile(np.arange(channels), symbols.size // channels)
        coder = constriction.stream.stack.AnsCoder()
        encode_grouped(coder, symbols, groups, tables)
        words = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
        return _HEADER.pack(step, radius, channels) + scales.tobytes() + words

    @torch.no_grad()
    def decode(self, data: bytes, height: int, width: int) -> npt.NDArray[np.float32]:
        """Reconstruction (H, W) in [0, 1] from :meth:`encode`'s bytes."""
        if len(data) < _HEADER.size:
            raise CorruptFileError("latent payload is shorter than its header")
        step, radius, channels = _HEADER.unpack_from(data)
        if (len(data) - _HEADER.size - 2 * channels) % 4 or channels != self.model.latent_channels:
            raise CorruptFileError("latent payload does not fit this model (wrong channel count or length)")
        scales = np.frombuffer(data, np.float16, channels, _HEADER.size)
        words = np.frombuffer(data[_HEADER.size + 2 * channels :], "<u4").astype(np.uint32)
        m = self.model.downsampling_factor
        h, w = -(-height // m), -(-width // m)
        groups = np.tile(np.arange(channels), h * w)
        tables = [_laplace_table(float(s), radius) for s in scales]
        symbols = decode_grouped(constriction.stream.stack.AnsCoder(words), groups, tables)
        q = torch.from_numpy(symbols - radius).view(h, w, channels).permute(2, 0, 1)[None].float()
        out = self.model.decode(q * step)[0, 0, :height, :width].clamp(0, 1)
        return out.numpy()

    def roundtrip(self, image: Any, setting: float, scratch: Path
                  ) -> tuple[int, npt.NDArray[np.float32], None, float, float]:
        """Benchmark hook: (bytes, reconstruction x, None (the intensity is x mapped back), encode s, decode s) for a
        ``sarcodec.evaluate.ReferenceImage``."""
        t0 = time.perf_counter()
        data = self.encode(image.x, setting)
        t1 = time.perf_counter()
        x_hat = self.decode(data, *image.x.shape)
        t2 = time.perf_counter()
        return len(data), x_hat, None, t1 - t0, t2 - t1

