"""The BLAS limit of the interval code (genmetrics/metrics/image/_threads.py): shared by
concurrent callers, restored by the last one out, same results on any number of workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from genmetrics.metrics.image import _threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return sorted({info["num_threads"] for info in threadpoolctl.threadpool_info()
                   if info["user_api"] == "blas"})


class _FakeLimits:
    """Stands in for threadpoolctl's controller: records when a limit is set/restored."""

    log: list[str] = []

    def __init__(self, limits: int, user_api: str) -> None:
        self.log.append(f"limit {limits} {user_api}")

    def restore_original_limits(self) -> None:
        self.log.append("restore")


def test_overlapping_callers_keep_the_limit_until_the_last_one_leaves(monkeypatch):
    """B enters first and stays; A enters and leaves while B works: one limit is set when
    B enters and restored only when B leaves (A's exit must not lift it)."""
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", _FakeLimits)
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    _FakeLimits.log = []
    b_inside, release_b = threading.Event(), threading.Event()

    def b_work(i: int) -> None:
        b_inside.set()
        release_b.wait(30)

    slow = threading.Thread(target=lambda: _threads.in_parallel(b_work, range(2)))
    slow.start()
    try:
        assert b_inside.wait(30)
        fast = threading.Thread(target=lambda: _threads.in_parallel(time.sleep, [0.01] * 2))
        fast.start()
        fast.join(30)
        assert _FakeLimits.log == ["limit 1 blas"] and _threads._holders == 1
    finally:
        release_b.set()
        slow.join(30)
    assert _FakeLimits.log == ["limit 1 blas", "restore"] and _threads._holders == 0


def _numpy_blas_threads() -> list[int]:
    """Threads of the BLAS numpy itself links (other libraries may bring their own, e.g.
    faiss's OpenMP OpenBLAS, whose thread count is per calling thread)."""
    import numpy

    root = str(Path(numpy.__file__).parent.parent)
    return sorted({info["num_threads"] for info in threadpoolctl.threadpool_info()
                   if info["user_api"] == "blas" and info["filepath"].startswith(root)
                   and "numpy" in info["filepath"]})


def test_the_real_limit_holds_inside_and_is_restored_after():
    before = _numpy_blas_threads()
    seen = _threads.in_parallel(lambda i: _numpy_blas_threads(), range(2))
    if _threads.available_cores() > 1 and before:
        assert seen == [[1], [1]]
    assert _numpy_blas_threads() == before


def test_results_do_not_depend_on_the_number_of_workers(monkeypatch):
    rng = np.random.default_rng(0)
    mats = [(lambda a: a @ a.T)(rng.normal(size=(40, 40))) for _ in range(5)]
    many = _threads.in_parallel(np.linalg.eigvalsh, mats)
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    one = _threads.in_parallel(np.linalg.eigvalsh, mats)
    for a, b in zip(many, one, strict=True):
        np.testing.assert_array_equal(a, b)
