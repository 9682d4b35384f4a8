"""Figures of the benchmark: rate-distortion curves of group means and the per-group gallery."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sarcodec.evaluate import ReferenceImage

if TYPE_CHECKING:
    from sarcodec.bench.sweep import BenchRow

FloatImage = npt.NDArray[np.float32]


def mean_curves(rows: Sequence[BenchRow], key: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    acc: dict[tuple[str, str, float], list[BenchRow]] = defaultdict(list)
    for r in rows:
        acc[(r.group, r.codec, r.setting)].append(r)
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (group, codec, _), rs in acc.items():
        values = [getattr(r, key) for r in rs]
        curves[(group, codec)].append((float(np.mean([r.bpp for r in rs])), float(np.nanmean(values))))
    return {k: sorted(v) for k, v in curves.items()}


def plot_rd(rows: Sequence[BenchRow], key: str, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = mean_curves(rows, key)
    groups = sorted({g for g, _ in curves}, key=lambda g: (g != "sentinel1", g))
    codecs = sorted({c for _, c in curves})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for codec in codecs:
            pts = curves.get((group, codec))
            if pts:
                style = "-o" if codec.startswith("sarcodec") else "--s" if codec == "jpeg2000" else ":^"
                ax.plot(*zip(*pts), style, ms=3, lw=1.2, label=codec)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log)")
        ax.set_ylabel(label)
        ax.set_title(group, fontsize=9)
        if key == "enl_ratio":
            ax.axhspan(0.8, 1.25, color="0.9", zorder=0)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_gallery(image: ReferenceImage, recons: dict[str, tuple[float, FloatImage]], path: Path, crop: int = 96) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = image.x.shape
    r0, c0 = max(0, h // 2 - crop // 2), max(0, w // 2 - crop // 2)
    window = (slice(r0, r0 + crop), slice(c0, c0 + crop))
    n = len(recons) + 1
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    lo, hi = image.params.db_lo, image.params.db_hi
    extent = None
    axes[0, 0].imshow(image.x[window] * (hi - lo) + lo, cmap="gray", vmin=lo, vmax=hi, extent=extent)
    axes[0, 0].set_title("original", fontsize=8)
    axes[1, 0].axis("off")
    im = None
    for col, (codec, (bpp, x_hat)) in enumerate(sorted(recons.items()), start=1):
        axes[0, col].imshow(x_hat[window] * (hi - lo) + lo, cmap="gray", vmin=lo, vmax=hi)
        axes[0, col].set_title(f"{codec}\n{bpp:.2f} bpp", fontsize=7)
        im = axes[1, col].imshow((x_hat[window] - image.x[window]) * (hi - lo), cmap="RdBu_r", vmin=-10, vmax=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.7, label="error (dB)")
    fig.suptitle(f"{image.name}: dB, fixed scale [{lo:.1f}, {hi:.1f}] dB; {crop}x{crop} centre crop", fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)
