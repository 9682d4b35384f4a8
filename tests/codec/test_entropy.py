"""Entropy models and their coding: integer tables, exact round trips, rates that match the likelihoods."""

from __future__ import annotations

import math

import constriction
import numpy as np
import pytest
import torch

from sarcodec.entropy.models import FactorizedDensity, GaussianConditional
from sarcodec.entropy.tables import (
    TABLE_PRECISION,
    _group_order,
    decode_grouped,
    decode_values,
    encode_grouped,
    quantize_pmf,
)
from sarcodec.errors import CorruptFileError


def test_quantize_pmf_sums_exactly_and_keeps_every_symbol() -> None:
    counts = quantize_pmf(np.array([0.5, 0.25, 0.25 - 1e-12, 1e-12, 0.0]))
    assert counts.sum() == 1 << TABLE_PRECISION
    assert counts.min() >= 1
    assert counts[0] == pytest.approx(counts[1] * 2, rel=1e-4)


def test_grouped_coding_round_trip() -> None:
    rng = np.random.default_rng(0)
    tables = [quantize_pmf(rng.random(n)) for n in (3, 17, 200)]
    groups = rng.integers(0, 3, 5000)
    symbols = np.array([rng.integers(0, len(tables[g])) for g in groups])
    coder = constriction.stream.stack.AnsCoder()
    encode_grouped(coder, symbols, groups, tables)
    words = coder.get_compressed()
    decoded = decode_grouped(constriction.stream.stack.AnsCoder(words), groups, tables)
    np.testing.assert_array_equal(decoded, symbols)


@pytest.mark.parametrize("groups", [
    np.random.default_rng(2).integers(0, 64, 10_000),  # table indices: uint8 keys
    np.random.default_rng(4).integers(0, 29, 3_244_800),  # a 1040^2 tile's latents
    np.random.default_rng(5).integers(0, 1 << 11, 1 << 16),  # uint16 keys
    np.array([255, 0, 255, 7, 0]),  # the last uint8 group
    np.array([256, 0, 256, 7, 0]),
    np.array([70_000, 3, 3, 70_000, 5]),  # beyond 16 bits: the generic path
    np.array([-2, 4, -2, 0, 65_535, 4]),  # negative: the generic path too
    np.array([65_535, 0, 65_535]),  # the last uint16 group
    np.array([65_536, 0, 65_536, 7]),  # the first beyond: the generic path
    np.array([5]),
    np.array([], dtype=np.int64),
])
def test_group_order_is_a_stable_sort_by_group(groups: np.ndarray) -> None:
    order, starts, present = _group_order(groups)
    np.testing.assert_array_equal(order, np.argsort(groups, kind="stable"))
    values, counts = np.unique(groups, return_counts=True)
    np.testing.assert_array_equal(present, values)
    np.testing.assert_array_equal(np.diff(starts), counts)
    assert starts[0] == 0 and starts[-1] == groups.size


def test_decode_grouped_gives_values_less_each_tables_offset() -> None:
    """What the latents' decoder asks for: symbol - offsets[table] (a Gaussian's symbol r is the value 0), as float32,
    for one-symbol tables too (their symbols are 0 and not coded)."""
    rng = np.random.default_rng(3)
    tables = [quantize_pmf(np.ones(1)), quantize_pmf(rng.random(5)), quantize_pmf(rng.random(41))]
    offsets = np.array([0, 2, 20])
    groups = rng.integers(0, 3, 4000)
    symbols = np.select([groups == 1, groups == 2], [rng.integers(0, 5, groups.size), rng.integers(0, 41, groups.size)])
    coder = constriction.stream.stack.AnsCoder()
    encode_grouped(coder, symbols, groups, tables)
    words = coder.get_compressed()
    values = decode_grouped(constriction.stream.stack.AnsCoder(words), groups, tables, offsets, np.float32)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, symbols - offsets[groups])
    shifted = decode_grouped(constriction.stream.stack.AnsCoder(words), groups, tables, offsets + 3, np.float32)
    np.testing.assert_array_equal(shifted, symbols - offsets[groups] - 3)  # the one-symbol table's -3 too


@pytest.mark.parametrize("fill", ["scalar", "per position"])
def test_decode_values_fills_the_positions_not_coded(fill: str) -> None:
    """Only the ``coded`` positions are popped (in their order); the others get ``fill``, the coded ones their
    symbol less the table's offset (negative offsets add, as the factorized density's lowest values)."""
    rng = np.random.default_rng(4)
    tables = [quantize_pmf(rng.random(n)) for n in (6, 9)]
    offsets = np.array([-4, 3])
    groups = rng.integers(0, 2, 3000)
    coded = rng.random(groups.size) < 0.6
    symbols = np.where(groups == 0, rng.integers(0, 6, groups.size), rng.integers(0, 9, groups.size))
    coder = constriction.stream.stack.AnsCoder()
    encode_grouped(coder, symbols[coded], groups[coded], tables)
    words = coder.get_compressed()
    flagged = constriction.stream.stack.AnsCoder()  # encode_grouped's own ``coded``: the same words
    encode_grouped(flagged, symbols, groups, tables, coded)
    np.testing.assert_array_equal(flagged.get_compressed(), words)
    filler = 7.0 if fill == "scalar" else np.arange(groups.size, dtype=np.float64)
    values = decode_values(constriction.stream.stack.AnsCoder(words), groups, tables, offsets, coded, filler)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values[coded], (symbols - offsets[groups])[coded])
    np.testing.assert_array_equal(values[~coded], np.broadcast_to(filler, groups.shape)[~coded])
    everything = constriction.stream.stack.AnsCoder()
    encode_grouped(everything, symbols, groups, tables)
    np.testing.assert_array_equal(
        decode_values(constriction.stream.stack.AnsCoder(everything.get_compressed()), groups, tables, offsets),
        symbols - offsets[groups])


def test_one_symbol_tables_cost_nothing_and_round_trip() -> None:
    """A learned density can collapse onto one value (an unused hyper-latent channel of a GPU-trained codec did);
    constriction refuses a one-entry distribution, so such a group is not coded at all."""
    rng = np.random.default_rng(1)
    tables = [quantize_pmf(np.ones(1)), quantize_pmf(rng.random(9))]
    groups = np.tile([0, 1], 500)
    symbols = np.where(groups == 0, 0, rng.integers(0, 9, groups.size))
    coder = constriction.stream.stack.AnsCoder()
    encode_grouped(coder, symbols, groups, tables)
    words = coder.get_compressed()
    only = constriction.stream.stack.AnsCoder()
    encode_grouped(only, symbols[groups == 1], groups[groups == 1], tables)
    np.testing.assert_array_equal(words, only.get_compressed())  # the one-symbol group added no bits
    decoded = decode_grouped(constriction.stream.stack.AnsCoder(words), groups, tables)
    np.testing.assert_array_equal(decoded, symbols)
    with pytest.raises(ValueError, match="one-symbol table 0"):
        encode_grouped(constriction.stream.stack.AnsCoder(), np.array([1]), np.array([0]), tables)


def test_decode_with_unknown_table_is_corrupt_file_error() -> None:
    coder = constriction.stream.stack.AnsCoder(np.array([123456789], dtype=np.uint32))
    with pytest.raises(CorruptFileError):
        decode_grouped(coder, np.array([0, 5]), [quantize_pmf(np.ones(4))])


def test_factorized_density_is_a_distribution_and_codes_at_its_entropy() -> None:
    torch.manual_seed(0)
    density = FactorizedDensity(2).eval()
    support = torch.arange(-400, 401, dtype=torch.float32).view(1, 1, -1, 1).expand(1, 2, -1, 1)
    mass = density.likelihood(support.contiguous()).sum(dim=2)
    torch.testing.assert_close(mass, torch.ones_like(mass), atol=1e-3, rtol=0)
    with torch.no_grad():  # tails wide enough to hold the density's mass (training learns them with aux_loss)
        density.quantiles.copy_(torch.tensor([-300.0, 0.0, 300.0]).repeat(2, 1, 1))
    density.update_tables()
    y = torch.randn(1, 2, 32, 32) * 3
    coder = constriction.stream.stack.AnsCoder()
    coded = density.encode(coder, y)
    bits = coder.num_bits()
    decoded = density.decode(constriction.stream.stack.AnsCoder(coder.get_compressed()), (32, 32))
    torch.testing.assert_close(decoded, coded)
    with torch.no_grad():
        ideal = float(-torch.log2(density.likelihood(coded)).sum())
    assert bits == pytest.approx(ideal, rel=0.02, abs=64)


def test_gaussian_conditional_round_trip_and_rate() -> None:
    gc = GaussianConditional()
    gc.update_tables()
    torch.manual_seed(1)
    scales = torch.exp(torch.rand(1, 4, 16, 16) * 4 - 1)
    means = torch.randn(1, 4, 16, 16)
    y = means + scales * torch.randn_like(scales)
    indices = gc.scale_indices(scales)
    coder = constriction.stream.stack.AnsCoder()
    symbols = gc.encode(coder, y, indices, means)
    decoded = gc.decode(constriction.stream.stack.AnsCoder(coder.get_compressed()), indices)
    torch.testing.assert_close(decoded, symbols)
    # Coding with the snapped table scale costs close to the ideal -log2 likelihood.
    table_scales = gc.scale_table[indices]
    ideal = float(-torch.log2(gc.likelihood(symbols, table_scales)).sum())
    assert coder.num_bits() == pytest.approx(ideal, rel=0.03, abs=64)


def test_scale_indices_pick_the_next_table_scale() -> None:
    gc = GaussianConditional()
    table = gc.scale_table
    idx = gc.scale_indices(torch.stack([table[0] / 2, table[10], (table[10] + table[11]) / 2, table[-1] * 3]))
    assert idx.tolist() == [0, 10, 11, len(table) - 1]
    assert math.isclose(float(table[0]), 0.11, rel_tol=1e-6)
