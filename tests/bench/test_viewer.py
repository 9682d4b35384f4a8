"""The HTML viewer: tiles and page contracts without a browser, then the page in a real headless Chromium
(Selenium with the system's chromedriver): it loads without console errors, swipe and zoom change what is shown in
every view, the decoded tiles carry the source's dB, and every number on the page is the one in results.json."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sarcodec.bench.viewer import (TILE, ViewImage, ViewPoint, check_page_output, db_codes, format_value,
                                   hardest_tiles, pyramid_levels, write_page)
from sarcodec.errors import BadInputError, OutputError
from tests.conftest import speckle_intensity, write_geotiff

ROOT = Path(__file__).resolve().parents[2]
OPERA = sorted((ROOT / "samples" / "opera").glob("*.tif"))[0]
DIGITS = {"bytes": 0, "bpp": 3, "psnr": 2, "ssim": 3, "enl_ratio": 2, "epi": 3, "rmse_db": 2, "bias_db": 3,
          "hom_bias_db": 3, "peak_db": 2, "cfar_f1": 2, "bd_rate": 1, "bd_psnr": 2}


def _tile_codes(files: Path, key: str) -> np.ndarray:
    text = (files / f"{key}.js").read_text()
    m = re.fullmatch(r'SARV\.tile\("([^"]+)",(\d+),(\d+),"([A-Za-z0-9+/=]+)"\);\n', text)
    assert m and m.group(1) == key
    w, h = int(m.group(2)), int(m.group(3))
    return np.frombuffer(zlib.decompress(base64.b64decode(m.group(4))), dtype="<u2").reshape(h, w)


def _synthetic_view(shape: tuple[int, int] = (600, 530)) -> ViewImage:
    intensity = speckle_intensity(shape, looks=4, seed=3).astype(np.float64)
    valid = np.ones(shape, dtype=bool)
    valid[:, :17] = False  # a nodata border
    sarc = intensity * 10 ** (np.random.default_rng(1).normal(0, 0.3, shape) / 10)
    row = {"codec": "sarcodec-test", "setting": 4.0, "bytes": 1234, "bpp": 0.5, "psnr": 30.0, "ssim": 0.9,
           "enl_ratio": 1.1, "epi": 0.8, "rmse_db": 0.3, "bias_db": 0.01, "hom_bias_db": math.nan, "peak_db": 0.2,
           "cfar_f1": 0.9}
    return ViewImage("synthetic.tif", "other", intensity, valid, -20.0, -5.0,
                     [ViewPoint("q4", sarc, intensity * 1.1, [row, {**row, "codec": "jpeg2000-fullrange"}])])


def test_db_codes_carry_db_to_a_hundredth() -> None:
    intensity = np.array([[1e-4, 0.05, 1.0, 3e3], [0.0, -1.0, np.nan, 1e-25]])
    valid = np.array([[True, True, True, True], [True, True, True, False]])
    codes = db_codes(intensity, valid)
    db = codes[0].astype(float) / 100 - 200
    assert np.abs(db - 10 * np.log10(intensity[0])).max() <= 0.005
    assert codes[1, 0] == 1 and codes[1, 1] == 1  # zero and negative intensity: the lowest code, still valid
    assert codes[1, 2] == 0  # NaN on a valid pixel has no dB to show: shown as invalid
    assert codes[1, 3] == 0


def test_pyramid_tiles_cover_the_image_and_average_intensity(tmp_path: Path) -> None:
    view = _synthetic_view()
    write_page(tmp_path / "p.html", [view], title="t")
    files = tmp_path / "p_files"
    levels = pyramid_levels(600, 530)
    assert levels == [(600, 530), (300, 265), (150, 133)]
    for z, (h, w) in enumerate(levels):
        n = len(list((files / "i0" / "orig" / str(z)).glob("*.js")))
        assert n == math.ceil(h / TILE) * math.ceil(w / TILE)
    full = _tile_codes(files, "i0/orig/0/1_1")  # rows 256..511, cols 256..511
    np.testing.assert_array_equal(full, db_codes(view.intensity, view.valid)[256:512, 256:512])
    coarse = _tile_codes(files, "i0/orig/1/0_0")
    block = view.intensity[100:102, 40:42].mean()
    assert abs(coarse[50, 20] / 100 - 200 - 10 * np.log10(block)) <= 0.005
    assert coarse[10, 5] == 0 and coarse[10, 9] != 0  # columns 0..15 all nodata; 16/17 half valid: averaged


def test_hardest_tiles_are_sorted_and_measured() -> None:
    ref = np.ones((300, 600))
    recon = ref.copy()
    recon[256:, 256:512] *= 10.0  # +10 dB on one tile
    recon[:256, :256] *= 10 ** 0.1  # +1 dB on another
    tiles = hardest_tiles(ref, np.ones_like(ref, dtype=bool), recon, ref)
    assert (tiles[0]["x"], tiles[0]["y"], tiles[0]["w"], tiles[0]["h"]) == (256, 256, 256, 44)
    assert tiles[0]["rmse_db"] == pytest.approx(10.0) and tiles[1]["rmse_db"] == pytest.approx(1.0)
    assert tiles[0]["rmse_text"] == "10.00" and tiles[0]["other_rmse_db"] == 0
    assert [t["rmse_db"] for t in tiles] == sorted((t["rmse_db"] for t in tiles), reverse=True)


def test_page_outputs_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(OutputError, match="not written by sarcodec"):
        write_page(mine, [_synthetic_view()], title="t")
    assert mine.read_text() == "<html>my notes</html>" and not (tmp_path / "notes_files").exists()
    with pytest.raises(OutputError, match=r"\.html"):
        check_page_output(tmp_path / "page.png")
    with pytest.raises(OutputError, match="overwrite an input"):
        check_page_output(tmp_path / "in.html", inputs=[tmp_path / "in.html"])
    page = tmp_path / "page.html"
    write_page(page, [_synthetic_view()], title="first")
    write_page(page, [_synthetic_view()], title="second")  # its own page is replaced without asking
    assert "<title>second</title>" in page.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.html", "page.html", "page_files"]


def test_a_files_folder_sarcodec_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """--overwrite names the page, not its folder: a user's NAME_files folder (here holding the very inputs of a
    --compare) would have been deleted with everything in it."""
    folder = tmp_path / "in_files"
    folder.mkdir()
    (folder / "orig.tif").write_bytes(b"my data")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not written by sarcodec"):
            write_page(tmp_path / "in.html", [_synthetic_view()], title="t", overwrite=overwrite)
    with pytest.raises(OutputError, match="overwrite an input"):
        check_page_output(tmp_path / "in.html", overwrite=True, inputs=[folder / "orig.tif"])
    assert (folder / "orig.tif").read_bytes() == b"my data" and not (tmp_path / "in.html").exists()
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(OutputError, match="not a regular file"):
        check_page_output(tmp_path / "dir.html", overwrite=True)
    (tmp_path / "a_file").write_text("x")  # a page under a file cannot be written: said before any work
    with pytest.raises(OutputError, match="not a writable folder"):
        check_page_output(tmp_path / "a_file" / "sub" / "p.html")


def test_report_needs_results_and_sources(tmp_path: Path) -> None:
    from sarcodec.bench.html_report import report_from_results

    with pytest.raises(BadInputError, match="no results.json"):
        report_from_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"rows": [
        {"image": "gone.tif", "group": "g", "codec": "sarcodec-hyperprior", "setting": 1.0, "bytes": 9,
         "bpp": 0.1}], "sources": {"gone.tif": str(tmp_path / "gone.tif")}}))
    with pytest.raises(BadInputError, match="--inputs"):
        report_from_results(tmp_path)
    other = tmp_path / "inputs" / "gone.tif"  # another image under the benchmark's name: 48 x 40, not 720 pixels
    other.parent.mkdir()
    write_geotiff(other, speckle_intensity((48, 40)))
    with pytest.raises(BadInputError, match="not the benchmark's image"):
        report_from_results(tmp_path, inputs=[other.parent])
    assert not (tmp_path / "report.html").exists()


def test_cli_report_and_html_without_compare_fail_in_one_line(tmp_path: Path) -> None:
    for argv in (["report", str(tmp_path)], ["decompress", str(tmp_path / "x.sarc"), "--html", str(tmp_path / "a.html")]):
        proc = subprocess.run([sys.executable, "-m", "sarcodec", *argv], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------- in a browser

def _chromedriver() -> str:
    path = shutil.which("chromedriver")
    if path is None or shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.skip("Chromium and chromedriver are not installed (.ci/run installs Debian's chromium and "
                    "chromium-driver; install them to run the browser tests)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: pip install -e .[dev]")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def bench_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sarcodec benchmark --html` on one bundled real OPERA scene (shipped model, JPEG 2000)."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "sarcodec", "benchmark", str(OPERA), "--codecs", "jpeg2000",
                           "-o", str(out), "--html"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return out


def _settle(driver: Any, rendered_after: int = 0) -> None:
    for _ in range(200):
        pending = driver.execute_script("return document.body.dataset.pending")
        rendered = int(driver.execute_script("return document.body.dataset.rendered"))
        if pending == "0" and rendered > rendered_after:
            time.sleep(0.15)  # one more frame for the tiles that just arrived
            if driver.execute_script("return document.body.dataset.pending") == "0":
                return
        time.sleep(0.05)
    raise AssertionError("the page did not finish loading its tiles")


def _open(driver: Any, page: Path) -> None:
    driver.get(page.as_uri())
    _settle(driver)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors


def _act(driver: Any, script: str) -> None:
    before = int(driver.execute_script("return document.body.dataset.rendered"))
    driver.execute_script(script)
    _settle(driver, before)


def _panel_png(driver: Any, layer: str) -> bytes:
    from selenium.webdriver.common.by import By

    png: bytes = driver.find_element(By.CSS_SELECTOR, f'.panel[data-layer="{layer}"] canvas').screenshot_as_png
    return png


def test_page_loads_offline_without_console_errors(browser: Any, bench_page: Path) -> None:
    _open(browser, bench_page / "report.html")
    html = (bench_page / "report.html").read_text()
    # nothing is fetched from a network: no http(s) sources, links, stylesheet URLs or imports (SVG namespaces
    # are names, not fetches)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(""", html)
    assert browser.execute_script("return SARV.data.images.length") == 1
    assert len(browser.find_elements("css selector", ".panel canvas")) == 4
    assert len(browser.find_elements("css selector", "figure.rd svg")) >= 1  # RD curves of the group


def test_zoom_and_pan_change_every_view_together(browser: Any, bench_page: Path) -> None:
    _open(browser, bench_page / "report.html")
    before = {layer: _panel_png(browser, layer) for layer in ("orig", "sarc", "j2k", "diff")}
    scale = browser.execute_script("return SARV.state().scale")
    _act(browser, 'document.getElementById("zoom-in").click()')
    assert browser.execute_script("return SARV.state().scale") == pytest.approx(2 * scale)
    after = {layer: _panel_png(browser, layer) for layer in before}
    assert all(after[k] != before[k] for k in before)  # one zoom, four views changed
    # a wheel on the JPEG 2000 view zooms the original's view too; a drag pans it
    _act(browser, """const c = document.querySelector('.panel[data-layer="j2k"] canvas');
        c.dispatchEvent(new WheelEvent('wheel', {deltaY: -300, clientX: c.getBoundingClientRect().left + 40,
                                                 clientY: c.getBoundingClientRect().top + 40, cancelable: true}));""")
    assert browser.execute_script("return SARV.state().scale") > 2 * scale
    wheel = _panel_png(browser, "orig")
    assert wheel != after["orig"]
    cx = browser.execute_script("return SARV.state().cx")
    _act(browser, """const c = document.querySelector('.panel[data-layer="orig"] canvas');
        const r = c.getBoundingClientRect();
        const ev = (t, x) => new PointerEvent(t, {clientX: r.left + x, clientY: r.top + 50, pointerId: 1, bubbles: true});
        c.dispatchEvent(ev('pointerdown', 100)); c.dispatchEvent(ev('pointermove', 160)); c.dispatchEvent(ev('pointerup', 160));""")
    assert browser.execute_script("return SARV.state().cx") < cx
    assert _panel_png(browser, "sarc") != after["sarc"]


def test_swipe_and_colour_limits_change_what_is_shown(browser: Any, bench_page: Path) -> None:
    _open(browser, bench_page / "report.html")
    grey = _panel_png(browser, "orig")
    _act(browser, 'const e = document.getElementById("lo"); e.value = -40; e.dispatchEvent(new Event("input"));')
    assert browser.execute_script("return SARV.state().lo") == -40
    assert _panel_png(browser, "orig") != grey
    _act(browser, 'document.getElementById("mode-swipe").click()')
    assert browser.execute_script("return SARV.state().mode") == "swipe"
    mid = _panel_png(browser, "swipe")
    _act(browser, 'const e = document.getElementById("swipe"); e.value = 0.15; e.dispatchEvent(new Event("input"));')
    assert browser.execute_script("return SARV.state().swipe") == pytest.approx(0.15)
    assert _panel_png(browser, "swipe") != mid
    _act(browser, 'SARV.set({swipeA: "orig", swipeB: "orig", swipe: 0.5})')
    same = _panel_png(browser, "swipe")
    _act(browser, 'SARV.set({swipe: 0.8})')  # identical layers on both sides: only the divider moved
    moved = _panel_png(browser, "swipe")
    assert moved != same


def test_every_number_on_the_page_is_the_one_in_results_json(browser: Any, bench_page: Path) -> None:
    results = json.loads((bench_page / "results.json").read_text())
    rows = {(r["image"], r["codec"], r["setting"]): r for r in results["rows"]}
    _open(browser, bench_page / "report.html")
    data = browser.execute_script("return SARV.data")
    checked = 0
    for i, image in enumerate(data["images"]):
        for j, _ in enumerate(image["points"]):
            _act(browser, f"SARV.set({{image: {i}, point: {j}}})")
            for tr in browser.find_elements("css selector", "#metrics tr[data-codec]"):
                codec = tr.get_attribute("data-codec")
                row = rows[(image["name"], codec, float(tr.get_attribute("data-setting")))]
                for td in tr.find_elements("css selector", "td[data-key]"):
                    key = td.get_attribute("data-key")
                    want = row[key]
                    got = float(td.get_attribute("data-value"))
                    assert got == want or (math.isnan(got) and math.isnan(want)), (codec, key)
                    assert td.text == format_value(want, DIGITS[key]), (codec, key, td.text)
                    checked += 1
            # the panel labels quote the same bpp
            labels = [e.text for e in browser.find_elements("css selector", ".panel .label")]
            assert any(format_value(rows[(image["name"], image["points"][j]["rows"][0]["codec"],
                                          image["points"][j]["rows"][0]["setting"])]["bpp"], 3) in t for t in labels)
            hardest = [float(li.get_attribute("data-value")) for li in browser.find_elements("css selector", "#hardest li")]
            assert hardest and hardest == sorted(hardest, reverse=True)
    bd = {(r["group"], r["codec"]): r for r in results["bd"]}
    for tr in browser.find_elements("css selector", "#bd tr[data-group]"):
        row = bd[(tr.get_attribute("data-group"), tr.get_attribute("data-codec"))]
        for key in ("bd_rate", "bd_psnr"):
            td = tr.find_element("css selector", f'td[data-key="{key}"]')
            assert td.text == format_value(row[key], DIGITS[key])
            checked += 1
    assert checked >= 2 * 11 * 2  # at least two operating points of two codecs, every column


def test_tiles_decoded_in_the_browser_carry_the_source_db(browser: Any, tmp_path: Path) -> None:
    view = _synthetic_view()
    write_page(tmp_path / "big.html", [view], title="pyramid")
    _open(browser, tmp_path / "big.html")
    for x, y in ((20, 5), (529, 599), (300, 270), (3, 3)):
        got = browser.execute_async_script(
            "const done = arguments[arguments.length - 1]; SARV.valueAt('orig', %d, %d).then(done);" % (x, y))
        if view.valid[y, x]:
            assert got == pytest.approx(10 * math.log10(view.intensity[y, x]), abs=0.005)
        else:
            assert got is None
    # a hardest-tile click zooms to 1:1 or closer on that tile
    _act(browser, 'document.querySelector("#hardest li").click()')
    state = browser.execute_script("return SARV.state()")
    tile = browser.execute_script("return SARV.data.images[0].points[0].hardest[0]")
    assert state["scale"] >= 1 and state["cx"] == tile["x"] + tile["w"] / 2


@pytest.mark.slow
def test_decompress_compare_html_for_one_scene(browser: Any, tmp_path: Path) -> None:
    sarc, page = tmp_path / "a.sarc", tmp_path / "a.html"
    run = lambda *a: subprocess.run([sys.executable, "-m", "sarcodec", *a], capture_output=True, text=True, cwd=ROOT)  # noqa: E731
    assert run("compress", str(OPERA), "-o", str(sarc), "--quality", "3").returncode == 0
    page.write_text("not ours")
    proc = run("decompress", str(sarc), "-o", str(tmp_path / "a.tif"), "--compare", str(OPERA), "--html", str(page))
    assert proc.returncode == 5 and "not written by sarcodec" in proc.stderr
    assert not (tmp_path / "a.tif").exists() and page.read_text() == "not ours"  # refused before decoding
    page.unlink()
    proc = run("decompress", str(sarc), "-o", str(tmp_path / "a.tif"), "--compare", str(OPERA), "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    _open(browser, page)
    cells = {td.get_attribute("data-key"): td.text for td in
             browser.find_elements("css selector", "#metrics tr[data-codec='sarcodec'] td[data-key]")}
    assert cells["bytes"] == str(sarc.stat().st_size)
    assert cells["psnr"] in proc.stdout  # the same figure the command printed
