"""The training loop on a tiny dataset: complete checkpoints, exact resume, early stopping, the NaN guard."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

import sarcodec.train.objectives as objectives_module
import sarcodec.train.trainer as trainer_module
from sarcodec.errors import BadInputError, IncompatibleModelError
from sarcodec.losses import CombinedLoss
from sarcodec.train import NonFiniteLossError, TrainConfig, load_checkpoint, load_model_from_checkpoint, train

MakeConfig = Callable[..., TrainConfig]

CHECKPOINT_KEYS = {
    "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict", "epoch", "step",
    "best_val_loss", "epochs_without_improvement", "config", "model_name", "model_config", "preprocessing_params",
    "history", "rng_state",
}
HISTORY_KEYS = {"epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr", "seconds"}


def _quiet(msg: str) -> None:
    pass


def test_one_epoch_writes_complete_checkpoints(make_config: MakeConfig, tiny_dataset: Path) -> None:
    config = make_config("run")
    result = train(config, log=_quiet)
    out = result.output_dir
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("events")) == [
        "best.pth", "config.yaml", "history.json", "last.pth"]
    for name in ("best.pth", "last.pth"):
        ckpt = torch.load(out / name, weights_only=True)  # nothing in it needs pickle
        assert CHECKPOINT_KEYS <= set(ckpt)
        assert ckpt["epoch"] == 1 and ckpt["step"] == 9  # 72 train patches / batch 8
        assert ckpt["history"][-1]["epoch"] == ckpt["epoch"]  # not one epoch behind (the seed study's bug)
        assert HISTORY_KEYS <= set(ckpt["history"][-1])
        assert set(ckpt["rng_state"]) == {"torch", "cuda", "numpy", "python"}
        assert ckpt["model_name"] == "residual" and ckpt["model_config"]["base_channels"] == 8
        assert ckpt["config"]["data"]["root"] == str(tiny_dataset)
        manifest = json.loads((tiny_dataset / "manifest.json").read_text())
        assert ckpt["preprocessing_params"] == manifest["preprocessing_params"]
        assert math.isfinite(ckpt["best_val_loss"]) and ckpt["epochs_without_improvement"] == 0
    h = json.loads((out / "history.json").read_text())
    assert h == load_checkpoint(out / "last.pth")["history"]
    entry = h[0]
    assert 0 < entry["val_ssim"] < 1 and 5 < entry["val_psnr"] < 60 and entry["val_patches"] == 18
    model = load_model_from_checkpoint(out / "best.pth")
    assert not model.training and model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    # the benchmark's latent coder takes the run directory as well as the checkpoint
    from sarcodec.bench.sweep import _seed_codecs

    assert list(_seed_codecs([str(out)])) == ["seed-run"] and list(_seed_codecs([str(out / "best.pth")])) == ["seed-run"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out)).Reload()
    assert {"epoch/val_loss", "epoch/val_psnr", "train/loss"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == ["val/original_vs_reconstruction"]


def test_autoencoders_clip_and_decay_as_before(make_config: MakeConfig) -> None:
    """All parameters, in the model's order (the clipping norm's summation order), decay on tensors of 2+ dims."""
    from sarcodec.train.objectives import make_objective

    config = make_config("run")
    objective = make_objective(config)
    model = objective.build(config.model)
    assert [id(p) for p in objective.main_parameters(model)] == [id(p) for p in model.parameters()]
    assert {id(p) for p in objective.decayed(model)} == {id(p) for p in model.parameters() if p.dim() >= 2}


def test_best_checkpoint_is_the_best_epoch(make_config: MakeConfig) -> None:
    result = train(make_config("run", epochs=3, limit_batches=2), log=_quiet)
    best = load_checkpoint(result.output_dir / "best.pth")
    last = load_checkpoint(result.output_dir / "last.pth")
    losses = [h["val_loss"] for h in last["history"]]
    assert best["epoch"] == 1 + losses.index(min(losses)) == result.best_epoch
    assert best["history"][-1]["epoch"] == best["epoch"] and len(best["history"]) == best["epoch"]
    assert last["epoch"] == 3 and last["step"] == 6 and best["best_val_loss"] == min(losses)


def _interrupt_after(epoch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the run (KeyboardInterrupt) right after it wrote last.pth of ``epoch``."""
    real_save = trainer_module.save_checkpoint  # type: ignore[attr-defined]

    def save(state: dict[str, Any], path: Path) -> Path:
        written = real_save(state, path)
        if Path(path).name == "last.pth" and state["epoch"] == epoch:
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key, value in a["model_state_dict"].items():
        assert torch.equal(value, b["model_state_dict"][key]), key
    for pid, state in a["optimizer_state_dict"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer_state_dict"]["state"][pid][name]), (pid, name)
    for key in ("epoch", "step", "best_val_loss", "best_epoch", "epochs_without_improvement", "scheduler_state_dict",
                "scaler_state_dict"):
        assert a[key] == b[key], key
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]]


PLATEAU = ("optim.schedule=plateau", "optim.plateau_patience=0", "optim.warmup_epochs=0",
           "early_stopping.min_delta=10")  # no improvement after epoch 1: the LR halves after epochs 2 and 3


@pytest.mark.parametrize("num_workers, schedule", [(0, ()), pytest.param(2, PLATEAU, marks=pytest.mark.slow)],
                         ids=["workers0-cosine", "workers2-plateau"])
def test_exact_resume(make_config: MakeConfig, num_workers: int, schedule: tuple[str, ...],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """3 epochs straight == 2 epochs, killed, resumed for the 3rd: same weights, optimizer, LR state, history."""
    sets = (f"data.num_workers={num_workers}", "data.augment=true", *schedule)
    straight = train(make_config("straight", *sets, epochs=3, limit_batches=4), log=_quiet)

    config = make_config("interrupted", *sets, epochs=3, limit_batches=4)
    with monkeypatch.context() as m:
        _interrupt_after(2, m)
        with pytest.raises(KeyboardInterrupt):
            train(config, log=_quiet)
    assert load_checkpoint(config.resolved_output_dir / "last.pth")["epoch"] == 2
    resumed = train(config, resume="auto", log=_quiet)
    assert resumed.epochs_completed == 3

    a = load_checkpoint(straight.output_dir / "last.pth")
    b = load_checkpoint(resumed.output_dir / "last.pth")
    _assert_same_state(a, b)
    if schedule:
        assert a["scheduler_state_dict"]["plateau"]["scale"] == 0.25

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(resumed.output_dir)).Reload()  # both runs' event files, each epoch once
    assert [e.step for e in events.Scalars("epoch/val_loss")] == [h["step"] for h in b["history"]] == [4, 8, 12]
    assert load_checkpoint(straight.output_dir / "best.pth")["epoch"] == load_checkpoint(
        resumed.output_dir / "best.pth")["epoch"]


def test_resume_keeps_the_early_stopping_counter(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    # min_delta 10: no epoch after the first counts as an improvement -> patience 2 stops after epoch 3
    sets = ("early_stopping.min_delta=10", "early_stopping.patience=2")
    straight = train(make_config("straight", *sets, epochs=6, limit_batches=1), log=_quiet)
    assert straight.stopped_early and straight.epochs_completed == 3

    config = make_config("interrupted", *sets, epochs=6, limit_batches=1)
    with monkeypatch.context() as m:
        _interrupt_after(2, m)
        with pytest.raises(KeyboardInterrupt):
            train(config, log=_quiet)
    resumed = train(config, resume=config.resolved_output_dir / "last.pth", log=_quiet)
    assert resumed.stopped_early and resumed.epochs_completed == 3
    again = train(config, resume="auto", log=_quiet)  # a finished run stays finished
    assert again.epochs_completed == 3 and load_checkpoint(config.resolved_output_dir / "last.pth")["epoch"] == 3


def test_run_directory_is_not_silently_reused(make_config: MakeConfig) -> None:
    config = make_config("run", limit_batches=1)
    train(config, log=_quiet)
    with pytest.raises(BadInputError, match="already holds a run.*--resume auto"):
        train(config, log=_quiet)
    train(config, overwrite=True, log=_quiet)
    assert len(list(config.resolved_output_dir.glob("events.out.tfevents.*"))) == 1
    other = make_config("run", "model.base_channels=4", limit_batches=1)
    with pytest.raises(IncompatibleModelError, match="base_channels=8"):
        train(other, resume="auto", log=_quiet)


class _NaNLoss(CombinedLoss):
    """CombinedLoss whose training losses are NaN on the steps listed in ``bad`` (1-based call count)."""

    bad: set[int] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
        out = super().forward(pred, target, mask)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls in self.bad or -1 in self.bad:
                out["loss"] = out["loss"] * math.nan
        return out


def test_nan_guard_skips_steps(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objectives_module, "CombinedLoss", _NaNLoss)
    monkeypatch.setattr(_NaNLoss, "bad", {2, 3, 5})
    result = train(make_config("run", max_nonfinite_steps=3), log=_quiet)
    entry = result.history[0]
    assert entry["nonfinite_steps"] == 3 and math.isfinite(entry["train_loss"]) and math.isfinite(entry["val_loss"])
    ckpt = load_checkpoint(result.output_dir / "last.pth")
    assert ckpt["step"] == 9  # skipped steps still advance the schedule's clock
    assert all(torch.isfinite(v).all() for v in ckpt["model_state_dict"].values() if v.is_floating_point())


def test_nan_guard_aborts_with_a_clear_error(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objectives_module, "CombinedLoss", _NaNLoss)
    monkeypatch.setattr(_NaNLoss, "bad", {-1})
    with pytest.raises(NonFiniteLossError, match="training diverged: 4 consecutive non-finite losses") as info:
        train(make_config("run", max_nonfinite_steps=4), log=_quiet)
    assert "\n" not in str(info.value)


def test_bf16_autocast_on_cpu_and_plateau_schedule(make_config: MakeConfig) -> None:
    result = train(make_config("run", "optim.schedule=plateau", "optim.plateau_patience=0", precision="bf16",
                               epochs=2, limit_batches=2), log=_quiet)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    ckpt = load_checkpoint(result.output_dir / "last.pth")
    assert ckpt["scheduler_state_dict"]["kind"] == "plateau" and "scale" in ckpt["scheduler_state_dict"]["plateau"]


def test_unusable_inputs(make_config: MakeConfig, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="precision fp16 needs CUDA"):
        train(make_config("a", precision="fp16"), log=_quiet)
    with pytest.raises(BadInputError, match="fewer than one batch"):
        train(make_config("b", "data.batch_size=100"), log=_quiet)
    with pytest.raises(BadInputError, match="not a sarcodec dataset"):
        train(make_config("c", ("data.root", str(tmp_path))), log=_quiet)
    with pytest.raises(BadInputError, match="no checkpoint to resume from"):
        train(make_config("d"), resume=tmp_path / "nope.pth", log=_quiet)


def test_short_epochs_and_time_budget(make_config: MakeConfig) -> None:
    result = train(make_config("short", "train_batches_per_epoch=2", "early_stopping.patience=null", epochs=5), log=_quiet)
    assert [h["step"] for h in result.history] == [2, 4, 6, 8, 10]  # 2 of the 9 batches per epoch
    assert all(h["val_patches"] == 18 for h in result.history)  # validation stays whole
    # a budget far below one epoch: stops after the first epoch whatever the machine's speed
    result = train(make_config("budget", "time_budget_minutes=1e-9", "early_stopping.patience=null", epochs=5), log=_quiet)
    assert len(result.history) == 1


def test_over_budget_rule() -> None:
    over = trainer_module._over_budget
    assert not over([], 1.0) and not over([{"seconds": 100.0}], None)
    assert not over([{"seconds": 20.0}, {"seconds": 20.0}], 1.0)  # 40 s spent + 20 s more = 60 s: fits
    assert over([{"seconds": 20.0}, {"seconds": 21.0}], 1.0)  # 41 + 21 > 60


def test_epochs_fitted_to_the_budget(make_config: MakeConfig) -> None:
    fit = trainer_module._fitted_epochs
    cfg = make_config("fit", "time_budget_minutes=1", "fit_epochs_to_budget=true", epochs=100)
    assert fit(cfg, []) == 100 and fit(cfg, [{"seconds": 9.0}]) == 100  # sized only after the second epoch
    # 0.9 * 60 s = 54 s; 12 s spent, 3 s an epoch: 14 more epochs
    assert fit(cfg, [{"seconds": 9.0}, {"seconds": 3.0}]) == 16
    assert fit(cfg, [{"seconds": 9.0}, {"seconds": 3.0}, {"seconds": 30.0}]) == 16  # later epochs change nothing
    assert fit(cfg, [{"seconds": 60.0}, {"seconds": 60.0}]) == 2  # never below the epochs already run
    assert fit(replace(cfg, epochs=10), [{"seconds": 1.0}, {"seconds": 1.0}]) == 10  # never above the config
    assert fit(replace(cfg, fit_epochs_to_budget=False), [{"seconds": 9.0}, {"seconds": 3.0}]) == 100
    with pytest.raises(BadInputError, match="time_budget_minutes"):
        make_config("nofit", "fit_epochs_to_budget=true").validate()


def test_fitted_run_ends_its_schedule_and_resumes_exactly(make_config: MakeConfig,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer follows the fit: 8 configured epochs fitted to 4 after epoch 2 end there with the LR at min_lr;
    interrupted after epoch 3 and resumed, the run gives the same state (the fit comes from the recorded history;
    here a fixed rule stands in for the clock)."""
    def fit(config: TrainConfig, history: list[dict[str, Any]]) -> int:
        return 4 if len(history) >= 2 else config.epochs

    monkeypatch.setattr(trainer_module, "_fitted_epochs", fit)
    sets = ("early_stopping.patience=null", "optim.min_lr=1e-5", "optim.warmup_epochs=0")
    straight = train(make_config("straight", *sets, epochs=8, limit_batches=2), log=_quiet)
    assert len(straight.history) == 4 and straight.history[-1]["lr"] > 1e-5
    config = make_config("interrupted", *sets, epochs=8, limit_batches=2)
    with monkeypatch.context() as m:
        _interrupt_after(3, m)
        with pytest.raises(KeyboardInterrupt):
            train(config, log=_quiet)
    resumed = train(config, resume="auto", log=_quiet)
    assert resumed.epochs_completed == 4
    a = load_checkpoint(straight.output_dir / "last.pth")
    _assert_same_state(a, load_checkpoint(resumed.output_dir / "last.pth"))
    assert a["scheduler_state_dict"]["total_steps"] == 8  # 4 epochs of 2 steps: the last step reaches min_lr


def test_a_run_never_writes_over_someone_elses_folder_or_a_running_run(make_config: MakeConfig, tiny_dataset: Path,
                                                                      tmp_path: Path) -> None:
    """A fresh run replaced the config.yaml and history.json of any folder without a checkpoint; two runs on one
    folder (one with --resume auto) interleaved their checkpoints; a broken dataset left a folder behind."""
    from sarcodec.errors import OutputError
    from sarcodec.train.run_dir import hold_run_lock, release_run_lock

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my precious config")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="no sarcodec run"):
            train(make_config("mine"), overwrite=overwrite, log=_quiet)
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml"]
    assert (mine / "config.yaml").read_text() == "my precious config"

    held = hold_run_lock(tmp_path / "busy")  # another process's run, as far as flock can tell
    try:
        with pytest.raises(OutputError, match="another training run is using it"):
            train(make_config("busy"), log=_quiet)
    finally:
        release_run_lock(held)
    assert list((tmp_path / "busy").iterdir()) == []
    result = train(make_config("busy"), log=_quiet)  # free again; and the lock file goes with the run
    assert not (result.output_dir / ".lock").exists()

    (tiny_dataset / "train_patches.npy").write_bytes((tiny_dataset / "train_patches.npy").read_bytes()[:200])
    with pytest.raises(BadInputError, match="not a complete sarcodec dataset"):
        train(make_config("broken"), log=_quiet)
    assert not (tmp_path / "broken").exists()
