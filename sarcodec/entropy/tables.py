"""Integer probability tables and grouped rANS coding (constriction), without PyTorch: shared by the learned
entropy models (``sarcodec.entropy.models``) and the near-lossless coder (``sarcodec.codec.bounded``)."""

from __future__ import annotations

from typing import Any

import constriction
import numpy as np
from numpy.typing import DTypeLike, NDArray

from sarcodec.errors import CorruptFileError

__all__ = ["TABLE_PRECISION", "decode_grouped", "decode_values", "encode_grouped", "quantize_pmf"]

#: Probability tables are integer counts summing to 2**TABLE_PRECISION (each count >= 1).
TABLE_PRECISION = 20


def quantize_pmf(pmf: NDArray[np.float64], precision: int = TABLE_PRECISION) -> NDArray[np.int64]:
    """Integer counts >= 1 summing exactly to ``2**precision``, close to ``pmf`` (any non-negative vector)."""
    total = 1 << precision
    pmf = np.clip(np.nan_to_num(np.asarray(pmf, dtype=np.float64), nan=0.0), 0.0, None)
    if pmf.size == 0 or pmf.size > total:
        raise ValueError(f"cannot quantize a table of {pmf.size} symbols to {precision} bits")
    if pmf.sum() <= 0:
        pmf = np.ones_like(pmf)
    free = total - pmf.size  # every symbol gets 1, the rest is shared by probability
    counts = 1 + np.floor(pmf / pmf.sum() * free).astype(np.int64)
    counts[int(np.argmax(counts))] += total - int(counts.sum())
    out: NDArray[np.int64] = counts
    return out


def encode_grouped(
    coder: constriction.stream.stack.AnsCoder,
    symbols: NDArray[np.integer[Any]],
    groups: NDArray[np.int64],
    tables: list[NDArray[np.int64]],
    coded: NDArray[np.bool_] | None = None,
) -> None:
    """Push ``symbols`` (already offset into ``[0, len(table))``) onto ``coder``, ``symbols[i]`` with ``tables[groups[i]]``;
    with ``coded`` (one flag per position), only those positions (:func:`decode_values` with the same flags).

    Symbols are coded group by group in increasing group order, in their array order inside a group;
    :func:`decode_grouped` with the same ``groups`` returns them. (The ANS stack is last-in first-out, so the
    groups are pushed in reverse.) A table of one symbol (a learned density that collapsed onto one value) costs
    nothing: its symbols are all 0 and are not pushed.
    """
    if coded is not None:
        symbols, groups = np.asarray(symbols)[coded], groups[coded]
    order, starts, present = _group_order(groups)
    ordered = np.asarray(symbols)[order].astype(np.int32, copy=False)  # one gather; each group a contiguous slice
    for g in reversed(range(len(present))):
        chunk = ordered[starts[g] : starts[g + 1]]
        if len(tables[present[g]]) == 1:
            if np.any(chunk != 0):
                raise ValueError(f"symbols outside the one-symbol table {present[g]}")
            continue
        model = constriction.stream.model.Categorical(tables[present[g]].astype(np.float64), perfect=False)
        coder.encode_reverse(chunk, model)


def _group_order(groups: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """A stable sort of the positions by group (one pass, instead of a boolean mask per group): the order, the
    start of each present group in it (and the end), and the present groups in increasing order.

    Groups are table indices (< 2**16 in practice), sorted as uint8 or uint16 keys, which NumPy argsorts stably by
    radix sort: linear time on every CPU (a tile's 3.2 M latents in 46 ms on one AMD Zen 4 thread, the group counts
    included). Not a comparison sort: sarcodec 0.8.3 sorted packed (group, index) keys with NumPy 2's SIMD sort, 31 ms
    on an Intel core with AVX-512 but 160 ms on the Zen 4 core, whose AVX-512 compress-stores (the SIMD sort's
    partition step) are microcoded (``results/codec/group_order/``)."""
    if groups.size and 0 <= int(groups.min()) and (top := int(groups.max())) < 1 << 16:
        order = np.argsort(groups.astype(np.uint8 if top < 1 << 8 else np.uint16), kind="stable")
        counts = np.bincount(groups)
        present = np.flatnonzero(counts)
        counts = counts[present]
    else:
        order = np.argsort(groups, kind="stable")
        present, counts = np.unique(groups, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return order, starts, present


def decode_grouped(
    coder: constriction.stream.stack.AnsCoder,
    groups: NDArray[np.int64],
    tables: list[NDArray[np.int64]],
    offsets: NDArray[np.int64] | None = None,
    dtype: DTypeLike = np.int64,
) -> NDArray[Any]:
    """Inverse of :func:`encode_grouped`: the symbols, in the order of ``groups``; with ``offsets``, each symbol
    less its table's offset (``symbols[i] - offsets[groups[i]]``), as ``dtype``. The offset is subtracted group by
    group and the values scattered into place once, so a caller that wants values (a Gaussian's symbol r is the
    value 0) need not gather an offset per symbol."""
    ordered = np.empty(groups.shape, dtype=dtype)  # group by group; one scatter into place at the end
    order, starts, present = _group_order(groups)
    for g, table in enumerate(present.tolist()):
        if not 0 <= table < len(tables):
            raise CorruptFileError(f"the bitstream refers to probability table {table}, the model has {len(tables)}")
        chunk = ordered[starts[g] : starts[g + 1]]
        shift = 0 if offsets is None else int(offsets[table])
        if len(tables[table]) == 1:
            chunk[...] = -shift  # a one-symbol table: its symbols are 0 and were not pushed
            continue
        model = constriction.stream.model.Categorical(tables[table].astype(np.float64), perfect=False)
        try:
            decoded = coder.decode(model, len(chunk))
        except Exception as exc:  # constriction raises on exhausted or inconsistent data
            raise CorruptFileError(f"the entropy-coded payload is damaged ({exc})") from None
        np.subtract(decoded, shift, out=chunk, casting="unsafe")
    out = np.empty_like(ordered)
    out[order] = ordered
    return out


def decode_values(
    coder: constriction.stream.stack.AnsCoder,
    groups: NDArray[np.int64],
    tables: list[NDArray[np.int64]],
    offsets: NDArray[np.int64],
    coded: NDArray[np.bool_] | None = None,
    fill: NDArray[Any] | float = 0.0,
) -> NDArray[np.float32]:
    """The float32 values of symbols pushed by :func:`encode_grouped` (each symbol less its table's offset, as
    :func:`decode_grouped`); with ``coded`` (one flag per position of ``groups``), only those positions were pushed
    and the others hold ``fill`` (a scalar, or one value per position). What the entropy models' ``decode`` and the
    PyTorch-free decoder share."""
    if coded is None:
        values: NDArray[np.float32] = decode_grouped(coder, groups, tables, offsets, np.float32)
        return values
    values = np.empty(groups.shape, np.float32)
    values[...] = fill
    values[coded] = decode_grouped(coder, groups[coded], tables, offsets, np.float32)
    return values
