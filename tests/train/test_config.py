"""Config files: typed loading, dotted overrides, the cpu block, and one-line errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarcodec.errors import BadInputError
from sarcodec.train import TrainConfig, config_from_dict, load_config
from sarcodec.train.config import parse_override

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPECTED = {
    "baseline_c16": ("baseline", 16), "resnet_lite_c16": ("resnet_lite", 16), "residual_v1_c16": ("residual", 16),
    "attention_c16": ("attention", 16), "baseline_c4": ("baseline", 4), "baseline_c8": ("baseline", 8),
    "baseline_c32": ("baseline", 32), "baseline_c64": ("baseline", 64),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_shipped_configs_load(name: str, device: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml", device=device)
    assert config.run_name == name
    assert (config.model.name, config.model.latent_channels) == EXPECTED[name]
    assert config.resolved_output_dir == Path("runs") / name
    assert (config.loss.mse_weight, config.loss.ssim_weight) == (0.7, 0.3)
    assert config.data.num_workers == (0 if device == "cpu" else 4)  # the cpu block


def test_no_other_configs() -> None:
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


def test_residual_config_is_the_seed_plan() -> None:
    config = load_config(CONFIGS / "residual_v1_c16.yaml", device="cuda")
    assert config.model.kwargs() == {"latent_channels": 16, "base_channels": 64, "blocks_per_stage": 2}
    assert config.model.name == "residual" and config.run_name == "residual_v1_c16"
    assert config.optim.lr == pytest.approx(1e-4) and config.optim.warmup_epochs == 5
    assert config.epochs == 30 and config.early_stopping.patience == 7
    assert config.data.batch_size == 32 and config.precision == "auto"  # -> fp16 + GradScaler on CUDA


def test_overrides_are_yaml_scalars_with_dotted_keys() -> None:
    config = load_config(CONFIGS / "residual_v1_c16.yaml", [
        "optim.lr=3e-4",  # PyYAML reads this as a string: the float field converts it
        "data.batch_size=8", "early_stopping.patience=null", "data.augment=false", "model.blocks_per_stage=1",
        "optim.betas=[0.8, 0.99]", ("data.root", "123"),
    ], device="cpu")
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)
    assert config.data.batch_size == 8 and config.early_stopping.patience is None and config.data.augment is False
    assert config.model.options == {"blocks_per_stage": 1}
    assert config.optim.betas == (0.8, 0.99)
    assert config.data.root == "123"  # typed pairs (CLI flags) are not parsed as YAML


def test_overrides_beat_the_cpu_block(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {batch_size: 32}\ncpu: {data: {batch_size: 8}, epochs: 2}\n")
    assert load_config(path, device="cpu").data.batch_size == 8
    assert load_config(path, device="cpu").epochs == 2
    assert load_config(path, device="cuda").data.batch_size == 32
    assert load_config(path, ["data.batch_size=4"], device="cpu").data.batch_size == 4
    assert load_config(path, ["cpu.data.batch_size=2"], device="cpu").data.batch_size == 2


@pytest.mark.parametrize("text, needle", [
    ("optim: {lrr: 0.1}\n", "unknown key optim.lrr (did you mean optim.lr?)"),
    ("epoch: 3\n", "unknown key epoch (did you mean epochs?)"),
    ("model: {name: residual, blocks: 2}\n", "does not take blocks"),
    ("model: {name: transformer}\n", "unknown model 'transformer'"),
    ("cpu: {data: {batchsize: 2}}\n", "unknown key cpu.data.batchsize"),  # a typo in the cpu block fails anywhere
    ("epochs: ten\n", "epochs must be an integer, got 'ten'"),
    ("epochs: 0\n", "epochs must be at least 1"),
    ("optim: {lr: -1}\n", "optim.lr must be a positive number"),
    ("optim: {schedule: step}\n", "optim.schedule must be one of cosine, plateau, constant"),
    ("data: 3\n", "data must be a mapping"),
    ("precision: fp8\n", "precision must be one of"),
    ("epochs: [1\n", "invalid YAML at line"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("", "the config is empty"),
    ("# only a comment\n", "the config is empty"),
])
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=None) as info:
        load_config(path, device="cpu")
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("override, needle", [
    ("data.batchsize=3", "unknown key data.batchsize (did you mean data.batch_size?)"),
    ("optim.lr", "--set expects KEY=VALUE"),
    ("=3", "--set expects KEY=VALUE"),
    ("epochs.x=1", "epochs is a value, not a section"),
    ("data.batch_size=many", "data.batch_size must be an integer"),
])
def test_bad_override(override: str, needle: str) -> None:
    with pytest.raises(BadInputError) as info:
        load_config(CONFIGS / "baseline_c16.yaml", [override], device="cpu")
    assert needle in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_and_frozen() -> None:
    config = load_config(CONFIGS / "attention_c16.yaml", ["optim.schedule=plateau"], device="cpu")
    assert config_from_dict(config.to_dict(), device="cpu") == config
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]
    assert TrainConfig().resolved_output_dir == Path("runs/run")


def test_parse_override() -> None:
    assert parse_override("a.b=1") == ("a.b", 1)
    assert parse_override("a=") == ("a", None)
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
