"""The PyTorch-free decoder (sarcodec.codec.lite): the same symbols as PyTorch's decoder, pixels within float
rounding, the layers it assumes are the model's, and decompress never imports PyTorch on its default path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from torch import nn

import sarcodec
from sarcodec.codec import lite
from sarcodec.codec.registry import DEFAULT_CODEC, load_codec, resolve_codec
from sarcodec.errors import BadInputError
from sarcodec.evaluate import load_reference
from sarcodec.models.codecs.integer import z_limit_of
from sarcodec.models.layers import GDN
from sarcodec.threads import single_thread
from tests.conftest import speckle_intensity

REPO = Path(__file__).resolve().parents[2]
SAMPLE = sorted((REPO / "samples" / "opera").glob("*.tif"))[1]


@pytest.fixture(scope="module")
def codecs() -> tuple[object, lite.LiteCodec]:
    decoder = lite.load_lite(*resolve_codec(DEFAULT_CODEC))
    assert decoder is not None, "the default weights decode without PyTorch"
    return load_codec(DEFAULT_CODEC), decoder


def test_the_layers_it_assumes_are_the_models(codecs: tuple) -> None:
    torch_codec, _ = codecs
    model = torch_codec.model
    convs = model.integer_hyper._geometry
    assert len(convs) == len(lite._HYPER_SYNTHESIS)
    for layer, (transposed, stride) in zip(convs, lite._HYPER_SYNTHESIS):
        k = layer.weight.shape[-1]
        assert isinstance(layer, nn.ConvTranspose2d) == transposed and layer.stride == (stride, stride)
        assert layer.padding == (k // 2, k // 2)
        assert getattr(layer, "output_padding", (0, 0)) == ((stride - 1,) * 2 if transposed else (0, 0))
    kinds = {"conv": nn.Conv2d, "down": nn.Conv2d, "deconv": nn.ConvTranspose2d, "igdn": GDN, "gdn": GDN,
             "leaky": nn.LeakyReLU}
    for layers, net in ((lite._SYNTHESIS, model.synthesis), (lite._ANALYSIS, model.analysis),
                        (lite._HYPER_ANALYSIS, model.hyper_analysis)):
        prefix = layers[0][0].split(".")[0]
        for i, ((name, kind), layer) in enumerate(zip(layers, net, strict=True)):
            assert name == f"{prefix}.{i}" and type(layer) is kinds[kind], name
            if kind in ("gdn", "igdn"):
                assert layer.inverse == (kind == "igdn")
            elif kind == "leaky":
                assert np.float32(layer.negative_slope) == lite._NEGATIVE_SLOPE
            else:
                k = layer.weight.shape[-1]
                assert layer.padding == (k // 2, k // 2) and layer.stride == ((1, 1) if kind == "conv" else (2, 2))
                assert kind != "deconv" or layer.output_padding == (1, 1)


def test_the_probability_path_gives_the_same_means_and_indices(codecs: tuple) -> None:
    torch_codec, decoder = codecs
    model = torch_codec.model
    limit = z_limit_of(model.hyper_density.table_offsets, model.hyper_density.table_lengths)
    gen = torch.Generator().manual_seed(5)
    for shape in ((3, 5), (17, 9), (66, 66)):
        z = torch.randint(-limit, limit + 1, (1, 32, *shape), generator=gen).float()
        means, indices = model._probability_path(z)
        means_np, indices_np = decoder.model.probability_path(z[0].numpy())
        np.testing.assert_array_equal(means_np, means[0].numpy())
        np.testing.assert_array_equal(indices_np, indices[0].numpy())


def _reference_integer_hyper(z: torch.Tensor, weights: list, biases: list, rescales: list, limits: list
                             ) -> torch.Tensor:
    """The integer hyper-decoder's accumulators the long way: float64 convolutions (exact for these integers),
    the float32 steps between them as ``IntegerHyperSynthesis.forward`` takes them."""
    x, last = z.double(), len(weights) - 1
    for i, (transposed, stride) in enumerate(lite._HYPER_SYNTHESIS):
        w, b, k = torch.from_numpy(weights[i]).double(), torch.from_numpy(biases[i]).double(), weights[i].shape[-1]
        if transposed:
            acc = F.conv_transpose2d(x, w, b, stride=stride, padding=k // 2, output_padding=stride - 1).float()
        else:
            acc = F.conv2d(x, w, b, padding=k // 2).float()
        if i < last:
            value = acc * torch.from_numpy(rescales[i]).view(1, -1, 1, 1)
            value = torch.where(value >= 0, value, value * torch.tensor(lite._NEGATIVE_SLOPE))
            x = value.round().clamp(-limits[i], limits[i]).double()
    return acc


@pytest.mark.parametrize("shape, channels", [((3, 5), (8, 12, 12, 10)), ((6, 6), (8, 12, 12, 10)),
                                             ((9, 7), (8, 12, 12, 10)), ((7, 6), (32, 64, 64, 96))])
def test_the_integer_hyper_graph_is_exact_at_the_bound(shape: tuple[int, int], channels: tuple[int, ...]) -> None:
    """ONNX Runtime's convolutions give the exact integer sums when every sum of magnitudes is just within 2**24
    (as calibration chooses the weights and clamps): one rounding anywhere, or a Winograd or reduced-precision
    kernel, would show here: weights mostly positive, inputs at their clamps, so the sums need 23-24 bits. The
    shipped model's channel counts (z, hidden, hidden, 2 x latent: 32, 64, 64, 96) take ONNX Runtime's blocked
    (NCHWc) convolutions, which the session's rewrites choose for multiples of the block size."""
    gen = torch.Generator().manual_seed(shape[0] * 10 + shape[1])
    weights, biases, limits = [], [], []
    fan_in = []  # the most products one output sums: C_in x the taps of a phase (3 x 3 of a 5 x 5 deconv) or k x k
    for i, (transposed, _) in enumerate(lite._HYPER_SYNTHESIS):
        c_in, c_out = channels[i], channels[i + 1]
        k = 5 if transposed else 3
        size = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
        sign = torch.where(torch.rand(size, generator=gen) < 0.1, -1, 1)
        weights.append((torch.randint(1, 128, size, generator=gen) * sign).float().numpy())
        fan_in.append(c_in * (9 if transposed else k * k))
    z_limit = 2**24 // (fan_in[0] * 127 + 1000)
    for i in range(len(weights)):
        limit = z_limit if i == 0 else 2**24 // (fan_in[i] * 127 + 1000)  # the largest input that keeps sums exact
        limits.append(float(limit))
        biases.append(torch.randint(-999, 1000, (channels[i + 1],), generator=gen).float().numpy())
    # rescales that drive most hidden activations to their clamps
    rescales = [np.full(channels[i + 1], 8 * limits[i + 1] / (fan_in[i] * 127 * limits[i]), np.float32)
                for i in range(len(weights) - 1)]
    graph = lite._integer_hyper_graph(weights, biases, limits[1:])
    session = lite._session(graph)  # as the coder runs it: ONNX Runtime's rewrites on
    z = torch.where(torch.rand(1, channels[0], *shape, generator=gen) < 0.9, z_limit, -z_limit)  # at the limits
    feeds = {"z": z.float().numpy()} | {f"r{i}": r.reshape(1, -1, 1, 1) for i, r in enumerate(rescales)}
    got = session.run(["acc"], feeds)[0]
    expected = _reference_integer_hyper(z.float(), weights, biases, rescales, limits[1:]).numpy()
    assert np.abs(expected).max() > 2**22  # the sums are large: the test means something
    np.testing.assert_array_equal(got, expected)


def test_graph_builders_write_what_onnx_helper_writes() -> None:
    """lite builds its graphs with ONNX's protobuf classes, without importing onnx (``lite._proto``): the nodes,
    tensors, inputs and models are onnx.helper's byte for byte, and the default codec's graphs pass onnx's checker
    with shape inference."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    attrs = {"kernel_shape": [5, 5], "alpha": 0.01, "axis": 1}
    assert (lite._node("Conv", ["x", "w"], ["y"], **attrs).SerializeToString()
            == helper.make_node("Conv", ["x", "w"], ["y"], **attrs).SerializeToString())
    for array in (np.array(-3.5, np.float32), np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]):
        assert (lite._initializer(array, "t").SerializeToString()
                == numpy_helper.from_array(array, "t").SerializeToString())
    shape: list[int | str] = [1, 6, "h", "w"]
    assert (lite._float_input("x", shape).SerializeToString()
            == helper.make_tensor_value_info("x", TensorProto.FLOAT, shape).SerializeToString())
    nodes = [lite._node("Identity", ["x"], ["y"])]
    inits = [lite._initializer(np.ones(2, np.float32), "c")]
    inputs, output = [lite._float_input("x", [1, 2])], lite._float_input("y", [1, 2])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, [output], inits),
                              opset_imports=[helper.make_opsetid("", 17)], producer_name="sarcodec")
    model.ir_version = 8
    assert lite._model_bytes(nodes, inits, "g", inputs, output) == model.SerializeToString()
    state = load_file(str(resolve_codec(DEFAULT_CODEC)[1]))
    n = len(lite._HYPER_SYNTHESIS)
    graphs = [lite._synthesis_graph(state), lite._transform_graph(state, lite._ANALYSIS, "analysis"),
              lite._transform_graph(state, lite._HYPER_ANALYSIS, "hyper_analysis"),
              lite._integer_hyper_graph([state[f"integer_hyper.weight{i}"].astype(np.float32) for i in range(n)],
                                        [state[f"integer_hyper.bias{i}"].astype(np.float32) for i in range(n)],
                                        [float(state[f"integer_hyper.limit{i}"]) for i in range(n - 1)])]
    for graph in graphs:
        onnx.checker.check_model(onnx.load_from_string(graph), full_check=True)


@pytest.mark.parametrize("c_out, k", [(1, 5), (16, 5), (3, 3)])
def test_a_deconv_node_is_the_transposed_convolution(c_out: int, k: int) -> None:
    """``deconv()``'s geometry as ONNX nodes: four phase convolutions, concatenated and put in place by a
    DepthToSpace."""
    from onnx import TensorProto, helper

    gen = torch.Generator().manual_seed(3)
    x, weight = torch.randn(1, 6, 9, 7, generator=gen), torch.randn(6, c_out, k, k, generator=gen)
    bias = torch.randn(c_out, generator=gen)
    nodes, inits = lite._conv_nodes("x", "y", weight.numpy(), bias.numpy(), "deconv", "d")
    assert [node.op_type for node in nodes] == ["Conv"] * 4 + ["Concat", "DepthToSpace"]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 9, 7])]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 18, 14])
    graph = lite._model_bytes(nodes, inits, "deconv", inputs, output)
    got = lite._session(graph).run(["y"], {"x": x.numpy()})[0]
    expected = F.conv_transpose2d(x, weight, bias, stride=2, padding=k // 2, output_padding=1)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("up", [2, 4])
def test_deconv_taps_read_the_transposed_convolution_on_phases(k: int, up: int) -> None:
    """``_deconv_taps`` against a 1-D ``deconv()`` summed term by term: output row ``up * m + r`` of a transposed
    convolution whose input row ``2 * (m + j) + p`` (at ``up // 2`` times the rows of m) holds a one."""
    n = 6  # input rows of the transposed convolution
    for i in range(n):
        x = torch.zeros(1, 1, n)
        x[0, 0, i] = 1.0
        for t in range(k):
            w = torch.zeros(1, 1, k)
            w[0, 0, t] = 1.0
            out = F.conv_transpose1d(x, w, stride=2, padding=k // 2, output_padding=1)[0, 0]
            for o in np.flatnonzero(out.numpy()):
                m, r = divmod(int(o), up)
                j, p = divmod(i, 2) if up == 4 else (i - m, 0)
                assert lite._deconv_taps(k, r, p, up)[j - (m if up == 4 else 0)] == t


@pytest.mark.parametrize("c_out, k", [(1, 5), (2, 3)])
def test_the_polyphase_synthesis_is_the_transposed_convolutions(c_out: int, k: int) -> None:
    """The synthesis graph (four phase convolutions, inverse GDN on each phase, the last layer into 16 output
    phases and a DepthToSpace) against PyTorch's conv, IGDN, ConvTranspose, IGDN, ConvTranspose, with random
    weights (two output channels check DepthToSpace's channel order), including strips too short for a kernel."""
    gen = torch.Generator().manual_seed(11)
    c, n = 6, 5
    layers = nn.Sequential(nn.Conv2d(4, c, 3, padding=1), GDN(c, inverse=True),
                           nn.ConvTranspose2d(c, n, k, 2, k // 2, 1), GDN(n, inverse=True),
                           nn.ConvTranspose2d(n, c_out, k, 2, k // 2, 1))
    with torch.no_grad():
        for p in layers.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + (0.2 if p.ndim == 2 else -0.25))
    state = {f"synthesis.{name}": value.detach().numpy() for name, value in layers.state_dict().items()}
    session = lite._session(lite._synthesis_graph(state))
    for h, w in [(7, 9), (1, 2), (4, 1)]:
        y = torch.randn(2, 4, h, w, generator=gen)
        with torch.no_grad():
            expected = layers(y)
        got = session.run(["y"], {"x": y.numpy()})[0]
        assert got.shape == tuple(expected.shape) == (2, c_out, 4 * h, 4 * w)
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("quality, holes", [(1.0, False), (3.7, True), (8.0, False)])
def test_tiles_decode_to_pytorchs_pixels(codecs: tuple, quality: float, holes: bool) -> None:
    torch_codec, decoder = codecs
    x = load_reference(SAMPLE).x[:96, :80].copy()
    valid = np.ones(x.shape, bool)
    if holes:
        valid[:60, :40] = False
    tile = torch.from_numpy(x.astype(np.float32))[None, None]
    words, _ = torch_codec.model.encode_tile(tile, quality, valid=valid)
    expected = torch_codec.model.decompress_tile(words, 96, 80, quality, valid)[0, 0].numpy()
    got = decoder.model.decompress_tile(words, 96, 80, quality, valid)[0, 0]
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)  # same symbols: rounding only


@pytest.mark.parametrize("quality, holes", [(1.0, True), (3.7, False), (8.0, True)])
def test_tiles_encode_to_pytorchs_symbols(codecs: tuple, quality: float, holes: bool) -> None:
    """The encoder without PyTorch writes PyTorch's words on a real crop, and what it says the decoder will
    reconstruct is exactly what this module decodes."""
    torch_codec, coder = codecs
    x = load_reference(SAMPLE).x[:100, :90].astype(np.float32)
    h, w = x.shape
    valid = np.ones(x.shape, bool)
    if holes:
        valid[:60, :50] = False
    expected = torch_codec.model.analyze(torch.from_numpy(x)[None, None], valid)
    analysis = coder.model.analyze(x[None, None], valid)
    np.testing.assert_allclose(analysis.y, expected.y[0].numpy(), rtol=0, atol=1e-4)  # float rounding only
    assert np.array_equal(analysis.keep_y, expected.keep_y) and np.array_equal(analysis.keep_z, expected.keep_z)
    words, x_hat = coder.model.encode_analysis(analysis, quality)
    assert words == torch_codec.model.encode_analysis(expected, quality, reconstruct=False)[0]
    assert x_hat is not None and x_hat.shape == (1, 1, h, w) == (1, 1, 100, 90)
    np.testing.assert_array_equal(x_hat, coder.model.decompress_tile(words, h, w, quality, valid))
    assert coder.model.encode_analysis(analysis, quality, reconstruct=False) == (words, None)


def test_the_analysis_in_strips_is_the_whole_tiles(codecs: tuple) -> None:
    _, coder = codecs
    x = np.random.default_rng(5).random((1, 1, 4 * (2 * lite._STRIP + 5), 36)).astype(np.float32)  # 3 strips
    session = coder.model._encoder_sessions()[0]
    whole = session.run(["y"], {"x": x})[0]
    strips = lite._in_strips(session, x, coder.model.factor, 1)
    assert strips.shape == whole.shape
    np.testing.assert_allclose(strips, whole, rtol=0, atol=1e-5)


def test_compress_and_decompress_never_import_torch_on_the_cpu(tmp_path: Path) -> None:
    img = speckle_intensity((300, 260), looks=1, seed=23)
    img[:40, :50] = np.nan
    np.save(tmp_path / "img.npy", img)
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of PyTorch fails
            "import numpy as np, sarcodec\n"
            "for bpp in (None, 1.0):\n"
            "    sarcodec.compress(np.load(sys.argv[1]), sys.argv[2] + f'{bpp}.sarc', bpp=bpp, device='cpu', "
            "tile_size=128, overlap=8)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "img.npy"), str(tmp_path / "lite")], check=True,
                   cwd=REPO)
    sarcodec.compress(img, tmp_path / "torch.sarc", runtime="torch", device="cpu", tile_size=128, overlap=8)
    lite_file = tmp_path / "liteNone.sarc"
    sizes = (lite_file.stat().st_size, (tmp_path / "torch.sarc").stat().st_size)
    assert abs(sizes[0] - sizes[1]) <= 0.002 * sizes[1], sizes  # the same symbols but where float rounding differs
    got = sarcodec.decompress(lite_file).array
    want = sarcodec.decompress(tmp_path / "torch.sarc").array
    ok = np.isfinite(img)  # NaN in, 0 out (linear units without a nodata value)
    assert (got[~ok] == 0).all() and (got[ok] > 0).all()
    assert np.median(np.abs(10 * np.log10(got[ok] / want[ok]))) < 0.01
    assert sarcodec.decompress(tmp_path / "lite1.0.sarc").array is not None


def test_decompress_never_imports_torch_on_its_default_path(tmp_path: Path) -> None:
    img = speckle_intensity((300, 260), looks=1, seed=21)
    img[:40, :50] = np.nan
    sarcodec.compress(img, tmp_path / "t.sarc", tile_size=128, overlap=8)
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of PyTorch fails
            "import numpy as np, sarcodec\n"
            "np.save(sys.argv[2], sarcodec.decompress(sys.argv[1]).array)\n"
            # the graphs are built without the onnx package, whose import costs ~1 s (ml_dtypes 0.7)
            "assert not [m for m in ('onnx', 'ml_dtypes') if m in sys.modules]\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.sarc"), str(tmp_path / "lite.npy")], check=True,
                   cwd=REPO)
    got = np.load(tmp_path / "lite.npy")
    np.testing.assert_array_equal(got, sarcodec.decompress(tmp_path / "t.sarc").array)  # the default path
    with_torch = sarcodec.decompress(tmp_path / "t.sarc", runtime="torch").array
    assert with_torch is not None
    np.testing.assert_array_equal(np.isnan(got), np.isnan(with_torch))
    ok = np.isfinite(got)
    np.testing.assert_allclose(got[ok], with_torch[ok], rtol=1e-4, atol=0)  # float rounding of the synthesis


def test_pixels_do_not_depend_on_the_number_of_threads(tmp_path: Path) -> None:
    img = speckle_intensity((600, 700), looks=1, seed=11)
    sarcodec.compress(img, tmp_path / "d.sarc", tile_size=256, overlap=16)
    code = ("import sys, numpy as np, sarcodec\n"
            "from sarcodec.codec.pipeline import set_cpu_workers\n"
            "set_cpu_workers(int(sys.argv[1]))\n"
            "np.save(sys.argv[3], sarcodec.decompress(sys.argv[2], runtime='onnx').array)\n")
    for threads in (1, 2, 16):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, "-c", code, str(threads), str(tmp_path / "d.sarc"),
                        str(tmp_path / f"{threads}.npy")], check=True, cwd=REPO, env=env)
    for threads in (2, 16):
        np.testing.assert_array_equal(np.load(tmp_path / "1.npy"), np.load(tmp_path / f"{threads}.npy"))


def test_runtime_choice_and_weights_without_the_integer_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = speckle_intensity((64, 64), seed=2)
    sarcodec.compress(img, tmp_path / "bounded.sarc", max_error=0.5)
    from sarcodec.codec import api

    assert isinstance(api._load(DEFAULT_CODEC, "cpu", "auto"), lite.LiteCodec)
    assert not isinstance(api._load(DEFAULT_CODEC, "cpu", "torch"), lite.LiteCodec)
    monkeypatch.setattr(api, "_gpu_possible", lambda: False)  # "auto" is the CPU where no GPU can be
    assert isinstance(api._load(DEFAULT_CODEC, "auto", "auto"), lite.LiteCodec)
    with pytest.raises(BadInputError, match="unknown runtime"):  # checked for every kind of file
        sarcodec.decompress(tmp_path / "bounded.sarc", runtime="bogus")
    sarcodec.compress(img, tmp_path / "old.sarc", model="hyperprior_v2")  # float64 probability path: PyTorch only
    assert lite.load_lite(*resolve_codec("hyperprior_v2")) is None
    assert sarcodec.decompress(tmp_path / "old.sarc").array is not None  # auto falls back to PyTorch
    with pytest.raises(BadInputError, match="runtime='torch'"):
        sarcodec.decompress(tmp_path / "old.sarc", runtime="onnx")
    with pytest.raises(BadInputError, match="runtime='torch'"):
        sarcodec.compress(img, tmp_path / "old2.sarc", model="hyperprior_v2", runtime="onnx")
    assert not (tmp_path / "old2.sarc").exists()
    with pytest.raises(BadInputError, match="unknown runtime"):
        sarcodec.decompress(tmp_path / "old.sarc", runtime="tensorflow")


def test_the_synthesis_in_strips_is_the_whole_tiles(codecs: tuple) -> None:
    _, decoder = codecs
    y = np.random.default_rng(4).normal(0.0, 2.0, (48, 2 * lite._STRIP + 9, 21)).astype(np.float32)  # 3 strips
    whole = decoder.model.session.run(["y"], {"x": y[None]})[0]
    strips = decoder.model.synthesize(y)
    assert strips.shape == whole.shape
    np.testing.assert_allclose(strips, whole, rtol=0, atol=1e-5)  # the strips see all the context they need


def test_weights_it_cannot_run_fall_back_to_pytorchs_error(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from sarcodec.errors import IncompatibleModelError

    _, path = resolve_codec(DEFAULT_CODEC)
    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata()
    state = load_file(str(path))
    del state["integer_hyper.rescale1"]
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken), metadata=metadata)
    assert lite.load_lite("broken", broken) is None
    sarcodec.compress(speckle_intensity((32, 32), seed=3), tmp_path / "b.sarc")
    with pytest.raises(IncompatibleModelError):  # the PyTorch loader's one-line error, not a KeyError
        sarcodec.decompress(tmp_path / "b.sarc", model=broken)


def test_overlapping_single_thread_blocks_share_one_setting_and_restore_it() -> None:
    before = torch.get_num_threads()
    first, second = single_thread(), single_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first tile ends while the second still runs
    assert torch.get_num_threads() == 1
    second.__exit__(None, None, None)
    assert torch.get_num_threads() == before
