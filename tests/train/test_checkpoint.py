"""Checkpoint files: atomic writes, weights_only loading, clear errors on bad files, RNG state round trip."""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError
from sarcodec.models import create_model
from sarcodec.train import load_checkpoint, load_model_from_checkpoint, save_checkpoint
from sarcodec.train.checkpoint import capture_rng_state, restore_rng_state


def _state(model: torch.nn.Module) -> dict[str, Any]:
    return {"model_name": model.model_name, "model_config": model.config, "model_state_dict": model.state_dict()}


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_model("baseline", latent_channels=4, base_channels=4)
    path = save_checkpoint(_state(model), tmp_path / "last.pth")
    before = path.read_bytes()

    def fail(obj: object, f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(Exception, match="cannot write checkpoint .*No space left"):
        save_checkpoint(_state(model), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temporary file left


def test_save_refuses_what_needs_pickle(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\['x'\]\[0\]: float64"):
        save_checkpoint({"x": [np.float64(1.0)]}, tmp_path / "a.pth")
    assert not (tmp_path / "a.pth").exists()


def test_load_model_round_trip(tmp_path: Path) -> None:
    model = create_model("residual", latent_channels=4, base_channels=4, blocks_per_stage=1)
    path = save_checkpoint(_state(model), tmp_path / "best.pth")
    loaded = load_model_from_checkpoint(path)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    torch.load(path, weights_only=True)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(BadInputError, match="is a directory"):
        load_checkpoint(tmp_path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 100)
    good = save_checkpoint(_state(create_model("baseline", latent_channels=4, base_channels=4)), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    pickled = tmp_path / "pickled.pth"
    with open(pickled, "wb") as f:
        torch.save({"model_name": "baseline", "model_config": {}, "model_state_dict": {}, "x": Path("/")}, f)
    for path in (junk, truncated, pickled):
        with pytest.raises(CorruptFileError) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "pickled Python objects" in str(pytest.raises(CorruptFileError, load_checkpoint, pickled).value)
    text = tmp_path / "notes.pth"  # was "it holds pickled Python objects" too, and a truncated one "Errno 22"
    text.write_text("my notes")
    for path in (junk, truncated, text):
        assert "not a PyTorch checkpoint archive" in str(pytest.raises(CorruptFileError, load_checkpoint, path).value)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CorruptFileError, match="missing model_name, model_config, model_state_dict"):
        load_checkpoint(foreign)
    wrong = tmp_path / "wrong.pth"
    state = _state(create_model("baseline", latent_channels=4, base_channels=4))
    state["model_config"] = {"latent_channels": 8, "base_channels": 4}
    torch.save(state, wrong)
    with pytest.raises(IncompatibleModelError, match="weights do not fit"):
        load_model_from_checkpoint(wrong)


def test_rng_state_round_trip(tmp_path: Path) -> None:
    state = capture_rng_state()
    path = save_checkpoint({"rng": state, "model_name": "", "model_config": {}, "model_state_dict": OrderedDict()},
                           tmp_path / "rng.pth")
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    restore_rng_state(torch.load(path, weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), draws[0])
    assert np.array_equal(np.random.rand(3), draws[1])
    assert [random.random() for _ in range(3)] == draws[2]
