"""Bjøntegaard deltas: :func:`bd_metrics` per image (PCHIP, over exactly the anchor's ``--bd-range``), and
:func:`group_bd`, the group figure (mean of per-image values, median, wins, Wilcoxon signed-rank p across images)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sarcodec.bench.sweep import BenchRow


def _curve(points: Sequence[tuple[float, float]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(log rates, PSNRs) sorted by rate, keeping only points that raise the PSNR (a monotone RD curve)."""
    pts = sorted((r, p) for r, p in points if r > 0 and math.isfinite(p))
    keep: list[tuple[float, float]] = []
    for r, p in pts:
        if not keep or p > keep[-1][1]:
            keep.append((r, p))
    arr = np.asarray(keep, dtype=np.float64).reshape(-1, 2)
    return np.log(arr[:, 0]), arr[:, 1]


def bd_metrics(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]],
               bd_range: tuple[float, float] = (0.25, 2.0)) -> tuple[float, float]:
    """(BD-rate in %, BD-PSNR in dB) of ``test`` against ``anchor``, both lists of (bpp, PSNR).

    Bjøntegaard deltas with PCHIP interpolation of each curve (log-rate vs PSNR), integrated over exactly the rates
    ``bd_range`` of the anchor: BD-PSNR over log-rates in ``bd_range`` (intersected with both curves' ranges),
    BD-rate over the PSNRs the anchor reaches in ``bd_range`` (intersected with the test curve's PSNRs).
    NaN when the curves do not overlap there.
    """
    from scipy.interpolate import PchipInterpolator

    la, pa = _curve(anchor)
    lt, pt = _curve(test)
    if len(la) < 2 or len(lt) < 2:
        return math.nan, math.nan
    lo, hi = math.log(bd_range[0]), math.log(bd_range[1])
    psnr_of_a, psnr_of_t = PchipInterpolator(la, pa), PchipInterpolator(lt, pt)
    r0, r1 = max(lo, la[0], lt[0]), min(hi, la[-1], lt[-1])
    bd_psnr = math.nan
    if r1 > r0:
        grid = np.linspace(r0, r1, 2001)
        bd_psnr = float(np.mean(psnr_of_t(grid) - psnr_of_a(grid)))
    a0, a1 = float(psnr_of_a(max(lo, la[0]))), float(psnr_of_a(min(hi, la[-1])))
    q0, q1 = max(a0, pt[0]), min(a1, pt[-1])
    bd_rate = math.nan
    if q1 > q0:
        grid = np.linspace(q0, q1, 2001)
        rate_of_a, rate_of_t = PchipInterpolator(pa, la), PchipInterpolator(pt, lt)
        bd_rate = float((math.exp(np.mean(rate_of_t(grid) - rate_of_a(grid))) - 1) * 100)
    return bd_rate, bd_psnr


def group_bd(rows: Sequence[BenchRow], anchor: str, bd_range: tuple[float, float]) -> list[dict[str, Any]]:
    from scipy.stats import wilcoxon

    curves: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        curves[(r.group, r.image, r.codec)].append((r.bpp, r.psnr))
    per: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (group, image, codec), points in curves.items():
        if codec == anchor or (group, image, anchor) not in curves:
            continue
        per[(group, codec)].append(bd_metrics(curves[(group, image, anchor)], points, bd_range))
    table = []
    for (group, codec), values in sorted(per.items()):
        rates = np.array([v[0] for v in values])
        psnrs = np.array([v[1] for v in values])
        ok = np.isfinite(rates)
        p = math.nan
        if ok.sum() >= 2 and np.any(rates[ok] != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = float(wilcoxon(rates[ok]).pvalue)
        table.append({
            "group": group, "codec": codec, "images": int(ok.sum()),
            "bd_rate": float(np.mean(rates[ok])) if ok.any() else math.nan,
            "bd_rate_median": float(np.median(rates[ok])) if ok.any() else math.nan,
            "bd_psnr": float(np.nanmean(psnrs)) if np.isfinite(psnrs).any() else math.nan,
            "wins": f"{int((rates[ok] < 0).sum())}/{int(ok.sum())}",
            "wilcoxon_p": p,
        })
    return table
