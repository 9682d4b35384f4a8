"""The exact integer hyper-decoder (sarcodec.models.codecs.integer): matrix-product convolutions, the exactness
bound, agreement of the float32 and float64 computations, and the codec built on it."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sarcodec.codec.registry import DEFAULT_CODEC, load_codec
from sarcodec.evaluate import load_reference
from sarcodec.models.codecs import create_codec
from sarcodec.models.codecs.integer import EXACT_LIMIT, conv2d, conv_transpose2d, z_limit_of
from sarcodec.train.objectives import save_codec_file

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "opera"


@pytest.mark.parametrize("h, w, k, stride, padding", [
    (h, w, k, s, p) for h, w, k, s, p in itertools.product([1, 4, 7], [1, 6], [1, 3, 5], [1, 2, 3], [0, 1, 2])
])
def test_matrix_product_convolutions_match_torch(h: int, w: int, k: int, stride: int, padding: int) -> None:
    gen = torch.Generator().manual_seed(h * 1000 + w * 100 + k * 10 + stride + padding)
    x = torch.randint(-50, 51, (2, 3, h, w), generator=gen).double()
    bias = torch.randint(-9, 10, (4,), generator=gen).double()
    for output_padding in range(stride):
        if (h - 1) * stride - 2 * padding + k + output_padding <= 0 or (w - 1) * stride - 2 * padding + k + output_padding <= 0:
            continue
        weight = torch.randint(-127, 128, (3, 4, k, k), generator=gen).double()
        try:
            expected = F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding, output_padding=output_padding)
        except RuntimeError:  # output_padding torch does not allow for this geometry
            continue
        assert torch.equal(conv_transpose2d(x, weight, bias, stride, padding, output_padding), expected)
        assert torch.equal(conv_transpose2d(x.float(), weight.float(), None, stride, padding, output_padding),
                           F.conv_transpose2d(x, weight, None, stride=stride, padding=padding,
                                              output_padding=output_padding).float())
    if h + 2 * padding >= k and w + 2 * padding >= k:
        weight = torch.randint(-127, 128, (4, 3, k, k), generator=gen).double()
        assert torch.equal(conv2d(x, weight, bias, padding), F.conv2d(x, weight, bias, padding=padding))


def test_convolutions_do_not_touch_their_arguments() -> None:
    x, weight, bias = torch.ones(1, 2, 1, 1), torch.ones(3, 2, 1, 1), torch.arange(3.0)
    conv2d(x, weight, bias, 0)
    conv_transpose2d(x, weight.transpose(0, 1).contiguous(), bias, 2, 0, 1)
    assert torch.equal(bias, torch.arange(3.0)) and torch.equal(x, torch.ones(1, 2, 1, 1))


def _default_integer_hyper() -> tuple[nn.Module, nn.Module, int]:
    model = load_codec(DEFAULT_CODEC).model
    assert model.integer_hyper is not None, "the default weights carry the integer hyper-decoder"
    return model, model.integer_hyper, z_limit_of(model.hyper_density.table_offsets, model.hyper_density.table_lengths)


def test_every_sum_of_the_shipped_integer_hyper_decoder_is_exact_in_float32() -> None:
    # Brute force, independent of the calibration's own bookkeeping: |W| applied to inputs all at the limit, + |b|.
    _, integer, z_limit = _default_integer_hyper()
    assert int(integer.z_limit) == z_limit
    limit = float(z_limit)
    for i, layer in enumerate(integer._geometry):
        weight, bias = getattr(integer, f"weight{i}").double().abs(), getattr(integer, f"bias{i}").double().abs()
        full = torch.full((1, weight.shape[0] if isinstance(layer, nn.ConvTranspose2d) else weight.shape[1], 6, 6),
                          limit, dtype=torch.float64)
        if isinstance(layer, nn.ConvTranspose2d):
            worst = F.conv_transpose2d(full, weight, bias, stride=layer.stride, padding=layer.padding,
                                       output_padding=layer.output_padding)
        else:
            worst = F.conv2d(full, weight, bias, padding=layer.padding)
        assert float(worst.max()) <= EXACT_LIMIT, f"layer {i}: {float(worst.max()):.0f}"
        assert float(worst.max()) > EXACT_LIMIT / 2  # the clamp is not needlessly coarse
        if i < len(integer._geometry) - 1:
            limit = float(getattr(integer, f"limit{i}"))


def _exact(integer: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer hyper-decoder computed in float64 (whatever the float32 settings)."""
    return integer(z, float64=True)  # type: ignore[no-any-return]


def test_float32_and_float64_give_the_same_integers_even_at_the_extremes() -> None:
    _, integer, z_limit = _default_integer_hyper()
    gen = torch.Generator().manual_seed(5)
    z = torch.randint(-z_limit, z_limit + 1, (1, 32, 9, 11), generator=gen).float()
    extreme = torch.where(torch.rand(z.shape, generator=gen) < 0.5, -z_limit, z_limit).float()
    for sample in (z, extreme, torch.zeros_like(z)):
        means32, indices32 = integer(sample)
        means64, indices64 = _exact(integer, sample)
        assert torch.equal(means32, means64) and torch.equal(indices32, indices64)
        assert means32.dtype == torch.float32 and indices32.dtype == torch.int64
    with pytest.raises(ValueError, match="beyond the range"):
        integer(torch.full((1, 32, 2, 2), float(z_limit + 1)))


@pytest.mark.parametrize("setting", ["legacy_medium", "mkldnn_matmul_bf16", "cuda_tf32_mixed", "env_bf16"])
def test_reduced_precision_settings_neither_crash_nor_change_the_integers(setting: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, integer, z_limit = _default_integer_hyper()
    z = torch.randint(-z_limit, z_limit + 1, (1, 32, 5, 7), generator=torch.Generator().manual_seed(1)).float()
    expected = _exact(integer, z)
    backends = torch.backends
    saved = (torch.get_float32_matmul_precision(), backends.mkldnn.matmul.fp32_precision,
             backends.cuda.matmul.fp32_precision)
    try:
        if setting == "legacy_medium":
            torch.set_float32_matmul_precision("medium")
        elif setting == "mkldnn_matmul_bf16":
            backends.mkldnn.matmul.fp32_precision = "bf16"
        elif setting == "cuda_tf32_mixed":  # new-style setting: get_float32_matmul_precision() then raises
            backends.cuda.matmul.fp32_precision = "tf32"
        else:
            monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
        from sarcodec.models.codecs.integer import _float32_is_exact

        assert not _float32_is_exact()
        got = integer(z)
    finally:
        backends.cuda.matmul.fp32_precision = saved[2]
        backends.mkldnn.matmul.fp32_precision = saved[1]
        torch.set_float32_matmul_precision(saved[0])
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_thresholds_pick_the_index_the_float_path_would_pick() -> None:
    model, integer, _ = _default_integer_hyper()
    gen = torch.Generator().manual_seed(3)
    acc = torch.randint(-EXACT_LIMIT, EXACT_LIMIT + 1, (integer.thresholds.shape[0], 20_000), generator=gen)
    expected = model.conditional.scale_indices(F.softplus(acc.double() * integer.scale_step.view(-1, 1)))
    got = torch.searchsorted(integer.thresholds.float(), acc.float()).clamp_max(integer.thresholds.shape[1] - 1)
    assert torch.equal(got, expected)
    assert len(expected.unique()) > 10  # the draw covers many table entries


def test_integer_path_stays_close_to_the_float_network() -> None:
    model, integer, _ = _default_integer_hyper()
    x = torch.from_numpy(load_reference(next(iter(sorted(SAMPLE.glob("*.tif"))))).x)[None, None].float()
    y = model.analyze(x).y
    float64 = copy.deepcopy(model.hyper_synthesis).double()
    changed = total = 0
    for level in (1, 4, 8):
        gain, _ = model.gains(torch.tensor([float(level)]))
        with torch.no_grad():
            z_hat = model.hyper_density.coded_values(model.hyper_analysis(y * gain))
            means, scales = float64(z_hat.double()).chunk(2, dim=1)
        reference = model.conditional.scale_indices(F.softplus(scales))
        got_means, got = integer(z_hat)
        assert int((got - reference).abs().max()) <= 1  # at most the neighbouring table scale
        changed, total = changed + int((got != reference).sum()), total + got.numel()
        assert float((got_means - means.float()).abs().max()) < 0.1  # quantization steps are 1
    assert changed / total < 0.05


def test_an_integerized_codec_decodes_what_it_encoded_and_survives_its_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_codec("hyperprior", channels=8, latent_channels=6, hyper_channels=8, hyper_latent_channels=4,
                         lambdas=(10.0, 100.0)).eval()
    model.update_tables()
    summary = model.integerize([torch.rand(1, 1, 64, 64) for _ in range(3)])
    assert summary["activation0_limit"] > 0 and model.integer_hyper is not None
    x = torch.rand(1, 1, 37, 50)
    payload, reconstruction = model.encode_tile(x, 1.5)
    decoded = model.decompress_tile(payload, 37, 50, 1.5)
    assert reconstruction is not None and torch.equal(decoded, reconstruction)
    metadata = {"format": "sarcodec-codec", "version": "1", "codec": "hyperprior", "config": json.dumps(model.config)}
    save_codec_file(model, tmp_path / "tiny.safetensors", metadata)
    loaded = load_codec(tmp_path / "tiny.safetensors").model
    assert loaded.integer_hyper is not None
    assert torch.equal(loaded.decompress_tile(payload, 37, 50, 1.5), decoded)


def test_earlier_defaults_keep_the_float64_path() -> None:
    for name in ("hyperprior_v1", "hyperprior_v2"):
        assert load_codec(name).model.integer_hyper is None


def test_a_dead_channel_does_not_stop_calibration() -> None:
    torch.manual_seed(1)
    model = create_codec("hyperprior", channels=8, latent_channels=6, hyper_channels=8, hyper_latent_channels=4,
                         lambdas=(10.0, 100.0)).eval()
    with torch.no_grad():
        model.hyper_synthesis[2].weight[:, 3].zero_()  # an output channel of a transposed convolution
        model.hyper_synthesis[2].bias[3] = 0.7
    model.update_tables()
    model.integerize([torch.rand(1, 1, 32, 32)])
    x = torch.rand(1, 1, 32, 32)
    payload, reconstruction = model.encode_tile(x, 1.0)
    assert torch.equal(model.decompress_tile(payload, 32, 32, 1.0), reconstruction)
