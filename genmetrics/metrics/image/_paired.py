"""The shape shared by paired image metrics (SSIM, PSNR): one value per pair, their mean.

``update(samples, references)`` gets ``samples[i]``, a ``3 x H x W`` uint8 tensor, and
``references[i] == [reference]`` of the same size (see :mod:`genmetrics.io.image_batch`).
A subclass implements :meth:`PairedImageMetric.score_pairs`, which gets the checked
pairs and returns for each a float or a :class:`Failed` with the reason (e.g. an image
too small for SSIM's window). Failed pairs never abort the run: their per-sample value
is ``None``, they are listed under the component ``failed`` with the reason, and the
corpus value is the mean over the scored pairs (``math.fsum``, so independent of order
and batching). Bootstrap rows are ``[value, 1]`` per scored pair, ``[0, 0]`` otherwise.

    >>> import torch
    >>> class MeanGap(PairedImageMetric):
    ...     spec = MetricSpec(name="gap", modality="image", kind="paired",
    ...                       higher_is_better=False, unit="-")
    ...     def score_pairs(self, samples, references):
    ...         return [float((s.double() - r.double()).abs().mean()) if s.shape[1] > 1
    ...                 else Failed("too small") for s, r in zip(samples, references)]
    >>> a = torch.zeros(3, 2, 2, dtype=torch.uint8)
    >>> b = torch.full((3, 1, 1), 7, dtype=torch.uint8)
    >>> m = MeanGap()
    >>> m.update([a + 4, b], [[a], [b]])
    >>> r = m.compute(per_sample=True)["gap"]
    >>> r.value, r.per_sample, r.components["failed"]
    (4.0, [4.0, None], [{'index': 1, 'reason': 'too small'}])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import MetricSpec, library_version
from genmetrics.metrics._per_pair import Failed, PerPairMean

__all__ = ["Failed", "PairedImageMetric", "MetricSpec", "size_groups", "cpu_map",
           "worker_count", "cpu_array"]

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:N"
THREADS_HELP = "CPU worker threads, each running single-threaded torch ops (0: torch's count)"


def size_groups(images: Sequence[Any]) -> dict[tuple[int, int], list[int]]:
    """Indices of ``images`` (``3 x H x W``) grouped by ``(H, W)``, in order of first
    appearance; each group can be stacked into one ``n x 3 x H x W`` tensor.

    >>> import torch
    >>> size_groups([torch.zeros(3, 4, 5), torch.zeros(3, 2, 2), torch.zeros(3, 4, 5)])
    {(4, 5): [0, 2], (2, 2): [1]}
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(i)
    return groups


def cpu_array(image: Any) -> Any:
    """An image tensor (any device) or array as a C-contiguous numpy array, for the CPU
    kernels (a view where it already is one).

    >>> import torch
    >>> cpu_array(torch.arange(6, dtype=torch.uint8).view(2, 3).t()).flags.c_contiguous
    True
    """
    import numpy as np

    if not isinstance(image, np.ndarray):
        image = image.detach().cpu().numpy()
    return np.ascontiguousarray(image)


def _image(image: Any, name: str, what: str, index: int) -> Any:
    """``image`` as a ``3 x H x W`` uint8 torch tensor, or a UsageError saying what is wrong."""
    import torch

    if not isinstance(image, torch.Tensor):
        try:
            image = torch.as_tensor(image)
        except (TypeError, ValueError, RuntimeError):
            raise UsageError(f"{name}: {what} {index} is a {type(image).__name__}, not an "
                             "image tensor (3 x H x W, uint8)") from None
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise UsageError(f"{name}: {what} {index} is a {image.dtype} tensor of shape "
                         f"{tuple(image.shape)}; paired image metrics take 3 x H x W uint8 "
                         "RGB tensors (as genmetrics' image reader gives)")
    return image


class PairedImageMetric(PerPairMean):
    """Base class: per-pair values (or failures) of same-size image pairs, their mean."""

    merge_ignores = frozenset({"device", "threads"})  # settings that cannot move a value

    def score_pairs(self, samples: Sequence[Any], references: Sequence[Any]
                    ) -> list[float | Failed]:
        """Values of checked pairs: ``3 x H x W`` uint8 tensors, same size pair by pair."""
        raise NotImplementedError

    def update(self, samples: Sequence[Any],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        name = self.spec.name
        if references is None or len(references) != len(samples):
            raise UsageError(f"{name} compares each sample with its reference image: give "
                             "one reference per sample (--reference FOLDER)")
        from genmetrics.io.common import Unusable

        checked, refs, outcomes = [], [], []
        for i, (sample, ref) in enumerate(zip(samples, references, strict=True)):
            if len(ref) != 1:
                raise UsageError(f"{name}: sample {i} has {len(ref)} reference images; it "
                                 "takes exactly one (same relative path under --reference)")
            if isinstance(ref[0], Unusable):  # the reader could not pair it
                outcomes.append(Failed(ref[0].reason))
                continue
            s, r = _image(sample, name, "sample", i), _image(ref[0], name, "reference", i)
            if s.shape != r.shape:
                outcomes.append(Failed(f"size {s.shape[2]}x{s.shape[1]} differs from its "
                                       f"reference ({r.shape[2]}x{r.shape[1]})"))
                continue
            outcomes.append(len(checked))  # where its value will be
            checked.append(s)
            refs.append(r)
        values = self.score_pairs(checked, refs) if checked else []
        self.record(values[o] if isinstance(o, int) else o for o in outcomes)

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch")}


# -- CPU worker threads -------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: tuple[int, int, Any] | None = None  # (process id, workers, executor)


def _single_threaded(ready: threading.Barrier) -> None:
    import torch

    torch.set_num_threads(1)  # this thread's OpenMP and MKL settings
    torch.get_num_threads()  # settle torch's lazy per-thread initialisation now
    ready.wait()


def _cpu_pool(workers: int) -> Any:
    """A process-wide pool of ``workers`` threads whose torch ops run single-threaded.

    ``torch.set_num_threads(1)`` in a worker also changes torch's process-wide default
    (used by threads started later); the caller's setting is put back once every worker
    has started. A pool made before a ``fork`` is not reused in the child.
    """
    global _pool
    from concurrent.futures import ThreadPoolExecutor

    import torch

    with _pool_lock:
        if _pool is not None and _pool[0] == os.getpid() and _pool[1] == workers:
            return _pool[2]
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False)
        saved = torch.get_num_threads()
        ready = threading.Barrier(workers)
        executor = ThreadPoolExecutor(workers, thread_name_prefix="genmetrics-image",
                                      initializer=_single_threaded, initargs=(ready,))
        for future in [executor.submit(int) for _ in range(workers)]:
            future.result()
        torch.set_num_threads(saved)
        _pool = (os.getpid(), workers, executor)
        return executor


def cpu_map(fn: Callable[[Any], Any], tasks: Iterable[Any], threads: int = 0) -> Iterator[Any]:
    """``map(fn, tasks)`` on ``threads`` CPU worker threads (0: ``torch.get_num_threads()``),
    results in task order. Each worker runs torch ops single-threaded: independent tasks
    scale with the cores even on a busy machine, where torch's intra-op threads stall
    waiting for one another after every operation.

    >>> list(cpu_map(lambda k: k * k, range(5), threads=2))
    [0, 1, 4, 9, 16]
    """
    return _cpu_pool(worker_count(threads)).map(fn, tasks)


def worker_count(threads: int) -> int:
    """The number of CPU worker threads for option ``threads`` (0: ``torch.get_num_threads()``).

    >>> worker_count(3)
    3
    """
    import torch

    if threads < 0:
        raise UsageError(f"threads must be 0 (torch's thread count) or more, not {threads}")
    return threads or torch.get_num_threads()
