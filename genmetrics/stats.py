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

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


# -- distribution metrics: rerun intervals from bootstrap replicates -------------------
#
# FID, KID, precision/recall and the other distribution metrics are not means of
# per-sample rows, so each computes its own bootstrap replicates from the feature rows it
# kept (``Metric.bootstrap_replicates``), with the draws of one shared :class:`Resampling`
# (the same draw ``b`` for every metric of a run, and for both scorecards of a paired
# comparison). Their interval answers the gate's question -- where would this number land
# if the run were repeated on fresh samples of the same size? -- so it is a 95% *rerun*
# interval, ``value ± z·√2·SE``: the value of an independent rerun differs from this one
# by the noise of both, hence √2. A percentile interval of the replicates would be
# centred on the replicates' own small-sample bias (FID's grows when a replicate repeats
# samples), and covers a rerun far less often than 95%.

# Every random stream a Resampling draws from (its draws are seeded by (seed, stream, n)):
# bootstrap counts over samples and references, and half-samples over each (FID, sFID).
SAMPLE_STREAM, REFERENCE_STREAM = 0, 1
SAMPLE_HALF_STREAM, REFERENCE_HALF_STREAM = 2, 3


class Resampling:
    """The bootstrap draws of one run: ``replicates`` count vectors over the samples and,
    when the reference is a set of rows rather than fixed statistics, over the references.

    Draws depend only on ``(seed, stream, n)``: every metric of a run, and a later paired
    comparison, sees the same replicate ``b``.

        >>> r = Resampling(replicates=3, seed=7)
        >>> w = r.sample_weights(5)
        >>> w.shape, bool((w.sum(axis=1) == 5).all()), bool((w == r.sample_weights(5)).all())
        ((3, 5), True, True)
    """

    def __init__(self, replicates: int, seed: int = DEFAULT_SEED) -> None:
        if replicates < 2:
            raise ValueError("a bootstrap needs at least 2 replicates")
        self.replicates, self.seed = int(replicates), int(seed)

    def _weights(self, n: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream, n])
        out = np.empty((self.replicates, n), dtype=np.float64)
        for b in range(self.replicates):
            out[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        return out

    def sample_weights(self, n: int) -> np.ndarray:
        """``replicates x n`` counts (each row sums to ``n``) over the samples."""
        return self._weights(n, SAMPLE_STREAM)

    def reference_weights(self, m: int) -> np.ndarray:
        """``replicates x m`` counts over the reference rows (a different stream)."""
        return self._weights(m, REFERENCE_STREAM)

    # Half-sampling (a delete-n/2 jackknife): each replicate keeps a random half of the
    # rows, without replacement, each weighted n / h so that a row still sums to n. For
    # even n (h = n/2), over random halves a linear statistic varies exactly as it does
    # between reruns of size n (the finite-population factor 1 - h/n makes up for the half
    # size): Var = (n - h) / (h n) σ². For odd n the replicates alternate h = ⌊n/2⌋ and
    # ⌈n/2⌉, whose average factor is 1 + 1/(2k(k+1)) (n = 2k + 1: 1.25 at n = 3, 1.02 at
    # n = 11) rather than (k+1)/k with ⌊n/2⌋ alone. No row is repeated: FID's bootstrap
    # replicates, whose covariances lose rank to repeated rows, spread ~5x wider than
    # reruns do below n = d (d = 512, n = 300), half-samples 1.1-1.7x (README, "Intervals
    # for distribution metrics").
    def _halves(self, n: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream, n])
        out = np.zeros((self.replicates, n), dtype=np.float64)
        for b in range(self.replicates):
            half = max(1, n // 2 if b % 2 == 0 else (n + 1) // 2)
            out[b, rng.choice(n, size=half, replace=False)] = n / half
        return out

    def sample_halves(self, n: int) -> np.ndarray:
        """``replicates x n`` half-sampling weights over the samples: ``n / h`` on a
        random ``h`` of them, 0 elsewhere (each row sums to ``n``); ``h = n // 2`` on even
        replicates, ``(n + 1) // 2`` on odd ones (the same for even ``n``).

            >>> h = Resampling(replicates=2, seed=7).sample_halves(5)
            >>> [row.count(0.0) for row in h.tolist()], bool(np.allclose(h.sum(axis=1), 5))
            ([3, 2], True)
        """
        return self._halves(n, SAMPLE_HALF_STREAM)

    def reference_halves(self, m: int) -> np.ndarray:
        """Half-sampling weights over the reference rows (a different stream)."""
        return self._halves(m, REFERENCE_HALF_STREAM)


@dataclass
class Replicates:
    """What a distribution metric's bootstrap gives for one result.

    ``values``: the replicate values (NaN where one failed); ``se``: the standard error of
    the result across reruns (default: the replicates' standard deviation; a metric with a
    better estimate -- control variates, a variance term the replicates cannot see -- sets
    it); ``method``: how, for the signature (e.g. ``"bootstrap"``); ``resampled``:
    ``"samples"`` or ``"samples+references"``.
    """

    values: np.ndarray
    method: str = "bootstrap"
    resampled: str = "samples"
    se: float | None = None

    def standard_error(self) -> float:
        if self.se is not None:
            return float(self.se)
        finite = self.values[np.isfinite(self.values)]
        return float(np.std(finite, ddof=1)) if finite.size >= 2 else math.nan


RERUN_Z = 1.959963984540054  # two-sided 95% normal quantile


def rerun_interval(value: float, se: float, value_range: tuple[float | None, float | None]
                   = (None, None), level_z: float = RERUN_Z) -> tuple[float, float]:
    """The 95% rerun interval ``value ± z·√2·se``, clipped to the metric's value range.

        >>> lo, hi = rerun_interval(10.0, 1.0, (0.0, None))
        >>> round(lo, 3), round(hi, 3)
        (7.228, 12.772)
        >>> rerun_interval(0.1, 1.0, (0.0, 1.0))
        (0.0, 1.0)
    """
    half = level_z * math.sqrt(2.0) * se
    lo, hi = value - half, value + half
    low, high = value_range
    if low is not None:
        lo = max(lo, low)
    if high is not None:
        hi = min(hi, high)
    return float(lo), float(hi)
