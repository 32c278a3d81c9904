"""Several processes, one result: sharding and state reduction with ``torch.distributed``.

When a default process group is initialised (by you, or by ``torchrun`` for the CLI),
each process scores its own shard and the states are combined before ``compute``:

* ``"sum"`` fields (counts, sums, sums of outer products) are **all-reduced**;
* ``"cat"`` fields (per-sample rows, typed :class:`~genmetrics.rows.Rows` or lists of
  feature arrays) are **gathered in rank order** with ``all_gather_object``; shards are
  contiguous blocks of the input in its order (:func:`shard_bounds`), so rank order is
  input order and the result is the one a single process computes (sums may differ in
  the last bits: floating-point addition is done in another order);
* sample ids, skipped files, warnings and errors are gathered the same way; a metric that
  failed on any rank is dropped on every rank.

Every rank receives the same result; the CLI writes the scorecard from rank 0 only.
Backends: ``gloo`` for CPU tensors, ``nccl`` when the process uses CUDA (the tensors for
the reduction are then put on ``cuda:LOCAL_RANK``).

Multi-node, e.g. 2 nodes x 8 GPUs (run on every node, ``--node-rank`` 0 and 1)::

    torchrun --nnodes 2 --nproc-per-node 8 --node-rank 0 \\
        --rdzv-backend c10d --rdzv-endpoint HOST0:29500 --rdzv-id eval1 \\
        -m genmetrics score --modality image samples/ --reference-stats NAME

    >>> shard_bounds(10, 0, 3), shard_bounds(10, 2, 3)
    ((0, 3), (6, 10))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.rows import Rows, cat_states


def _dist() -> Any:
    import sys

    torch = sys.modules.get("torch")  # no torch loaded: certainly not distributed
    if torch is None:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when there is none."""
    dist = _dist()
    return (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)


_STARTED_HERE = False  # whether init_from_environment created the process group


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment() -> bool:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): initialise the default process group once.

    nccl when CUDA is present, else gloo. Returns True when this process is one of several.
    """
    if not launched_by_torchrun():
        return _dist() is not None
    import torch
    import torch.distributed as dist

    global _STARTED_HERE
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        _STARTED_HERE = True
    return True


def shutdown() -> None:
    """Destroy the process group if :func:`init_from_environment` created it (a group
    left alive at interpreter exit can abort the process from its communication threads)."""
    global _STARTED_HERE
    dist = _dist()
    if dist is not None and _STARTED_HERE:
        dist.barrier()
        dist.destroy_process_group()
        _STARTED_HERE = False


def shard_bounds(count: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous block ``[start, stop)`` of ``count`` items that ``rank`` takes."""
    return count * rank // size, count * (rank + 1) // size


def shard(items: Iterable[Any], count: int, rank: int, size: int) -> Iterator[Any]:
    """This rank's block of an iterable of ``count`` items (read past, not decoded, by
    sources that offer ``shard`` themselves)."""
    start, stop = shard_bounds(count, rank, size)
    for index, item in enumerate(items):
        if index >= stop:
            return
        if index >= start:
            yield item


def _reduction_device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (any picklable object)."""
    dist = _dist()
    if dist is None:
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def all_reduce_sum(value: Any, what: str) -> Any:
    """Sum a number or array over ranks (int64 for integers, float64 otherwise).

    A rank that saw no samples holds the initial 0 where others hold arrays; it takes
    part with zeros of the common shape.
    """
    import torch

    dist = _dist()
    if dist is None:
        return value
    array = np.asarray(value)
    integer = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)
    everyone = all_gather((array.shape, integer))
    shapes = {shape for shape, _ in everyone if shape != ()}
    if len(shapes) > 1:
        raise MetricError(f"{what}: ranks hold states of different shapes {sorted(shapes)}")
    shape = shapes.pop() if shapes else ()
    integer = all(flag for _, flag in everyone)  # one dtype on every rank
    dtype = np.int64 if integer else np.float64
    local = np.zeros(shape, dtype) + array.astype(dtype)
    tensor = torch.from_numpy(np.ascontiguousarray(local)).to(_reduction_device())
    dist.all_reduce(tensor)
    total = tensor.cpu().numpy()
    if shape == ():
        return int(total.item()) if integer else float(total.item())
    return total


def reduce_metric_states(metrics: dict[str, Any]) -> None:
    """Replace each metric's state by the state of all ranks together (in place)."""
    for name, metric in metrics.items():
        for key, reduction in metric.state_reductions.items():
            if reduction == "sum":
                metric.state[key] = all_reduce_sum(metric.state[key], f"{name}.{key}")
            else:  # typed Rows travel as one compact array each; lists as lists
                value = metric.state[key]
                parts = all_gather(value if isinstance(value, Rows) else list(value))
                metric.state[key] = cat_states(parts)


def combine_digests(digest: Any) -> str:
    """The digest of the whole input: every rank's item hashes, hashed as one process
    hashes them (sorted, so it depends neither on the number of processes nor on their
    order). ``digest`` is a :class:`~genmetrics.io.common.Digest`."""
    from genmetrics.io.common import Digest

    parts = all_gather(list(digest.items))
    if len(parts) == 1:
        return digest.hexdigest()
    whole = Digest()
    for part in parts:
        for item in part:
            whole.add_item(item)
    return whole.hexdigest()
