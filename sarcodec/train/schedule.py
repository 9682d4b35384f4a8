"""Learning-rate schedule: a pure function of the optimizer step (nanoGPT style), plus a plateau tracker.

``LRSchedule(step, plateau_scale)`` gives the LR of a step: linear warmup over ``warmup_steps``, then

- ``cosine``: half a cosine from ``base_lr`` down to ``min_lr`` at ``total_steps`` (held there after);
- ``plateau``: ``base_lr * plateau_scale``, where :class:`PlateauTracker` multiplies the scale by ``factor``
  after more than ``patience`` epochs without val_loss improvement (as ReduceLROnPlateau; its state is checkpointed);
- ``constant``: ``base_lr``.

Because the LR depends only on ``step`` (and the saved plateau scale), a resumed run gets the same LRs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["LRSchedule", "PlateauTracker"]


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate as a function of the step index (0-based, one step per training batch)."""

    base_lr: float
    warmup_steps: int
    total_steps: int
    kind: str = "cosine"  # cosine | plateau | constant
    min_lr: float = 0.0

    def __call__(self, step: int, plateau_scale: float = 1.0) -> float:
        if step < self.warmup_steps:
            # (step + 1): the first step already trains, and the last warmup step reaches base_lr
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.base_lr - self.min_lr)
        if self.kind == "plateau":
            return max(self.min_lr, self.base_lr * plateau_scale)
        if self.kind == "constant":
            return self.base_lr
        raise ValueError(f"unknown schedule {self.kind!r}")

    def state_dict(self) -> dict[str, Any]:
        """The schedule's parameters (informational: a resumed run rebuilds them from its config)."""
        return {"kind": self.kind, "base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "min_lr": self.min_lr}


class PlateauTracker:
    """Reduce-on-plateau as a scale factor: ``step(val_loss)`` once per epoch after warmup.

    An epoch improves when ``val_loss < best - threshold``; after more than ``patience`` epochs in a row without
    improvement (as torch's ReduceLROnPlateau) the scale is multiplied by ``factor`` and the count restarts.
    """

    def __init__(self, factor: float = 0.5, patience: int = 3, threshold: float = 0.0) -> None:
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        self.reductions = 0

    def step(self, val_loss: float) -> bool:
        """Record one epoch's val_loss; returns True when the scale was just reduced."""
        if val_loss < self.best - self.threshold:
            self.best = val_loss
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0
            self.reductions += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs, "reductions": self.reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.reductions = int(state.get("reductions", 0))
