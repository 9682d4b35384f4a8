"""Tiles coded in parallel, results consumed in order.

PyTorch parallelizes inside each operation, but a tile's work is mostly operations too small or too serial to
keep several cores busy (entropy coding, the probability path, the side layer, NumPy), and oneDNN's
results depend on the thread count. So on the CPU every tile runs on one thread (``single_thread``: exact pixels
for any thread count) and ``workers`` tiles run at once, one per thread PyTorch was given (``torch.set_num_threads``
or ``OMP_NUM_THREADS``; bounded tiles, which use no network: one per core). :meth:`TilePool.run` takes bands of
tile jobs lazily, submits the next band before handing back the previous one, and hands bands back in order, so
the caller reads (or writes) one band while the workers code the next and at most two bands are in memory.

Memory is glibc's default: each worker's arena keeps the buffers a tile freed for the next tile. Until sarcodec
0.8.3 every buffer of 1 MiB or more was mapped and unmapped (``mallopt`` threshold) and each tile ended with
``malloc_trim``, for a lower peak RSS; on the 10 000^2 scene that cost 10.6 M page faults in ``compress`` (53 s of
system time; the run 1.39x as long, decompress 1.23x) for 7-10 % less peak RSS (``results/codec/allocator/``). The
heap is trimmed once, when a pool closes, so a long-lived caller (``serve``, the Python API) gets back what the
arenas kept (~220-270 MiB after compressing a 3072^2 scene, ``results/codec/allocator/rss_after.txt``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy.typing as npt

from sarcodec.threads import single_thread

if TYPE_CHECKING:
    from sarcodec.io.sarc import SarcWriter

__all__ = ["Band", "RowSink", "TilePool", "cpu_workers", "set_cpu_workers", "single_thread", "torch_workers",
           "write_bands"]

T = TypeVar("T")
B = TypeVar("B")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None elsewhere (nothing to trim)."""
    try:
        trim: Callable[[int], int] | None = getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


class Band(Generic[B, T]):
    """A band submitted to a :class:`TilePool`: the caller's data about it and its tiles' futures."""

    def __init__(self, data: B, futures: list[Future[T]]) -> None:
        self.data = data
        self.futures = futures

    def results(self) -> list[T]:
        """The tiles' results in order (re-raises a tile's exception)."""
        return [f.result() for f in self.futures]


class TilePool(Generic[B, T]):
    """A pool of ``workers`` threads; with ``torch_cpu`` every tile's PyTorch work runs on one thread."""

    def __init__(self, workers: int, torch_cpu: bool = False) -> None:
        self.workers = max(1, workers)
        self._cpu = torch_cpu
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
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._stack.close()
        finally:
            if _MALLOC_TRIM is not None:  # the arenas' free memory back to the system, once per run
                _MALLOC_TRIM(0)

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

    def run(self, bands: Iterable[tuple[B, Sequence[Callable[[], T]]]]) -> Iterator[Band[B, T]]:
        """Submit ``(data, jobs)`` bands as they are produced and hand back every band, in order, each as soon as
        the next one has been submitted (:meth:`submit`, then :meth:`drain`)."""
        for data, jobs in bands:
            yield from self.submit(data, jobs)
        yield from self.drain()


def write_bands(writer: SarcWriter, bands: Iterator[Band[bytes, bytes]], bar: Any) -> None:
    """Write finished bands in order: the mask, then the tile records."""
    for band in bands:
        writer.band(band.data)
        for record in band.results():
            writer.tile(record)
            bar.update()


def torch_workers() -> int:
    """Tiles coded at once by the networks: one per thread PyTorch was given (``OMP_NUM_THREADS``)."""
    import torch

    return torch.get_num_threads()


_cpu_workers_limit: list[int] = []  # set_cpu_workers's value, if any


def set_cpu_workers(n: int | None) -> None:
    """Cap :func:`cpu_workers` at ``n`` for this process (None: no cap). A batch worker process that owns one core
    sets 1, as it sets PyTorch's threads to 1, so N workers on one machine use N cores, not N x cores."""
    _cpu_workers_limit[:] = [] if n is None else [max(1, int(n))]


def cpu_workers() -> int:
    """Tiles coded at once without networks: one per core this process may use (see :func:`set_cpu_workers`)."""
    cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return min([cores, *_cpu_workers_limit])


class RowSink(Protocol):
    """Where a decoder writes finished rows (an array or a GeoTIFF, see ``sarcodec.codec.api``)."""

    def write(self, row: int, values: npt.NDArray[Any]) -> None: ...  # noqa: D102
