"""Scene ids from file names, and the seeded train/val/test split by scene.

Patches of one scene (the same ground: one Sentinel-1 product, or all dates of one OPERA burst) must never
land in two splits, or validation leaks into training (the earlier study's mistake).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sarcodec.errors import BadInputError

SPLITS: tuple[str, str, str] = ("train", "val", "test")

# Tried on the file name first, then on each parent directory name upwards (e.g. SSL4EO's
# <product>/VV.tif); the first match wins; no match anywhere -> the path itself (minus suffix) is the scene.
DEFAULT_SCENE_PATTERNS: tuple[str, ...] = (
    # OPERA RTC-S1 burst id, e.g. OPERA_L2_RTC-S1_T137-292322-IW2_20241221T... -> T137-292322-IW2
    r"(?P<scene>T\d{3}-\d{6}-IW\d)",
    # Sentinel-1 product: mission_mode_type_class_start, e.g. S1A_IW_GRDH_1SDV_20150823T221233
    r"(?P<scene>S1[A-D]_[A-Z0-9]{2}_[A-Z0-9_]{4}_[0-9A-Z]{4}_\d{8}T\d{6})",
)


def compile_scene_patterns(patterns: Sequence[str] | None) -> list[re.Pattern[str]]:
    """Compile scene-id regexes; each must have a named group ``scene`` or at least one group."""
    compiled = []
    for pattern in patterns if patterns else DEFAULT_SCENE_PATTERNS:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise BadInputError(f"invalid scene regex {pattern!r}: {exc}") from None
        if "scene" not in rx.groupindex and rx.groups == 0:
            raise BadInputError(f"scene regex {pattern!r} needs a group, e.g. (?P<scene>...)")
        compiled.append(rx)
    return compiled


def scene_id(path: str | Path, patterns: Sequence[re.Pattern[str]]) -> str:
    """The scene a file belongs to: the first pattern matching its name, else a parent directory's name,
    else the path without its suffix (every such file is then a scene of its own)."""
    p = Path(path)
    for part in reversed(p.parts):
        for rx in patterns:
            m = rx.search(part)
            if m:
                scene = m.group("scene") if "scene" in rx.groupindex else m.group(1)
                if not scene:  # '(?P<scene>x*)' matches everything as '': one scene, empty val and test splits
                    raise BadInputError(f"scene regex {rx.pattern!r} gives {part!r} an empty scene id")
                return str(scene)
    return str(p.with_suffix(""))


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(not (math.isfinite(r) and r >= 0) for r in ratios) or sum(ratios) <= 0:
        raise BadInputError(f"split ratios must be three non-negative numbers (train val test), got {list(ratios)}")
    total = float(sum(ratios))
    return (ratios[0] / total, ratios[1] / total, ratios[2] / total)


def split_scenes(scenes: Iterable[str], ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[str]]:
    """Assign each distinct scene to one split, seeded and independent of input order.

    Counts are the ratios times the number of scenes, rounded, with every split whose ratio is > 0
    getting at least one scene when there are enough scenes; the remainder goes to train.
    """
    r = check_ratios(ratios)
    unique = sorted(set(scenes))
    n = len(unique)
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [unique[i] for i in order]
    n_val = int(round(r[1] * n))
    n_test = int(round(r[2] * n))
    if n >= 3:
        n_val = max(n_val, 1 if r[1] > 0 else 0)
        n_test = max(n_test, 1 if r[2] > 0 else 0)
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    if r[0] > 0 and n_val + n_test == n and n > n_val > 0:
        n_val -= 1  # keep at least one training scene when training is asked for
    n_train = n - n_val - n_test
    split = {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }
    return split
