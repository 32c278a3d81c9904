"""Coverage of FID's and sFID's 95% rerun intervals (issue 19): ``make test-slow``.

Each case draws, ``TRIALS`` times, a run and an independent rerun of the same size,
gives the run the interval ``score --bootstrap 200`` gives it (value ± 1.96·√2·SE, SE
from 200 half-sample replicates: :func:`frechet_replicates`, the route ``auto`` picks
unless a case forces one) and counts how often the rerun's value falls inside. Each
prints its coverage and its mean half-width beside the ideal one (1.96 x the spread of
run - rerun over the trials) (``pytest -s``); each must reach 90%:

* Gaussian features with a known FID: FID well above 0 and FID = 0, samples against
  fixed statistics (the samples resampled) and against a reference set (both resampled),
  at fewer rows than dimensions (the exact ``gram`` route) and more (``dense``);
* real Inception features (pool3 for FID, the spatial ``mixed_6/conv`` for sFID) of
  crops of the ``skimage.data`` photographs, drawn from pools of 1,000 (see
  ``loadtests/_coverage.py``): blurred samples against clean references;
* the large-n ``linear`` route (linearised trace, exact control replicates), forced at a
  dimension that keeps 200 trials affordable.

    .venv/bin/python -m pytest -s loadtests/test_interval_coverage.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from genmetrics.metrics.image._distribution_math import frechet_distance
from genmetrics.metrics.image._replicates import frechet_replicates
from genmetrics.stats import Resampling, rerun_interval
from loadtests._coverage import REQUIRED, coverage, gaussian_fid, photo_pools

TRIALS = 200
REPLICATES = 200


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrices, many of them: one BLAS thread each is faster (and on a busy
    machine much faster) than two contending."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.float64)
    return rows.mean(axis=0), np.cov(rows, rowvar=False)


def _fid(run: tuple[np.ndarray, Any]) -> float:
    x, ref = run
    return frechet_distance(*_moments(x), *(ref if isinstance(ref, tuple) else _moments(ref)))


def _interval(route: str = "auto") -> Callable[[tuple[np.ndarray, Any]], tuple[float, float]]:
    def make(run: tuple[np.ndarray, Any]) -> tuple[float, float]:
        x, ref = run
        draws = Resampling(REPLICATES)  # the default seed, as `score --bootstrap 200`
        # half-samples, as FID.bootstrap_replicates draws them
        ref_weights = None if isinstance(ref, tuple) else draws.reference_halves(len(ref))
        out = frechet_replicates(x, ref, draws.sample_halves(len(x)), ref_weights,
                                 route=route)
        assert route in ("auto", out.route), out.detail
        return rerun_interval(_fid(run), out.se, (0.0, None))
    return make


def _gaussian(d: int, n: int, shift: float, scale: float, reference_set: bool):
    """A draw of ``n`` samples of N(mu_s, diag(s_s^2)) and the reference: fixed statistics
    of N(mu_r, diag(s_r^2)), or ``n`` rows of it. ``mu_s = mu_r + shift``, ``s_s = s_r *
    scale``; ``shift = 0, scale = 1`` makes them the same (FID 0)."""
    mean_r, scale_r = np.zeros(d), np.linspace(0.5, 1.5, d)
    mean_s, scale_s = mean_r + shift, scale_r * scale
    known = gaussian_fid(mean_s, scale_s, mean_r, scale_r)

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        x = mean_s + rng.standard_normal((n, d)) * scale_s
        if reference_set:
            return x, mean_r + rng.standard_normal((n, d)) * scale_r
        return x, (mean_r, np.diag(scale_r**2))
    return draw, known


GAUSSIAN = [  # (name, d, n, mean shift, scale factor, reference set)
    ("FID >> 0, statistics, n > d (dense)", 64, 400, 0.5, 1.1, False),
    ("FID >> 0, statistics, n < d (gram)", 512, 300, 0.5, 1.1, False),
    ("FID = 0, statistics, n > d (dense)", 64, 400, 0.0, 1.0, False),
    ("FID = 0, statistics, n < d (gram)", 512, 300, 0.0, 1.0, False),
    ("FID >> 0, reference set, n > d (dense)", 64, 400, 0.5, 1.1, True),
    ("FID >> 0, reference set, n < d (gram)", 512, 300, 0.5, 1.1, True),
    ("FID = 0, reference set, n > d (dense)", 64, 400, 0.0, 1.0, True),
    ("FID = 0, reference set, n < d (gram)", 512, 300, 0.0, 1.0, True),
]


@pytest.mark.parametrize(("name", "d", "n", "shift", "scale", "reference_set"), GAUSSIAN,
                         ids=[g[0] for g in GAUSSIAN])
def test_gaussian_features(name, d, n, shift, scale, reference_set):
    draw, known = _gaussian(d, n, shift, scale, reference_set)
    result = coverage(f"Gaussian {name}, d={d}, n={n}, known FID {known:.3g}", draw,
                      _interval(), _fid, trials=TRIALS)
    assert result.rate >= REQUIRED


LINEAR = [("statistics", False), ("reference set", True)]


@pytest.mark.parametrize(("name", "reference_set"), LINEAR, ids=[c[0] for c in LINEAR])
def test_linearised_route(name, reference_set):
    d, n = 32, 2000
    draw, known = _gaussian(d, n, 0.1, 1.1, reference_set)
    result = coverage(f"Gaussian FID > 0, {name}, d={d}, n={n}, forced linear route "
                      f"(known FID {known:.3g})", draw, _interval("linear"), _fid,
                      trials=TRIALS)
    assert result.rate >= REQUIRED


PHOTOS = [  # (name, output, n, reference set)
    ("FID", "2048", 200, False),
    ("FID", "2048", 200, True),
    ("sFID", "mixed_6/conv", 200, False),
    ("sFID", "mixed_6/conv", 200, True),
]


@pytest.mark.parametrize(("metric", "output", "n", "reference_set"), PHOTOS,
                         ids=[f"{p[0]}-{'set' if p[3] else 'stats'}" for p in PHOTOS])
def test_inception_features_of_photographs(metric, output, n, reference_set):
    pools = photo_pools()
    fixed = _moments(pools.references[output])  # statistics: of the whole clean pool

    def draw(rng: np.random.Generator) -> tuple[Any, Any]:
        """A run and its rerun, sharing no image."""
        taken: dict[str, set[int]] = {"samples": set(), "references": set()}
        runs = []
        for _ in range(2):
            x = pools.draw(rng, "samples", n, taken["samples"], output)
            ref = pools.draw(rng, "references", n, taken["references"], output) \
                if reference_set else fixed
            runs.append((x, ref))
        return tuple(runs)

    side = "a reference set" if reference_set else "statistics of the clean pool"
    result = coverage(f"{metric} of Inception features, blurred photo crops vs {side}, "
                      f"n={n}", draw, _interval(), _fid, trials=TRIALS, paired=True)
    assert result.rate >= REQUIRED
