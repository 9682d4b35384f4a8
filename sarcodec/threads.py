"""Process-wide control of PyTorch's CPU threads, safe under concurrent tiles (no PyTorch import until used)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["single_thread"]

_THREADS_LOCK = threading.Lock()
_threads_state = {"depth": 0, "saved": 1}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run PyTorch's CPU kernels on one thread inside the block, restored when the last of possibly concurrent
    blocks ends (``torch.set_num_threads`` is process-wide: a per-thread save/restore would let one thread's exit
    hand another thread's running tile back to many threads)."""
    import torch

    with _THREADS_LOCK:
        if _threads_state["depth"] == 0:
            _threads_state["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_state["depth"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_state["depth"] -= 1
            if _threads_state["depth"] == 0:
                torch.set_num_threads(_threads_state["saved"])
