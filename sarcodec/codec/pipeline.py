"""Tiles coded in parallel, results consumed in order.

PyTorch parallelizes inside each operation, but a tile's work is mostly operations too small or too serial to
keep several cores busy (entropy coding, the float64 probability path, the side layer, NumPy), and oneDNN's
results depend on the thread count. So on the CPU every tile runs on one thread (``single_thread``: exact pixels
for any thread count) and ``workers`` tiles run at once, one per thread PyTorch was given (``torch.set_num_threads``
or ``OMP_NUM_THREADS``). The caller submits a band of tiles, reads the next band while the workers run, and
consumes results in submission order (``TilePool.ordered``), so at most two bands are in memory.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import torch

from sarcodec.codec.models import single_thread

__all__ = ["Band", "TilePool"]

T = TypeVar("T")
B = TypeVar("B")


class Band(Generic[B, T]):
    """A band submitted to a :class:`TilePool`: the caller's data about it and its tiles' futures."""

    def __init__(self, data: B, futures: list[Future[T]]) -> None:
        self.data = data
        self.futures = futures

    def results(self) -> list[T]:
        """The tiles' results in order (re-raises a tile's exception)."""
        return [f.result() for f in self.futures]


class TilePool(Generic[B, T]):
    """A pool of ``workers`` threads for the tiles of a device (CPU: one PyTorch thread each)."""

    def __init__(self, device: torch.device, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else torch.get_num_threads())
        self._cpu = device.type == "cpu"
        self._stack = contextlib.ExitStack()
        self._pool: ThreadPoolExecutor | None = None
        self._bands: deque[Band[B, T]] = deque()

    def __enter__(self) -> TilePool[B, T]:
        if self._cpu:  # one section for the whole run: each tile then computes on its own thread only
            self._stack.enter_context(single_thread())
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sarcodec-tile")
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._pool is not None
        for band in self._bands:
            for f in band.futures:
                f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stack.close()

    def submit(self, data: B, jobs: Sequence[Callable[[], T]]) -> Iterator[Band[B, T]]:
        """Queue a band of tile jobs; yields the bands that are due to be consumed (all but the newest), oldest
        first."""
        assert self._pool is not None
        self._bands.append(Band(data, [self._pool.submit(job) for job in jobs]))
        while len(self._bands) > 1:
            yield self._bands.popleft()

    def drain(self) -> Iterator[Band[B, T]]:
        """The remaining bands, oldest first."""
        while self._bands:
            yield self._bands.popleft()
