"""Codec training in the one training loop (``objective: rd``): a loadable, working codec comes out, runs resume
bitwise exactly, fine-tuning starts from given weights, the speckle augmentation, and config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sarcodec.models.codecs import HyperpriorCodec
from sarcodec.codec.registry import load_codec
from sarcodec.errors import BadInputError, IncompatibleModelError
from sarcodec.train import config_from_dict, load_checkpoint, load_config, load_model_from_checkpoint, train
from sarcodec.train.config import TrainConfig
from sarcodec.train.objectives import add_speckle, load_patches, patch_db_ranges

TINY_CODEC: dict[str, Any] = {
    "run_name": "tiny_codec",
    "objective": "rd",
    "model": {"name": "hyperprior", "latent_channels": 6, "base_channels": 8, "hyper_channels": 8,
              "hyper_latent_channels": 4, "lambdas": [20.0, 200.0]},
    "data": {"batch_size": 4, "num_workers": 0},
    "optim": {"lr": 1.0e-3, "weight_decay": 0.0, "warmup_epochs": 0.5, "min_lr": 1.0e-5},
    "rd": {"speckle_prob": 0.5, "val_patches": 8},
    "epochs": 2,
    "train_batches_per_epoch": 3,
    "device": "cpu",
    "num_sample_images": 1,
    "log_every_n_steps": 1,
}


def _config(dataset: Path, out: Path, *pairs: tuple[str, Any]) -> TrainConfig:
    return config_from_dict(TINY_CODEC, [("data.root", str(dataset)), ("output_dir", str(out)), *pairs])


def _quiet(_: str) -> None:
    pass


def test_a_run_writes_a_loadable_codec(tiny_dataset: Path, tmp_path: Path) -> None:
    result = train(_config(tiny_dataset, tmp_path / "run"), log=_quiet)
    entry = result.history[-1]
    assert result.epochs_completed == 2 and entry["step"] == 6
    assert entry["val_bpp"] > 0 and entry["val_psnr"] > 0 and entry["val_loss"] > entry["val_bpp"]
    path = tmp_path / "run" / "tiny_codec.safetensors"
    codec = load_codec(path)
    assert codec.num_levels == 2 and codec.metadata["codec"] == "hyperprior"
    # the exact integer hyper-decoder, calibrated on validation patches, ships with the weights
    assert codec.model.integer_hyper is not None
    assert json.loads(codec.metadata["integer_hyper"])["calibration"] == "validation patches"
    training = json.loads(codec.metadata["training"])
    assert training["best_epoch"] == result.best_epoch and training["epochs"] == 2
    assert [row["quality"] for row in training["val_levels"]] == [1, 2]
    assert training["val_levels"][0]["bpp"] < training["val_levels"][1]["bpp"]  # the higher level spends more bits
    x = torch.rand(1, 1, 32, 40)
    assert codec.model.decompress_tile(codec.model.compress_tile(x, 2), 32, 40, 2).shape == (1, 1, 32, 40)
    # the exported weights are the best epoch's
    best = load_checkpoint(tmp_path / "run" / "best.pth")
    exported = codec.model.state_dict()
    assert all(torch.equal(best["model_state_dict"][k], exported[k]) for k in best["model_state_dict"]
               if "table_" not in k)
    # the checkpoint rebuilds the codec, and says which objective trained it
    assert best["objective"] == "rd" and "aux_optimizer_state_dict" in best
    assert isinstance(load_model_from_checkpoint(tmp_path / "run" / "best.pth"), HyperpriorCodec)
    from sarcodec.bench.sweep import _seed_codecs

    with pytest.raises(BadInputError, match="not a seed-study autoencoder checkpoint"):
        _seed_codecs([str(tmp_path / "run")])


def test_an_interrupted_run_resumes_bitwise(tiny_dataset: Path, tmp_path: Path) -> None:
    whole = train(_config(tiny_dataset, tmp_path / "whole"), log=_quiet)
    train(_config(tiny_dataset, tmp_path / "split", ("epochs", 1)), log=_quiet)
    resumed = train(_config(tiny_dataset, tmp_path / "split"), resume="auto", log=_quiet)
    assert resumed.epochs_completed == whole.epochs_completed == 2
    a = load_checkpoint(tmp_path / "whole" / "last.pth")
    b = load_checkpoint(tmp_path / "split" / "last.pth")
    for key, value in a["model_state_dict"].items():
        assert torch.equal(value, b["model_state_dict"][key]), key
    assert a["history"][-1]["val_loss"] == b["history"][-1]["val_loss"]


def test_fine_tuning_starts_from_given_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    train(_config(tiny_dataset, tmp_path / "first", ("epochs", 1)), log=_quiet)
    start = tmp_path / "first" / "tiny_codec.safetensors"
    lines: list[str] = []
    train(_config(tiny_dataset, tmp_path / "second", ("epochs", 1), ("rd.init", str(start)), ("optim.lr", 1e-12), ("optim.min_lr", 0.0),
                  ("rd.aux_lr", 1e-12)), log=lines.append)
    assert any(line.startswith("initialised from") for line in lines)
    before = load_codec(start).model.state_dict()
    after = load_checkpoint(tmp_path / "second" / "last.pth")["model_state_dict"]
    assert torch.allclose(before["analysis.0.weight"], after["analysis.0.weight"], atol=1e-6)
    # another architecture's weights are refused
    with pytest.raises(Exception, match="rd.init"):
        train(_config(tiny_dataset, tmp_path / "third", ("model.latent_channels", 5), ("rd.init", str(start))),
              log=_quiet)


def test_a_context_model_trains_over_fixed_transforms(tiny_dataset: Path, tmp_path: Path) -> None:
    """A checkerboard context over a trained hyperprior starts as exactly that hyperprior (its correction is zero),
    and rd.train_only trains the context alone."""
    from sarcodec.models.codecs import create_codec

    train(_config(tiny_dataset, tmp_path / "first", ("epochs", 1)), log=_quiet)
    start = tmp_path / "first" / "tiny_codec.safetensors"
    base = load_codec(start).model.eval()
    context = create_codec("hyperprior_checkerboard", **base.config, context_channels=4).eval()
    context.load_state_dict({k: v for k, v in base.state_dict().items()
                             if not k.startswith("integer_hyper.") and "table_" not in k}, strict=False)
    x, q = torch.rand(3, 1, 32, 32), torch.tensor([1.0, 1.5, 2.0])
    with torch.no_grad():
        a, b = base(x, q), context(x, q)
    assert torch.equal(a["x_hat"], b["x_hat"])
    assert all(torch.equal(u, v) for u, v in zip(a["likelihoods"], b["likelihoods"]))
    pairs = [("model.name", "hyperprior_checkerboard"), ("model.context_channels", 4), ("rd.init", str(start)),
             ("epochs", 1)]
    train(_config(tiny_dataset, tmp_path / "ctx", *pairs, ("rd.train_only", "context,context_parameters")),
          log=_quiet)
    after = load_checkpoint(tmp_path / "ctx" / "last.pth")["model_state_dict"]
    before = base.state_dict()
    for key in ("analysis.0.weight", "synthesis.4.bias", "hyper_synthesis.0.weight", "log_gain",
                "hyper_density.matrices.0"):
        assert torch.equal(before[key], after[key]), key
    moved = after["context_parameters.2.weight"].abs().flatten(1).sum(1)  # from zero: the means' rows and the scales'
    assert moved[:6].sum() > 0 and moved[6:].sum() > 0  # (the context's means learn from the rate's noisy latents)
    with pytest.raises(BadInputError, match="rd.train_only names contxt"):
        train(_config(tiny_dataset, tmp_path / "bad", *pairs, ("rd.train_only", "contxt")), log=_quiet)

    with pytest.raises(IncompatibleModelError, match="no exact integer form"):  # training only, so far
        load_codec(tmp_path / "ctx" / "tiny_codec.safetensors").model.compress_tile(x[:1], 1)


def test_a_narrower_synthesis_decodes_the_same_symbols(tiny_dataset: Path, tmp_path: Path) -> None:
    """A synthesis of fewer channels trained alone from rd.init's (narrowed to its most active channels): the
    export keeps rd.init's tables and integer hyper-decoder, so it writes rd.init's entropy-coded words, and only
    the synthesis and the inverse gains moved."""
    train(_config(tiny_dataset, tmp_path / "first", ("epochs", 1)), log=_quiet)
    start = tmp_path / "first" / "tiny_codec.safetensors"
    lines: list[str] = []
    train(_config(tiny_dataset, tmp_path / "slim", ("epochs", 1), ("rd.init", str(start)),
                  ("model.synthesis_channels", 5), ("rd.train_only", "synthesis,log_inverse_gain")), log=lines.append)
    assert any("synthesis narrowed to channels" in line for line in lines)
    assert any("kept from" in line and "the same symbols" in line for line in lines)
    base, slim = load_codec(start), load_codec(tmp_path / "slim" / "tiny_codec.safetensors")
    assert slim.model.config["synthesis_channels"] == 5 and slim.model.synthesis[0].out_channels == 5
    before, after = base.model.state_dict(), slim.model.state_dict()
    for key, value in before.items():
        if not key.startswith("synthesis.") and key != "log_inverse_gain":  # tables, integer hyper-decoder included
            assert torch.equal(value, after[key]), key
    assert not torch.equal(before["log_inverse_gain"], after["log_inverse_gain"])
    assert json.loads(slim.metadata["integer_hyper"])["kept from"] == str(start)
    x = torch.rand(1, 1, 32, 40)
    words = base.model.compress_tile(x, 1.5)
    assert slim.model.compress_tile(x, 1.5) == words
    assert slim.model.decompress_tile(words, 32, 40, 1.5).shape == (1, 1, 32, 40)
    with pytest.raises(IncompatibleModelError, match="not widen it to 9"):
        train(_config(tiny_dataset, tmp_path / "wide", ("rd.init", str(start)), ("model.synthesis_channels", 9)),
              log=_quiet)
    # without rd.train_only the run may change the symbols: new tables and a new calibration
    train(_config(tiny_dataset, tmp_path / "all", ("epochs", 1), ("rd.init", str(start)),
                  ("model.synthesis_channels", 5)), log=_quiet)
    calibration = json.loads(load_codec(tmp_path / "all" / "tiny_codec.safetensors").metadata["integer_hyper"])
    assert calibration["calibration"] == "validation patches"


def test_a_narrower_hyper_decoder_trains_its_means_and_decodes_without_pytorch(tiny_dataset: Path,
                                                                              tmp_path: Path) -> None:
    """A hyper-decoder of fewer hidden channels trained from rd.init's (with the synthesis, over the frozen encoder):
    its means and scales learn (the latents' rate stays the noisy proxy, so the means get a gradient), the encoder
    does not move, the export makes new tables and an integer hyper-decoder of the new width, and its files decode
    alike with PyTorch and without it."""
    from sarcodec.codec import lite

    train(_config(tiny_dataset, tmp_path / "first", ("epochs", 1)), log=_quiet)
    start = tmp_path / "first" / "tiny_codec.safetensors"
    lines: list[str] = []
    train(_config(tiny_dataset, tmp_path / "slim", ("epochs", 1), ("rd.init", str(start)),
                  ("model.hyper_synthesis_channels", 5), ("optim.lr", 1e-2),
                  ("rd.train_only", "hyper_synthesis,synthesis,log_inverse_gain")), log=lines.append)
    assert any("hyper_synthesis narrowed to channels" in line for line in lines)
    base = load_codec(start)
    path = tmp_path / "slim" / "tiny_codec.safetensors"
    slim = load_codec(path)
    assert json.loads(slim.metadata["integer_hyper"])["calibration"] == "validation patches"
    assert slim.model.config["hyper_synthesis_channels"] == 5 and slim.model.hyper_synthesis[0].out_channels == 5
    assert slim.model.integer_hyper is not None and slim.model.integer_hyper.weight2.shape[1] == 5
    before, after = base.model.state_dict(), slim.model.state_dict()
    for key in ("analysis.0.weight", "hyper_analysis.4.weight", "hyper_density.matrices.0", "log_gain"):
        assert torch.equal(before[key], after[key]), key
    # the last layer's biases are kept whole when it narrows: means (its first 6 outputs) and scales both learnt
    moved = (slim.model.hyper_synthesis[4].bias - base.model.hyper_synthesis[4].bias).abs()
    assert moved[:6].sum() > 0 and moved[6:].sum() > 0
    decoder = lite.load_lite("slim", path)
    assert decoder is not None
    x = torch.rand(1, 1, 32, 40)
    words = slim.model.compress_tile(x, 1.5)
    expected = slim.model.decompress_tile(words, 32, 40, 1.5).numpy()
    np.testing.assert_allclose(decoder.model.decompress_tile(words, 32, 40, 1.5), expected, atol=1e-5)
    with pytest.raises(IncompatibleModelError, match="hyper_synthesis of 8 channels: a run can narrow it, not widen"):
        train(_config(tiny_dataset, tmp_path / "wide", ("rd.init", str(start)),
                      ("model.hyper_synthesis_channels", 9)), log=_quiet)


def test_narrowing_a_hyper_decoder_keeps_its_most_active_channels() -> None:
    from sarcodec.train.narrow import narrow_hyper_synthesis

    torch.manual_seed(0)
    source = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0)).eval()
    same = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0)).eval()
    narrow = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0), hyper_synthesis_channels=3).eval()
    x = torch.rand(2, 1, 64, 64)
    assert [k.tolist() for k in narrow_hyper_synthesis(source, same, x)] == [list(range(8))] * 2
    z = torch.round(torch.randn(1, 4, 4, 4) * 3)
    with torch.no_grad():
        assert torch.equal(source.hyper_synthesis(z), same.hyper_synthesis(z))
    first, second = narrow_hyper_synthesis(source, narrow, x)
    with torch.no_grad():
        s = source.hyper_synthesis
        hidden = [s[1](s[0](source.hyper_density.coded_values(source.hyper_analysis(
            source.analysis(x) * source.gains(torch.tensor([level]))[0])))) for level in (1.0, 2.0)]
        energy = [sum((h**2).mean(dim=(0, 2, 3)) for h in hidden),
                  sum((s[3](s[2](h)) ** 2).mean(dim=(0, 2, 3)) for h in hidden)]
    assert [set(k.tolist()) for k in (first, second)] == [set(e.topk(3).indices.tolist()) for e in energy]
    assert torch.equal(narrow.hyper_synthesis[0].weight, s[0].weight[:, first])  # ConvTranspose2d: (C_in, C_out, ..)
    assert torch.equal(narrow.hyper_synthesis[2].weight, s[2].weight[first][:, second])
    assert torch.equal(narrow.hyper_synthesis[4].weight, s[4].weight[:, second])  # Conv2d: (C_out, C_in, ..)
    assert torch.equal(narrow.hyper_synthesis[4].bias, s[4].bias)
    with pytest.raises(ValueError, match="cannot narrow"):
        narrow_hyper_synthesis(source, HyperpriorCodec(8, 5, 8, 4, (20.0, 200.0), hyper_synthesis_channels=3), x)


def test_narrowing_to_the_same_width_is_the_same_synthesis() -> None:
    from sarcodec.train.narrow import decoder_latents, narrow_synthesis

    torch.manual_seed(0)
    source = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0)).eval()
    same = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0)).eval()
    narrow = HyperpriorCodec(8, 6, 8, 4, (20.0, 200.0), synthesis_channels=3).eval()
    x, q = torch.rand(2, 1, 32, 32), torch.tensor([1.0, 2.0])
    kept = narrow_synthesis(source, same, x)
    assert [k.tolist() for k in kept] == [list(range(8))] * 2
    with torch.no_grad():
        h = decoder_latents(source, x, q)
        assert torch.equal(source.synthesis(h), same.synthesis(h))
    first, second = narrow_synthesis(source, narrow, x)
    with torch.no_grad():  # the kept channels are the most active ones, over both quality levels
        s = source.synthesis
        hidden = [s[1](s[0](decoder_latents(source, x, torch.full((2,), level)))) for level in (1.0, 2.0)]
        energy = [sum((h**2).mean(dim=(0, 2, 3)) for h in hidden),
                  sum((s[3](s[2](h)) ** 2).mean(dim=(0, 2, 3)) for h in hidden)]
    assert [set(k.tolist()) for k in (first, second)] == [set(e.topk(3).indices.tolist()) for e in energy]
    assert torch.equal(narrow.synthesis[2].weight, source.synthesis[2].weight[first][:, second])
    assert torch.equal(narrow.synthesis[3].gamma, source.synthesis[3].gamma[second][:, second])
    with pytest.raises(ValueError, match="cannot narrow"):
        narrow_synthesis(source, HyperpriorCodec(8, 5, 8, 4, (20.0, 200.0), synthesis_channels=3), x)


def test_config_errors_name_the_key(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="objective must be one of autoencoder, rd"):
        _config(tiny_dataset, tmp_path, ("objective", "gan"))
    with pytest.raises(BadInputError, match="unknown codec architecture 'residual'"):
        _config(tiny_dataset, tmp_path, ("model.name", "residual"))
    with pytest.raises(BadInputError, match="rd.speckle_prob must be between 0 and 1"):
        _config(tiny_dataset, tmp_path, ("rd.speckle_prob", 1.5))
    with pytest.raises(BadInputError, match="precision must be auto or fp32 for objective rd"):
        _config(tiny_dataset, tmp_path, ("precision", "bf16"))


CODEC_CONFIGS = Path(__file__).parents[2] / "configs" / "codec"


@pytest.mark.parametrize("name", sorted(p.stem for p in CODEC_CONFIGS.glob("*.yaml")))
def test_shipped_codec_configs_load(name: str) -> None:
    config = load_config(CODEC_CONFIGS / f"{name}.yaml")
    assert config.objective == "rd" and config.model.name in ("hyperprior", "factorized", "hyperprior_checkerboard")
    assert config.run_name == name  # the exported file is named after the config
    init = config.rd.init  # shipped weights that exist, or another run's output
    assert init is None or init.startswith("outputs/") or (CODEC_CONFIGS.parents[1] / init).is_file(), init


def test_add_speckle_keeps_range_and_adds_variance(tiny_dataset: Path) -> None:
    x = load_patches(tiny_dataset, "train")[:6]
    spans = patch_db_ranges(tiny_dataset, "train")[:6]
    y = add_speckle(x, spans, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert spans.shape == (6,) and bool((spans > 0).all())
    hp = lambda t: (t[..., 1:, :] - t[..., :-1, :]).pow(2).mean()  # noqa: E731 (high-frequency energy)
    assert float(hp(y)) > float(hp(x))


def test_resume_keeps_the_configured_aux_lr_and_rewrites_a_missing_export(tiny_dataset: Path, tmp_path: Path) -> None:
    train(_config(tiny_dataset, tmp_path / "run", ("epochs", 1)), log=_quiet)
    export = tmp_path / "run" / "tiny_codec.safetensors"
    export.unlink()  # as if the run was killed while exporting
    lines: list[str] = []
    train(_config(tiny_dataset, tmp_path / "run", ("epochs", 1)), resume="auto", log=lines.append)
    assert any(line.startswith("nothing to do") for line in lines) and export.is_file()
    train(_config(tiny_dataset, tmp_path / "run", ("rd.aux_lr", 5e-4)), resume="auto", log=_quiet)
    assert load_checkpoint(tmp_path / "run" / "last.pth")["aux_optimizer_state_dict"]["param_groups"][0]["lr"] == 5e-4
    # a fresh run in the same folder never leaves the earlier export behind
    (tmp_path / "run" / "tiny_codec.safetensors").write_bytes(b"stale")
    train(_config(tiny_dataset, tmp_path / "run", ("epochs", 1)), overwrite=True, log=_quiet)
    assert load_codec(tmp_path / "run" / "tiny_codec.safetensors").num_levels == 2


def test_weight_decay_touches_only_convolution_kernels(tiny_dataset: Path, tmp_path: Path) -> None:
    from sarcodec.train.objectives import make_objective

    config = _config(tiny_dataset, tmp_path)
    objective = make_objective(config)
    model = objective.build(config.model)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in objective.decayed(model))
    assert decayed and all(n.endswith(".weight") and "gamma" not in n for n in decayed)
    assert not any("gain" in n or "density" in n or "quantiles" in n for n in decayed)
    main = objective.main_parameters(model)
    assert [names[id(p)] for p in main] == [n for n, _ in model.named_parameters() if not n.endswith("quantiles")]


def test_evaluate_refuses_a_codec_checkpoint(tiny_dataset: Path, scene_dir: Path, tmp_path: Path) -> None:
    from sarcodec.evaluate import evaluate_checkpoints

    train(_config(tiny_dataset, tmp_path / "run", ("epochs", 1)), log=_quiet)
    with pytest.raises(BadInputError, match="a codec's training checkpoint"):
        evaluate_checkpoints([tmp_path / "run"], [scene_dir], tmp_path / "eval", log=_quiet)


def test_add_speckle_draws_only_from_the_generator_it_is_given(tiny_dataset: Path) -> None:
    """Same seed, same speckle, whatever PyTorch's global generator did in between (compare_codecs_val.py's
    speckled validation set must be the same in every run)."""
    x = load_patches(tiny_dataset, "train")[:4]
    spans = patch_db_ranges(tiny_dataset, "train")[:4]
    first = add_speckle(x, spans, torch.Generator().manual_seed(1))
    torch.rand(1000)  # moves the global generator
    torch.manual_seed(12345)
    torch.testing.assert_close(add_speckle(x, spans, torch.Generator().manual_seed(1)), first, rtol=0, atol=0)
    assert not torch.equal(add_speckle(x, spans, torch.Generator().manual_seed(2)), first)


@pytest.mark.parametrize("looks", [1, 2, 3])
def test_looks_speckle_has_the_l_look_gamma_moments(looks: int) -> None:
    """Unit mean, variance 1/L (the L-look intensity speckle), nonnegative."""
    from sarcodec.train.objectives import looks_speckle

    g = looks_speckle(torch.full((1, 1, 1, 1), float(looks)), (1, 1, 400, 500), torch.Generator().manual_seed(0))
    assert g.shape == (1, 1, 400, 500) and float(g.min()) >= 0
    assert abs(float(g.mean()) - 1) < 0.01
    assert abs(float(g.var()) - 1 / looks) < 0.02


def test_compare_codecs_val_script_per_scene(tiny_dataset: Path) -> None:
    """scripts/compare_codecs_val.py: a codec against itself is 0 % on the whole split and on every scene; all
    patches with --patches 0."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "compare_codecs_val.py"), "factorized", "factorized",
                           "--data", str(tiny_dataset), "--patches", "0", "--by-scene"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    total = len(np.load(tiny_dataset / manifest["files"]["val"]["index"]))
    whole = [ln for ln in proc.stdout.splitlines() if "BD-rate of B vs A" in ln]
    assert len(whole) == 2 and all("+0.00 %" in ln and f"({total} patches)" in ln for ln in whole)
    scenes = [ln for ln in proc.stdout.splitlines() if "  scene " in ln]
    val_scenes = {manifest["images"][int(i)]["scene"]
                  for i in np.load(tiny_dataset / manifest["files"]["val"]["index"])[:, 0]}
    assert len(scenes) == 2 * len(val_scenes) and all("+0.00 %" in ln for ln in scenes)
