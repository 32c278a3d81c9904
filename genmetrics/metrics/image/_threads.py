"""Independent linear-algebra problems side by side on the CPU, one BLAS thread each.

LAPACK's symmetric eigensolvers run slower on two OpenBLAS threads than on one (their
tridiagonal reduction is memory-bound: 1.3 s against 0.6 s for a 2048 x 2048 `eigvalsh`
on this project's 2-core machine). So the interval code (FID's replicates, Vendi's
jackknife) computes independent problems one per core, each with one BLAS thread
(threadpoolctl; without it, one problem at a time). Results do not depend on the number
of cores.

    >>> in_parallel(lambda i: i * i, range(4))
    [0, 1, 4, 9]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which numpy's BLAS/LAPACK use one thread (a no-op without
    threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - an optional speed-up
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def in_parallel(fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """``[fn(i) for i in items]``, one item per core, one BLAS thread each."""
    items = list(items)
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover
        return [fn(i) for i in items]
    workers = min(len(items), os.cpu_count() or 1)
    with one_blas_thread():
        if workers <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
