"""Floats in JSON (headers, params, manifests): JSON has no NaN or infinity, so they are stored as the strings
``"nan"``, ``"inf"`` and ``"-inf"``. A leaf module: every layer may import it."""

from __future__ import annotations

import math

SPECIAL_FLOATS = ("nan", "inf", "-inf")


def float_to_json(value: float | None) -> float | str | None:
    """A float for JSON: finite values and None as they are, NaN and infinities as strings."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def float_from_json(value: float | str | None) -> float | None:
    """Inverse of :func:`float_to_json` (also accepts ints)."""
    return None if value is None else float(value)
