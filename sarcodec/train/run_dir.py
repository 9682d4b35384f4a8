"""A run's output directory: which checkpoint to resume from, config.yaml, history.json and TensorBoard events.

Only rank 0 calls these. Layout of ``runs/<run_name>/`` (or ``--output-dir``): ``best.pth`` (lowest val_loss),
``last.pth`` (latest epoch), ``history.json`` (one dict per epoch, as the checkpoints' ``history``),
``config.yaml`` (the resolved config of the latest invocation) and ``events.out.tfevents.*`` (TensorBoard:
``tensorboard --logdir runs``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from sarcodec.errors import BadInputError, OutputError
from sarcodec.train.config import TrainConfig

__all__ = ["hold_run_lock", "log_epoch", "open_run_dir", "release_run_lock", "resume_path", "write_json"]

_RUN_FILES = ("best.pth", "last.pth", "history.json", "config.yaml")


def resume_path(resume: str | Path | None, out_dir: Path, overwrite: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh start (which then replaces the directory's run files)."""
    last = out_dir / "last.pth"
    if resume is not None and str(resume) == "auto":
        if last.is_file():
            return last
    elif resume is not None:
        path = Path(resume)
        if not path.is_file():
            raise BadInputError(f"{path}: no checkpoint to resume from")
        return path
    held = [name for name in ("last.pth", "best.pth") if (out_dir / name).exists()]
    if held and not overwrite:
        raise BadInputError(f"{out_dir} already holds a run ({held[0]}): continue it with --resume auto, "
                            "or start afresh with --overwrite or another --output-dir")
    others = sorted(p.name for p in out_dir.iterdir() if p.name != ".lock") if out_dir.is_dir() and not held else []
    if others and not any(out_dir.glob("events.out.tfevents.*")):  # no sign of a run: someone's folder
        raise OutputError(f"{out_dir}: holds files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) and "
                          "no sarcodec run, whose config.yaml and history.json would replace any of those names; "
                          "choose a new or empty --output-dir")
    return None


def hold_run_lock(out_dir: Path) -> Any:
    """Create ``out_dir`` and hold an exclusive lock on its ``.lock`` file for as long as the returned file is open
    (and the process lives): a second run on the same folder, with ``--resume auto`` or not, would interleave its
    checkpoints and history with this one's. OutputError naming the folder when another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one run per folder is then the user's to keep)
        return None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = open(out_dir / ".lock", "a")  # noqa: SIM115 (held open by the caller)
    except OSError as exc:
        raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OutputError(f"{out_dir}: another training run is using it now (wait for it, or stop it first)") from None
    return handle


def release_run_lock(handle: Any) -> None:
    """Give up :func:`hold_run_lock`'s lock and remove its file (a finished run leaves only its own files)."""
    if handle is None:
        return
    try:
        Path(handle.name).unlink(missing_ok=True)
    except OSError:
        pass
    handle.close()


def open_run_dir(out_dir: Path, config: TrainConfig, fresh: bool, step: int) -> Any:
    """Create the output directory (clearing a previous run's files if ``fresh``), write config.yaml, open TensorBoard.

    On resume, ``purge_step`` makes TensorBoard drop the events an interrupted epoch logged after the checkpoint's
    ``step`` (the saved epoch's own events, at steps <= ``step``, stay).
    """
    from torch.utils.tensorboard import SummaryWriter  # slow import, and only rank 0 needs it

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            for name in _RUN_FILES:
                (out_dir / name).unlink(missing_ok=True)
            for events in out_dir.glob("events.out.tfevents.*"):
                events.unlink()
        _write_text(out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    except OSError as exc:
        raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    return SummaryWriter(log_dir=str(out_dir), purge_step=None if fresh else step + 1)


def log_epoch(writer: Any, entry: dict[str, Any], step: int, model: nn.Module,
              reconstruct: Callable[[nn.Module, torch.Tensor], torch.Tensor], samples: torch.Tensor | None,
              autocast: Callable[[], Any], device: torch.device) -> None:
    """One epoch's scalars (train loss, every ``val_*`` metric, LR) and the sample reconstructions."""
    for key, value in entry.items():
        if key in ("train_loss", "lr") or (key.startswith("val_") and key != "val_patches"):
            writer.add_scalar(f"epoch/{key}", value, step)
    writer.add_scalar("epoch/epoch", entry["epoch"], step)
    if samples is not None:
        grid = _sample_grid(model, reconstruct, samples, autocast, device)
        writer.add_image("val/original_vs_reconstruction", grid, step)
    writer.flush()


@torch.no_grad()
def _sample_grid(model: nn.Module, reconstruct: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                 images: torch.Tensor, autocast: Callable[[], Any], device: torch.device) -> torch.Tensor:
    """``(1, H, W)`` image in [0, 1]: one row per sample, original | reconstruction, separated by white lines."""
    was_training = model.training
    model.eval()
    with autocast():
        recon = reconstruct(model, images.to(device))
    model.train(was_training)
    recon = recon.float().clamp(0, 1).cpu()
    n, _, h, w = images.shape
    gap = 2
    grid = torch.ones(1, n * (h + gap) - gap, 2 * w + gap)
    for i in range(n):
        top = i * (h + gap)
        grid[:, top:top + h, :w] = images[i]
        grid[:, top:top + h, w + gap:] = recon[i]
    return grid


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    try:
        _write_text(path, json.dumps(value, indent=1, allow_nan=True) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
