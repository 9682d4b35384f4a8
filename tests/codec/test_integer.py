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
from sarcodec.models.codecs.integer import EXACT_LIMIT, _tap_sums, conv2d, conv_transpose2d, z_limit_of
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
    model, integer, z_limit = _default_integer_hyper()
    limit = float(z_limit)
    for i, layer in enumerate(integer._geometry):
        weight, bias = getattr(integer, f"weight{i}").double(), getattr(integer, f"bias{i}").double()
        assert float((_tap_sums(weight, layer) * limit + bias.abs()).max()) <= EXACT_LIMIT, f"layer {i}"
        if i < len(integer._geometry) - 1:
            limit = float(getattr(integer, f"limit{i}"))


def test_float32_and_float64_give_the_same_integers_even_at_the_extremes() -> None:
    _, integer, z_limit = _default_integer_hyper()
    gen = torch.Generator().manual_seed(5)
    z = torch.randint(-z_limit, z_limit + 1, (1, 32, 9, 11), generator=gen).float()
    extreme = torch.where(torch.rand(z.shape, generator=gen) < 0.5, -z_limit, z_limit).float()
    previous = torch.get_float32_matmul_precision()
    for sample in (z, extreme, torch.zeros_like(z)):
        means32, indices32 = integer(sample)
        torch.set_float32_matmul_precision("medium")  # a user who allows reduced-precision float32 products
        try:
            means64, indices64 = integer(sample)  # ... gets the float64 computation, and the same integers
        finally:
            torch.set_float32_matmul_precision(previous)
        assert torch.equal(means32, means64) and torch.equal(indices32, indices64)
        assert means32.dtype == torch.float32 and indices32.dtype == torch.int64


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
