"""Coverage of KID's, Inception Score's and Vendi's 95% rerun intervals (issue 19):
``make test-slow``.

Each case draws, ``TRIALS`` times, a run and an independent rerun of the same size,
gives the run the interval ``score --bootstrap 200`` gives it (value ± 1.96·√2·SE, the
SE from 200 bootstrap replicates as the metric's ``bootstrap_replicates`` makes it: see
``genmetrics/metrics/image/_kernel_replicates.py``) and counts how often the rerun's
value falls inside. Each prints its coverage (``pytest -s``); each must reach 90%:

* KID, pool3-like Gaussian features (rectified, correlated): KID far above its SE, KID
  of the order of its SE, and KID ≈ 0 (the same distribution on both sides; there the
  bootstrap of the U-statistic overstates the SE, up to √3 at KID = 0), with every row in
  one subset (KID = U) and with 100 subsets of a third of the rows (the subset noise
  counts);
* Inception Score, Gaussian logits (1008 classes, samples around 40 class centres), 10
  splits, ``IS_TRIALS`` trials (its bootstrap SE runs ~5% low in our simulations, so
  coverage sits nearer 90% than the others: more trials, a tighter figure);
* Vendi (SE: the grouped jackknife's), pool3-like features with fewer rows than
  dimensions and more;
* KID and Vendi of real Inception features (pool3) of crops of the ``skimage.data``
  photographs, drawn from pools of 1,000 (``loadtests/_coverage.py``): blurred samples
  against clean references, a run and its rerun sharing no image; and, printed for the
  record, how the bootstrap replicates' own spread would have covered there.

    .venv/bin/python -m pytest -s loadtests/test_interval_coverage_kernel.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from genmetrics.metrics.image import _kernel_replicates as kr
from genmetrics.metrics.image._distribution_math import (
    inception_score,
    kernel_inception_distance,
)
from genmetrics.metrics.image._knn import cosine_gram, vendi_from_gram
from genmetrics.stats import Resampling, rerun_interval
from loadtests._coverage import REQUIRED, coverage, photo_pools

TRIALS = 200
IS_TRIALS = 400
REPLICATES = 200


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matrices, many of them: one BLAS / torch thread each is faster (and on a
    busy machine much faster) than two contending."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
    else:
        with threadpool_limits(1):
            yield
    torch.set_num_threads(before)


def _pool3_like(d: int, shift: float):
    """Rows like pool3 features: rectified, correlated (8 shared factors), ``shift`` added
    to the samples' mean only."""
    mix = np.random.default_rng(99).normal(size=(8, d)) / 3

    def rows(rng: np.random.Generator, n: int, extra: float = 0.0) -> np.ndarray:
        return np.maximum(rng.normal(size=(n, 8)) @ mix + 0.3 + extra
                          + 0.3 * rng.normal(size=(n, d)), 0).astype(np.float32)
    return rows


# -- KID ------------------------------------------------------------------------------------

def _kid_interval(subsets: int, size: int):
    def value(run: tuple[np.ndarray, np.ndarray]) -> float:
        return kernel_inception_distance(*run, subsets=subsets, subset_size=size)[0]

    def interval(run: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
        x, y = run
        mean, std = kernel_inception_distance(x, y, subsets=subsets, subset_size=size)
        draws = Resampling(REPLICATES)  # the default seed, as `score --bootstrap 200`
        u = kr.kid_u_replicates(x, y, draws.sample_weights(len(x)),
                                draws.reference_weights(len(y)))
        return rerun_interval(mean, kr.kid_standard_error(u, std, subsets))
    return value, interval


KID_GAUSSIAN = [  # (name, d, n, shift, subsets, subset size)
    ("KID >> its SE, subsets of every row (KID = U)", 32, 200, 0.4, 1, 200),
    ("KID > 0, subsets of every row (KID = U)", 32, 200, 0.1, 1, 200),
    ("KID ≈ 0 (same distribution), subsets of every row", 32, 200, 0.0, 1, 200),
    ("KID > 0, 100 subsets of 100", 32, 300, 0.1, 100, 100),
    ("KID ≈ 0 (same distribution), 100 subsets of 100", 32, 300, 0.0, 100, 100),
]


@pytest.mark.parametrize(("name", "d", "n", "shift", "subsets", "size"), KID_GAUSSIAN,
                         ids=[c[0] for c in KID_GAUSSIAN])
def test_kid_gaussian_features(name, d, n, shift, subsets, size):
    rows = _pool3_like(d, shift)
    value, interval = _kid_interval(subsets, size)
    result = coverage(f"KID, pool3-like Gaussian rows, {name}, d={d}, n=m={n}",
                      lambda rng: (rows(rng, n, shift), rows(rng, n)), interval, value,
                      trials=TRIALS)
    assert result.rate >= REQUIRED


@pytest.mark.parametrize("n", [100, 300])
def test_kid_inception_features_of_photographs(n):
    pools = photo_pools()
    value, interval = _kid_interval(100, n // 2)

    def draw(rng: np.random.Generator) -> tuple[Any, Any]:
        """A run and its rerun, sharing no image."""
        taken: dict[str, set[int]] = {"samples": set(), "references": set()}
        return tuple((pools.draw(rng, "samples", n, taken["samples"]),
                      pools.draw(rng, "references", n, taken["references"]))
                     for _ in range(2))

    result = coverage(f"KID of Inception features, blurred photo crops vs clean ones, "
                      f"n=m={n}, 100 subsets of {n // 2}", draw, interval, value,
                      trials=TRIALS, paired=True)
    assert result.rate >= REQUIRED


# -- Inception Score --------------------------------------------------------------------------

def test_inception_score_gaussian_logits():
    n, classes, active, splits = 500, 1008, 40, 10
    centres = np.random.default_rng(5).normal(size=(active, classes)) * 0.5
    centres[np.arange(active), np.arange(active)] += 5.0

    def draw(rng: np.random.Generator) -> np.ndarray:
        return centres[rng.integers(0, active, n)] + rng.normal(size=(n, classes))

    def interval(logits: np.ndarray) -> tuple[float, float]:
        w = Resampling(REPLICATES).sample_weights(n)
        reps = kr.inception_score_replicates(logits, w, splits=splits)
        return rerun_interval(inception_score(logits, splits=splits)[0],
                              float(np.std(reps, ddof=1)), (1.0, None))

    result = coverage(f"Inception Score, Gaussian logits ({classes} classes, {active} "
                      f"centres), n={n}, {splits} splits", draw, interval,
                      lambda x: inception_score(x, splits=splits)[0], trials=IS_TRIALS)
    assert result.rate >= REQUIRED


# -- Vendi --------------------------------------------------------------------------------

def _vendi(rows: np.ndarray) -> float:
    """The metric's value (``vendi_from_gram``), on the n x n side when n < d (the same
    nonzero eigenvalues; a 2048 x 2048 eigenproblem per draw would dominate the test)."""
    if len(rows) < rows.shape[1]:
        return float(kr.vendi_replicates(rows, np.ones((1, len(rows))))[0])
    return vendi_from_gram(cosine_gram(rows), len(rows))


def _vendi_interval(rows: np.ndarray) -> tuple[float, float]:
    """The metric's interval: its value ± 1.96·√2·SE, SE the grouped jackknife's."""
    return rerun_interval(_vendi(rows), kr.vendi_jackknife_se(rows), (1.0, None))


VENDI_GAUSSIAN = [(64, 32), (128, 64), (64, 640)]  # (d, n): fewer rows than dimensions; more


@pytest.mark.parametrize(("d", "n"), VENDI_GAUSSIAN)
def test_vendi_gaussian_features(d, n):
    rows = _pool3_like(d, 0.0)
    result = coverage(f"Vendi, pool3-like Gaussian rows, d={d}, n={n}",
                      lambda rng: rows(rng, n), _vendi_interval, _vendi, trials=TRIALS)
    assert result.rate >= REQUIRED


@pytest.mark.parametrize("n", [60, 150, 400])
def test_vendi_inception_features_of_photographs(n):
    pools = photo_pools()

    def draw(rng: np.random.Generator) -> tuple[Any, Any]:
        taken: set[int] = set()
        return pools.draw(rng, "samples", n, taken), pools.draw(rng, "samples", n, taken)

    result = coverage(f"Vendi of Inception features, blurred photo crops, n={n}", draw,
                      _vendi_interval, _vendi, trials=TRIALS, paired=True)
    assert result.rate >= REQUIRED


def test_vendi_bootstrap_spread_misses_what_the_jackknife_sees():
    """Why the SE is the jackknife's: on real features the bootstrap replicates' spread
    (exact, and more so linearised) falls below the spread of reruns; printed, and the
    exact bootstrap's coverage must stay below the jackknife's."""
    pools = photo_pools()
    n = 150

    def draw(rng: np.random.Generator) -> tuple[Any, Any]:
        taken: set[int] = set()
        return pools.draw(rng, "samples", n, taken), pools.draw(rng, "samples", n, taken)

    def bootstrap_interval(linear: bool):
        def interval(rows: np.ndarray) -> tuple[float, float]:
            w = Resampling(REPLICATES).sample_weights(len(rows))
            reps = (kr.vendi_linear_replicates(rows, w)[0] if linear
                    else kr.vendi_replicates(rows, w))
            return rerun_interval(_vendi(rows), float(np.std(reps, ddof=1)), (1.0, None))
        return interval

    exact = coverage(f"Vendi of Inception features, n={n}, SE = exact bootstrap spread "
                     "(not the metric's)", draw, bootstrap_interval(False), _vendi,
                     trials=TRIALS, paired=True)
    linear = coverage(f"Vendi of Inception features, n={n}, SE = linearised bootstrap "
                      "spread (not the metric's)", draw, bootstrap_interval(True), _vendi,
                      trials=TRIALS, paired=True)
    jack = coverage(f"Vendi of Inception features, n={n}, SE = grouped jackknife (the "
                    "metric's)", draw, _vendi_interval, _vendi, trials=TRIALS, paired=True)
    assert linear.rate <= exact.rate < jack.rate
