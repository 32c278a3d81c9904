"""Bootstrap confidence intervals and paired significance tests over per-sample rows.

Every metric whose corpus value is a function of *summed per-sample sufficient
statistics* can be resampled cheaply, as sacrebleu does for BLEU: a bootstrap replicate
draws ``n`` samples with replacement, which amounts to a vector of counts ``w``; the
replicate's statistics are ``w @ rows`` and its value is the metric's own function of
those totals. Means (ROUGE, METEOR) are the special case of one column divided by ``n``.

A metric opts in by implementing ``Metric.bootstrap_rows()`` (result name -> an
``n x k`` float64 array in sample order) and ``Metric.value_from_totals(result, totals,
n)``.

    >>> import numpy as np
    >>> rows = np.array([[1.0], [2.0], [3.0], [4.0]])
    >>> lo, hi = percentile_interval(bootstrap_values(rows, lambda t, n: t[:, 0] / n, 200, 1))
    >>> bool(1.0 <= lo < 2.5 < hi <= 4.0)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

DEFAULT_SEED = 12345
CELLS_PER_CHUNK = 4_000_000  # replicates x samples held in memory at once

ValueFn = Callable[[np.ndarray, int], np.ndarray]


def resample_weights(n: int, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """Count vectors (``chunk x n``) of bootstrap replicates, in chunks, reproducibly."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(replicates, CELLS_PER_CHUNK // max(n, 1)))
    done = 0
    while done < replicates:
        b = min(chunk, replicates - done)
        picks = rng.integers(0, n, size=(b, n))
        flat = picks + (np.arange(b)[:, None] * n)
        yield np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap_values(rows: np.ndarray, value: ValueFn, replicates: int, seed: int) -> np.ndarray:
    """The metric value of each bootstrap replicate (``replicates`` floats)."""
    n = rows.shape[0]
    out = [value(w @ rows, n) for w in resample_weights(n, replicates, seed)]
    return np.concatenate(out) if out else np.empty(0)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values."""
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def paired_bootstrap_p(
    rows_new: np.ndarray,
    rows_base: np.ndarray,
    value_new: ValueFn,
    value_base: ValueFn,
    higher_is_better: bool,
    replicates: int = 1000,
    seed: int = DEFAULT_SEED,
) -> float:
    """One-sided p-value that NEW is *not* worse than BASE (paired bootstrap, Koehn 2004).

    Both row arrays describe the same samples in the same order. Each replicate
    resamples the same sample indices for both systems; the p-value is the fraction of
    replicates in which NEW is at least as good as BASE. A small p-value means NEW is
    worse in nearly every resample: a significant regression.
    """
    if rows_new.shape[0] != rows_base.shape[0]:
        raise ValueError("paired rows must describe the same samples")
    n = rows_new.shape[0]
    not_worse = 0
    for w in resample_weights(n, replicates, seed):
        new = value_new(w @ rows_new, n)
        base = value_base(w @ rows_base, n)
        not_worse += int(np.sum(new >= base if higher_is_better else new <= base))
    return (not_worse + 1) / (replicates + 1)
