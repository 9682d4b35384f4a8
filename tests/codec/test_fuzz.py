"""Robustness: damaged, truncated and foreign files fail with sarcodec's own errors, fast, writing nothing."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import sarcodec
from sarcodec.io.sarc import HEADER_DICTIONARIES, MAGIC
from sarcodec.errors import CorruptFileError, SarcodecError
from tests.conftest import speckle_intensity


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("fuzz")
    img = speckle_intensity((40, 48), looks=1, seed=1)
    img[:3, :5] = 0.0  # some invalid pixels, so the mask record is not empty
    sarcodec.compress(img, d / "v.sarc", tile_size=32, overlap=4)
    data = (d / "v.sarc").read_bytes()
    assert sarcodec.decompress(d / "v.sarc").array is not None
    return data


def _damaged(valid: bytes, rng: np.random.Generator, kind: int) -> bytes:
    if kind == 0:  # truncated
        return valid[: int(rng.integers(0, len(valid)))]
    if kind == 1:  # bit flips
        buf = bytearray(valid)
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(0, len(buf)))
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf)
    if kind == 2:  # random bytes
        return rng.bytes(int(rng.integers(0, 2 * len(valid))))
    # right magic, random rest
    return MAGIC + rng.bytes(int(rng.integers(0, len(valid))))


def test_fuzz_decoder_with_1200_damaged_files(valid_file: bytes, tmp_path: Path) -> None:
    rng = np.random.default_rng(2026)
    path, out = tmp_path / "f.sarc", tmp_path / "out.tif"
    failures = 0
    for i in range(1200):
        path.write_bytes(_damaged(valid_file, rng, i % 4))
        try:
            sarcodec.decompress(path, out)
        except SarcodecError:
            failures += 1
        else:  # pragma: no cover - a damaged file that decodes is a test failure
            raise AssertionError(f"case {i} (kind {i % 4}) decoded without error")
        assert not out.exists()
    assert failures == 1200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.sarc"]


def _dictionary(valid: bytes) -> bytes:
    (version,) = struct.unpack_from("<H", valid, len(MAGIC))
    return HEADER_DICTIONARIES[version]


def _read_header(valid: bytes) -> dict:
    (header_len,) = struct.unpack_from("<I", valid, len(MAGIC) + 2)
    data = valid[len(MAGIC) + 6 : len(MAGIC) + 6 + header_len]
    return json.loads(zlib.decompressobj(zdict=_dictionary(valid)).decompress(data))


def _rewrite_header(valid: bytes, edit: dict, tail: bytes = b"") -> bytes:
    """A file with a modified header (``tail`` after its deflate stream) and a *correct* checksum (so the parser
    itself is exercised)."""
    (header_len,) = struct.unpack_from("<I", valid, len(MAGIC) + 2)
    start = len(MAGIC) + 6
    header = _read_header(valid)
    for key, value in edit.items():
        if value is None and key in header:
            del header[key]
        else:
            header[key] = value
    deflate = zlib.compressobj(9, zdict=_dictionary(valid))  # json.dumps allows Infinity here: a damaged header
    data = deflate.compress(json.dumps(header).encode()) + deflate.flush() + tail
    body = valid[: len(MAGIC) + 2] + struct.pack("<I", len(data)) + data + valid[start + header_len : -4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("edit", [
    {"quality": 1e9}, {"quality": "x"}, {"height": -1}, {"width": 10**9}, {"n_tiles": 7}, {"dtype": "no-such"},
    {"tile": {"size": 8, "overlap": 0}}, {"tile": {"size": 10**6, "overlap": 0}}, {"model": {"name": "x", "sha256": "0"}},
    {"preprocessing_params": {"units": "furlongs"}}, {"preprocessing_params": None}, {"transform": [1, 2]},
    {"model": None}, {"height": 48}, {"width": 3}, {"crs": "x"}, {"crs": 5}, {"nodata": "x"}, {"units": None},
    {"transform": ["a", 0, 0, 0, 0, 0]}, {"n_tiles": float("inf")}, {"height": 1e300}, {"band": None},
    {"model": {"name": "/tmp/elsewhere.safetensors", "sha256": "0", "codec": "hyperprior"}},
    {"gcps": {"crs": "x", "points": [[0, 0, 1, 2, 0]]}}, {"gcps": {"crs": "EPSG:4326", "points": [["a"]]}},
    {"side": None}, {"side": {"step_hi": 0, "step_lo": 1, "bias_block": 32, "bias_step": 0.01}},
    {"band": -7}, {"band": 0}, {"band": 70000}, {"nodata": 5.0}, {"tile": {"size": 4096, "overlap": 16}},
    {"width": 2**20 + 1}, {"coder": 5},
    {"side": {"step_hi": 0.5, "step_lo": 1, "bias_block": 1, "bias_step": 0.01}},
])
def test_header_damage_with_valid_checksum(valid_file: bytes, tmp_path: Path, edit: dict) -> None:
    path, out = tmp_path / "h.sarc", tmp_path / "h.tif"
    path.write_bytes(_rewrite_header(valid_file, edit))
    with pytest.raises(SarcodecError):
        sarcodec.decompress(path, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sarc"]


def test_params_damage_with_valid_checksum(valid_file: bytes, tmp_path: Path) -> None:
    params = _read_header(valid_file)["preprocessing_params"]
    for key, value in (("dtype", "no-such"), ("invalid_fill", "x"), ("units", "watts"), ("db_hi", -1e9), ("dtype", "uint8")):
        path = tmp_path / f"{key}.sarc"
        path.write_bytes(_rewrite_header(valid_file, {"preprocessing_params": {**params, key: value}}))
        with pytest.raises(SarcodecError):
            sarcodec.decompress(path, tmp_path / "p.tif")
        with pytest.raises(SarcodecError):
            sarcodec.read_info(path)
    assert not (tmp_path / "p.tif").exists()


def test_extra_bytes_after_the_last_tile_are_detected(valid_file: bytes, tmp_path: Path) -> None:
    body = valid_file[:-4] + b"\x00" * 12
    path = tmp_path / "extra.sarc"
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(SarcodecError, match="unexpected bytes"):
        sarcodec.decompress(path, tmp_path / "e.tif")
    assert not (tmp_path / "e.tif").exists()


def test_header_that_is_not_deflate_or_not_json(valid_file: bytes, tmp_path: Path) -> None:
    for data in (b"plain text, not deflate", zlib.compress(b"not json"), zlib.compress(b"[1, 2]")):
        start = len(MAGIC) + 6
        (header_len,) = struct.unpack_from("<I", valid_file, len(MAGIC) + 2)
        body = valid_file[: len(MAGIC) + 2] + struct.pack("<I", len(data)) + data + valid_file[start + header_len : -4]
        path = tmp_path / "n.sarc"
        path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
        with pytest.raises(SarcodecError):
            sarcodec.decompress(path, tmp_path / "n.tif")


def test_a_quality_out_of_range_in_a_file_is_a_corrupt_file(valid_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "q.sarc"
    path.write_bytes(_rewrite_header(valid_file, {"quality": 9.0}))  # well-formed, but no such level
    with pytest.raises(CorruptFileError, match="quality"):
        sarcodec.decompress(path)


def _fuzz(cases: int, seed: int) -> None:
    from tests.codec.sarc_fuzz import run

    result = run(cases, seed)
    assert result["bad"] == [], result  # only CorruptFileError, IncompatibleModelError or a valid decode
    assert sum(result["outcomes"].values()) == cases
    reached = {kind.split("/")[0] for kind in result["by_kind"]}
    assert {"header", "mask", "tile", "side", "records"} <= reached


def test_structure_aware_fuzz_600_cases_behind_a_valid_checksum() -> None:
    _fuzz(600, seed=0)


@pytest.mark.slow
def test_structure_aware_fuzz_5000_cases() -> None:
    _fuzz(5000, seed=1)


def test_a_mask_bomb_is_refused_without_inflating_it(valid_file: bytes, tmp_path: Path) -> None:
    from tests.codec.sarc_fuzz import parse, write

    (tmp_path / "ok.sarc").write_bytes(valid_file)
    version, header, bands = parse(tmp_path / "ok.sarc")
    bomb = zlib.compress(b"\xff" * (1 << 30), 9)  # ~1 MB that inflates to 1 GB
    write(tmp_path / "bomb.sarc", (version, header, [(bomb, bands[0][1]), *bands[1:]]))
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorruptFileError, match="mask"):
        sarcodec.decompress(tmp_path / "bomb.sarc")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far below 1 GB


def test_empty_tiles_of_a_version_1_file_are_refused_before_any_synthesis(tmp_path: Path) -> None:
    from tests.codec.sarc_fuzz import GOLDEN_V1, parse, write

    version, header, bands = parse(GOLDEN_V1)
    write(tmp_path / "empty.sarc", (version, header, [(m, [b"" for _ in p]) for m, p in bands]))
    with pytest.raises(CorruptFileError, match="empty"):
        sarcodec.decompress(tmp_path / "empty.sarc")


@pytest.fixture(scope="module")
def gcp_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A format-4 file (ground control points packed after the header) and its packed points."""
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    from tests.conftest import write_geotiff

    d = tmp_path_factory.mktemp("fuzz_gcps")
    src = write_geotiff(d / "g.tif", speckle_intensity((40, 48), seed=3), georef=False)
    with rasterio.open(src, "r+") as ds:
        ds.gcps = ([GroundControlPoint(row=r * 9.5, col=c * 11.75, x=8.0 + c / 89, y=50.0 - r / 97, z=3.25)
                    for r in range(5) for c in range(5)], CRS.from_epsg(4326))
    sarcodec.compress(src, d / "g.sarc")
    valid = (d / "g.sarc").read_bytes()
    (header_len,) = struct.unpack_from("<I", valid, len(MAGIC) + 2)
    inflate = zlib.decompressobj(zdict=_dictionary(valid))
    inflate.decompress(valid[len(MAGIC) + 6 : len(MAGIC) + 6 + header_len])
    assert struct.unpack_from("<H", valid, len(MAGIC))[0] == 4 and inflate.unused_data
    return valid, inflate.unused_data


@pytest.mark.parametrize("case", ["count", "no gcps", "no points", "garbage", "truncated", "extra"])
def test_damaged_ground_control_points_fail_cleanly(gcp_file: tuple[bytes, bytes], tmp_path: Path, case: str) -> None:
    valid, packed = gcp_file
    header = _read_header(valid)
    gcps = header["gcps"]
    edit, tail = {
        "count": ({"gcps": {**gcps, "count": 24}}, packed),
        "no gcps": ({"gcps": None}, packed),
        "no points": ({}, b""),
        "garbage": ({}, b"\x5d" + packed[1:]),
        "truncated": ({}, packed[:-3]),
        "extra": ({}, packed + b"\x00"),
    }[case]
    path, out = tmp_path / "g.sarc", tmp_path / "g.tif"
    path.write_bytes(_rewrite_header(valid, edit, tail))
    with pytest.raises(SarcodecError) as info:
        sarcodec.decompress(path, out)
    assert "\n" not in str(info.value) and not out.exists()
    path.write_bytes(_rewrite_header(valid, {}, packed))  # the helper itself keeps a valid file valid
    sarcodec.decompress(path, out)
