"""A PNG grid of sample patches per split, to eyeball what ``prepare`` produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sarcodec.data.dataset import PatchDataset
from sarcodec.data.scenes import SPLITS
from sarcodec.errors import OutputError


def save_patch_preview(root: str | Path, png: str | Path, per_split: int = 8, seed: int = 0) -> None:
    """Save ``per_split`` evenly spaced patches of each split (x_norm, fixed grey scale 0..1) to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SPLITS), per_split, figsize=(1.6 * per_split, 1.8 * len(SPLITS)), squeeze=False)
    for row, split in enumerate(SPLITS):
        ds = PatchDataset(root, split)
        picks = np.linspace(0, max(len(ds) - 1, 0), num=min(per_split, len(ds))).astype(int)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(picks):
                sample = ds[int(picks[col])]
                ax.imshow(sample["image"][0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
                ax.set_title(sample["scene"][-18:], fontsize=5)
            if col == 0:
                ax.set_ylabel(f"{split} ({len(ds)})", fontsize=8)
    fig.suptitle("x_norm patches (normalised dB), one row per split", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(png, dpi=110)
    except OSError as exc:
        raise OutputError(f"{png}: cannot write preview ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
