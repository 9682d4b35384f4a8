"""Training configuration: typed, frozen dataclasses loaded from YAML, with ``--set key=value`` overrides.

A config file is a YAML mapping whose sections mirror the dataclasses below (see ``configs/*.yaml``)::

    run_name: residual_v1_c16
    model: {name: residual, latent_channels: 16, base_channels: 64}   # other keys go to create_model
    data: {root: /path/to/dataset, batch_size: 32, num_workers: 4}
    optim: {lr: 1.0e-4, schedule: cosine, warmup_epochs: 5}
    loss: {mse_weight: 0.7, ssim_weight: 0.3}
    early_stopping: {patience: 7}
    epochs: 30
    cpu: {data: {batch_size: 8, num_workers: 0}}   # replaces those values when training runs on the CPU

Precedence, lowest first: dataclass defaults, the file, its ``cpu:`` block (only when the run's device is the
CPU), then overrides (``--set`` and the CLI's own flags). Unknown keys and wrongly typed values raise
:class:`~sarcodec.errors.BadInputError` naming the dotted key, so a typo never silently trains the default.
Override values are parsed as YAML scalars (``--set optim.lr=3e-4``, ``--set early_stopping.patience=null``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from sarcodec.errors import BadInputError, SarcodecError

__all__ = [
    "DataConfig",
    "EarlyStoppingConfig",
    "LossConfig",
    "ModelConfig",
    "RDConfig",
    "OptimConfig",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "parse_override",
    "resolve_device",
]

SCHEDULES = ("cosine", "plateau", "constant")
OBJECTIVES = ("autoencoder", "rd")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

Override = str | tuple[str, Any]


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build: ``create_model(name, latent_channels=..., base_channels=..., **options)`` (an
    autoencoder), or with ``objective: rd`` ``create_codec(name, channels=base_channels, ...)``.

    In YAML the section is flat: keys other than ``name``, ``latent_channels`` and ``base_channels`` (e.g.
    ``blocks_per_stage``) are collected into ``options`` and checked against the model's constructor. With
    ``objective: rd`` the name is a codec architecture (``sarcodec.models.codecs``: hyperprior, factorized) and
    ``base_channels`` is its transforms' ``channels``.
    """

    name: str = "residual"
    latent_channels: int = 16
    base_channels: int = 64
    options: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_model(self.name, **self.kwargs())``."""
        return {"latent_channels": self.latent_channels, "base_channels": self.base_channels, **self.options}


@dataclass(frozen=True)
class DataConfig:
    """The patch dataset and how it is batched. ``batch_size`` is per process (global = batch_size x world size)."""

    root: str | None = None  # a dataset made by `sarcodec prepare`; the CLI's --data sets it
    batch_size: int = 32
    val_batch_size: int | None = None  # None: batch_size
    num_workers: int = 4
    augment: bool = True  # random flips/90-degree rotations of training patches (dihedral group)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, linear warmup, then a cosine decay to ``min_lr``, a reduce-on-plateau, or a constant LR."""

    lr: float = 1e-4
    weight_decay: float = 1e-4  # applied to conv/linear weights only, not to biases and norm parameters
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: float = 5.0
    min_lr: float = 1e-6  # cosine floor, and the lowest LR plateau reductions reach
    plateau_factor: float = 0.5
    plateau_patience: int = 3  # epochs without improvement tolerated; one more multiplies the LR by plateau_factor
    grad_clip: float | None = 1.0  # max global L2 norm of the gradients; null: no clipping


@dataclass(frozen=True)
class LossConfig:
    """``CombinedLoss`` weights on the [0, 1] working representation."""

    mse_weight: float = 0.7
    ssim_weight: float = 0.3
    ms_ssim_weight: float = 0.0  # needs patches of at least 161 px
    mask_invalid: bool = True  # leave invalid (nodata) pixels out of the loss


@dataclass(frozen=True)
class RDConfig:
    """Rate-distortion training of the codecs (``objective: rd``; see ``objectives.py``)."""

    aux_lr: float = 1e-3  # Adam on the factorized densities' tail quantiles (constant rate)
    speckle_prob: float = 0.0  # share of training patches given extra 1..3-look speckle (objectives.add_speckle)
    init: str | None = None  # a codec .safetensors to start from (fine-tuning): its architecture, or one extending it
    val_patches: int = 512  # validation patches of the per-level bpp/PSNR table stored with the exported weights
    # comma-separated modules to train, the rest frozen (e.g. "context,context_parameters": a context model over
    # fixed transforms, fine-tuned from rd.init); null: all
    train_only: str | None = None


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop after ``patience`` epochs whose val_loss is not below the best by more than ``min_delta``."""

    patience: int | None = 7  # null: never stop early
    min_delta: float = 0.0  # also the plateau schedule's threshold: one definition of "improved"


@dataclass(frozen=True)
class TrainConfig:
    """One training experiment. See the module docstring for the YAML layout and override rules."""

    run_name: str = "run"
    objective: str = "autoencoder"  # autoencoder (sarcodec.models, CombinedLoss) | rd (sarcodec.models.codecs, lambda*MSE+bpp)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    rd: RDConfig = field(default_factory=RDConfig)
    epochs: int = 30
    seed: int = 0
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (fp16 autocast + GradScaler on CUDA for autoencoders, else fp32) | fp32 | fp16 | bf16
    deterministic: bool = False  # deterministic CUDA kernels (slower); CPU runs are deterministic anyway
    output_dir: str | None = None  # None: runs/<run_name>
    limit_batches: int | None = None  # cap on train and val batches per epoch (smoke tests)
    train_batches_per_epoch: int | None = None  # shorter epochs (more frequent validation); val stays whole
    time_budget_minutes: float | None = None  # stop after the epoch that would overrun this training time
    # with time_budget_minutes: after epoch 2, lower `epochs` to what the budget holds at epoch 2's pace, so the
    # LR schedule runs to its end inside the budget (a GPU call of fixed length; trainer._fitted_epochs)
    fit_epochs_to_budget: bool = False
    log_every_n_steps: int = 20
    num_sample_images: int = 4  # val reconstructions shown in TensorBoard each epoch
    max_nonfinite_steps: int = 20  # abort after this many consecutive NaN/Inf losses or gradients
    cpu: dict[str, Any] = field(default_factory=dict)  # a partial config applied when running on the CPU

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, no tuples) that ``config_from_dict`` turns back into this config."""
        out = _plain(dataclasses.asdict(self))
        model = out.pop("model")
        out["model"] = {k: v for k, v in model.items() if k != "options"} | model["options"]
        return dict(sorted(out.items(), key=lambda kv: _FIELD_ORDER.index(kv[0])))

    @property
    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.run_name

    def validate(self) -> None:
        """Check value ranges and that the model can be built; raises BadInputError naming the key."""
        checks: list[tuple[str, bool, str]] = [
            ("run_name", bool(self.run_name) and "/" not in self.run_name, "a non-empty name without '/'"),
            ("objective", self.objective in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
            ("rd.aux_lr", self.rd.aux_lr > 0 and math.isfinite(self.rd.aux_lr), "a positive number"),
            ("rd.speckle_prob", 0 <= self.rd.speckle_prob <= 1, "between 0 and 1"),
            ("rd.val_patches", self.rd.val_patches >= 1, "at least 1"),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("data.batch_size", self.data.batch_size >= 1, "at least 1"),
            ("data.val_batch_size", self.data.val_batch_size is None or self.data.val_batch_size >= 1, "at least 1"),
            ("data.num_workers", self.data.num_workers >= 0, "0 or more"),
            ("optim.lr", self.optim.lr > 0 and math.isfinite(self.optim.lr), "a positive number"),
            ("optim.weight_decay", self.optim.weight_decay >= 0, "0 or more"),
            ("optim.betas", all(0 <= b < 1 for b in self.optim.betas), "two numbers in [0, 1)"),
            ("optim.eps", self.optim.eps > 0, "a positive number"),
            ("optim.schedule", self.optim.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            ("optim.warmup_epochs", self.optim.warmup_epochs >= 0, "0 or more"),
            ("optim.min_lr", 0 <= self.optim.min_lr <= self.optim.lr, "between 0 and optim.lr"),
            ("optim.plateau_factor", 0 < self.optim.plateau_factor < 1, "in (0, 1)"),
            ("optim.plateau_patience", self.optim.plateau_patience >= 0, "0 or more"),
            ("optim.grad_clip", self.optim.grad_clip is None or self.optim.grad_clip > 0, "positive or null"),
            ("early_stopping.patience", self.early_stopping.patience is None or self.early_stopping.patience >= 1,
             "at least 1, or null"),
            ("early_stopping.min_delta", self.early_stopping.min_delta >= 0, "0 or more"),
            ("precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
            ("precision", self.objective != "rd" or self.precision in ("auto", "fp32"),
             "auto or fp32 for objective rd (the rate terms need fp32)"),
            ("device", self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             "auto, cpu, cuda or cuda:N"),
            ("limit_batches", self.limit_batches is None or self.limit_batches >= 1, "at least 1, or null"),
            ("train_batches_per_epoch", self.train_batches_per_epoch is None or self.train_batches_per_epoch >= 1,
             "at least 1, or null"),
            ("time_budget_minutes", self.time_budget_minutes is None or self.time_budget_minutes > 0,
             "a positive number, or null"),
            ("time_budget_minutes", not self.fit_epochs_to_budget or self.time_budget_minutes is not None,
             "set when fit_epochs_to_budget is true"),
            ("log_every_n_steps", self.log_every_n_steps >= 1, "at least 1"),
            ("num_sample_images", self.num_sample_images >= 0, "0 or more"),
            ("max_nonfinite_steps", self.max_nonfinite_steps >= 1, "at least 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise BadInputError(f"config: {key} must be {expected}, got {_get(self, key)!r}")
        weights = (self.loss.mse_weight, self.loss.ssim_weight, self.loss.ms_ssim_weight)
        if any(w < 0 for w in weights) or sum(weights) == 0:
            raise BadInputError("config: loss weights must be >= 0 and not all 0")
        _check_model(self.objective, self.model)


_FIELD_ORDER = [f.name for f in dataclasses.fields(TrainConfig)]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_model(objective: str, model: ModelConfig) -> None:
    """Build the network on the meta device (no memory, no time) so bad names/arguments fail at load time."""
    import torch

    from sarcodec.train.objectives import build_network, codec_kwargs

    try:
        with torch.device("meta"):
            build_network(objective, model.name, codec_kwargs(model) if objective == "rd" else model.kwargs())
    except SarcodecError as exc:
        raise BadInputError(f"config: model: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"config: model: {exc}") from None


# ---------------------------------------------------------------------------------------------- loading
def load_config(path: str | Path, overrides: Sequence[Override] = (), *, device: str | None = None) -> TrainConfig:
    """Read a YAML config file, apply its ``cpu:`` block when running on the CPU, then ``overrides``.

    Args:
        path: the YAML file.
        overrides: ``"dotted.key=yaml_value"`` strings (``--set``) or ``(dotted_key, value)`` pairs (typed
            values from CLI flags, not parsed as YAML); later ones win.
        device: device type the run will use (``"cpu"``/``"cuda"``); None resolves the config's ``device``.

    Raises:
        BadInputError: missing/unreadable file, invalid YAML, unknown key, wrongly typed or out-of-range value.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read config ({exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise BadInputError(f"{path}: invalid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    if raw is None:  # an empty file trained the default model under the name "run": surely not what was meant
        raise BadInputError(f"{path}: the config is empty (copy one of configs/ and edit it)")
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: a config must be a YAML mapping, got {type(raw).__name__}")
    try:
        return config_from_dict(raw, overrides, device=device)
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc}") from None


def config_from_dict(
    raw: Mapping[str, Any], overrides: Sequence[Override] = (), *, device: str | None = None
) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a plain dict (see :func:`load_config`)."""
    pairs = [parse_override(o) if isinstance(o, str) else o for o in overrides]
    probe = _apply(raw, pairs)  # overrides may change the device or the cpu block itself
    cpu_block = probe.get("cpu") or {}
    if not isinstance(cpu_block, dict):
        raise BadInputError("config: cpu must be a mapping of the values to use on the CPU")
    if "cpu" in cpu_block:
        raise BadInputError("config: cpu.cpu: the cpu block cannot nest another")
    # the cpu block must be valid config wherever we run, so a typo in it fails on a GPU machine too
    _build(TrainConfig, cpu_block, "cpu.")
    if device is None:
        device_key = probe.get("device", "auto")
        device = resolve_device(device_key if isinstance(device_key, str) else "auto").type
    base = _merge(dict(raw), cpu_block) if device == "cpu" else dict(raw)
    config = _build(TrainConfig, _apply(base, pairs), "")
    assert isinstance(config, TrainConfig)
    config.validate()
    return config


def resolve_device(name: str) -> Any:
    """``"auto"`` -> cuda if available else cpu; raises BadInputError for a CUDA device that is not there."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInputError(f"config: device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"config: device {name!r} asked for but CUDA is not available (use device=cpu or auto)")
    if device.type not in ("cpu", "cuda"):
        raise BadInputError(f"config: device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return device


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` -> ``("optim.lr", "3e-4")``: the value is parsed as a YAML scalar (typed later)."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise BadInputError(f"--set expects KEY=VALUE with a dotted key (e.g. optim.lr=3e-4), got {text!r}")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError:
        value = value_text  # not YAML: keep the text, the field's type decides
    return key, value


def _apply(raw: Mapping[str, Any], pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key set (intermediate sections created)."""
    out = _merge({}, dict(raw))
    for key, value in pairs:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BadInputError(f"config: cannot set {key}: {'.'.join(parts[:i + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge, ``extra`` winning; returns a new dict (inputs untouched)."""
    out = {k: (_merge({}, v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = _merge({}, value)
        else:
            out[key] = value
    return out


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, checking keys and converting values by annotation."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise BadInputError(f"config: {where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    raw = dict(raw)
    if cls is ModelConfig:  # flat in YAML: extra keys are constructor options
        if "options" in raw:
            raise BadInputError(f"config: {prefix}options: write model options directly in the model section")
        options = {k: v for k, v in raw.items() if k not in names}
        raw = {k: v for k, v in raw.items() if k in names} | {"options": options}
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f"; known keys: {', '.join(names)}"
            raise BadInputError(f"config: unknown key {prefix}{key}{hint}")
    values = {key: _convert(value, hints[key], f"{prefix}{key}") for key, value in raw.items()}
    return cls(**values)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(value, inner, key)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        if isinstance(value, dict):
            return _merge({}, value)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"unsupported config field type {hint!r} for {key}")
    raise BadInputError(f"config: {key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return f"a list of {len(typing.get_args(hint))} numbers"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
