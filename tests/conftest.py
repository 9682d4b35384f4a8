"""Shared fixtures: small, seeded, fake-but-valid SAR rasters (speckled GeoTIFFs and .npy files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

SHARED_SAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sar"


def speckle_intensity(shape: tuple[int, int], looks: int = 1, seed: int = 0, mean_db: float = -12.0) -> np.ndarray:
    """Linear intensity: a smooth random reflectivity field (+-6 dB) times L-look gamma speckle (float32)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.normal(0.0, 3.0, size=(h // 16 + 2, w // 16 + 2))
    field = np.kron(coarse, np.ones((16, 16)))[:h, :w]
    reflectivity = 10 ** ((mean_db + field) / 10)
    return (reflectivity * rng.gamma(looks, 1.0 / looks, size=shape)).astype(np.float32)


def write_geotiff(path: Path, bands: np.ndarray, *, nodata: float | None = None, georef: bool = True, **profile: Any) -> Path:
    """Write (H, W) or (B, H, W) to a GeoTIFF with a UTM CRS and 10 m pixels (or no georeferencing)."""
    import warnings

    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    arr = bands if bands.ndim == 3 else bands[None]
    meta: dict[str, Any] = dict(driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
                                dtype=str(arr.dtype), nodata=nodata)
    if georef:
        meta.update(crs="EPSG:32611", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3800000.0))
    meta.update(profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **meta) as dst:
            dst.write(arr)
    return path


@pytest.fixture
def shared_sar() -> Path:
    """The real SAR data in ../shared (tests using it are marked shared_data and skip, with a reason, without it)."""
    if not SHARED_SAR.is_dir():
        pytest.skip(f"real SAR data not found at {SHARED_SAR}")
    return SHARED_SAR


@pytest.fixture
def scene_dir(tmp_path: Path) -> Path:
    """Six small scenes laid out like the two real layouts: OPERA bursts (dates) and Sentinel-1 chips."""
    root = tmp_path / "scenes"
    opera = root / "opera"
    opera.mkdir(parents=True)
    for b, burst in enumerate(("T137-292322-IW2", "T137-292318-IW1", "T009-019294-IW2")):
        for d, date in enumerate(("20241221T015910Z", "20250102T015910Z")):
            img = speckle_intensity((96, 80), looks=4, seed=10 * b + d)
            img[:5, :7] = np.nan  # OPERA nodata is NaN
            write_geotiff(opera / f"OPERA_L2_RTC-S1_{burst}_{date}_20241221T080422Z_S1A_30_v1.0_VV.tif", img, nodata=float("nan"))
    chips = root / "train"
    chips.mkdir()
    for p, product in enumerate(("S1A_IW_GRDH_1SDV_20150823T221233", "S1B_IW_GRDH_1SDV_20170612T165809",
                                 "S1A_IW_SLC__1SSV_20150217T204257")):
        for c in range(2):
            img = speckle_intensity((70, 70), looks=1, seed=100 + 10 * p + c)
            write_geotiff(chips / f"opensarship__{product}_20150823T221258_007396_00A2CA_54D0__Cargo_x{c}_y1__band0.tif", img, georef=False)
    return root
