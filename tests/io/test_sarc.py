"""The version a ``.sarc`` writer stamps: the lowest that can read its file (``sarcodec.io.sarc.stored_version``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sarcodec
from sarcodec.io.sarc import BLEND_VERSION, GCP_VERSION, LOSSY_VERSION, SPECKLE_VERSION, SarcReader, stored_version
from tests.conftest import speckle_intensity

SIDE = {"step_hi": 0.5, "step_lo": 1.0, "bias_block": 32, "bias_step": 0.01}
GCPS = {"crs": "EPSG:4326", "points": [[0.0, 0.0, 1.0, 2.0, 0.0]]}


@pytest.mark.parametrize("fields, kind, expected", [
    ({"side": SIDE, "n_tiles": 1, "tile": {"overlap": 16}}, LOSSY_VERSION, 2),
    ({"side": SIDE, "n_tiles": 1, "tile": {"overlap": 16}, "gcps": GCPS}, LOSSY_VERSION, GCP_VERSION),
    ({"side": {**SIDE, "speckle": 1}, "n_tiles": 1, "tile": {"overlap": 16}}, LOSSY_VERSION, SPECKLE_VERSION),
    ({"side": SIDE, "n_tiles": 4, "tile": {"overlap": 8}}, LOSSY_VERSION, BLEND_VERSION),
    ({"side": {**SIDE, "speckle": 1}, "n_tiles": 4, "tile": {"overlap": 8}, "gcps": GCPS}, LOSSY_VERSION, BLEND_VERSION),
    ({"side": SIDE, "n_tiles": 4, "tile": {"overlap": 0}}, LOSSY_VERSION, 2),  # no strip to blend
    ({"bound": {"units": "db", "max_error": 0.5}, "n_tiles": 4, "tile": {"overlap": 16}}, 3, 3),  # bounded: no side
    ({"bound": {"units": "db", "max_error": 0.5}, "n_tiles": 4, "tile": {"overlap": 16}, "gcps": GCPS}, 3, GCP_VERSION),
])
def test_the_writer_stamps_the_lowest_version_that_reads_the_file(fields: dict[str, Any], kind: int,
                                                                   expected: int) -> None:
    assert stored_version(fields, kind) == expected


@pytest.mark.parametrize("options, expected", [
    ({}, 2),
    ({"tile_size": 32}, BLEND_VERSION),
    ({"tile_size": 32, "overlap": 0}, 2),
    ({"speckle": True}, SPECKLE_VERSION),
    ({"speckle": True, "tile_size": 32}, BLEND_VERSION),
    ({"max_error": 0.5, "tile_size": 32}, 3),
    ({"lossless": True, "tile_size": 32}, 3),
])
def test_compressed_files_carry_that_version_and_decode(tmp_path: Path, options: dict[str, Any],
                                                        expected: int) -> None:
    image = speckle_intensity((48, 64), looks=2, seed=5)
    if options.get("lossless"):
        image = np.rint(image * 100).astype(np.uint16)
    sarcodec.compress(image, tmp_path / "f.sarc", **options)
    with SarcReader(tmp_path / "f.sarc") as reader:
        assert reader.version == expected
    out = sarcodec.decompress(tmp_path / "f.sarc").array
    assert out is not None and out.shape == image.shape and np.isfinite(out).all()
