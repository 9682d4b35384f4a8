"""A process-wide thread setting, safe under concurrent tiles: PyTorch's CPU threads (no PyTorch import until used).

The setting is process-wide (``torch.set_num_threads``), so a per-thread save/restore would let one thread's exit
hand another thread's running tile back to many threads. It is applied when the first of possibly concurrent
blocks starts and restored when the last one ends. (NumPy's BLAS threads were held the same way until sarcodec
0.7.2, whose PyTorch-free decoder no longer runs NumPy matrix products.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["single_thread"]


class _SharedSetting:
    """A process-wide setting held while any block is inside :meth:`section`. ``apply()`` sets it and returns
    the function that restores what was there before."""

    def __init__(self, apply: Callable[[], Callable[[], None]]) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._depth = 0
        self._restore: Callable[[], None] | None = None

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._restore = self._apply()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._restore is not None:
                    self._restore()
                    self._restore = None


def _torch_on_one_thread() -> Callable[[], None]:
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(saved)


_TORCH = _SharedSetting(_torch_on_one_thread)


def single_thread() -> contextlib.AbstractContextManager[None]:
    """Run PyTorch's CPU kernels on one thread inside the block, restored when the last of possibly concurrent
    blocks ends."""
    return _TORCH.section()

