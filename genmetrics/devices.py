"""The run's device: one setting that models (backbones, extractors, language models)
read when their own ``device`` option is ``auto``.

:func:`genmetrics.score` (``--device``) and the :class:`~genmetrics.evaluator.Evaluator`
(``device=``) set it for the time they run; nothing copies it into each metric's
options. A metric's own ``device`` option (``--set fid.device=cpu``) still wins: only
``auto`` follows the run.

    >>> from genmetrics.features.causal_lm import resolve_device
    >>> with using_device("cpu"):
    ...     current_device(), resolve_device("auto")
    ('cpu', 'cpu')
    >>> current_device() is None  # outside a run: auto is CUDA when present, else CPU
    True

It is a :class:`contextvars.ContextVar`: two Evaluators in one process (or two threads)
each see their own. A thread a metric starts itself sees no run device; resolve the
device before starting it (the metrics do: ``device()`` is resolved on first use).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_RUN_DEVICE: ContextVar[str | None] = ContextVar("genmetrics_run_device", default=None)


def current_device() -> str | None:
    """The device of the run being scored, or None (``auto``, or no run)."""
    return _RUN_DEVICE.get()


@contextmanager
def using_device(device: str | None) -> Iterator[None]:
    """Make ``device`` the run's device inside the ``with`` block (``None`` or ``"auto"``:
    none, so ``auto`` means CUDA when present, else CPU)."""
    token = _RUN_DEVICE.set(None if device in (None, "auto") else str(device))
    try:
        yield
    finally:
        _RUN_DEVICE.reset(token)


__all__ = ["current_device", "using_device"]
