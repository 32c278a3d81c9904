"""Dynamic time warping paths, vectorised, with ``fastdtw``'s exact tie-breaking.

Exact DTW of an ``n x m`` cost matrix ``c`` (``c[i, j]`` the distance of frame ``i`` of
the first sequence to frame ``j`` of the second), as ``fastdtw.dtw`` computes it::

    D[0, 0] = 0,  D[i, 0] = D[0, j] = inf
    D[i, j] = min(D[i-1, j] + c, D[i, j-1] + c, D[i-1, j-1] + c),  c = c[i-1, j-1]

where, on a tie, the first of (up, left, diagonal) wins (Python's ``min``), and the
path is traced back from ``(n, m)``. The three sums are formed before they are compared,
as fastdtw does, so ties created by rounding are broken the same way too.

Instead of one Python step per cell, cells are computed a whole anti-diagonal
(``i + j`` constant) at a time, for a batch of pairs at once: each diagonal depends only
on the two before it, and takes three numpy calls (a strided view of the costs gives
the diagonal's costs without copying them). Since rounding is monotone,
``min(a + c, b + c, e + c) == min(a, b, e) + c`` exactly, so the forward pass only keeps
``D``; which of the three sums won (with fastdtw's tie order) is worked out while tracing
back, the only part that walks cell by cell (``n + m`` steps). Memory: 8 bytes times
``n (n + 2 m)`` (costs and accumulated costs): about 9 MB for two 5 s clips at an 8 ms
hop, 1.4 GB for two 60 s clips (with a window too: it saves time, not memory).

:func:`fastdtw_paths` reproduces ``fastdtw.fastdtw(x, y, radius)`` (the approximation:
halve both sequences until one is shorter than ``radius + 2``, solve exactly there,
then refine within ``radius`` of the coarse path, level by level) with the same
windows, so it returns the same path.

    >>> import numpy as np
    >>> cost = np.abs(np.subtract.outer([1.0, 2, 3, 4, 5], [2.0, 3, 4]))
    >>> paths([cost])[0].tolist()          # fastdtw.dtw([1, 2, 3, 4, 5], [2, 3, 4])
    [[0, 0], [1, 0], [2, 1], [3, 2], [4, 2]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Cells per chunk of pairs: costs (n x m) and accumulated costs by diagonal
#: ((n + m) x n), 8 bytes each, so about 130 MB at most.
CELL_BUDGET = 16_000_000

Window = tuple[np.ndarray, np.ndarray]  # per row i: the allowed columns lo[i]..hi[i]


def paths(costs: Sequence[np.ndarray], windows: Sequence[Window | None] | None = None,
          shapes: Sequence[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """The DTW path (``L x 2`` int array of ``(i, j)``) of each cost matrix.

    ``windows[k]``, when given, restricts pair ``k`` to the columns ``lo[i]..hi[i]`` of
    each row ``i`` (both inclusive, ``lo`` and ``hi`` non-decreasing), as fastdtw's
    window does; cells outside are infinitely expensive. Then ``costs[k]`` holds only
    the costs of the cells in the window, in the order of :func:`window_cells`, and
    ``shapes[k]`` is the full ``(n, m)``.
    """
    if windows is None:
        windows = [None] * len(costs)
    if shapes is None:
        shapes = [c.shape for c in costs]  # type: ignore[misc]
    out: list[np.ndarray | None] = [None] * len(costs)
    # similar sizes together, so that little of a chunk is padding
    order = sorted(range(len(costs)), key=lambda k: shapes[k])
    chunk: list[int] = []
    n_max = m_max = 0
    for k in order:
        n, m = shapes[k]
        if n < 1 or m < 1:
            raise ValueError("DTW needs at least one frame on each side")
        n2, m2 = max(n_max, n), max(m_max, m)
        if chunk and (len(chunk) + 1) * n2 * (n2 + 2 * m2) > CELL_BUDGET:
            _solve(chunk, costs, windows, shapes, out)
            chunk, n2, m2 = [], n, m
        chunk.append(k)
        n_max, m_max = n2, m2
    if chunk:
        _solve(chunk, costs, windows, shapes, out)
    return out  # type: ignore[return-value]


def _diagonal_range(window: Window | None, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per diagonal ``d = i + j`` (0-based cells): the first and last row it crosses."""
    rows = np.arange(n)
    lo, hi = (np.zeros(n, np.int64), np.full(n, m - 1)) if window is None else window
    d = np.arange(n + m - 1)
    first = np.searchsorted(rows + hi, d, side="left")
    last = np.searchsorted(rows + lo, d, side="right") - 1
    return first, last


def window_cells(window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cells in a window, row by row."""
    lo, hi = window
    widths = hi - lo + 1
    rows = np.repeat(np.arange(len(lo)), widths)
    starts = np.cumsum(widths) - widths
    cols = np.arange(int(widths.sum())) - np.repeat(starts - lo, widths)
    return rows, cols


def _solve(chunk: list[int], costs: Sequence[np.ndarray], windows: Sequence[Window | None],
           all_shapes: Sequence[tuple[int, int]], out: list[np.ndarray | None]) -> None:
    shapes = [tuple(all_shapes[k]) for k in chunk]
    B = len(chunk)
    N = max(n for n, _ in shapes)
    M = max(m for _, m in shapes)
    nd = N + M - 1
    inf = np.inf

    # the costs, padded with inf to N x M, and a diagonal-major view of them:
    # S[d, b, i] = C[b, i, d - i] sits at flat offset b*N*M + i*M + d - i. Offsets of
    # cells off the matrix (d - i < 0 or >= M) stay inside the buffer but alias other
    # cells; they are never read, since each diagonal is sliced to its rows.
    C = np.full((B, N, M), inf)
    first = np.full(nd, N, np.int64)
    last = np.full(nd, -1, np.int64)
    for b, k in enumerate(chunk):
        n, m = shapes[b]
        window = windows[k]
        if window is None:
            C[b, :n, :m] = costs[k]
        else:
            rows, cols = window_cells(window)
            C[b, rows, cols] = costs[k]
        f, la = _diagonal_range(window, n, m)
        np.minimum(first[: len(f)], f, out=first[: len(f)])
        np.maximum(last[: len(la)], la, out=last[: len(la)])
    item = C.itemsize
    S = np.lib.stride_tricks.as_strided(C, shape=(nd, B, N),
                                        strides=(item, N * M * item, (M - 1) * item),
                                        writeable=False)

    # D of every diagonal: row d + 2 holds diagonal d (rows 0 and 1: diagonals -2 and -1,
    # with D[0, 0] = 0), index i + 1 holds row i (index 0 is the D[0, j] = inf border,
    # index N + 1 a guard). Only cells that some later step reads are ever written.
    W = N + 2
    D = np.empty((nd + 2, B, W))
    D[:2] = inf
    D[:, :, 0] = inf
    D[0, :, 0] = 0.0
    best = np.empty((B, N))
    add, minimum = np.add, np.minimum
    for d in range(nd):
        lo, hi = int(first[d]), int(last[d]) + 1  # rows lo..hi-1 are on this diagonal
        prev2, prev1, cur = D[d], D[d + 1], D[d + 2]
        if lo < hi:
            # min(a + c, b + c, e + c) == min(a, b, e) + c exactly (rounding is
            # monotone); which of the three sums won is worked out when tracing back
            m = best[:, lo:hi]
            minimum(prev1[:, lo:hi], prev1[:, lo + 1:hi + 1], out=m)  # D[i-1, j], D[i, j-1]
            minimum(m, prev2[:, lo:hi], out=m)  # D[i-1, j-1]
            add(m, S[d, :, lo:hi], out=cur[:, lo + 1:hi + 1])
        # the next two diagonals read at most one cell beyond each end of this one
        cur[:, lo] = inf
        cur[:, min(hi + 1, N + 1)] = inf

    flat_d = memoryview(D.reshape(-1))
    flat_c = memoryview(C.reshape(-1))
    for b, k in enumerate(chunk):
        out[k] = _backtrack(flat_d, flat_c, b, B, N, M, *shapes[b])


def _backtrack(flat_d: memoryview, flat_c: memoryview, b: int, B: int, N: int, M: int,
               n: int, m: int) -> np.ndarray:
    """Trace back from cell (n, m), redoing fastdtw's ``min`` of the three sums."""
    BW = B * (N + 2)
    at_d, at_c = b * (N + 2), b * N * M - M - 1
    ii: list[int] = []
    jj: list[int] = []
    i, j = n, m  # 1-based cell, as in fastdtw
    while i > 0 and j > 0:
        ii.append(i - 1)
        jj.append(j - 1)
        r = i + j
        c = flat_c[at_c + i * M + j]  # cost[i-1, j-1]
        up = flat_d[(r - 1) * BW + at_d + i - 1] + c  # from D[i-1, j]
        left = flat_d[(r - 1) * BW + at_d + i] + c  # from D[i, j-1]
        diag = flat_d[(r - 2) * BW + at_d + i - 1] + c  # from D[i-1, j-1]
        if up <= left and up <= diag:  # the first minimum wins, as Python's min
            i -= 1
        elif left <= diag:
            j -= 1
        else:
            i -= 1
            j -= 1
    if i or j:  # only an unreachable end cell (an empty window) gets here
        raise ValueError("DTW found no path through the window")
    path = np.empty((len(ii), 2), dtype=np.int64)
    path[:, 0] = ii[::-1]
    path[:, 1] = jj[::-1]
    return path


def expand_window(coarse_path: np.ndarray, n: int, m: int, radius: int) -> Window:
    """fastdtw's ``__expand_window``: the coarse path widened by ``radius``, doubled.

    Every coarse cell within ``radius`` (in both directions) of the path, each made
    into its 2 x 2 block of fine cells, clipped to ``n x m``. Because the path is
    monotone, each fine row gets one run of columns, as fastdtw's row scan finds.
    """
    ci, cj = coarse_path[:, 0], coarse_path[:, 1]
    rows = np.arange(n) // 2  # the coarse row of each fine row
    first = np.searchsorted(ci, rows - radius, side="left")
    last = np.searchsorted(ci, rows + radius, side="right") - 1
    lo = np.maximum(2 * (cj[first] - radius), 0)
    hi = np.minimum(2 * (cj[last] + radius) + 1, m - 1)
    return lo.astype(np.int64), hi.astype(np.int64)


def fastdtw_paths(xs: Sequence[Any], ys: Sequence[Any], radius: int,
                  cost: Callable[[Sequence[tuple[Any, Any]], Sequence[Window | None]],
                                 list[np.ndarray]],
                  halve: Callable[[Any], Any]) -> list[np.ndarray]:
    """``fastdtw.fastdtw(x, y, radius, dist)[1]`` for each pair, batched level by level.

    ``cost(pairs, windows)`` gives, for each pair of sequences, the ``len(x) x len(y)``
    distance matrix (window ``None``) or the distances of the window's cells in the
    order of :func:`window_cells`; ``halve(x)`` averages consecutive frames pairwise,
    dropping an odd last one (fastdtw's ``__reduce_by_half``).
    """
    if radius < 1:
        raise ValueError("radius must be at least 1")
    pyramids: list[list[tuple[Any, Any]]] = []
    for x, y in zip(xs, ys, strict=True):
        levels = [(x, y)]
        while len(x) >= radius + 2 and len(y) >= radius + 2:
            x, y = halve(x), halve(y)
            levels.append((x, y))
        pyramids.append(levels)
    # the coarsest level of each pair, exactly; then finer levels, all pairs that have
    # one at that step together
    coarsest = [p[-1] for p in pyramids]
    found = paths(cost(coarsest, [None] * len(coarsest)))
    step = 1
    while True:
        todo = [k for k, p in enumerate(pyramids) if len(p) - 1 - step >= 0]
        if not todo:
            return found
        pairs = [pyramids[k][len(pyramids[k]) - 1 - step] for k in todo]
        windows = [expand_window(found[k], len(x), len(y), radius)
                   for k, (x, y) in zip(todo, pairs, strict=True)]
        shapes = [(len(x), len(y)) for x, y in pairs]
        for k, path in zip(todo, paths(cost(pairs, windows), windows, shapes), strict=True):
            found[k] = path
        step += 1
