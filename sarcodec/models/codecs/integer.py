"""An exact integer hyper-decoder: the probability path computed in integers, identical on every machine.

Encoder and decoder must agree on every Gaussian scale index, which the hyper-decoder predicts from the coded
hyper-latent ``z_hat``. sarcodec 0.1-0.4 ran it in float64 on the CPU (PyTorch's native float64 kernels: ~1 s a
1056-pixel tile, the largest single cost of coding), which makes a disagreement between machines improbable
but not impossible. Ballé et al. 2019 ("Integer networks for data compression with latent-variable models")
remove the question: compute the hyper-decoder in integers. Here:

* weights are integers (per output channel: ``W_q = round(W / s_w)``, ``|W_q| <= 127``; the first layer's, whose
  inputs are the small integers of ``z_hat``, up to 32767), biases integers, and
  every activation an integer clamped to ``[-A, A]``;
* a convolution is a sum of products of integers whose magnitudes add up to at most ``2**24`` (``A`` of each
  layer is chosen for that from its weights), so it is *exact* in float32 -- in any order of summation, with or
  without fused multiply-add, on any number of threads, CPU or GPU -- and runs as float32 matrix products (MKL
  ``sgemm``: ~8x the native float64 kernels on one core);
* between layers an activation is rescaled (one float32 multiply per value, correctly rounded in IEEE 754 and so
  the same everywhere), put through the leaky ReLU, rounded and clamped; the last layer's accumulators are
  compared with integer thresholds (the scale table's boundaries, precomputed and stored) to give the scale
  indices, and multiplied by a float32 constant per channel to give the means.

So the scale indices (and the symbols) are identical on every machine by construction, not by probability. The
integer weights come from the float weights by post-training quantization (:meth:`IntegerHyperSynthesis.calibrate`,
activation ranges from training or validation images); they are stored with the weights, whose SHA-256 the
``.sarc`` header names, so a file always decodes with the path it was written with (weights without them keep
the float64 path).

A convolution tap is a product of the tap's ``(C_out, C_in)`` weight matrix with the zero-padded input flattened
to ``(C_in, H * W_padded)``: shifting the tap is shifting a contiguous slice of that flat array, so no tap copies
the input, and only matrix products run (no Winograd or FFT algorithm, which would not be exact). A row's last
``W_padded - W`` outputs wrap into the next row and are dropped. A transposed convolution with stride ``s`` is
``s * s`` ordinary convolutions ("phases"), one per output position modulo ``s``, each with the kernel taps that
land on it, interleaved afterwards (the geometry is ``sarcodec.entropy.integer_conv``'s). The PyTorch-free decoder
``sarcodec.codec.lite`` runs the same integer layers as an ONNX graph, exact by the same bound.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarcodec.entropy.integer_conv import transposed_phases

__all__ = ["EXACT_LIMIT", "IntegerHyperSynthesis", "conv2d", "conv_transpose2d", "z_limit_of"]

#: Every partial sum of a convolution stays within this magnitude, so float32 holds it exactly.
EXACT_LIMIT = 1 << 24
#: Integer weights lie in [-WEIGHT_LEVELS, WEIGHT_LEVELS] (per output channel, the largest weight maps to the end);
#: the first layer's in up to [-FIRST_WEIGHT_LEVELS, FIRST_WEIGHT_LEVELS] (int16), as far as the exact bound allows.
WEIGHT_LEVELS = 127
FIRST_WEIGHT_LEVELS = 32767
_NEGATIVE_SLOPE = 0.01  # nn.LeakyReLU's default, as the hyper-decoders use it


def _correlate(xpad: Tensor, taps: list[tuple[int, int, Tensor]], bias: Tensor | None, out_h: int, out_w: int
               ) -> Tensor:
    """``out[:, i, j] = bias + sum(w @ xpad[:, i + dy, j + dx] for dy, dx, w in taps)``, for one image.

    ``xpad`` (C_in, Hp, Wp) with ``out_h + max(dy) < Hp`` (one spare row: the flat slices may run past the last
    needed row by up to ``max(dx)`` elements) and ``out_w + max(dx) <= Wp``; ``w`` (C_out, C_in)."""
    c_in, hp, wp = xpad.shape
    flat = xpad.reshape(c_in, hp * wp)
    c_out = taps[0][2].shape[0]
    out = torch.empty(c_out, out_h * wp, dtype=xpad.dtype, device=xpad.device)
    if bias is None:
        out.zero_()
    else:
        out.copy_(bias.to(xpad.dtype).view(-1, 1).expand_as(out))
    for dy, dx, w in taps:
        start = dy * wp + dx
        out.addmm_(w, flat[:, start : start + out_h * wp])
    return out.view(c_out, out_h, wp)[:, :, :out_w]


def _batch(images: list[Tensor]) -> Tensor:
    """Stack one result per image (no copy for a single image)."""
    return images[0].unsqueeze(0) if len(images) == 1 else torch.stack(images)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=padding)`` for ``x`` (N, C, H, W), as matrix products."""
    _, _, kh, kw = weight.shape
    taps = [(ky, kx, weight[:, :, ky, kx].contiguous()) for ky in range(kh) for kx in range(kw)]
    h_out = x.shape[2] + 2 * padding - kh + 1
    w_out = x.shape[3] + 2 * padding - kw + 1
    xpad = F.pad(x, (padding, padding, padding, padding + 1))  # + the spare row of _correlate
    return _batch([_correlate(img, taps, bias, h_out, w_out) for img in xpad])


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int,
                     output_padding: int) -> Tensor:
    """``F.conv_transpose2d`` (groups 1, dilation 1, square stride and padding) for ``x`` (N, C, H, W), as
    ``stride**2`` ordinary convolutions interleaved (``sarcodec.entropy.integer_conv.transposed_phases``)."""
    n, _, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    h_out, w_out, phases = transposed_phases(h, w, kh, kw, stride, padding, output_padding)
    out = torch.empty(n, c_out, h_out, w_out, dtype=x.dtype, device=x.device)
    for p in phases:
        if not p.taps:  # no kernel tap lands on this phase: the bias alone
            out[:, :, p.rows, p.cols] = bias.to(x.dtype).view(1, -1, 1, 1) if bias is not None else 0.0
            continue
        top, bottom, left, right = p.pad
        xpad = F.pad(x, (left, right, top, bottom))
        taps = [(dy, dx, weight[:, :, ky, kx].t().contiguous()) for dy, dx, ky, kx in p.taps]
        out[:, :, p.rows, p.cols] = _batch([_correlate(img, taps, bias, p.count_y, p.count_x) for img in xpad])
    return out


def _float32_is_exact() -> bool:
    """Whether float32 matrix products on the CPU are plain IEEE float32 here: not when any precision setting
    allows TF32 or bfloat16 (some users enable them), nor when PyTorch cannot say. Otherwise float64 is used,
    which no setting downgrades (the same integers, about half the speed)."""
    if os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT").upper() != "STRICT":
        return False
    try:
        if torch.get_float32_matmul_precision() != "highest":  # raises when legacy and new settings are mixed
            return False
        settings = [getattr(torch.backends, "fp32_precision", "none"),
                    getattr(torch.backends.mkldnn, "fp32_precision", "none"),
                    getattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision", "none")]
    except Exception:  # noqa: BLE001 (any failure to read the settings: take the safe path)
        return False
    return all(value in ("none", "ieee") for value in settings)


def _convs(hyper_synthesis: nn.Sequential) -> list[nn.Conv2d | nn.ConvTranspose2d]:
    """The convolutions of a hyper-decoder made of (transposed) convolutions with leaky ReLUs between them."""
    layers = list(hyper_synthesis)
    convs = layers[0::2]
    for layer in convs:
        if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) or layer.groups != 1 \
                or layer.dilation != (1, 1) or len(set(layer.stride)) != 1 or not isinstance(layer.padding, tuple) \
                or len(set(layer.padding)) != 1 or len(set(getattr(layer, "output_padding", (0,)))) != 1 \
                or layer.padding_mode != "zeros" or layer.bias is None:
            raise ValueError(f"no integer form of the hyper-decoder layer {layer}")
        if isinstance(layer, nn.Conv2d) and layer.stride != (1, 1):
            raise ValueError(f"no integer form of the strided convolution {layer}")
    for layer in layers[1::2]:
        if not isinstance(layer, nn.LeakyReLU) or layer.negative_slope != _NEGATIVE_SLOPE:
            raise ValueError(f"no integer form of the hyper-decoder layer {layer}")
    if len(layers) % 2 != 1:
        raise ValueError("the hyper-decoder must end with a convolution")
    return convs  # type: ignore[return-value]


def _integer_weights(layer: nn.Conv2d | nn.ConvTranspose2d, levels: int) -> tuple[Tensor, Tensor]:
    """``layer``'s weights as integers in ``[-levels, levels]`` per output channel (float64), and each output
    channel's step (float64)."""
    weight = layer.weight.detach().to("cpu", torch.float64)
    out_dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0  # ConvTranspose2d weights are (C_in, C_out, k, k)
    largest = weight.abs().amax(dim=tuple(d for d in range(4) if d != out_dim))
    step = torch.where(largest > 0, largest, torch.ones_like(largest)) / levels  # a dead channel: all its weights 0
    shape = [1, 1, 1, 1]
    shape[out_dim] = -1
    return torch.round(weight / step.view(shape)), step


def _tap_sums(weight: Tensor, layer: nn.Conv2d | nn.ConvTranspose2d) -> Tensor:
    """Per output channel, the largest sum of |weight| over the taps that meet in one output value."""
    if isinstance(layer, nn.ConvTranspose2d):  # (C_in, C_out, k, k); an output takes one phase's taps
        s = layer.stride[0]
        sums = [weight[:, :, ry::s, rx::s].abs().sum(dim=(0, 2, 3)) for ry in range(s) for rx in range(s)]
        return torch.stack(sums).amax(dim=0)
    return weight.abs().sum(dim=(1, 2, 3))


class IntegerHyperSynthesis(nn.Module):
    """The integer form of a hyper-decoder ``nn.Sequential`` of (transposed) convolutions and leaky ReLUs.

    Buffers (all stored with the weights): per convolution ``i`` the integer ``weight{i}`` (int16, the float
    layer's shape) and ``bias{i}`` (int32); per hidden activation the float32 per-channel rescale ``rescale{i}``
    (accumulator of layer ``i`` -> integer input of layer ``i + 1``) and its clamp ``limit{i}``; for the output,
    ``mean_scale`` (float32, accumulator -> mean) and ``thresholds`` (int64 (C, L): a scale accumulator above
    ``thresholds[c, j]`` means a scale above ``scale_table[j]``, i.e. ``softplus(acc * scale_step[c])`` above it;
    ``scale_step`` (float64) is kept for reference, not used); ``z_limit``, the largest |z_hat| the bound was
    computed for (checked on every call). ``forward(z_hat)`` returns the means (float32)
    and scale indices (int64) of the Gaussian conditional."""

    def __init__(self, hyper_synthesis: nn.Sequential, table_size: int) -> None:
        super().__init__()
        # The float layers' shapes and strides (not their weights): a plain list, not submodules or state.
        self._geometry: list[nn.Conv2d | nn.ConvTranspose2d] = _convs(hyper_synthesis)
        for i, layer in enumerate(self._geometry):
            self.register_buffer(f"weight{i}", torch.zeros(layer.weight.shape, dtype=torch.int16))
            self.register_buffer(f"bias{i}", torch.zeros(layer.bias.shape, dtype=torch.int32))  # type: ignore[union-attr]
            if i < len(self._geometry) - 1:
                self.register_buffer(f"rescale{i}", torch.zeros(layer.bias.shape, dtype=torch.float32))  # type: ignore[union-attr]
                self.register_buffer(f"limit{i}", torch.zeros((), dtype=torch.int32))
        half = self._geometry[-1].bias.shape[0] // 2  # type: ignore[union-attr]
        self.register_buffer("mean_scale", torch.zeros(half, dtype=torch.float32))
        self.register_buffer("thresholds", torch.zeros(half, table_size, dtype=torch.int64))
        self.register_buffer("z_limit", torch.zeros((), dtype=torch.int32))  # |z_hat| the exact bound allows
        self.register_buffer("scale_step", torch.zeros(half, dtype=torch.float64))  # what the thresholds encode

    def _buffer(self, name: str) -> Tensor:
        value = getattr(self, name)
        assert isinstance(value, Tensor)
        return value

    @torch.no_grad()
    def calibrate(self, z_samples: Iterable[Tensor], z_limit: int, scale_table: Tensor) -> dict[str, float]:
        """Quantize the float layers this was built from, for hyper-latents within ``[-z_limit, z_limit]``; the
        activation ranges are the largest seen on ``z_samples``. Returns a summary (the clamp of each
        activation)."""
        convs = self._geometry
        maxima = [0.0] * (len(convs) - 1)
        for z in z_samples:  # the float64 network's activations before each later convolution
            x = z.detach().to("cpu", torch.float64)
            for i, layer in enumerate(convs[:-1]):
                x = F.leaky_relu(_float64_layer(layer, x), _NEGATIVE_SLOPE)
                maxima[i] = max(maxima[i], float(x.abs().max()))
        input_step, input_limit = 1.0, float(z_limit)  # z_hat is already integer
        self._buffer("z_limit").fill_(z_limit)
        summary: dict[str, float] = {}
        for i, layer in enumerate(convs):
            # The first layer's inputs (z_hat) have a small known range: its weights get as many levels as the
            # exact bound allows (up to int16); later layers' input ranges are set from their weights instead.
            levels = FIRST_WEIGHT_LEVELS if i == 0 else WEIGHT_LEVELS
            while True:
                w_int, step_w = _integer_weights(layer, levels)
                acc_step = step_w * input_step  # accumulator units of each output channel
                b_int = torch.round(layer.bias.detach().to("cpu", torch.float64) / acc_step)  # type: ignore[union-attr]
                worst = float((_tap_sums(w_int, layer) * input_limit + b_int.abs()).max())
                if worst <= EXACT_LIMIT or levels == 1:
                    break
                levels = max(1, int(levels * 0.9))
            summary[f"weight{i}_levels"] = float(levels)
            if worst > EXACT_LIMIT:
                raise ValueError(f"layer {i}: inputs up to {input_limit:g} cannot be summed exactly in float32")
            self._buffer(f"weight{i}").copy_(w_int.to(torch.int16))
            self._buffer(f"bias{i}").copy_(b_int.to(torch.int32))
            if i < len(convs) - 1:
                # The next layer's clamp A: the largest its weights allow (its integer weights at this precision).
                nxt_sums = _tap_sums(_integer_weights(convs[i + 1], WEIGHT_LEVELS)[0], convs[i + 1])
                limit = int(0.99 * EXACT_LIMIT // float(nxt_sums.max()))  # 1 % left for the next bias
                if limit < 1:
                    raise ValueError(f"layer {i + 1} is too wide to be summed exactly in float32")
                step = max(maxima[i], 1e-12) / limit
                self._buffer(f"rescale{i}").copy_(acc_step / step)
                self._buffer(f"limit{i}").fill_(limit)
                summary[f"activation{i}_limit"] = float(limit)
                summary[f"activation{i}_max"] = maxima[i]
                input_step, input_limit = step, float(limit)
            else:
                half = acc_step.numel() // 2
                self._buffer("mean_scale").copy_(acc_step[:half])
                # softplus(acc * step) > table[j]  <=>  acc > softplus^-1(table[j]) / step  <=>  acc > floor(...)
                table = scale_table.detach().to("cpu", torch.float64)
                inverse = torch.log(torch.expm1(table))  # softplus^-1
                bounds = torch.floor(inverse.view(1, -1) / acc_step[half:].view(-1, 1))
                self._buffer("scale_step").copy_(acc_step[half:])
                # accumulators lie within +-2**24: bounds beyond are all alike (+-(2**24 + 2) is exact in float32)
                self._buffer("thresholds").copy_(bounds.clamp(-EXACT_LIMIT - 2, EXACT_LIMIT + 2).to(torch.int64))
        return summary

    def forward(self, z_hat: Tensor, float64: bool = False) -> tuple[Tensor, Tensor]:
        """Means and scale indices of ``z_hat``. The convolutions' sums are exact in float32 and float64 alike
        (float64 where float32 products may be TF32 or bfloat16, off the CPU, or with ``float64``); everything
        between them is computed in float32 in any case, each step one correctly rounded IEEE operation, so both
        give the same integers."""
        exact32 = not float64 and z_hat.device.type == "cpu" and _float32_is_exact()
        dtype = torch.float32 if exact32 else torch.float64
        if z_hat.numel() and float(z_hat.abs().max()) > float(self._buffer("z_limit")):
            raise ValueError("hyper-latents beyond the range the integer hyper-decoder was calibrated for "
                             "(were the coding tables updated after integerize()?)")
        slope = torch.tensor(_NEGATIVE_SLOPE, dtype=torch.float32)
        x = z_hat.to(dtype)
        last = len(self._geometry) - 1
        acc = x
        for i, layer in enumerate(self._geometry):
            weight, bias = self._buffer(f"weight{i}").to(dtype), self._buffer(f"bias{i}").to(dtype)
            if isinstance(layer, nn.ConvTranspose2d):
                acc = conv_transpose2d(x, weight, bias, layer.stride[0], _padding(layer), layer.output_padding[0])
            else:
                acc = conv2d(x, weight, bias, _padding(layer))
            acc = acc.to(torch.float32)  # exact: integers of magnitude <= 2**24
            if i < last:
                limit = float(self._buffer(f"limit{i}"))
                value = acc.mul_(self._buffer(f"rescale{i}").view(1, -1, 1, 1))
                value = torch.where(value >= 0, value, value * slope)
                x = value.round_().clamp_(-limit, limit).to(dtype)
        mean_acc, scale_acc = acc.chunk(2, dim=1)
        means = mean_acc * self._buffer("mean_scale").view(1, -1, 1, 1)
        n, c, h, w = scale_acc.shape
        thresholds = self._buffer("thresholds").to(torch.float32)  # even integers up to 2**24 + 2: exact
        values = scale_acc.permute(1, 0, 2, 3).reshape(c, -1).contiguous()
        indices = torch.searchsorted(thresholds, values).clamp_max_(thresholds.shape[1] - 1)
        return means, indices.view(c, n, h, w).permute(1, 0, 2, 3)


def _float64_layer(layer: nn.Conv2d | nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """``layer`` applied in float64 on the CPU (calibration)."""
    weight = layer.weight.detach().to("cpu", torch.float64)
    bias = layer.bias.detach().to("cpu", torch.float64) if layer.bias is not None else None
    if isinstance(layer, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, bias, stride=layer.stride, padding=_padding(layer),
                                  output_padding=layer.output_padding)
    return F.conv2d(x, weight, bias, stride=layer.stride, padding=_padding(layer))


def _padding(layer: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """The (square, numeric) padding of a layer that :func:`_convs` accepted."""
    padding = layer.padding
    assert isinstance(padding, tuple)
    return int(padding[0])


def z_limit_of(offsets: Tensor, lengths: Tensor) -> int:
    """The largest |value| a factorized density's tables can code (its support)."""
    return int(max(offsets.abs().max(), (offsets + lengths - 1).abs().max()))

