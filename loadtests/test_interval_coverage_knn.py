"""Coverage of the 95% rerun intervals of precision, recall, density and coverage (issue
19): ``make test-slow``.

Each case draws, ``TRIALS`` times, a run (samples and references) and an independent
rerun of the same size (new samples *and* new references), gives the run the interval
``score --bootstrap 200`` gives it -- value ± 1.96·√2·SE, SE from 200 replicates that
resample samples and references and recompute the k-NN radii on the rows each drew,
counted once and with their copies, the larger SE of the two
(:mod:`genmetrics.metrics.image._knn_bootstrap`) -- and counts how often the rerun's value
falls inside. Each result prints its coverage (``pytest -s``) and must reach 90%.
Beside it, each case prints (not asserted) the coverage of each radius rule alone and of
replicates that hold the radii at their full-set values (the simpler method this one
replaces, which falls short where balls are few and large).

Cases: Gaussian features (moderate values in 64-d; small values in 256-d, where fixed
radii fall short) and real Inception pool3 features of crops of the ``skimage.data``
photographs from pools of 1,000 (see ``loadtests/_coverage.py``): blurred samples
against clean references, and clean against clean (the same distribution).
precision/recall run in ``adm`` mode (the default), density/coverage as ``prdc``.

    .venv/bin/python -m pytest -s loadtests/test_interval_coverage_knn.py
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from genmetrics.metrics.image import _knn
from genmetrics.metrics.image import _knn_bootstrap as kb
from genmetrics.metrics.image._knn_intervals import METRICS, SCHEMES, interval_replicates
from genmetrics.stats import Resampling, rerun_interval
from loadtests._coverage import REQUIRED, coverage, photo_pools

TRIALS = 200
REPLICATES = 200
#: the interval used (the larger SE of both radius rules) and, printed for comparison
#: only, each rule alone and the radii held at their full-set values
USED = "radii recomputed, larger SE of both rules (used)"
VARIANTS = {USED: SCHEMES, "drawn rows once only (comparison)": ("drawn",),
            "drawn rows with copies only (comparison)": ("copies",),
            "radii fixed at full-set values (comparison)": ("fixed",)}
Run = tuple[np.ndarray, np.ndarray]  # (samples, references)


@pytest.fixture(autouse=True)
def _one_thread():
    """Hundreds of small passes: one torch thread each is much faster than two
    contending (forty times on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _value(run: Run, metric: str, mode: str, k: int) -> dict[str, float]:
    """The run's values, as the metric computes them (no records)."""
    x, ref = run
    if metric == "precision_recall":
        fn = _knn.adm_precision_recall if mode == "adm" else _knn.exact_precision_recall
        return dict(zip(METRICS[metric], fn(ref, x, k, device="cpu"), strict=True))
    out = _knn.density_coverage(ref, x, k, device="cpu")
    return {"density": out.density, "coverage": out.coverage}


class Passes:
    """Each run's values and intervals (both radius rules), computed once for all of a
    metric's results: the trials of each result draw the very same runs again."""

    def __init__(self, metric: str, mode: str, k: int) -> None:
        self.metric, self.mode, self.k = metric, mode, k
        self.values: dict[str, dict[str, float]] = {}
        self.intervals: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}

    @staticmethod
    def _key(run: Run) -> str:
        return hashlib.sha256(run[0].tobytes() + run[1].tobytes()).hexdigest()

    def value(self, run: Run, name: str) -> float:
        key = self._key(run)
        if key not in self.values:
            self.values[key] = _value(run, self.metric, self.mode, self.k)
        return self.values[key][name]

    def interval(self, run: Run, name: str, variant: str) -> tuple[float, float]:
        key = self._key(run)
        if key not in self.intervals:
            x, ref = run
            values, record, _ = kb.record_pass(ref, x, self.metric, self.k, self.mode, "cpu")
            draws = Resampling(REPLICATES)  # the default seed, as `score --bootstrap 200`
            w, v = draws.sample_weights(len(x)), draws.reference_weights(len(ref))
            reps = {radii: record.replicate_values(w, v, tuple(values), radii=radii)
                    for radii in (*SCHEMES, "fixed")}
            self.intervals[key] = {
                variant: {n: rerun_interval(values[n], r.standard_error())
                          for n, r in interval_replicates(values, {
                              radii: reps[radii] for radii in VARIANTS[variant]}).items()}
                for variant in VARIANTS}
        return self.intervals[key][variant][name]

    def check(self, case: str, draw: Callable[[np.random.Generator], Any]) -> None:
        rates = {}
        for name in METRICS[self.metric]:
            for variant in VARIANTS:
                result = coverage(
                    f"{name} ({self.metric}, {self.mode}), {case}; {variant}", draw,
                    lambda run, n=name, f=variant: self.interval(run, n, f),
                    lambda run, n=name: self.value(run, n), trials=TRIALS, paired=True)
                if variant == USED:
                    rates[name] = result.rate
        assert min(rates.values()) >= REQUIRED, rates


def _gaussian(d: int, n: int, shift: float) -> Callable[[np.random.Generator], tuple[Run, Run]]:
    """A run and its rerun: ``n`` samples of N(shift, diag(s^2)), ``n`` references of
    N(0, diag(s^2)), s from 0.5 to 1.5 across the ``d`` dimensions."""
    scale = np.linspace(0.5, 1.5, d)

    def draw(rng: np.random.Generator) -> tuple[Run, Run]:
        def one() -> Run:
            return ((rng.standard_normal((n, d)) * scale + shift).astype(np.float32),
                    (rng.standard_normal((n, d)) * scale).astype(np.float32))
        return one(), one()
    return draw


GAUSSIAN = [  # (name, d, n, shift)
    ("moderate values", 64, 300, 0.3),
    ("small values (few, large balls)", 256, 300, 0.5),
]
METRIC_RUNS = [("precision_recall", "adm", 3), ("density_coverage", "exact", 5)]


@pytest.mark.parametrize(("metric", "mode", "k"), METRIC_RUNS, ids=["pr-adm", "dc"])
@pytest.mark.parametrize(("name", "d", "n", "shift"), GAUSSIAN, ids=[g[0] for g in GAUSSIAN])
def test_gaussian_features(name, d, n, shift, metric, mode, k):
    Passes(metric, mode, k).check(f"Gaussian {name}, d={d}, n={n}", _gaussian(d, n, shift))


PHOTOS = [("blurred samples vs clean references", "samples"),
          ("clean vs clean (same distribution)", "references")]


@pytest.mark.parametrize(("metric", "mode", "k"), METRIC_RUNS, ids=["pr-adm", "dc"])
@pytest.mark.parametrize(("name", "sample_pool"), PHOTOS, ids=["blurred", "clean"])
def test_inception_features_of_photographs(name, sample_pool, metric, mode, k):
    pools = photo_pools()
    n = 200

    def draw(rng: np.random.Generator) -> tuple[Run, Run]:
        """A run and its rerun, sharing no image (4 x 200 of a pool of 1,000 at most)."""
        taken: dict[str, set[int]] = {"samples": set(), "references": set()}
        runs = []
        for _ in range(2):
            x = pools.draw(rng, sample_pool, n, taken[sample_pool])
            runs.append((x, pools.draw(rng, "references", n, taken["references"])))
        return runs[0], runs[1]

    Passes(metric, mode, k).check(f"Inception pool3 of photo crops, {name}, n={n}", draw)
