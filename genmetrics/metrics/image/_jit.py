"""Compile-once numba kernels for the image metrics' CPU paths (SSIM, PSNR).

A kernel is a plain Python function over numpy arrays; :func:`compiled` turns it into
machine code the first time a process asks for it, or returns None where numba is not
installed (each metric then takes its own numpy or torch path, with the same values).

Cost: starting numba in a process takes about 0.7 s (its import and code generator),
paid once whatever is compiled. Kernels are cached on disk (numba's ``cache=True``: in
the ``__pycache__`` folder next to the kernel's file, else numba's per-user cache
folder), so a later process loads a kernel in ~0.01 s instead of compiling it again;
where neither folder can be written, the kernel is compiled without a cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["compiled"]

_lock = threading.Lock()
_compiled: dict[Callable[..., Any], Callable[..., Any] | None] = {}


def compiled(function: Callable[..., Any], signature: str, **options: Any
             ) -> Callable[..., Any] | None:
    """``function`` compiled by numba (``numba.njit(signature, **options)``) once per
    process, or None without numba.

    >>> def twice(x):
    ...     return 2 * x
    >>> fast = compiled(twice, "int64(int64)")
    >>> fast is None or (fast(21), fast is compiled(twice, "int64(int64)")) == (42, True)
    True
    """
    kernel = _compiled.get(function, _compiled)  # no lock once compiled: PSNR asks per pair
    if kernel is not _compiled:
        return kernel
    with _lock:
        if function not in _compiled:
            _compiled[function] = _compile(function, signature, options)
        return _compiled[function]


def _compile(function: Callable[..., Any], signature: str, options: dict[str, Any]
             ) -> Callable[..., Any] | None:
    try:
        import numba
    except ImportError:
        return None
    try:
        return numba.njit(signature, cache=True, **options)(function)
    except RuntimeError:  # numba found no writable cache folder (or the function has
        return numba.njit(signature, cache=False, **options)(function)  # no source file)
