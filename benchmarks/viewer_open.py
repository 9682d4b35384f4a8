"""How fast the viewer page of a large scene opens in headless Chromium, against the naive page: one PNG of the
whole full-resolution scene (8-bit grey dB) shown in an <img>, measured in the same run.

The scene is a synthetic SIZE x SIZE multi-look speckle field (the pixels do not matter here, only their number);
the page has the original and one operating point (two perturbed copies standing in for sarcodec and JPEG 2000), as
`sarcodec report` writes it. Prints the time to write the page, its size on disk, the time until the first view is
drawn with all visible tiles (fit to the window) and until a 1:1 view of a corner is drawn, the PNG page's time to
load and decode, and the ratio. Needs chromium and chromedriver (Debian packages) and selenium.

    python benchmarks/viewer_open.py [--size 10000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sarcodec.bench.viewer import ViewImage, ViewPoint, write_page


def _driver():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _wait(driver, script: str, timeout: float = 600.0) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while not driver.execute_script(script):
        if time.perf_counter() - start > timeout:
            raise TimeoutError(script)
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(0)
    intensity = (rng.gamma(4.0, 0.25, size=(n, n)) * 0.05).astype(np.float64)
    valid = np.ones((n, n), dtype=bool)
    row = {"codec": "x", "setting": 1.0, **{k: 0.0 for k in ("bytes", "bpp", "psnr", "ssim", "enl_ratio", "epi",
                                                             "rmse_db", "bias_db", "hom_bias_db", "peak_db",
                                                             "cfar_f1")}}
    point = ViewPoint("q4", intensity * 1.05, intensity * 0.95, [row, row])
    view = ViewImage("synthetic", "other", intensity, valid, -20.0, -5.0, [point])
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        page = Path(tmp) / "page.html"
        t0 = time.perf_counter()
        write_page(page, [view], title="viewer benchmark")
        write_s = time.perf_counter() - t0
        files = list((Path(tmp) / "page_files").rglob("*.js"))
        size_mb = (page.stat().st_size + sum(f.stat().st_size for f in files)) / 1e6
        del point, view
        from PIL import Image

        db = 10 * np.log10(intensity)
        grey = np.clip((db + 20) / 15 * 255, 0, 255).astype(np.uint8)
        del intensity, db
        png = Path(tmp) / "scene.png"
        Image.fromarray(grey).save(png)
        png_mb = png.stat().st_size / 1e6
        (Path(tmp) / "png.html").write_text('<!DOCTYPE html><img id="s" src="scene.png" style="width:100%">')
        driver = _driver()
        try:
            t0 = time.perf_counter()
            driver.get(page.as_uri())
            _wait(driver, "return document.body.dataset.pending === '0' && +document.body.dataset.rendered > 0")
            first_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            driver.execute_script("SARV.set({scale: 1, cx: 9000 * %f, cy: 9000 * %f})" % (n / 10000, n / 10000))
            _wait(driver, "return document.body.dataset.pending === '0'")
            zoom_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            driver.get((Path(tmp) / "png.html").as_uri())
            _wait(driver, "const i = document.getElementById('s'); return i.complete && i.naturalWidth > 0")
            driver.execute_script("return document.getElementById('s').decode()")
            png_s = time.perf_counter() - t0
        finally:
            driver.quit()
    print(f"scene {n} x {n}: page written in {write_s:.1f} s, {len(files)} tiles, {size_mb:.0f} MB on disk "
          f"(3 layers: original, sarcodec, JPEG 2000)")
    print(f"viewer: first view (fit, all visible tiles drawn) {first_s:.2f} s; 1:1 view of a corner {zoom_s:.2f} s")
    print(f"reference, same run: one full-resolution 8-bit PNG of the original alone ({png_mb:.0f} MB) loaded and "
          f"decoded in {png_s:.2f} s")
    print(f"ratio first view / whole PNG: {first_s / png_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
