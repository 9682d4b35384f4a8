"""ONNX export and the ONNX Runtime analysis: the exported graphs, run under ONNX Runtime, give the PyTorch
transforms' outputs within float rounding, and a file encoded with the ONNX analysis holds the same symbols."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sarcodec.codec.api import compress, decompress
from sarcodec.codec.onnx import OrtTransform, export_codec, max_relative_difference
from sarcodec.codec.registry import DEFAULT_CODEC, load_codec
from sarcodec.errors import BadInputError, OutputError
from sarcodec.evaluate import load_reference

pytest.importorskip("onnxruntime", reason="onnxruntime is a dev dependency (pip install -e .[dev])")

ROOT = Path(__file__).resolve().parents[2]
OPERA = sorted((ROOT / "samples" / "opera").glob("*.tif"))[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "hyperprior"
    export_codec(DEFAULT_CODEC, out)
    return out


def test_export_writes_every_graph_and_a_manifest(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    codec = load_codec(DEFAULT_CODEC)
    assert manifest["model_sha256"] == codec.sha256 and manifest["num_levels"] == codec.num_levels
    assert set(manifest["graphs"]) == {"analysis", "synthesis", "hyper_analysis", "hyper_synthesis"}
    for graph in manifest["graphs"].values():
        assert hashlib.sha256((exported / graph["file"]).read_bytes()).hexdigest() == graph["sha256"]
    gain, inverse = codec.model.gains(torch.tensor([3.0]))
    np.testing.assert_allclose(manifest["gain"][2], gain[0, :, 0, 0].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(manifest["inverse_gain"][2], inverse[0, :, 0, 0].detach().numpy(), rtol=1e-6)
    assert manifest["pad_multiple"] == codec.model.downsampling_factor_total()


def test_exported_graphs_match_pytorch_on_a_real_tile(exported: Path) -> None:
    model = load_codec(DEFAULT_CODEC).model
    x = torch.from_numpy(load_reference(OPERA).x)[None, None]
    x = torch.nn.functional.pad(x, (0, 28, 0, 28), mode="replicate")  # 100 -> 128, the padding multiple (64)
    with torch.no_grad():
        y = model.analysis(x)
        gain, inverse = model.gains(torch.tensor([4.0]))
        z = model.hyper_analysis(y * gain)
        hyper = model.hyper_synthesis(torch.round(z))
        x_hat = model.synthesis(torch.round(y * gain) * inverse)
    for name, inp, want in (("analysis", x, y), ("hyper_analysis", y * gain, z),
                            ("hyper_synthesis", torch.round(z), hyper),
                            ("synthesis", torch.round(y * gain) * inverse, x_hat)):
        got = OrtTransform(exported / f"{name}.onnx")(inp)
        assert got.shape == want.shape, name
        assert max_relative_difference(want, got) < 1e-5, name
    # dynamic sizes: another tile shape runs through the same graph
    other = OrtTransform(exported / "analysis.onnx")(x[..., :64, :])
    assert other.shape == (1, y.shape[1], 16, 32)


def test_the_encoder_without_pytorch_writes_the_same_file(tmp_path: Path) -> None:
    """On the bundled real sample, PyTorch's encoder and the one without it (``sarcodec.codec.lite``: analysis under
    ONNX Runtime) write byte-identical files at every tested quality: the same symbols and the same correction (a
    latent within float rounding of a rounding boundary could differ on other images; either file decodes)."""
    for quality in (1, 4, 8):
        a, b = tmp_path / f"t{quality}.sarc", tmp_path / f"o{quality}.sarc"
        compress(OPERA, a, quality=quality, device="cpu", runtime="torch")
        compress(OPERA, b, quality=quality, runtime="onnx")
        assert a.read_bytes() == b.read_bytes(), quality
    np.testing.assert_array_equal(decompress(b).array, decompress(a).array)


def test_bad_runtime_requests_fail_cleanly(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(BadInputError, match="runtime"):
        compress(OPERA, tmp_path / "x.sarc", runtime="tensorrt")
    with pytest.raises(BadInputError, match="CPU"):
        compress(OPERA, tmp_path / "x.sarc", runtime="onnx", device="cuda")
    assert not (tmp_path / "x.sarc").exists()
    with pytest.raises(OutputError, match="not empty"):
        export_codec(DEFAULT_CODEC, exported)
    mine = tmp_path / "mine"  # overwrite=True names an export: a folder of other files is not written into
    mine.mkdir()
    (mine / "manifest.json").write_text('{"name": "my web app"}')
    with pytest.raises(OutputError, match="no sarcodec ONNX export"):
        export_codec("factorized", mine, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["manifest.json"]


def test_cli_export(tmp_path: Path) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "sarcodec", *a], capture_output=True, text=True)  # noqa: E731
    proc = run("export", "factorized", "-o", str(tmp_path / "f"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["analysis.onnx", "manifest.json", "synthesis.onnx"]
    proc = run("export", "nosuchmodel", "-o", str(tmp_path / "g"))
    assert proc.returncode == 4 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()
    proc = run("export", "-o", str(tmp_path / "f"))
    assert proc.returncode == 5 and "not empty" in proc.stderr
