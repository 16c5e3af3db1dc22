"""CPU thread limits for training and evaluation: torch's intra-op threads and numpy's BLAS threads.

On a small shared machine (2 cores, say), multi-threaded OpenBLAS spins on the tiny matrix products of a
data sampler and torch's threads compete with it, which slows every training step several times over;
one thread per process is often fastest there. ``limit_threads(n)`` sets both for a block and restores
them afterwards. The BLAS limit uses threadpoolctl when it is installed (it comes with scikit-learn, a
dependency of celer); without it only torch's threads are limited.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from unfoldkit.unrolled.validation import positive_int


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads and at most ``threads`` BLAS threads (None: unchanged)."""
    if threads is None:
        yield
        return
    threads = positive_int("threads", threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - optional dependency
            yield
        else:
            with threadpool_limits(limits=threads, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(old)
