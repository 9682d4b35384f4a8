"""Tables and figures for evaluation results (side effects: files only)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, int]]) -> str:
    """A Markdown table; ``columns`` are (key, header, decimals)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k, ""), d) for k, _, d in columns) + " |")
    return "\n".join(lines)


def save_reconstruction_figure(
    x_norm: npt.NDArray[np.float32],
    reconstructions: Mapping[str, npt.NDArray[np.float32]],
    path: str | Path,
    title: str = "",
) -> None:
    """Original / reconstruction / difference panels, x_norm on a fixed 0..1 grey scale, errors on -0.3..0.3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reconstructions)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.4), squeeze=False)
    axes[0, 0].imshow(x_norm, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("original", fontsize=8)
    axes[1, 0].axis("off")
    for col, (name, x_hat) in enumerate(reconstructions.items(), start=1):
        axes[0, col].imshow(x_hat, cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(name, fontsize=8)
        im = axes[1, col].imshow(x_hat - x_norm, cmap="RdBu_r", vmin=-0.3, vmax=0.3)
        axes[1, col].set_title(f"{name} - original", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.7, label="x_norm error")
    fig.suptitle(title or "x_norm (normalised dB)", fontsize=9)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def save_sweep_plot(points: Sequence[Mapping[str, Any]], x_key: str, y_key: str, path: str | Path,
                    xlabel: str, ylabel: str, title: str = "") -> None:
    """A line plot of ``y_key`` against ``x_key`` (e.g. PSNR against latent ratio)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(points, key=lambda p: p[x_key])
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot([p[x_key] for p in pts], [p[y_key] for p in pts], "o-")
    for p in pts:
        ax.annotate(str(p.get("label", "")), (p[x_key], p[y_key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
