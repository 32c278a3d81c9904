"""The numerical core of FID, KID and Inception Score, in numpy, matching torch-fidelity 0.4.0.

The metric classes hand features here: streaming float64 moments for FID
(:func:`moments_update`, :func:`mean_and_covariance`, :func:`frechet_distance`), all
features for KID (:func:`kernel_inception_distance`) and the ``logits_unbiased`` of
every sample for the Inception Score (:func:`inception_score`).

Where this differs from torch-fidelity on purpose (values agree to about 1e-9 relative
on float64 inputs; FID with a singular covariance, n <= dim, to about 1e-5, where both
carry the rounding noise of the eigenvalues that are 0 in exact arithmetic):

* FID: torch-fidelity takes the mean of float32 features in float32 and ``tr sqrt(S1 S2)``
  from the complex eigenvalues of the non-symmetric ``S1 @ S2``; here the moments are
  float64 sums and the trace comes from a symmetric eigenvalue problem, so it is real
  and 2-3x faster. On float32 features the two means differ by float32 rounding
  (about 1e-7 relative).
* KID: torch-fidelity computes the kernels in the features' dtype (float32 for Inception
  features); here always in float64. Same subsets (same RNG draws), same estimator.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.random((50, 4)), rng.random((60, 4)) + 0.5
>>> state = moments_update(0, 0, 0, a[:20])
>>> state = moments_update(*state, a[20:])
>>> mu, sigma = mean_and_covariance(*state)
>>> bool(np.allclose(mu, a.mean(0)) and np.allclose(sigma, np.cov(a, rowvar=False)))
True
>>> mu_b, sigma_b = mean_and_covariance(*moments_update(0, 0, 0, b))
>>> fid = frechet_distance(mu, sigma, mu_b, sigma_b)
>>> from scipy.linalg import sqrtm  # the textbook formula
>>> ref = np.sum((mu - mu_b) ** 2) + np.trace(sigma + sigma_b - 2 * sqrtm(sigma @ sigma_b)).real
>>> round(fid, 6) == round(float(ref), 6), round(fid, 3)
(True, 0.968)
>>> 0.0 <= frechet_distance(mu, sigma, mu, sigma) < 1e-9
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import MetricError

# Defaults of torch-fidelity 0.4.0 (torch_fidelity/defaults.py: kid_subsets, kid_subset_size,
# kid_kernel_poly_degree, kid_kernel_poly_gamma (None: 1 / feature dim), kid_kernel_poly_coef0,
# isc_splits, rng_seed; samples_shuffle=True shuffles the samples before the IS splits).
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_GAMMA = None
KID_COEF0 = 1.0
KID_SEED = 2020
ISC_SPLITS = 10
ISC_SEED = 2020

# KID: when the three full Gram matrices of all features hold at most this many float64
# entries (128 MiB), they are computed once and each subset's kernel sums are read from
# them, instead of three (subset_size, d) x (d, subset_size) products per subset.
_KID_GRAM_BUDGET = 1 << 24


def _as_features(x: Any, what: str) -> np.ndarray:
    """``x`` as a finite 2-D float array (float32 stays float32), or a MetricError."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise MetricError(f"{what} must be a 2-D (samples, dim) array, got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise MetricError(f"{what} contain NaN or infinite values; check the inputs and the "
                          "feature extractor")
    return arr


def is_rank_deficient(n: int, dim: int) -> bool:
    """True when ``n`` samples of ``dim`` features give a singular covariance (``n <= dim``).

    >>> is_rank_deficient(2048, 2048), is_rank_deficient(2049, 2048)
    (True, False)
    """
    return n <= dim


def moments_update(n: int, total: Any, outer: Any,
                   features: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Add ``features`` (N, d) to the float64 sums ``(n, sum x, sum x x^T)``; return the new triple.

    ``total`` and ``outer`` may be the integer 0 (an empty state); they are not modified.

    >>> n, total, outer = moments_update(0, 0, 0, np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> n, total.tolist(), outer.tolist()
    (2, [4.0, 6.0], [[10.0, 14.0], [14.0, 20.0]])
    """
    x = np.ascontiguousarray(_as_features(features, "features"), dtype=np.float64)
    if np.ndim(total) and np.shape(total) != (x.shape[1],):
        raise MetricError(f"features have {x.shape[1]} dimensions but the earlier batches had "
                          f"{np.shape(total)[0]}; use one feature extractor for all batches")
    new_outer = x.T @ x  # numpy computes x.T @ x with a symmetric rank-k update (syrk)
    new_outer += outer
    return int(n) + x.shape[0], x.sum(axis=0) + total, new_outer


def mean_and_covariance(n: int, total: Any, outer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (``n - 1``) covariance from :func:`moments_update`'s sums.

    Equal to ``np.mean(x, 0)`` and ``np.cov(x, rowvar=False)`` up to rounding; the
    covariance is made exactly symmetric.

    >>> x = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]])
    >>> mu, sigma = mean_and_covariance(*moments_update(0, 0, 0, x))
    >>> bool(np.allclose(sigma, np.cov(x, rowvar=False)))
    True
    """
    if n < 2:
        raise MetricError(f"a covariance needs at least 2 samples, got {n}; give more images")
    mu = np.asarray(total, dtype=np.float64) / n
    sigma = (np.asarray(outer, dtype=np.float64) - n * np.outer(mu, mu)) / (n - 1)
    sigma = (sigma + sigma.T) / 2
    return mu, sigma


def _as_square(s: Any, what: str) -> np.ndarray:
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise MetricError(f"{what} must be a square matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MetricError(f"{what} contains NaN or infinite values")
    return arr


def thin_factor(sigma: np.ndarray) -> np.ndarray:
    """``F`` (``d x r``) with ``sigma = F F^T`` for a symmetric positive semi-definite
    ``sigma`` of numerical rank ``r``: LAPACK's pivoted Cholesky (``dpstrf``), which stops
    once every remaining pivot is below ``d * eps * max(diag)`` (rounding level), in
    ``O(d^2 r)``. ``r == d`` means positive definite.

    >>> f = thin_factor(np.array([[4.0, 2.0], [2.0, 1.0]]))  # rank 1
    >>> f.shape, bool(np.allclose(f @ f.T, [[4.0, 2.0], [2.0, 1.0]]))
    ((2, 1), True)
    """
    from scipy.linalg import lapack

    d = sigma.shape[0]
    if d == 0 or not np.any(np.diag(sigma) > 0):
        return np.zeros((d, 0))
    lower, piv, rank, info = lapack.dpstrf(sigma, lower=1)
    if info < 0:
        raise MetricError(f"pivoted Cholesky failed (LAPACK dpstrf info {info})")
    factor = np.zeros((d, rank))
    factor[piv - 1] = np.tril(lower)[:, :rank]  # rows back in their original order
    return factor


def trace_sqrt_product(sigma1: Any, sigma2: Any) -> float:
    """``tr(sqrtm(sigma1 @ sigma2))`` of two symmetric positive semi-definite matrices.

    Both positive definite (more samples than dimensions on both sides): the eigenvalues
    of ``S1 S2`` are those of the symmetric ``L^T S2 L`` where ``S1 = L L^T``, LAPACK's
    ``dsygv`` (itype 2), which factors ``S1`` by Cholesky, forms that product and
    tridiagonalises it; rounding-level negative eigenvalues are set to 0 before the
    square roots, so the result is always real.

    Either one singular (no more samples than dimensions): with thin factors ``S1 = F1
    F1^T`` and ``S2 = F2 F2^T`` (:func:`thin_factor`, ``d x r``), the non-zero eigenvalues
    of ``S1 S2`` are the squared singular values of ``F2^T F1`` (``r2 x r1``), so the trace
    is the sum of those singular values: the exact value of the statistics, in
    ``O(d^2 r)`` instead of the ``O(d^3)`` of a full eigendecomposition (milliseconds
    instead of seconds for 2048-d features of a few hundred images). The eigenvalues
    that are 0 in exact arithmetic never reach a square root; routes through a ``d x d``
    eigenproblem (scipy's ``sqrtm``, torch-fidelity's ``eigvals``) add the square roots
    of their rounding noise, which moves FID by about 1e-6 relative.

    >>> round(trace_sqrt_product(np.diag([4.0, 9.0]), np.diag([1.0, 4.0])), 12)
    8.0
    >>> round(trace_sqrt_product(np.diag([4.0, 0.0]), np.diag([1.0, 4.0])), 12)
    2.0
    """
    import scipy.linalg as sla

    s1, s2 = _as_square(sigma1, "sigma1"), _as_square(sigma2, "sigma2")
    if s1.shape != s2.shape:
        raise MetricError(f"covariances of different sizes: {s1.shape} and {s2.shape}")
    f1, f2 = thin_factor(s1), thin_factor(s2)
    if f1.shape[1] == f2.shape[1] == s1.shape[0]:  # both positive definite
        try:  # eigenvalues of S2 S1
            eig = sla.eigh(s2, s1, type=2, eigvals_only=True, driver="gv", check_finite=False)
            return float(np.sqrt(np.clip(eig, 0.0, None)).sum())
        except np.linalg.LinAlgError:
            pass
    if min(f1.shape[1], f2.shape[1]) == 0:
        return 0.0
    return float(np.linalg.svd(f2.T @ f1, compute_uv=False).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance ``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)`` of two Gaussians.

    The true value is never negative; a negative result can only be rounding (of the
    order of 1e-13 times ``tr S1 + tr S2``, e.g. a set against itself) and is returned
    as 0.0. The result is always a real float.

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
    4.0
    """
    m1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    m2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    s1, s2 = _as_square(sigma1, "sigma1"), _as_square(sigma2, "sigma2")
    if not (m1.shape == m2.shape and s1.shape == s2.shape == (m1.size, m1.size)):
        raise MetricError(f"statistics of different sizes: mu {m1.shape} / {m2.shape}, "
                          f"sigma {s1.shape} / {s2.shape}; use the same feature extractor")
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)


def _poly_kernel(gram: np.ndarray, gamma: float, coef0: float, degree: float) -> np.ndarray:
    gram *= gamma
    gram += coef0
    return gram**degree


def kernel_inception_distance(
    feats_a: Any,
    feats_b: Any,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: float = KID_DEGREE,
    gamma: float | None = KID_GAMMA,
    coef0: float = KID_COEF0,
    seed: int = KID_SEED,
) -> tuple[float, float]:
    """KID (mean, std) as torch-fidelity's ``kid_features_to_metric`` with the poly kernel.

    Each of ``subsets`` rounds draws ``subset_size`` rows of ``feats_a`` then of ``feats_b``
    without replacement (``numpy.random.RandomState(seed).choice``) and takes the unbiased
    MMD^2 estimate with the kernel ``(gamma <x, y> + coef0) ** degree`` (``gamma`` None:
    1 / dim); the result is the mean and the population std (ddof 0) over the subsets.
    KID can be slightly negative for very similar sets.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.random((30, 8)), rng.random((40, 8)) + 0.3
    >>> mean, std = kernel_inception_distance(a, b, subsets=5, subset_size=20)
    >>> bool(mean > 0.5 and std < 0.5)
    True
    """
    x = _as_features(feats_a, "KID features (first set)")
    y = _as_features(feats_b, "KID features (second set)")
    if x.shape[1] != y.shape[1]:
        raise MetricError(f"KID feature sets of different dimensions: {x.shape[1]} and "
                          f"{y.shape[1]}; use the same feature extractor")
    if subsets < 1 or subset_size < 2:
        raise MetricError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and "
                          f"{subset_size}")
    n1, n2, m = x.shape[0], y.shape[0], subset_size
    if n1 < m or n2 < m:
        raise MetricError(f"KID draws subsets of {m} samples but there are {n1} and {n2}; "
                          f"give at least {m} samples per set or lower kid.subset_size "
                          f"(to at most {min(n1, n2)})")
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(n1, m, replace=False), rng.choice(n2, m, replace=False))
             for _ in range(subsets)]
    cells = n1 * n1 + n2 * n2 + n1 * n2
    mmds = np.empty(subsets)
    if cells <= min(_KID_GRAM_BUDGET, 3 * subsets * m * m):
        # kernels of all pairs once; a subset's sum over rows/columns I is w_I^T K w_I
        x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
        kxx = _poly_kernel(x @ x.T, g, coef0, degree)
        kyy = _poly_kernel(y @ y.T, g, coef0, degree)
        kxy = _poly_kernel(x @ y.T, g, coef0, degree)
        wx, wy = np.zeros((n1, subsets)), np.zeros((n2, subsets))
        for k, (i1, i2) in enumerate(draws):
            wx[i1, k] = 1.0
            wy[i2, k] = 1.0
        sum_xx = np.einsum("ik,ik->k", wx, kxx @ wx) - wx.T @ np.diagonal(kxx)
        sum_yy = np.einsum("ik,ik->k", wy, kyy @ wy) - wy.T @ np.diagonal(kyy)
        sum_xy = np.einsum("ik,ik->k", wx, kxy @ wy)
        mmds[:] = (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * sum_xy / (m * m)
    else:
        for k, (i1, i2) in enumerate(draws):
            xs, ys = x[i1].astype(np.float64, copy=False), y[i2].astype(np.float64, copy=False)
            kxx = _poly_kernel(xs @ xs.T, g, coef0, degree)
            kyy = _poly_kernel(ys @ ys.T, g, coef0, degree)
            kxy = _poly_kernel(xs @ ys.T, g, coef0, degree)
            off = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
            mmds[k] = off / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m)
    return float(np.mean(mmds)), float(np.std(mmds))


def inception_score(logits: Any, *, splits: int = ISC_SPLITS,
                    seed: int = ISC_SEED) -> tuple[float, float]:
    """Inception Score (mean, std) as torch-fidelity's ``isc_features_to_metric``.

    ``logits``: (N, classes) ``logits_unbiased`` of the Inception network (1008 classes).
    The rows are shuffled by ``numpy.random.RandomState(seed).permutation(N)``, cut into
    ``splits`` parts at ``i * N // splits``, and each part scores
    ``exp(mean_i KL(p_i || mean p))`` in float64; the std is the population std (ddof 0).

    >>> logits = np.log(np.array([[0.9, 0.1], [0.1, 0.9]] * 5))
    >>> mean, std = inception_score(logits, splits=2)
    >>> 1.0 < mean < 2.0
    True
    """
    x = _as_features(logits, "Inception logits")
    n = x.shape[0]
    if splits < 1 or n < splits:
        raise MetricError(f"the Inception Score splits {n} samples into {splits} parts: give at "
                          f"least {splits} samples or fewer splits")
    order = np.random.RandomState(seed).permutation(n)
    scores = []
    for i in range(splits):  # one split at a time: float64 copies of 1/splits of the rows
        part = x[order[i * n // splits:(i + 1) * n // splits]].astype(np.float64)
        part -= part.max(axis=1, keepdims=True)
        log_p = part - np.log(np.exp(part).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        kl = (p * (log_p - np.log(p.mean(axis=0)))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))
