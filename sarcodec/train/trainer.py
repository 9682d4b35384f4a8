"""The training loop: ``train(config)`` runs one experiment and writes ``best.pth``, ``last.pth``, ``history.json``,
``config.yaml`` and TensorBoard events into the run's output directory.

One loop for every network: what is optimized (the seed study's autoencoders on MSE + SSIM, or the codecs on
rate-distortion with an auxiliary optimizer) is the run's objective (``objectives.py``, ``config.objective``);
a rate-distortion run also writes ``<run_name>.safetensors``, the codec ``sarcodec compress --model`` loads.

How it stays reproducible and exactly resumable (a CPU run killed at any point and resumed from its last.pth,
which redoes the interrupted epoch from its start, ends with bitwise the same weights as an uninterrupted one):

- everything random in an epoch is seeded from ``(seed, epoch, rank)`` at the epoch's start: the shuffling
  generator (which also seeds the DataLoader workers, re-created every epoch) and torch's global RNG (which the
  dataset's augmentation uses when ``num_workers == 0``); so an epoch never depends on how much randomness the
  epochs before it consumed;
- the learning rate is a pure function of the step (``schedule.py``); the plateau tracker, optimizer, AMP
  scaler, early-stopping counter, best loss and history are all in the checkpoint (``checkpoint.py``).

One code path for CPU and GPU: a single ``torch.autocast`` context (fp16 on CUDA by default for autoencoders;
off on the CPU and for codecs, whose rate terms stay in fp32) and a ``GradScaler(enabled=...)`` that is a no-op
unless fp16 is used.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from sarcodec.version import __version__
from sarcodec.data.dataset import PatchDataset
from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, SarcodecError
from sarcodec.losses import CombinedLoss
from sarcodec.metrics import MS_SSIM_MIN_SIZE
from sarcodec.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from sarcodec.train.config import TrainConfig
from sarcodec.train.distributed import DistContext, init_distributed
from sarcodec.train.objectives import (
    AutoencoderObjective,
    Objective,
    make_objective,
    network_identity,
    parameter_counts,
)
from sarcodec.train.run_dir import hold_run_lock, log_epoch, open_run_dir, release_run_lock, resume_path, write_json
from sarcodec.train.schedule import LRSchedule, PlateauTracker

__all__ = ["NonFiniteLossError", "TrainResult", "evaluate", "train"]

Log = Callable[[str], None]


class NonFiniteLossError(SarcodecError):
    """Training diverged: too many consecutive NaN/Inf losses or gradients."""

    exit_code = 6


@dataclass
class TrainResult:
    """What ``train`` returns (on every rank; only rank 0 wrote files)."""

    output_dir: Path
    epochs_completed: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    history: list[dict[str, Any]]
    is_main: bool = True


@dataclass
class _Progress:
    """Loop state saved in checkpoints besides the model, optimizer, scaler and plateau tracker."""

    epoch: int = 0  # epochs completed
    step: int = 0  # training batches processed (the LR schedule's clock)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    consecutive_nonfinite: int = 0

    def stop_early(self, patience: int | None) -> bool:
        return patience is not None and self.epochs_without_improvement >= patience


def train(config: TrainConfig, *, resume: str | Path | None = None, overwrite: bool = False,
          log: Log | None = None) -> TrainResult:
    """Train ``config``'s model on its dataset; see the module docstring.

    Args:
        config: a validated :class:`TrainConfig` (``load_config``).
        resume: a checkpoint (``last.pth``) to continue from, or ``"auto"``: the output directory's ``last.pth``
            if there is one, else a fresh start.
        overwrite: start afresh even if the output directory already holds a run (its files are replaced).
        log: where progress lines go (default: stderr, rank 0 only).

    Raises:
        BadInputError: no/unsuitable dataset, output directory already used, bad resume path.
        CorruptFileError / IncompatibleModelError: unreadable resume checkpoint, or one of another model.
        NonFiniteLossError: ``max_nonfinite_steps`` consecutive non-finite losses.
    """
    ctx = init_distributed(config.device)
    locks: list[Any] = []
    try:
        say = (log or _stderr) if ctx.is_main else (lambda msg: None)
        return _train(config, ctx, resume, overwrite, say, locks)
    finally:
        for lock in locks:
            release_run_lock(lock)
        ctx.close()


def _train(config: TrainConfig, ctx: DistContext, resume: str | Path | None, overwrite: bool, log: Log,
           locks: list[Any]) -> TrainResult:
    device = ctx.device
    out_dir = config.resolved_output_dir
    resume_from = resume_path(resume, out_dir, overwrite)
    _seed_everything(config.seed)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not config.deterministic
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_set, val_set = _datasets(config, ctx)
    if ctx.is_main:  # one run per folder at a time; released when train() returns (or the process ends)
        locks.append(hold_run_lock(out_dir))
    loader_rng = torch.Generator()
    train_loader = _train_loader(train_set, config, ctx, loader_rng)
    val_loader = _val_loader(val_set, config, ctx)
    limit = config.limit_batches
    train_cap = min(c for c in (limit, config.train_batches_per_epoch, len(train_loader)) if c)
    steps_per_epoch = min(len(train_loader), train_cap)
    val_batches = min(len(val_loader), limit) if limit else len(val_loader)

    objective = make_objective(config)
    model = objective.build(config.model).to(device)
    main_params = objective.main_parameters(model)  # in the model's order: the clipping norm's summation order
    optimizer = _adamw(main_params, objective.decayed(model), config)
    aux_params = objective.aux_parameters(model)
    aux_optimizer = torch.optim.Adam(aux_params, lr=config.rd.aux_lr) if aux_params else None
    plateau = PlateauTracker(config.optim.plateau_factor, config.optim.plateau_patience,
                             threshold=config.early_stopping.min_delta)
    amp_dtype = _amp_dtype(config.precision, device, config.objective)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def autocast() -> contextlib.AbstractContextManager[None]:
        return torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)

    progress = _Progress()
    if resume_from is not None:
        progress = _restore(resume_from, model, optimizer, aux_optimizer, scaler, plateau, config, train_set, log)
    else:
        objective.init_weights(model, train_set, log)
    epochs = _fitted_epochs(config, progress.history)  # a pure function of the history: resumes exactly
    schedule = LRSchedule(
        base_lr=config.optim.lr, warmup_steps=round(config.optim.warmup_epochs * steps_per_epoch),
        total_steps=epochs * steps_per_epoch, kind=config.optim.schedule, min_lr=config.optim.min_lr,
    )
    objective.prepare(model, train_set, device)
    train_model: nn.Module = model
    if ctx.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        # a codec's tail quantiles take no part in the main loss: DDP must not wait for their gradients
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                          find_unused_parameters=aux_optimizer is not None)

    counts = parameter_counts(model)
    name, kwargs = network_identity(model)
    log(f"run {config.run_name} ({objective.name}): model {name}({_kwargs_text(kwargs)}): "
        f"{counts['total']:,} parameters (encoder {counts['encoder']:,}, decoder {counts['decoder']:,})"
        + objective.describe(model))
    log(f"data {config.data.root}: {len(train_set)} train / {len(val_set)} val patches of {train_set.patch_size} px; "
        f"batch {config.data.batch_size} x {ctx.world_size} process(es), {steps_per_epoch} steps/epoch, "
        f"{val_batches} val batches")
    log(f"device {device}, precision {_precision_text(amp_dtype)}, lr {config.optim.lr:g} ({config.optim.schedule}, "
        f"{schedule.warmup_steps} warmup steps), output {out_dir}")

    stopped_early = progress.stop_early(config.early_stopping.patience)
    if stopped_early or progress.epoch >= epochs:
        state = "stopped early" if stopped_early else "is complete"
        log(f"nothing to do: the run {state} after epoch {progress.epoch} (raise --epochs to train further)")
        product = objective.product(config)
        if ctx.is_main and product is not None and not product.is_file():
            _finish(model, objective, config, val_set, progress, device, log)  # its export was interrupted
        return TrainResult(out_dir, progress.epoch, progress.best_epoch, progress.best_val_loss, stopped_early,
                           progress.history, ctx.is_main)
    writer = open_run_dir(out_dir, config, resume_from is None, progress.step) if ctx.is_main else None
    product = objective.product(config)
    if ctx.is_main and resume_from is None and product is not None:
        product.unlink(missing_ok=True)  # a fresh run never leaves an earlier run's export behind
    samples = _sample_images(val_set, config.num_sample_images) if ctx.is_main else None
    try:
        epoch = progress.epoch
        while epoch < epochs:
            epoch += 1
            started = time.perf_counter()
            _seed_epoch(config.seed, epoch, ctx, train_loader, loader_rng)
            train_loss, nonfinite, lr = _train_epoch(
                train_model, objective, train_loader, steps_per_epoch, optimizer, main_params, aux_optimizer, scaler,
                autocast, schedule, plateau, progress, config, ctx, writer, epoch,
            )
            val = evaluate_objective(model, objective, val_loader, ctx=ctx, autocast=autocast, limit_batches=limit)
            # the slowest process's time: every rank then fits and stops after the same epoch
            seconds = ctx.all_reduce(torch.tensor(time.perf_counter() - started, device=device), "max").item()
            entry = {"epoch": epoch, "step": progress.step, "train_loss": train_loss, **val, "lr": lr,
                     "seconds": round(seconds, 3), "nonfinite_steps": nonfinite}
            progress.epoch = epoch
            progress.history.append(entry)
            improved = val["val_loss"] < progress.best_val_loss - config.early_stopping.min_delta
            if improved:
                progress.best_val_loss, progress.best_epoch = val["val_loss"], epoch
                progress.epochs_without_improvement = 0
            else:
                progress.epochs_without_improvement += 1
            if config.optim.schedule == "plateau" and progress.step >= schedule.warmup_steps:
                plateau.step(val["val_loss"])
            stopped_early = progress.stop_early(config.early_stopping.patience)
            if ctx.is_main:
                assert writer is not None
                # events first: a run killed before last.pth is written redoes this epoch, and the resumed writer's
                # purge_step drops these events then, so no epoch is ever missing or shown twice in TensorBoard
                log_epoch(writer, entry, progress.step, model, objective.reconstruct, samples, autocast, device)
                ckpt = _checkpoint(model, objective, optimizer, aux_optimizer, scaler, schedule, plateau, progress,
                                   config, train_set, ctx)
                if improved:
                    save_checkpoint(ckpt, out_dir / "best.pth")
                save_checkpoint(ckpt, out_dir / "last.pth")
                write_json(out_dir / "history.json", progress.history)
            log(f"epoch {epoch}/{epochs}  train {train_loss:.5f}  val {val['val_loss']:.5f}  "
                f"psnr {val['val_psnr']:.2f} dB  ssim {val['val_ssim']:.4f}"
                + (f"  bpp {val['val_bpp']:.3f}" if "val_bpp" in val else "")
                + f"  lr {lr:.2e}  {entry['seconds']:.1f} s"
                + ("  [best]" if improved else "") + (f"  {nonfinite} non-finite steps skipped" if nonfinite else ""))
            ctx.barrier()
            if stopped_early:
                log(f"early stopping: val_loss has not improved for {progress.epochs_without_improvement} epochs")
                break
            fitted = _fitted_epochs(config, progress.history)
            if fitted != epochs:
                log(f"epochs fitted to the time budget at epoch {epoch}'s pace ({entry['seconds']:.1f} s): "
                    f"{fitted} instead of {epochs}; the LR schedule spans them")
                epochs = fitted
                schedule = replace(schedule, total_steps=epochs * steps_per_epoch)
            if epoch < epochs and _over_budget(progress.history, config.time_budget_minutes):
                log(f"time budget of {config.time_budget_minutes:g} min reached after epoch {epoch} of "
                    f"{epochs}: the LR schedule stopped at {lr:.2e}, not at its end (size epochs to the "
                    "budget for a finished schedule)")
                break
    finally:
        if writer is not None:
            writer.close()
    if progress.best_epoch:
        best = progress.history[progress.best_epoch - 1]
        log(f"best epoch {best['epoch']}: val_loss {best['val_loss']:.5f}, psnr {best['val_psnr']:.2f} dB, "
            f"ssim {best['val_ssim']:.4f} -> {out_dir / 'best.pth'}")
        if ctx.is_main and objective.product(config) is not None:
            _finish(model, objective, config, val_set, progress, device, log)
    return TrainResult(out_dir, progress.epoch, progress.best_epoch, progress.best_val_loss, stopped_early,
                       progress.history, ctx.is_main)


def _finish(model: nn.Module, objective: Objective, config: TrainConfig, val_set: PatchDataset, progress: _Progress,
            device: torch.device, log: Log) -> None:
    """The objective's product (a codec's .safetensors) from the best epoch's weights."""
    best = load_checkpoint(config.resolved_output_dir / "best.pth", map_location=device)
    model.load_state_dict(best["model_state_dict"])
    summary = {"epochs": progress.epoch, "best_epoch": progress.best_epoch, "steps_done": progress.step,
               "best_step": int(best["step"]), "minutes": round(sum(float(h["seconds"]) for h in progress.history) / 60, 2),
               "device": device.type, "sarcodec_version": __version__}
    objective.finish(model, config, val_set, summary, log)


#: Epochs run before fit_epochs_to_budget sizes the run: the first carries start-up costs (CUDA, caches), the
#: second sets the pace.
_FIT_AFTER = 2


def _fitted_epochs(config: TrainConfig, history: list[dict[str, Any]]) -> int:
    """The run's epoch count: ``config.epochs``, or with ``fit_epochs_to_budget`` (once ``_FIT_AFTER`` epochs are
    recorded) as many as fit ``time_budget_minutes`` at the last of them's pace, with 10 % to spare (four runs
    side by side on one GPU ran their later epochs 5-10 % slower than the second), never more than configured."""
    if not config.fit_epochs_to_budget or config.time_budget_minutes is None or len(history) < _FIT_AFTER:
        return config.epochs
    probe = history[:_FIT_AFTER]
    pace = max(float(probe[-1]["seconds"]), 1e-3)
    left = 0.9 * config.time_budget_minutes * 60.0 - sum(float(h["seconds"]) for h in probe)
    return max(_FIT_AFTER, min(config.epochs, _FIT_AFTER + int(left // pace)))


def _over_budget(history: list[dict[str, Any]], minutes: float | None) -> bool:
    """True when another epoch as long as the last one would overrun the budget (resume-aware: the time
    is the sum of the recorded epoch durations)."""
    if minutes is None or not history:
        return False
    spent = sum(float(h["seconds"]) for h in history)
    return spent + float(history[-1]["seconds"]) > minutes * 60.0


def _train_epoch(
    model: nn.Module, objective: Objective, loader: DataLoader[Any], steps: int, optimizer: torch.optim.Optimizer,
    main_params: list[nn.Parameter], aux_optimizer: torch.optim.Optimizer | None, scaler: torch.amp.GradScaler,
    autocast: Callable[[], Any],
    schedule: LRSchedule, plateau: PlateauTracker, progress: _Progress, config: TrainConfig, ctx: DistContext,
    writer: Any, epoch: int,
) -> tuple[float, int, float]:
    """One pass over (at most ``steps`` batches of) the training data; returns (mean loss, skipped steps, last LR)."""
    model.train()
    device = ctx.device
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # sum of loss * batch, patches
    skipped, lr = 0, schedule(progress.step, plateau.scale)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False,
               disable=None if ctx.is_main else True)
    for batch in _take(loader, steps):
        lr = schedule(progress.step, plateau.scale)
        for group in optimizer.param_groups:
            group["lr"] = lr
        n = int(batch["image"].shape[0])
        with autocast():
            loss = objective.train_loss(model, batch, device)
        progress.step += 1
        optimizer.zero_grad(set_to_none=True)
        ok = _finite_everywhere(loss, ctx)  # agreed by all ranks, so they skip together
        grad_norm = torch.tensor(math.nan)
        if ok:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(main_params, config.optim.grad_clip or math.inf)
            # under fp16 the scaler itself skips steps whose gradients overflowed (and lowers its scale)
            ok = scaler.is_enabled() or bool(torch.isfinite(grad_norm))
            if ok:
                scaler.step(optimizer)
            scaler.update()
        if ok and aux_optimizer is not None:
            _aux_step(objective, model, aux_optimizer, ctx)
        bar.update(1)
        if not ok:
            skipped += 1
            progress.consecutive_nonfinite += 1
            if progress.consecutive_nonfinite >= config.max_nonfinite_steps:
                bar.close()
                raise NonFiniteLossError(
                    f"training diverged: {progress.consecutive_nonfinite} consecutive non-finite losses or gradients "
                    f"(epoch {epoch}, step {progress.step}); lower optim.lr or set optim.grad_clip; "
                    f"the last good state is in {config.resolved_output_dir / 'last.pth'}"
                )
            continue
        progress.consecutive_nonfinite = 0
        loss_sum[0] += loss.detach().double() * n
        loss_sum[1] += n
        if progress.step % config.log_every_n_steps == 0 and ctx.is_main:
            loss_value = float(loss.item())
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            writer.add_scalar("train/loss", loss_value, progress.step)
            writer.add_scalar("train/lr", lr, progress.step)
            writer.add_scalar("train/grad_norm", float(grad_norm), progress.step)
    bar.close()
    total, count = ctx.all_reduce(loss_sum).tolist()
    return (total / count if count else math.nan), skipped, lr


def _aux_step(objective: Objective, model: nn.Module, aux_optimizer: torch.optim.Optimizer, ctx: DistContext) -> None:
    """One step of the auxiliary optimizer (a codec's tail quantiles); gradients averaged over the processes."""
    aux = objective.aux_loss(model)
    if aux is None:
        return
    aux_optimizer.zero_grad(set_to_none=True)
    aux.backward()  # type: ignore[no-untyped-call]
    if ctx.distributed:
        for group in aux_optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = ctx.all_reduce(p.grad) / ctx.world_size
    aux_optimizer.step()


@torch.no_grad()
def evaluate_objective(model: nn.Module, objective: Objective, loader: DataLoader[Any], *,
                       ctx: DistContext | None = None, autocast: Callable[[], Any] = contextlib.nullcontext,
                       limit_batches: int | None = None) -> dict[str, float]:
    """Validation metrics of ``objective`` over a loader of ``PatchDataset`` batches (per-process shards summed):
    patch-weighted means of each ``val_*`` sum the objective returns, and ``val_patches``."""
    ctx = ctx or DistContext(device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    keys = objective.val_keys
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=ctx.device)  # + the patch count
    for batch in _take(loader, limit_batches or len(loader)):
        with autocast():
            parts = objective.val_sums(model, batch, ctx.device)
        sums += torch.stack([*(parts[k].double() for k in keys),
                             torch.tensor(float(batch["image"].shape[0]), dtype=torch.float64, device=ctx.device)])
    model.train(was_training)
    *totals, count = ctx.all_reduce(sums).tolist()  # every rank reduces, also one whose shard is empty
    if count == 0:
        raise BadInputError("no validation patches")
    return {**{k: v / count for k, v in zip(keys, totals)}, "val_patches": int(count)}


def evaluate(model: nn.Module, loader: DataLoader[Any], loss_fn: CombinedLoss, *, ctx: DistContext | None = None,
             autocast: Callable[[], Any] = contextlib.nullcontext, mask_invalid: bool = True,
             limit_batches: int | None = None) -> dict[str, float]:
    """Validation metrics of an autoencoder over a loader of ``PatchDataset`` batches (per-process shards summed).

    Returns:
        ``val_loss`` and ``val_mse`` (patch-weighted means of the loss and its MSE term), ``val_psnr`` (mean
        per-patch PSNR in dB, data range 1) and ``val_ssim`` (mean per-patch SSIM), on the [0, 1] working
        representation over all pixels, and ``val_patches``.
    """
    objective = AutoencoderObjective(loss_fn, mask_invalid)
    return evaluate_objective(model, objective, loader, ctx=ctx, autocast=autocast, limit_batches=limit_batches)


# ---------------------------------------------------------------------------------------------- data
def _datasets(config: TrainConfig, ctx: DistContext) -> tuple[PatchDataset, PatchDataset]:
    if not config.data.root:
        raise BadInputError("no dataset: set data.root in the config or pass --data DATASET")
    train_set = PatchDataset(config.data.root, "train", augment=config.data.augment)
    val_set = PatchDataset(config.data.root, "val")
    root = config.data.root
    if len(val_set) == 0:
        raise BadInputError(f"{root}: the val split has no patches; re-run 'sarcodec prepare' with a val share "
                            "(--split)")
    per_process = len(train_set) // ctx.world_size
    if per_process < config.data.batch_size:
        raise BadInputError(
            f"{root}: {len(train_set)} train patches make {per_process} per process, fewer than one batch "
            f"(data.batch_size {config.data.batch_size}); lower data.batch_size"
        )
    if config.loss.ms_ssim_weight > 0 and train_set.patch_size < MS_SSIM_MIN_SIZE:
        raise BadInputError(f"loss.ms_ssim_weight > 0 needs patches of at least {MS_SSIM_MIN_SIZE} px, "
                            f"the dataset's are {train_set.patch_size} px")
    return train_set, val_set


def _train_loader(dataset: PatchDataset, config: TrainConfig, ctx: DistContext,
                  rng: torch.Generator) -> DataLoader[Any]:
    # Workers are not persistent: each epoch's iterator draws their seeds from `rng`, seeded per epoch.
    sampler: Any = RandomSampler(dataset, generator=rng)
    if ctx.distributed:
        sampler = DistributedSampler(dataset, ctx.world_size, ctx.rank, shuffle=True, seed=config.seed, drop_last=True)
    return DataLoader(dataset, batch_size=config.data.batch_size, sampler=sampler, drop_last=True,
                      num_workers=config.data.num_workers, pin_memory=ctx.device.type == "cuda", generator=rng)


def _val_loader(dataset: PatchDataset, config: TrainConfig, ctx: DistContext) -> DataLoader[Any]:
    # Each process validates every world_size-th patch: no padding, so the summed metrics are exact.
    shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.distributed else dataset
    return DataLoader(shard, batch_size=config.data.val_batch_size or config.data.batch_size, shuffle=False,
                      num_workers=config.data.num_workers, pin_memory=ctx.device.type == "cuda")


def _take(loader: DataLoader[Any], n: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= n:
            break
        yield batch


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_epoch(seed: int, epoch: int, ctx: DistContext, loader: DataLoader[Any], rng: torch.Generator) -> None:
    """Make the epoch a function of (seed, epoch, rank) alone: shuffling, worker seeds and augmentation."""
    shuffle_seed, global_seed = np.random.SeedSequence([seed, epoch, ctx.rank]).generate_state(2).tolist()
    rng.manual_seed(shuffle_seed)
    torch.manual_seed(global_seed)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # same permutation on every rank, split between them


def _sample_images(dataset: PatchDataset, n: int) -> torch.Tensor | None:
    if n == 0:
        return None
    indices = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int)
    return torch.stack([dataset[int(i)]["image"] for i in indices])


# ---------------------------------------------------------------------------------------------- optimisation
def _adamw(params: list[nn.Parameter], decayed: set[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    # weight decay only on what the objective says (conv/linear weights: decaying biases, norm scales, a codec's
    # gains or densities only hurts; nanoGPT, timm)
    decay = [p for p in params if p.requires_grad and p in decayed]
    no_decay = [p for p in params if p.requires_grad and p not in decayed]
    groups = [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=config.optim.betas, eps=config.optim.eps)


def _amp_dtype(precision: str, device: torch.device, objective: str = "autoencoder") -> torch.dtype | None:
    if precision == "auto":  # rate terms (log-likelihoods of tiny probabilities) stay in fp32
        return torch.float16 if device.type == "cuda" and objective == "autoencoder" else None
    if precision == "fp16" and device.type != "cuda":
        raise BadInputError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _precision_text(amp_dtype: torch.dtype | None) -> str:
    if amp_dtype is None:
        return "fp32"
    return "fp16 autocast + GradScaler" if amp_dtype == torch.float16 else "bf16 autocast"


def _finite_everywhere(loss: torch.Tensor, ctx: DistContext) -> bool:
    bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
    return bool(ctx.all_reduce(bad, op="max").item() == 0)


# ---------------------------------------------------------------------------------------------- state
def _checkpoint(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer,
                aux_optimizer: torch.optim.Optimizer | None, scaler: torch.amp.GradScaler, schedule: LRSchedule,
                plateau: PlateauTracker, progress: _Progress, config: TrainConfig, train_set: PatchDataset,
                ctx: DistContext) -> dict[str, Any]:
    """The full training state as tensors and plain values (see ``checkpoint.py`` for the keys)."""
    manifest = train_set.manifest
    name, kwargs = network_identity(model)
    extra = {"aux_optimizer_state_dict": aux_optimizer.state_dict()} if aux_optimizer is not None else {}
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "sarcodec_version": __version__,
        "torch_version": str(torch.__version__),
        "objective": objective.name,
        "model_name": name,
        "model_config": kwargs,
        "parameter_counts": parameter_counts(model),
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        **extra,
        "scheduler_state_dict": {**schedule.state_dict(), "plateau": plateau.state_dict()},
        "scaler_state_dict": scaler.state_dict(),
        "epoch": progress.epoch,
        "step": progress.step,
        "best_val_loss": progress.best_val_loss,
        "best_epoch": progress.best_epoch,
        "epochs_without_improvement": progress.epochs_without_improvement,
        "history": [dict(h) for h in progress.history],
        "config": config.to_dict(),
        # dataset-wide part; each source image's exact params stay in the dataset's manifest.json
        "preprocessing_params": manifest["preprocessing_params"],
        "dataset": {"root": str(Path(train_set.root).resolve()), "patch_size": manifest["patch_size"],
                    "stride": manifest["stride"], "splits": manifest["splits"], "counts": manifest["counts"]},
        "world_size": ctx.world_size,
        "rng_state": capture_rng_state(),
    }


_RESUME_KEYS = ("optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict", "epoch", "step",
                "best_val_loss", "epochs_without_improvement", "history", "rng_state")


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             aux_optimizer: torch.optim.Optimizer | None, scaler: torch.amp.GradScaler, plateau: PlateauTracker,
             config: TrainConfig, train_set: PatchDataset, log: Log) -> _Progress:
    """Load every piece of state from ``path`` into the freshly built objects; returns the loop state."""
    ckpt = load_checkpoint(path)  # on the CPU: load_state_dict copies each tensor to where its parameter lives
    needed = (*_RESUME_KEYS, "aux_optimizer_state_dict") if aux_optimizer is not None else _RESUME_KEYS
    missing = [k for k in needed if k not in ckpt]
    if missing:
        raise CorruptFileError(f"{path}: cannot resume from it (missing {', '.join(missing)})")
    name, kwargs = network_identity(model)
    if (ckpt.get("objective", "autoencoder") != config.objective or ckpt["model_name"] != name
            or ckpt["model_config"] != kwargs):
        raise IncompatibleModelError(
            f"{path} holds a {ckpt.get('objective', 'autoencoder')} run of {ckpt['model_name']}"
            f"({_kwargs_text(ckpt['model_config'])}), the config asks for a {config.objective} run of "
            f"{name}({_kwargs_text(kwargs)})"
        )
    model.load_state_dict(ckpt["model_state_dict"])
    optimizer.load_state_dict(ckpt["optimizer_state_dict"])
    if aux_optimizer is not None:
        aux_optimizer.load_state_dict(ckpt["aux_optimizer_state_dict"])
        for group in aux_optimizer.param_groups:
            group["lr"] = config.rd.aux_lr  # the config wins here too
    for group, decay in zip(optimizer.param_groups, (config.optim.weight_decay, 0.0)):
        group.update(weight_decay=decay, betas=config.optim.betas, eps=config.optim.eps)  # the config wins
    if scaler.is_enabled() and ckpt["scaler_state_dict"]:
        scaler.load_state_dict(ckpt["scaler_state_dict"])
    plateau.load_state_dict(ckpt["scheduler_state_dict"]["plateau"])
    restore_rng_state(ckpt["rng_state"])
    if ckpt.get("preprocessing_params") not in (None, train_set.manifest["preprocessing_params"]):
        log(f"warning: {config.data.root} was preprocessed differently from the dataset {path} was trained on")
    log(f"resuming from {path}: epoch {ckpt['epoch']} done, step {ckpt['step']}, best val_loss "
        f"{ckpt['best_val_loss']:.5f}, {ckpt['epochs_without_improvement']} epoch(s) without improvement")
    return _Progress(epoch=int(ckpt["epoch"]), step=int(ckpt["step"]), best_val_loss=float(ckpt["best_val_loss"]),
                     best_epoch=int(ckpt.get("best_epoch", 0)),
                     epochs_without_improvement=int(ckpt["epochs_without_improvement"]),
                     history=[dict(h) for h in ckpt["history"]])


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
