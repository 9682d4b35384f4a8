"""The learning rate is a pure function of the step (and the plateau tracker's saved scale)."""

from __future__ import annotations

import math

import pytest

from sarcodec.train import LRSchedule, PlateauTracker


def test_linear_warmup_reaches_base_lr() -> None:
    s = LRSchedule(base_lr=1e-3, warmup_steps=4, total_steps=20, kind="cosine", min_lr=1e-5)
    assert [s(k) for k in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert s(4) == pytest.approx(1e-3)  # the cosine starts at base_lr


def test_cosine_decays_to_min_lr_and_holds() -> None:
    s = LRSchedule(base_lr=1e-3, warmup_steps=0, total_steps=10, kind="cosine", min_lr=1e-5)
    assert s(0) == pytest.approx(1e-3)
    assert s(5) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert s(10) == pytest.approx(1e-5) and s(100) == pytest.approx(1e-5)
    lrs = [s(k) for k in range(11)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_constant_and_plateau() -> None:
    assert LRSchedule(1e-3, 2, 10, "constant")(7) == 1e-3
    plateau = LRSchedule(1e-3, 2, 10, "plateau", min_lr=1e-4)
    assert plateau(7, 0.5) == pytest.approx(5e-4)
    assert plateau(7, 1e-3) == pytest.approx(1e-4)  # floored at min_lr
    assert plateau(0, 0.5) == pytest.approx(5e-4)  # warmup ignores the plateau scale


def test_pure_function_of_step() -> None:
    # The value at a step must not depend on which steps were asked for before (no hidden state): a schedule that
    # advanced an internal counter on each call would fail the shuffled and repeated queries below.
    steps = [0, 17, 3, 49, 17, 17, 60, 5, 4]
    fresh = [LRSchedule(3e-4, 5, 50, "cosine", 1e-6)(k) for k in steps]  # each asked once, of a new schedule
    shared = LRSchedule(3e-4, 5, 50, "cosine", 1e-6)
    assert [shared(k) for k in steps] == fresh
    assert [shared(k) for k in reversed(steps)] == list(reversed(fresh))
    assert fresh[1] == fresh[4] == fresh[5] != fresh[2]


def test_plateau_tracker_reduces_after_patience_and_round_trips() -> None:
    tracker = PlateauTracker(factor=0.5, patience=2, threshold=0.0)
    reduced = [tracker.step(v) for v in (1.0, 0.9, 0.95, 0.91, 0.92, 0.93)]
    # improvement at 1.0 and 0.9; three bad epochs (> patience 2) -> halve; count restarts
    assert reduced == [False, False, False, False, True, False]
    assert tracker.scale == 0.5 and tracker.best == 0.9
    clone = PlateauTracker(0.5, 2)
    clone.load_state_dict(tracker.state_dict())
    assert clone.state_dict() == tracker.state_dict()
    assert math.isinf(PlateauTracker().best)
