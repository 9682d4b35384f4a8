"""Process-group setup for ``torchrun`` (DistributedDataParallel), and the few collectives the trainer needs.

``torchrun --nproc_per_node=N -m sarcodec train CONFIG`` starts N processes with ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment; :func:`init_distributed` reads them.
Backend: NCCL on CUDA (one GPU per local rank), gloo on the CPU. Without those variables (or with
``WORLD_SIZE=1``) everything here is a no-op and training runs in one process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sarcodec.errors import BadInputError
from sarcodec.train.config import resolve_device

__all__ = ["DistContext", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the world size, and its device."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # this context initialised the process group (and so destroys it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place sum/max over processes (identity in a single process); returns ``tensor``."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun set up, or return a single-process context.

    Args:
        device: the config's ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``). Under torchrun on CUDA each
            process takes GPU ``LOCAL_RANK``.
        timeout_s: how long a collective may wait for the other processes before failing.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world_size <= 1:
        return DistContext(device=base)
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise BadInputError("WORLD_SIZE > 1 but RANK is not set: launch distributed runs with torchrun") from None
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise BadInputError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "use --nproc_per_node <= the number of GPUs"
            )
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(
            backend="nccl" if base.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=base if base.type == "cuda" else None,
        )
    return DistContext(device=base, rank=dist.get_rank(), local_rank=local_rank,
                       world_size=dist.get_world_size(), owns_group=owns)
