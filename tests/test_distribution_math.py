"""Parity of the FID / KID / Inception Score numerics with torch-fidelity 0.4.0's own functions."""

from __future__ import annotations

import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics.image import _distribution_math as dm

torch = pytest.importorskip("torch")
scipy_linalg = pytest.importorskip("scipy.linalg")
tf_fid = pytest.importorskip("torch_fidelity.metric_fid")
tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
tf_isc = pytest.importorskip("torch_fidelity.metric_isc")


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Pool3-like features: non-negative (ReLU), correlated, per-channel gamma scales.

    Correlated Gaussians (a shared mixing matrix with a power-law spectrum, perturbed by
    ``shift`` for a second distribution), rectified and scaled: about 40% zeros, mean
    about 0.2, covariance trace about 180 at d=2048 and condition numbers of ~1e6, as
    with Inception pool3 features; FID between ``shift`` 0 and 0.1 is about 15.
    """
    rng, base = np.random.default_rng(seed), np.random.default_rng(1234)
    spectrum = np.arange(1, d + 1) ** -0.7
    mixing = base.standard_normal((d, d)) * spectrum[:, None]
    mixing += shift * rng.standard_normal((d, d)) * spectrum[:, None]
    x = rng.standard_normal((n, d)) @ mixing / np.sqrt(np.sum(spectrum**2)) + 0.2 + shift
    return 0.4 * np.maximum(x, 0.0) * base.gamma(4.0, 0.25, size=(1, d))


def ours_stats(x: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    state = (0, 0, 0)
    for start in range(0, len(x), batch):
        state = dm.moments_update(*state, x[start:start + batch])
    return dm.mean_and_covariance(*state)


def their_fid(x: np.ndarray, y: np.ndarray) -> float:
    stats = [tf_fid.fid_features_to_statistics(torch.from_numpy(f)) for f in (x, y)]
    return tf_fid.fid_statistics_to_metric(*stats, verbose=False)[tf_fid.KEY_METRIC_FID]


def exact_fid(x: np.ndarray, y: np.ndarray) -> float:
    """FID from the feature matrices: tr sqrt(S1 S2) is the nuclear norm of A B^T / c.

    With A, B the centred features, S1 = A^T A / (n1-1) and S2 = B^T B / (n2-1), the
    non-zero eigenvalues of S1 S2 are the squared singular values of A B^T / c,
    c = sqrt((n1-1)(n2-1)): an accurate reference also when the covariances are singular.
    """
    a, b = x - x.mean(0), y - y.mean(0)
    c = np.sqrt((len(x) - 1) * (len(y) - 1))
    tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / c
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + np.sum(a * a) / (len(x) - 1) + np.sum(b * b) / (len(y) - 1)
                 - 2 * tr_sqrt)


@pytest.fixture(scope="module")
def realistic() -> dict[str, tuple[np.ndarray, ...]]:
    """Two 2048-d feature sets of different distributions, n > d, with our statistics."""
    x, y = features(2200, 2048, seed=1), features(2100, 2048, seed=2, shift=0.1)
    return {"features": (x, y), "stats": (ours_stats(x), ours_stats(y))}


# -- FID ---------------------------------------------------------------------------------


def test_fid_matches_torch_fidelity_on_realistic_features(realistic):
    x, y = realistic["features"]
    (mu1, sigma1), (mu2, sigma2) = realistic["stats"]
    ours = dm.frechet_distance(mu1, sigma1, mu2, sigma2)
    theirs = their_fid(x, y)
    assert 5 < theirs < 50
    assert isinstance(ours, float)
    # measured: 2e-12 relative (torch-fidelity's eigvals of S1 S2 agrees with the exact
    # nuclear-norm value to 4e-14 here; the rest is our raw-moment covariance)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_fid_on_float32_features_matches_torch_fidelity(realistic):
    # torch-fidelity takes the float32 features' mean in float32; ours sums in float64
    x, y = (f[:, :512].astype(np.float32) for f in realistic["features"])
    ours = dm.frechet_distance(*ours_stats(x), *ours_stats(y))
    assert ours == pytest.approx(their_fid(x, y), rel=1e-6)


@pytest.mark.parametrize("n1, n2", [(300, 700), (700, 300), (300, 400)])
def test_fid_rank_deficient(n1, n2):
    # d=512: one covariance singular, then both (the thin-factor route): ours equals the
    # exact nuclear-norm value to rounding. torch-fidelity's d x d eigenproblem turns the
    # eigenvalues that are zero in exact arithmetic into +-1e-13 noise whose square roots
    # add up to ~1e-6 relative: that is the tolerance against it.
    x, y = features(n1, 512, seed=3), features(n2, 512, seed=4, shift=0.1)
    assert dm.is_rank_deficient(min(n1, n2), 512)
    ours = dm.frechet_distance(*ours_stats(x), *ours_stats(y))
    assert np.isfinite(ours) and ours > 0
    assert ours == pytest.approx(exact_fid(x, y), rel=1e-9)
    assert ours == pytest.approx(their_fid(x, y), rel=2e-5)


def test_fid_of_a_set_against_itself_is_zero_not_negative(realistic):
    mu, sigma = realistic["stats"][0]
    mu, sigma = mu[:1024], sigma[:1024, :1024]  # the first 1024 features: 8x cheaper
    value = dm.frechet_distance(mu, sigma, mu, sigma)
    assert isinstance(value, float) and 0.0 <= value < 1e-6
    small_mu, small_sigma = ours_stats(features(100, 512, seed=5))  # singular
    value = dm.frechet_distance(small_mu, small_sigma, small_mu, small_sigma)
    assert isinstance(value, float) and 0.0 <= value < 1e-6


def test_streaming_moments_do_not_depend_on_batching():
    x = features(300, 64, seed=6)
    expected_mu, expected_sigma = np.mean(x, axis=0), np.cov(x, rowvar=False)
    scale_mu, scale_sigma = np.abs(expected_mu).max(), np.abs(expected_sigma).max()
    results = [ours_stats(x, batch) for batch in (1, 7, 32, len(x))]
    for mu, sigma in results:
        assert mu.dtype == sigma.dtype == np.float64
        assert np.array_equal(sigma, sigma.T)
        assert np.abs(mu - expected_mu).max() <= 1e-12 * scale_mu
        assert np.abs(sigma - expected_sigma).max() <= 1e-12 * scale_sigma
        assert np.abs(mu - results[-1][0]).max() <= 1e-12 * scale_mu
        assert np.abs(sigma - results[-1][1]).max() <= 1e-12 * scale_sigma
    # float32 input is accumulated in float64
    mu32, sigma32 = ours_stats(x.astype(np.float32), 7)
    x32 = x.astype(np.float32).astype(np.float64)
    assert np.abs(sigma32 - np.cov(x32, rowvar=False)).max() <= 1e-12 * scale_sigma


def test_moments_errors():
    with pytest.raises(MetricError, match="at least 2 samples"):
        dm.mean_and_covariance(*dm.moments_update(0, 0, 0, np.ones((1, 3))))
    state = dm.moments_update(0, 0, 0, np.ones((4, 3)))
    with pytest.raises(MetricError, match="3"):
        dm.moments_update(*state, np.ones((4, 5)))
    with pytest.raises(MetricError, match="NaN"):
        dm.moments_update(0, 0, 0, np.full((4, 3), np.nan))


# -- tr sqrt(S1 S2) ----------------------------------------------------------------------


def _commuting(d: int, eig1: np.ndarray, eig2: np.ndarray, seed: int):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    s1, s2 = (q * eig1) @ q.T, (q * eig2) @ q.T
    return (s1 + s1.T) / 2, (s2 + s2.T) / 2, float(np.sum(np.sqrt(eig1 * eig2)))


def test_trace_sqrt_product_of_commuting_matrices():
    rng = np.random.default_rng(7)
    e1, e2 = rng.uniform(0.1, 10, 300), rng.uniform(0.1, 10, 300)
    s1, s2, expected = _commuting(300, e1, e2, seed=8)
    assert dm.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)
    assert dm.trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("singular", ["first", "second", "both"])
def test_trace_sqrt_product_of_singular_matrices(singular):
    # the thin-factor route (pivoted Cholesky, then the singular values of F2^T F1): the
    # eigenvalues that are 0 in exact arithmetic never reach a square root, so the value
    # is exact to rounding (a d x d eigenproblem would add the square roots of their
    # +-eps * |S1 S2| noise: ~1e-7 relative here)
    rng = np.random.default_rng(12)
    e1, e2 = rng.uniform(0.1, 10, 300), rng.uniform(0.1, 10, 300)
    if singular in ("first", "both"):
        e1[::3] = 0.0
    if singular in ("second", "both"):
        e2[1::4] = 0.0
    s1, s2, expected = _commuting(300, e1, e2, seed=13)
    assert dm.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-10)
    assert dm.trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-10)


def test_thin_factor_reproduces_the_matrix_with_its_rank():
    x = features(40, 100, seed=5)
    sigma = np.cov(x, rowvar=False)
    f = dm.thin_factor(sigma)
    assert f.shape == (100, 39)  # 40 samples: rank 39
    assert np.abs(f @ f.T - sigma).max() <= 1e-12 * np.abs(sigma).max()
    assert dm.thin_factor(np.zeros((3, 3))).shape == (3, 0)
    assert dm.trace_sqrt_product(np.zeros((3, 3)), np.eye(3)) == 0.0


def test_trace_sqrt_product_against_scipy_sqrtm():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((200, 120)), rng.standard_normal((200, 120)) + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(scipy_linalg.sqrtm(s1 @ s2)).real
    assert dm.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)
    assert dm.trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-9)


# -- KID ---------------------------------------------------------------------------------


def their_kid(x: np.ndarray, y: np.ndarray, **kwargs) -> tuple[float, float]:
    out = tf_kid.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y),
                                        verbose=False, **kwargs)
    return out[tf_kid.KEY_METRIC_KID_MEAN], out[tf_kid.KEY_METRIC_KID_STD]


def test_kid_matches_torch_fidelity_with_its_defaults():
    # d=128 keeps torch-fidelity's 100 subsets of 1000 quick; ours uses the Gram route
    x, y = features(1200, 128, seed=12), features(1100, 128, seed=13, shift=0.1)
    ours, theirs = dm.kernel_inception_distance(x, y), their_kid(x, y)
    assert theirs[0] > 10 * theirs[1] > 0
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_kid_matches_torch_fidelity_per_subset_route(realistic, monkeypatch):
    # float32 features (as the network gives them) are used in float64; torch-fidelity
    # gets the same values as float64 (on float32 it computes its kernels in float32)
    x, y = (f[:1200].astype(np.float32) for f in realistic["features"])
    monkeypatch.setattr(dm, "_KID_GRAM_BUDGET", 0)  # force one kernel product per subset
    ours = dm.kernel_inception_distance(x, y, subsets=20, subset_size=150)
    theirs = their_kid(x.astype(np.float64), y.astype(np.float64), kid_subsets=20,
                       kid_subset_size=150)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_kid_other_kernel_parameters_and_similar_sets():
    x, y = features(400, 64, seed=14), features(450, 64, seed=15)  # same distribution
    ours = dm.kernel_inception_distance(x, y, subsets=30, subset_size=200, degree=2,
                                        gamma=0.05, coef0=0.5, seed=3)
    theirs = their_kid(x, y, kid_subsets=30, kid_subset_size=200, kid_kernel_poly_degree=2,
                       kid_kernel_poly_gamma=0.05, kid_kernel_poly_coef0=0.5, rng_seed=3)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_kid_too_few_samples():
    x, y = np.ones((50, 8)), np.ones((900, 8))
    with pytest.raises(MetricError) as info:
        dm.kernel_inception_distance(x, y)
    message = str(info.value)
    assert "1000" in message and "50" in message and "900" in message
    assert "lower kid.subset_size" in message


# -- Inception Score ---------------------------------------------------------------------


@pytest.mark.parametrize("n, splits", [(2000, dm.ISC_SPLITS), (1003, 7)])
def test_inception_score_matches_torch_fidelity(n, splits):
    rng = np.random.default_rng(16)
    logits = rng.standard_normal((n, 1008)) * 3 + rng.standard_normal(1008)
    logits = logits.astype(np.float32)  # as the network hands them over
    ours = dm.inception_score(logits, splits=splits)
    theirs = tf_isc.isc_features_to_metric(torch.from_numpy(logits), splits=splits,
                                           rng_seed=dm.ISC_SEED)
    assert theirs[tf_isc.KEY_METRIC_ISC_STD] > 0
    expected = (theirs[tf_isc.KEY_METRIC_ISC_MEAN], theirs[tf_isc.KEY_METRIC_ISC_STD])
    assert ours == pytest.approx(expected, rel=1e-9)


def test_inception_score_too_few_samples():
    with pytest.raises(MetricError, match="at least 10 samples"):
        dm.inception_score(np.zeros((9, 1008)))


def test_defaults_are_torch_fidelity_defaults():
    from torch_fidelity.defaults import DEFAULTS

    assert (dm.KID_SUBSETS, dm.KID_SUBSET_SIZE) == (DEFAULTS["kid_subsets"],
                                                    DEFAULTS["kid_subset_size"])
    assert (dm.KID_DEGREE, dm.KID_GAMMA, dm.KID_COEF0) == (
        DEFAULTS["kid_kernel_poly_degree"], DEFAULTS["kid_kernel_poly_gamma"],
        DEFAULTS["kid_kernel_poly_coef0"])
    assert dm.KID_SEED == dm.ISC_SEED == DEFAULTS["rng_seed"]
    assert dm.ISC_SPLITS == DEFAULTS["isc_splits"]
