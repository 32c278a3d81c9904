"""Intervals of KID, Inception Score and Vendi (issue 19): the replicate numerics.

* all-ones counts give each metric's value; other counts give the metric on the
  explicitly resampled rows (``np.repeat`` by counts; for KID the U-statistic of the
  repeated rows, a row drawn twice counted as two distinct draws);
* KID's subset mean over *all* subsets equals the full-set U-statistic (what its
  standard error rests on);
* Vendi's jackknife standard error is the leave-a-group-out spread;
* the metrics' ``bootstrap_replicates`` hooks (method, what is resampled, the SE), alone
  and through ``score --bootstrap``;
* a small coverage check per metric (the slow ones: loadtests/test_interval_coverage_kernel.py).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from genmetrics.metrics.image import _kernel_replicates as kr
from genmetrics.metrics.image._distribution_math import (
    inception_score,
    kernel_inception_distance,
)
from genmetrics.metrics.image._knn import cosine_gram, vendi_from_gram
from genmetrics.stats import Resampling, rerun_interval
from tests.conftest import TEST_DEVICE

#: KID replicates use float32 inner products: all-ones counts give the float64 U to
#: this much, relative to the mean kernel value (the scale U is a difference of)
KID_FLOAT32_TOLERANCE = 1e-6


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These matrices are tiny: one torch thread (no hand-offs between threads, which
    on a busy 2-core machine cost 20x the arithmetic)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pool3_like(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mix = np.random.default_rng(99).normal(size=(8, d)) / 3
    return np.maximum(rng.normal(size=(n, 8)) @ mix + 0.3 + shift
                      + 0.3 * rng.normal(size=(n, d)), 0).astype(np.float32)


def _kernel_scale(x: np.ndarray) -> float:
    return float(((x.astype(np.float64) @ x.T.astype(np.float64)) / x.shape[1] + 1).mean() ** 3)


# -- KID ----------------------------------------------------------------------------------

def test_kid_subset_mean_over_all_subsets_is_the_full_u_statistic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.4
    s = 3
    values = []
    for i in itertools.combinations(range(6), s):
        for j in itertools.combinations(range(5), s):
            values.append(kr.mmd2_unbiased(x[list(i)], y[list(j)]))
    assert len(values) == 200
    assert np.mean(values) == pytest.approx(kr.mmd2_unbiased(x, y), rel=1e-12, abs=1e-14)
    # and the metric's random-subset mean scatters around it by its reported std
    mean, std = kernel_inception_distance(x, y, subsets=400, subset_size=s, seed=3)
    assert abs(mean - kr.mmd2_unbiased(x, y)) < 4 * std / np.sqrt(400)


@pytest.mark.parametrize(("n", "m", "block"), [(50, 70, 1024), (130, 90, 32), (64, 64, 64)])
def test_kid_all_ones_counts_give_the_float64_u_statistic(n, m, block):
    rng = np.random.default_rng(n)
    x, y = _pool3_like(rng, n, 40), _pool3_like(rng, m, 40, shift=0.05)
    out = kr.kid_u_replicates(x, y, np.ones((2, n)), np.ones((2, m)), block=block,
                              device=TEST_DEVICE)
    exact = kr.mmd2_unbiased(x, y)
    assert np.abs(out - exact).max() <= KID_FLOAT32_TOLERANCE * _kernel_scale(y)
    assert abs(exact) > 100 * KID_FLOAT32_TOLERANCE * _kernel_scale(y)  # not vacuous


def test_kid_replicates_are_the_u_statistic_of_the_repeated_rows():
    rng = np.random.default_rng(1)
    n, m = 90, 75
    x, y = _pool3_like(rng, n, 24), _pool3_like(rng, m, 24, shift=0.1)
    draws = Resampling(5, seed=3)
    w, v = draws.sample_weights(n), draws.reference_weights(m)
    out = kr.kid_u_replicates(x, y, w, v, block=40, device=TEST_DEVICE)
    scale = _kernel_scale(y)
    for b in range(5):
        drawn_x = np.repeat(x, w[b].astype(int), axis=0)
        drawn_y = np.repeat(y, v[b].astype(int), axis=0)
        assert out[b] == pytest.approx(kr.mmd2_unbiased(drawn_x, drawn_y),
                                       abs=KID_FLOAT32_TOLERANCE * scale)
    assert np.std(out) > 10 * KID_FLOAT32_TOLERANCE * scale  # the draws differ


def test_kid_replicates_read_memory_mapped_rows(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _pool3_like(rng, 40, 16), _pool3_like(rng, 50, 16)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    w, v = Resampling(3, seed=1).sample_weights(40), Resampling(3, seed=1).reference_weights(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "non-writable array" warning
        a = kr.kid_u_replicates(mapped, y, w, v)
    assert np.array_equal(a, kr.kid_u_replicates(x, y, w, v))


def test_kid_metric_hook():
    from genmetrics.metrics.image.kid import KID, KID_CI_METHOD

    rng = np.random.default_rng(3)
    kid = KID(subsets=50, subset_size=40, device="cpu")
    kid.state["features"].append(_pool3_like(rng, 120, 32))
    kid.state["ref_features"].append(_pool3_like(rng, 100, 32, shift=0.1))
    _, std = kid.compute_value()  # compute() would load the Inception weights to sign
    rep = kid.bootstrap_replicates(Resampling(30, seed=4))["kid"]
    assert rep.resampled == "samples+references" and rep.method == KID_CI_METHOD
    assert rep.values.shape == (30,)
    var_sub = std**2 * 50 / 49 / 50
    assert rep.standard_error() == pytest.approx(np.sqrt(np.var(rep.values, ddof=1) + var_sub))
    assert rep.standard_error() > np.std(rep.values, ddof=1)  # the subset noise counts
    # subsets of every row: no subset noise, and the value is U itself
    full = KID(subsets=5, subset_size=100, device="cpu")
    full.state["features"].append(kid.state["features"][0][:100])
    full.state["ref_features"].append(kid.state["ref_features"][0])
    value = full.compute_value()[0]
    rep = full.bootstrap_replicates(Resampling(30, seed=4))["kid"]
    assert rep.standard_error() == pytest.approx(np.std(rep.values, ddof=1))
    assert value == pytest.approx(kr.mmd2_unbiased(full.state["features"][0],
                                                   full.state["ref_features"][0]), rel=1e-9)


# -- Inception Score ------------------------------------------------------------------------

def _logits(rng: np.random.Generator, n: int, classes: int = 60, active: int = 12
            ) -> np.ndarray:
    centers = np.random.default_rng(7).normal(size=(active, classes)) * 0.5
    centers[np.arange(active), np.arange(active)] += 4.0
    return centers[rng.integers(0, active, n)] + rng.normal(size=(n, classes))


@pytest.mark.parametrize(("n", "splits"), [(103, 10), (40, 3), (25, 1)])
def test_inception_score_replicates_are_the_score_of_the_repeated_rows(n, splits):
    rng = np.random.default_rng(n)
    logits = _logits(rng, n)
    w = Resampling(4, seed=2).sample_weights(n)
    out = kr.inception_score_replicates(logits, np.vstack([np.ones(n), w]), splits=splits,
                                        chunk=16)
    assert out[0] == pytest.approx(inception_score(logits, splits=splits)[0], rel=1e-12)
    for b in range(4):
        drawn = np.repeat(logits, w[b].astype(int), axis=0)
        assert out[b + 1] == pytest.approx(inception_score(drawn, splits=splits)[0], rel=1e-12)
    assert np.std(out[1:]) > 1e-3


def test_inception_score_metric_hook():
    from genmetrics.metrics.image.inception_score import InceptionScore

    rng = np.random.default_rng(5)
    score = InceptionScore(splits=5)
    score.state["logits"] += [_logits(rng, 30), _logits(rng, 27)]
    value = score.compute_value()[0]  # compute() would load the weights to sign
    rep = score.bootstrap_replicates(Resampling(20, seed=1))["inception_score"]
    assert rep.resampled == "samples" and rep.method == "exact" and rep.se is None
    logits = np.concatenate(score.state["logits"])
    w = Resampling(20, seed=1).sample_weights(57)
    assert rep.values[7] == pytest.approx(
        inception_score(np.repeat(logits, w[7].astype(int), axis=0), splits=5)[0], rel=1e-12)
    assert 1.0 < value and rep.standard_error() > 0


# -- Vendi --------------------------------------------------------------------------------

def _vendi_of(rows: np.ndarray) -> float:
    return vendi_from_gram(cosine_gram(rows), len(rows))


@pytest.mark.parametrize(("n", "d"), [(40, 64), (300, 24), (60, 45)])
def test_vendi_replicates_are_the_vendi_of_the_repeated_rows(n, d):
    # (40, 64): the n x n side; (300, 24): d x d; (60, 45): ~38 distinct rows < d < n
    rng = np.random.default_rng(d)
    rows = _pool3_like(rng, n, d)
    w = Resampling(4, seed=1).sample_weights(n)
    out = kr.vendi_replicates(rows, np.vstack([np.ones(n), w]), device=TEST_DEVICE)
    assert out[0] == pytest.approx(_vendi_of(rows), rel=1e-10)
    for b in range(4):
        expected = _vendi_of(np.repeat(rows, w[b].astype(int), axis=0))
        assert out[b + 1] == pytest.approx(expected, rel=1e-10)
    linear, value = kr.vendi_linear_replicates(rows, np.ones((1, n)), device=TEST_DEVICE)
    assert value == pytest.approx(_vendi_of(rows), rel=1e-10) and linear[0] == value


@pytest.mark.parametrize(("n", "d"), [(800, 32), (120, 200)])
def test_vendi_linearised_replicates_track_the_exact_ones(n, d):
    rng = np.random.default_rng(n)
    rows = _pool3_like(rng, n, d)
    w = Resampling(100, seed=3).sample_weights(n)
    exact = kr.vendi_replicates(rows, w)
    linear, _ = kr.vendi_linear_replicates(rows, w)
    blocked, _ = kr.vendi_linear_replicates(rows, w, gram=cosine_gram(rows), block=97)
    assert blocked == pytest.approx(linear, rel=1e-9)
    # with more rows than dimensions the linearisation tracks the exact replicates; with
    # fewer, the exact ones also vary with the number of distinct rows drawn (rank),
    # which a rerun of n distinct samples does not: more spread (see the module notes)
    ratio = np.std(linear, ddof=1) / np.std(exact, ddof=1)
    if n > d:
        assert np.corrcoef(exact, linear)[0, 1] > 0.9 and 0.85 < ratio < 1.1
    else:
        assert 0.5 < ratio < 1.0


@pytest.mark.parametrize(("n", "d", "groups"), [(12, 20, 12), (30, 8, 30), (23, 6, 5)])
def test_vendi_jackknife_is_the_leave_a_group_out_spread(n, d, groups):
    rng = np.random.default_rng(n)
    rows = _pool3_like(rng, n, d).astype(np.float64)
    parts = kr._jackknife_groups(n, groups, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n)) and len(parts) == groups
    left_out = np.array([_vendi_of(np.delete(rows, p, axis=0)) for p in parts])
    expected = np.sqrt((groups - 1) / groups * np.sum((left_out - left_out.mean()) ** 2))
    assert kr.vendi_jackknife_se(rows, groups=groups) == pytest.approx(expected, rel=1e-9)
    assert kr.vendi_jackknife_se(rows, groups=groups, gram=cosine_gram(rows), block=7,
                                 device=TEST_DEVICE) == pytest.approx(expected, rel=1e-9)
    # the device path (one torch eigenproblem after another), run here on the CPU
    import torch

    for gram in (None, cosine_gram(rows)):
        np.testing.assert_allclose(kr._jackknife_values_torch(rows, parts, gram, 7,
                                                              torch.device("cpu")),
                                   left_out, rtol=1e-9)


def test_vendi_metric_hook_exact_and_linearised(monkeypatch):
    from genmetrics.metrics.image.vendi import Vendi

    rng = np.random.default_rng(6)
    chunks = [_pool3_like(rng, 50, 32), _pool3_like(rng, 40, 32)]
    plain = Vendi(device="cpu")
    for c in chunks:
        plain.add_features(c)
    assert plain.bootstrap_replicates(Resampling(5)) is None  # rows not kept
    v = Vendi(device="cpu")
    v.prepare_bootstrap()
    for c in chunks:
        v.add_features(c)
    value = v.compute_value()
    rows = np.concatenate(chunks)
    draws = Resampling(25, seed=2)
    rep = v.bootstrap_replicates(draws)["vendi"]
    assert rep.method == f"exact replicates; {kr.VENDI_SE_METHOD}"
    assert rep.resampled == "samples"
    assert rep.values == pytest.approx(kr.vendi_replicates(rows, draws.sample_weights(90)))
    assert rep.standard_error() == pytest.approx(kr.vendi_jackknife_se(rows), rel=1e-9)
    monkeypatch.setattr(kr, "VENDI_EXACT_BUDGET", 0.0)
    rep = v.bootstrap_replicates(draws)["vendi"]
    assert rep.method == f"{kr.VENDI_LINEAR_METHOD} replicates; {kr.VENDI_SE_METHOD}"
    ones, _ = kr.vendi_linear_replicates(rows, np.ones((1, 90)))
    assert ones[0] == pytest.approx(value, rel=1e-9)


# -- a small coverage check (the slow one: loadtests/test_interval_coverage_kernel.py) -------

def _covered(trials: int, draw, value, se) -> float:
    hits = 0
    for t in range(trials):
        rng = np.random.default_rng([11, t])
        run, rerun = draw(rng), draw(rng)
        low, high = rerun_interval(value(run), se(run, t))
        hits += int(low <= value(rerun) <= high)
    return hits / trials


def test_small_coverage_check():
    trials = 40

    def kid_draw(rng):
        return _pool3_like(rng, 60, 8, shift=0.1), _pool3_like(rng, 50, 8)

    def kid_value(s):
        return kernel_inception_distance(*s, subsets=20, subset_size=30, seed=1)[0]

    def kid_se(s, t):
        std = kernel_inception_distance(*s, subsets=20, subset_size=30, seed=1)[1]
        draws = Resampling(60, seed=t)
        u = kr.kid_u_replicates(s[0], s[1], draws.sample_weights(60),
                                draws.reference_weights(50))
        return kr.kid_standard_error(u, std, 20)

    def is_se(x, t):
        w = Resampling(60, seed=t).sample_weights(len(x))
        return np.std(kr.inception_score_replicates(x, w, splits=4), ddof=1)

    def vendi_se(x, t):
        return kr.vendi_jackknife_se(x)

    rates = {
        "kid": _covered(trials, kid_draw, kid_value, kid_se),
        "inception_score": _covered(trials, lambda r: _logits(r, 80),
                                    lambda x: inception_score(x, splits=4)[0], is_se),
        "vendi": _covered(trials, lambda r: _pool3_like(r, 50, 16), _vendi_of, vendi_se),
    }
    assert all(rate >= 0.8 for rate in rates.values()), rates
    # and the check can fail: a tenth of the standard error covers far less often
    narrow = _covered(trials, lambda r: _pool3_like(r, 50, 16), _vendi_of,
                      lambda x, t: vendi_se(x, t) / 10)
    assert narrow < 0.6


# -- through the runner: kept rows, the interval, the signature --------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory, random_weights) -> dict[str, object]:
    from tests.photos import degraded_folders

    return {**degraded_folders(tmp_path_factory.mktemp("kidci")), "weights": random_weights()}


def test_score_gives_kid_and_vendi_rerun_intervals(folders):
    from genmetrics.features.rowstore import read_rows
    from genmetrics.metrics.image.kid import KID_CI_METHOD
    from genmetrics.runner import score

    card = score(folders["samples"], folders["refs"], modality="image",
                 metrics=["kid", "vendi"], inception_weights=folders["weights"],
                 device=TEST_DEVICE, workers=0, bootstrap=30, seed=5, diagnostics=False)
    samples = read_rows(card.rows["2048"]["samples"])
    references = read_rows(card.rows["2048"]["references"])
    assert samples.shape == (14, 2048) and references.shape == (12, 2048)
    draws = Resampling(30, seed=5)
    kid, vendi = card.metrics["kid"], card.metrics["vendi"]
    u = kr.kid_u_replicates(samples, references, draws.sample_weights(14),
                            draws.reference_weights(12))
    expected = {
        "kid": (kr.kid_standard_error(u, kid.components["std"], 100), "samples+references",
                KID_CI_METHOD, (None, None)),
        "vendi": (kr.vendi_jackknife_se(samples), "samples",
                  f"exact replicates; {kr.VENDI_SE_METHOD}", (1.0, None)),
    }
    for result in (kid, vendi):
        se, resampled, method, value_range = expected[result.name]
        interval = result.components["interval"]
        assert interval["se"] == pytest.approx(se, rel=1e-9)
        assert interval["resampled"] == resampled and interval["replicates"] == 30
        assert result.ci95 == pytest.approx(rerun_interval(result.value, se, value_range))
        assert result.signature["ci_method"].endswith(f"bootstrap over {resampled}; {method}")
