"""Original-unit metrics (SPEC "Original-unit fidelity") against independent, loop-by-loop computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sarcodec import metrics
from tests.conftest import speckle_intensity


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref = speckle_intensity((60, 70), looks=2, seed=seed).astype(np.float64)
    ref[10, 12] *= 400.0  # point targets
    ref[40, 50] *= 1000.0
    ref[30:33, 5:8] *= 200.0
    valid = np.ones(ref.shape, bool)
    valid[:4, :9] = False
    ref[~valid] = np.nan
    rng = np.random.default_rng(seed + 1)
    recon = np.where(valid, ref * 10 ** (rng.normal(0.1, 1.0, ref.shape) / 10), np.nan)
    return recon, ref, valid


def test_rmse_bias_and_peak_match_direct_formulas() -> None:
    recon, ref, valid = _scene()
    err = 10 * np.log10(recon[valid]) - 10 * np.log10(ref[valid])
    assert metrics.rmse_db(recon, ref, valid) == pytest.approx(math.sqrt(float(np.mean(err**2))))
    assert metrics.bias_db(recon, ref, valid) == pytest.approx(10 * math.log10(recon[valid].sum() / ref[valid].sum()))
    values = sorted(ref[valid].ravel())
    level = np.percentile(values, 99.9)
    bright = [abs(10 * math.log10(recon[i, j] / ref[i, j])) for i in range(ref.shape[0]) for j in range(ref.shape[1])
              if valid[i, j] and ref[i, j] >= level]
    assert metrics.peak_db(recon, ref, valid) == pytest.approx(float(np.median(bright)))


def test_homogeneous_bias_matches_a_loop_implementation() -> None:
    recon, ref, valid = _scene(3)
    h, w = ref.shape
    mean3 = np.zeros_like(ref)
    for i in range(h):
        for j in range(w):
            vals = [ref[a, b] for a in range(i - 1, i + 2) for b in range(j - 1, j + 2)
                    if 0 <= a < h and 0 <= b < w and valid[a, b]]
            mean3[i, j] = sum(vals) / len(vals) if vals else 0.0
    windows = []
    for r in range(0, h - 8, 9):
        for c in range(0, w - 8, 9):
            if valid[r : r + 9, c : c + 9].all():
                block = mean3[r : r + 9, c : c + 9]
                windows.append((block.std() / block.mean(), r, c))
    windows.sort()
    chosen = windows[: max(1, math.ceil(0.1 * len(windows)))]
    sr = sum(recon[r : r + 9, c : c + 9].sum() for _, r, c in chosen)
    so = sum(ref[r : r + 9, c : c + 9].sum() for _, r, c in chosen)
    assert metrics.homogeneous_windows(ref, valid) == [(r, c) for _, r, c in chosen]
    assert metrics.hom_bias_db(recon, ref, valid) == pytest.approx(10 * math.log10(sr / so))


def _cfar_loop(img: np.ndarray, valid: np.ndarray) -> set[tuple[int, int]]:
    h, w = img.shape
    found = set()
    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                continue
            ring = [img[a, b] for a in range(i - 15, i + 16) for b in range(j - 15, j + 16)
                    if 0 <= a < h and 0 <= b < w and valid[a, b] and not (abs(a - i) <= 4 and abs(b - j) <= 4)]
            if ring and img[i, j] > 10 ** 1.2 * (sum(ring) / len(ring)):
                found.add((i, j))
    return found


def test_cfar_detections_match_a_loop_implementation() -> None:
    recon, ref, valid = _scene(5)
    expected = _cfar_loop(ref, valid)
    got = metrics.cfar_detections(ref, valid)
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(got))} == expected
    assert len(expected) >= 3  # the planted targets


def test_cfar_f1_known_cases() -> None:
    ref = np.full((50, 50), 1.0)
    ref[10, 10] = ref[30, 35] = 1000.0
    assert metrics.cfar_f1(ref, ref) == 1.0
    assert metrics.cfar_f1(np.ones_like(ref), np.ones_like(ref)) == 1.0  # nothing to detect in either
    assert metrics.cfar_f1(np.ones_like(ref), ref) == 0.0  # every target lost
    shifted = np.roll(ref, 1, axis=1)
    assert metrics.cfar_f1(shifted, ref) == 1.0  # within the 1-pixel tolerance
    half = ref.copy()
    half[30, 35] = 1.0
    assert metrics.cfar_f1(half, ref) == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_non_positive_reconstructions_count_as_the_darkest_original() -> None:
    ref = np.array([[1.0, 4.0], [2.0, 8.0]])
    recon = np.array([[0.0, 4.0], [np.nan, 8.0]])
    assert metrics.bias_db(recon, ref) == pytest.approx(10 * math.log10((1 + 4 + 1 + 8) / 15))


@pytest.mark.parametrize("window, guard", [(31, 9), (8, 4), (7, 2)])
def test_cfar_detections_with_every_pixel_valid_match_a_loop(window: int, guard: int) -> None:
    """All pixels valid (the counts come from the window's extent, not from a box filter of the mask): the same
    detections as a loop over each ring, for odd and even window sizes (a window of size s reaches s // 2 pixels
    before the centre, as scipy's filters)."""
    ref = speckle_intensity((24, 29), looks=1, seed=3).astype(np.float64)
    ref[3, 4] *= 300.0
    ref[20, 25] *= 500.0
    ref[12, 0] *= 800.0  # at the edge
    h, w = ref.shape

    def span(i: int, size: int, n: int) -> range:
        return range(max(i - size // 2, 0), min(i + size - 1 - size // 2, n - 1) + 1)

    expected = set()
    for i in range(h):
        for j in range(w):
            guard_rows, guard_cols = span(i, guard, h), span(j, guard, w)
            ring = [ref[a, b] for a in span(i, window, h) for b in span(j, window, w)
                    if not (a in guard_rows and b in guard_cols)]
            if ring and ref[i, j] > 10 ** 1.2 * (sum(ring) / len(ring)):
                expected.add((i, j))
    got = metrics.cfar_detections(ref, np.ones(ref.shape, bool), window=window, guard=guard)
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(got))} == expected
    assert len(expected) >= 2


def test_cfar_detections_beside_a_huge_target_match_a_loop() -> None:
    """Running sums across a 1e9 target beside 1e-3 sea (12 dB of contrast against 90): the same detections as a
    loop, including the weak target in the same rows and a pixel 12.01 dB over its ring."""
    ref = np.full((40, 60), 1e-3)
    ref[20, 10] = 1e9
    ref[20, 40] = 1e-3 * 10 ** 1.3  # 13 dB over a sea of 1e-3 (the huge target is outside its window)
    ref[5, 57] = 1e-3 * 10 ** 1.201
    ref[35, 58] = 1e-3 * 10 ** 1.199
    got = metrics.cfar_detections(ref, np.ones(ref.shape, bool))
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(got))} == _cfar_loop(ref, np.ones(ref.shape, bool))
    assert got[20, 10] and got[20, 40] and got[5, 57] and not got[35, 58]


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (24, 29), (40, 8)])
def test_window_counts_equal_a_box_filter_of_ones(shape: tuple[int, int]) -> None:
    """The all-valid CA-CFAR counts window pixels from the window's extent: the same as scipy's box filter of the
    mask, for odd and even sizes."""
    from scipy import ndimage

    for size in range(1, 12):
        ones = np.ones(size)
        box = ndimage.correlate1d(ndimage.correlate1d(np.ones(shape), ones, 0, mode="constant"), ones, 1,
                                  mode="constant")
        np.testing.assert_array_equal(metrics._window_counts(shape, size), box)
