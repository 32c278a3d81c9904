"""Bootstrap replicates of the Fréchet distance (FID, sFID), from kept feature rows.

Pure functions on arrays: the metrics (:class:`~genmetrics.metrics.image.fid.FID`), the
gate and the tests call them alike. Inputs are the sample rows ``X`` (``n x d``, float32
or float64, in memory or memory-mapped: they are read in blocks of rows), the reference
as fixed statistics ``(mu, sigma)`` or as rows ``Y`` (``m x d``), and the weight
matrices of :class:`genmetrics.stats.Resampling`: ``W`` (``B x n``, each row sums to
``n``) and, when the references are resampled too, ``V`` (``B x m``) -- bootstrap counts
(``sample_weights``) or the half-sampling weights FID uses (``sample_halves``: a random
half of the rows, each weighted ``n / (n // 2)``, no row repeated).

Replicate ``b`` is the FID of the rows drawn with those weights: its mean is the weighted
mean (total weight ``n``), its covariance the weighted covariance with the same ``n - 1``
as the value (so with whole weights it equals ``frechet_distance`` on ``np.repeat(X,
W[b], axis=0)``), and all weights 1 give the value itself. Three routes compute it:

* ``gram`` (exact, cost independent of ``d``): when a side has at most ``d`` rows, a
  replicate's ``tr sqrt(S_w S_r)`` is the sum of the square roots of the eigenvalues of
  an ``n_u x n_u`` matrix (``n_u``: the distinct rows drawn, ``n / 2`` for half-samples,
  about 0.632 ``n`` for a bootstrap), formed
  from ``P = X S_r X^T`` (references fixed) or ``Q = X Y^T`` (references resampled),
  computed once: ``W^1/2 Xc S_r Xc^T W^1/2 / (n - 1)``, with ``Xc`` centred on the
  replicate's own mean by rank-one corrections of ``P``. Milliseconds per replicate at
  a few hundred images.
* ``dense`` (exact): the weighted covariance(s) by a blocked weighted ``X^T X``, then
  :func:`~genmetrics.metrics.image._distribution_math.trace_sqrt_product`:
  ``O(n d^2 + d^3)`` per replicate (about a second at ``d = 2048``).
* ``linear`` (large ``n``; both covariances positive definite): ``tr sqrt(S_1 S_2)``
  linearised around the full-sample covariances, whose gradients are
  ``G_s = 1/2 R M^-1/2 R`` and ``G_r = 1/2 R^-1 M^1/2 R^-1`` with ``R = S_r^1/2``,
  ``M = R S R``. The mean term and ``tr S_w`` stay exact, and ``tr(G S_w)`` is a
  weighted sum of the precomputed ``x_i^T G x_i``, so a replicate costs ``O((n + m)
  d)``. ``K`` replicates (the first ``K`` draws) are also computed exactly and used as
  control variates for what the linearisation misses:
  ``Var(F) = Var_K(F) + Var_B(L) - Var_K(L)`` (:func:`control_replicates` gives ``K``).

``route="auto"`` takes the cheapest by a flop count (:func:`choose_route`); ``linear``
falls back to an exact route when a covariance is numerically singular.

    >>> import numpy as np
    >>> from genmetrics.metrics.image._distribution_math import frechet_distance
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((40, 6)), rng.standard_normal((50, 6)) + 0.3
    >>> mu, sigma = y.mean(0), np.cov(y, rowvar=False)
    >>> w = np.vstack([np.ones(40), np.bincount(rng.integers(0, 40, 40), minlength=40)])
    >>> out = frechet_replicates(x, (mu, sigma), w, route="dense")
    >>> value = frechet_distance(x.mean(0), np.cov(x, rowvar=False), mu, sigma)
    >>> bool(np.isclose(out.values[0], value, rtol=1e-9))
    True
    >>> drawn = np.repeat(x, w[1].astype(int), axis=0)
    >>> again = frechet_distance(drawn.mean(0), np.cov(drawn, rowvar=False), mu, sigma)
    >>> bool(np.isclose(out.values[1], again, rtol=1e-9))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metrics.image._distribution_math import trace_sqrt_product
from genmetrics.metrics.image._threads import in_parallel

ROUTES = ("auto", "gram", "dense", "linear")
#: the largest share of non-finite replicates an interval is still made from
MAX_NON_FINITE = 0.05
#: rows read (and converted to float64) at a time from a possibly memory-mapped array
BLOCK_ROWS = 4096
#: the largest ``n x m`` cross Gram matrix the two-sided gram route may hold (bytes)
GRAM_BYTES = 1 << 30
#: the ``linear`` route keeps ``X R`` (``n x d`` float64) for its exact replicates when it
#: fits in this many bytes; above, each exact replicate forms ``R S_w R`` instead
TRANSFORMED_BYTES = 1 << 29
#: ``linear`` needs ``S`` and ``S_r`` numerically positive definite: every eigenvalue
#: above ``CONDITION_LIMIT * d * eps`` times the largest (else its gradient is rounding
#: noise, and an exact route is taken)
CONDITION_LIMIT = 10.0
#: an eigenvalue below ``size * eps * largest`` is rounding noise of a zero eigenvalue
EPS = float(np.finfo(np.float64).eps)
#: flops below which an exact route is taken even where ``linear`` would be cheaper
EXACT_BUDGET = 2e10
#: bytes of the matrices one batched eigenvalue call of the gram route may hold (CUDA)
BATCH_BYTES = 1 << 30


@dataclass
class FrechetReplicates:
    """What :func:`frechet_replicates` returns.

    ``values``: ``B`` replicate values (``linear``: the ``K`` exact ones first, then the
    linearised ones shifted by the mean linearisation error of the ``K``); ``se``: the
    standard error of the value across reruns (their standard deviation; ``linear``: the
    control-variate estimate); ``route``: ``gram``, ``dense`` or ``linear``; ``exact``:
    how many replicates were computed exactly; ``detail``: the route's numbers (``K``,
    the correlation of exact and linearised replicates, why a route fell back).
    """

    values: np.ndarray
    se: float
    route: str
    exact: int
    detail: dict[str, Any] = field(default_factory=dict)

    def method(self) -> str:
        """How the replicates were computed, in words (for the signature's ``ci_method``).

            >>> FrechetReplicates(np.zeros(3), 0.0, "linear", 2).method()
            'linearised tr sqrt, 2 exact control replicates'
            >>> FrechetReplicates(np.zeros(3), 0.0, "gram", 3).method()
            'exact (gram)'
        """
        if self.route == "linear":
            return f"linearised tr sqrt, {self.exact} exact control replicates"
        return f"exact ({self.route})"


def _in_parallel(fn: Callable[[int], Any], items: Sequence[int], ops: Any) -> list[Any]:
    """``[fn(i) for i in items]``: on the CPU backend one item per core, one BLAS thread
    each (:mod:`~genmetrics.metrics.image._threads`); on a device, one after another."""
    if getattr(ops, "batched", False):
        return [fn(i) for i in items]
    return in_parallel(fn, items)


# -- array backends: numpy on the CPU, torch (float64) on a CUDA device ----------------------

class _Numpy:
    """The CPU backend (numpy and LAPACK through scipy)."""

    batched = False

    def rows(self, x: Any, part: Any) -> np.ndarray:
        return np.ascontiguousarray(x[part], dtype=np.float64)

    def put(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def zeros(self, *shape: int) -> np.ndarray:
        return np.zeros(shape)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        return np.linalg.eigh(a)

    def eigvalsh(self, a: Any) -> Any:
        return np.linalg.eigvalsh(a)

    def sqrt(self, a: Any) -> Any:
        return np.sqrt(a)

    def einsum(self, spec: str, *args: Any) -> Any:
        return np.einsum(spec, *args)

    def drawn(self, w: Any) -> Any:
        return np.flatnonzero(w)

    def take(self, a: Any, rows: Any, cols: Any) -> Any:
        return a[np.ix_(rows, cols)]

    def index(self, rows: np.ndarray) -> Any:
        return rows

    def trace_sqrt(self, s1: Any, s2: Any, definite: bool = False) -> float:
        """``tr sqrt(S1 S2)``; ``definite``: both are known positive definite (the
        ``linear`` route's replicates), so the symmetric-definite eigenproblem is solved
        at once, without first testing their rank."""
        if definite:
            import scipy.linalg as sla

            try:
                eig = sla.eigh(s2, s1, type=2, eigvals_only=True, driver="gv",
                               check_finite=False)
                return float(np.sqrt(np.clip(eig, 0.0, None)).sum())
            except np.linalg.LinAlgError:
                pass
        return trace_sqrt_product(s1, s2)


class _Torch(_Numpy):
    """The CUDA backend: the same arithmetic with torch float64 tensors on ``device``."""

    batched = True

    def __init__(self, device: Any) -> None:
        import torch

        self.torch, self.device = torch, torch.device(device)

    def rows(self, x: Any, part: Any) -> Any:
        if isinstance(x, self.torch.Tensor):
            if isinstance(part, np.ndarray):
                part = self.index(part)
            return x[part].to(self.device, self.torch.float64)
        if not isinstance(part, slice):
            part = self.numpy(part)
        return self.put(np.ascontiguousarray(x[part]))

    def put(self, a: Any) -> Any:
        return self.torch.as_tensor(np.asarray(a), dtype=self.torch.float64).to(self.device)

    def numpy(self, a: Any) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, self.torch.Tensor) else np.asarray(a)

    def zeros(self, *shape: int) -> Any:
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        return self.torch.linalg.eigh(a)

    def eigvalsh(self, a: Any) -> Any:
        return self.torch.linalg.eigvalsh(a)

    def sqrt(self, a: Any) -> Any:
        return self.torch.sqrt(a)

    def einsum(self, spec: str, *args: Any) -> Any:
        return self.torch.einsum(spec, *args)

    def drawn(self, w: Any) -> Any:
        return self.torch.nonzero(w).reshape(-1)

    def take(self, a: Any, rows: Any, cols: Any) -> Any:
        return a[rows][:, cols]

    def index(self, rows: np.ndarray) -> Any:
        return self.torch.as_tensor(rows, dtype=self.torch.long, device=self.device)

    def trace_sqrt(self, s1: Any, s2: Any, definite: bool = False) -> float:
        """``tr sqrt(S1 S2)``: the eigenvalues of ``L^T S1 L`` (``S2 = L L^T``, Cholesky),
        or of ``S2^1/2 S1 S2^1/2`` when ``S2`` is singular."""
        torch = self.torch
        factor, info = torch.linalg.cholesky_ex(s2)
        if int(info) != 0:
            lam, vec = torch.linalg.eigh(s2)
            factor = vec * torch.sqrt(lam.clamp(min=0))
        return _sum_sqrt_eigenvalues(self, factor.T @ s1 @ factor)


def _backend(device: Any) -> _Numpy:
    """numpy for ``None`` or a device name ``"cpu"``; torch for any other name and for
    any ``torch.device`` (``torch.device("cpu")`` runs the device code on the CPU: tests)."""
    if device is None or (isinstance(device, str) and device == "cpu"):
        return _Numpy()
    return _Torch(device)


def _sum_sqrt_eigenvalues(ops: _Numpy, gram: Any) -> float:
    """``sum(sqrt(eigenvalues))`` of a symmetric positive semi-definite matrix; the
    eigenvalues at rounding level (zero in exact arithmetic) count as 0."""
    if gram.shape[0] == 0:
        return 0.0
    eig = ops.numpy(ops.eigvalsh(gram))
    floor = gram.shape[0] * EPS * max(float(eig[-1]), 0.0)
    return float(np.sqrt(eig[eig > floor]).sum())


# -- blocked passes over rows (memory-mapped rows are read once per pass, in blocks) ------

def _blocks(n: int, rows: int = BLOCK_ROWS) -> list[slice]:
    return [slice(start, min(n, start + rows)) for start in range(0, n, rows)]


def row_moments(x: Any, ops: _Numpy | None = None) -> tuple[Any, Any]:
    """Mean and unbiased covariance of the rows of ``x`` (float64, blocked).

        >>> x = np.arange(12.0).reshape(4, 3) ** 1.5
        >>> mu, sigma = row_moments(x)
        >>> bool(np.allclose(sigma, np.cov(x, rowvar=False)))
        True
    """
    ops = ops or _Numpy()
    n, d = x.shape
    if n < 2:
        raise MetricError(f"a covariance needs at least 2 rows, got {n}")
    total, outer = ops.zeros(d), ops.zeros(d, d)
    for part in _blocks(n):
        block = ops.rows(x, part)
        total += block.sum(0)
        outer += block.T @ block
    mu = total / n
    sigma = (outer - n * (mu[:, None] * mu[None, :])) / (n - 1)
    return mu, (sigma + sigma.T) / 2


def weighted_sums(x: Any, weights: Any, ops: _Numpy | None = None) -> tuple[Any, Any]:
    """``weights @ x`` (``B x d``) and ``weights @ |x_i|^2`` (``B``), in one blocked pass."""
    ops = ops or _Numpy()
    b, (n, d) = weights.shape[0], x.shape
    sums, squares = ops.zeros(b, d), ops.zeros(b)
    for part in _blocks(n):
        block = ops.rows(x, part)
        sums += weights[:, part] @ block
        squares += weights[:, part] @ ops.einsum("ij,ij->i", block, block)
    return sums, squares


def quadratic_forms(x: Any, g: Any, ops: _Numpy | None = None) -> Any:
    """``x_i^T g x_i`` for every row (blocked)."""
    ops = ops or _Numpy()
    parts = []
    for part in _blocks(x.shape[0]):
        block = ops.rows(x, part)
        parts.append(ops.einsum("ij,ij->i", block @ g, block))
    return parts[0] if len(parts) == 1 else (
        np.concatenate(parts) if isinstance(parts[0], np.ndarray) else ops.torch.cat(parts))  # type: ignore[attr-defined]


def weighted_covariance(x: Any, w: Any, ops: _Numpy | None = None,
                        transform: Any = None) -> tuple[Any, Any]:
    """Mean and covariance of the rows drawn with counts ``w`` (total weight ``n``,
    divisor ``n - 1``): those of ``np.repeat(x, w, axis=0)``, without repeating rows.
    ``transform``: a ``d x d`` matrix the rows are multiplied by first (``x @ transform``).

        >>> x = np.arange(10.0).reshape(5, 2) ** 1.3
        >>> w = np.array([2.0, 0.0, 1.0, 0.0, 2.0])
        >>> mu, sigma = weighted_covariance(x, w)
        >>> drawn = np.repeat(x, [2, 0, 1, 0, 2], axis=0)
        >>> bool(np.allclose(mu, drawn.mean(0)) and np.allclose(sigma, np.cov(drawn.T)))
        True
    """
    ops = ops or _Numpy()
    w = ops.put(w)
    n_total = float(w.sum())
    d = x.shape[1] if transform is None else transform.shape[1]
    drawn = ops.numpy(ops.drawn(w))
    total, outer = ops.zeros(d), ops.zeros(d, d)
    for start in range(0, drawn.size, BLOCK_ROWS):
        rows = drawn[start:start + BLOCK_ROWS]
        block = ops.rows(x, rows)
        if transform is not None:
            block = block @ transform
        weight = w[ops.index(rows)]
        total += weight @ block
        block = block * ops.sqrt(weight)[:, None]
        outer += block.T @ block  # a symmetric rank-k update (syrk)
    mu = total / n_total
    sigma = (outer - n_total * (mu[:, None] * mu[None, :])) / (n_total - 1)
    return mu, (sigma + sigma.T) / 2


# -- the problem and its exact terms ---------------------------------------------------------

@dataclass
class _Problem:
    """Everything a route needs, checked once."""

    ops: _Numpy
    x: Any
    w: Any  # B x n counts on the backend
    y: Any = None  # reference rows (None: fixed statistics)
    v: Any = None  # B x m reference counts (None: references not resampled)
    mu_r: Any = None
    sigma_r: Any = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.x.shape[1])

    @property
    def m(self) -> int:
        return 0 if self.y is None else int(self.y.shape[0])

    @property
    def b(self) -> int:
        return int(self.w.shape[0])

    @property
    def two_sided(self) -> bool:
        return self.v is not None


@dataclass
class _Terms:
    """The exact parts of every replicate: means, traces, the mean term."""

    mu_w: Any  # B x d
    tr_w: Any  # B
    mu_v: Any  # B x d (two-sided) or None
    tr_v: Any  # B (two-sided) or the fixed tr S_r (a float)
    mean_sq: Any  # B: |mu_w - mu_ref|^2


def _terms(p: _Problem) -> _Terms:
    ops, n = p.ops, p.n
    sums, squares = weighted_sums(p.x, p.w, ops)
    mu_w = sums / n
    tr_w = (squares - n * ops.einsum("bi,bi->b", mu_w, mu_w)) / (n - 1)
    if p.two_sided:
        m = p.m
        ref_sums, ref_squares = weighted_sums(p.y, p.v, ops)
        mu_v = ref_sums / m
        tr_v = (ref_squares - m * ops.einsum("bi,bi->b", mu_v, mu_v)) / (m - 1)
        diff = mu_w - mu_v
        return _Terms(mu_w, tr_w, mu_v, tr_v, ops.einsum("bi,bi->b", diff, diff))
    diff = mu_w - p.mu_r[None, :]
    return _Terms(mu_w, tr_w, None, float(p.sigma_r.diagonal().sum()),
                  ops.einsum("bi,bi->b", diff, diff))


def _values(p: _Problem, terms: _Terms, roots: Any) -> np.ndarray:
    """``|mu_w - mu_r|^2 + tr S_w + tr S_r - 2 tr sqrt(S_w S_r)`` per replicate."""
    out = p.ops.numpy(terms.mean_sq + terms.tr_w + terms.tr_v) - 2.0 * p.ops.numpy(roots)
    return np.asarray(out, dtype=np.float64)


# -- the routes ------------------------------------------------------------------------------

def _gram_roots(p: _Problem) -> np.ndarray:
    """``tr sqrt(S_w S_r)`` of every replicate from ``P = X S_r X^T`` (references fixed)
    or ``Q = X Y^T`` (resampled): exact, on the drawn rows only."""
    ops, n = p.ops, p.n
    x = ops.rows(p.x, slice(None))
    roots = np.empty(p.b)
    if not p.two_sided:
        pmat = (x @ p.sigma_r) @ x.T
        pmat = (pmat + pmat.T) / 2
        if ops.batched:
            return _gram_roots_batched(p, pmat, None)

        def one(k: int) -> float:
            w = p.w[k]
            drawn = ops.drawn(w)
            wu = w[drawn]
            pu = ops.take(pmat, drawn, drawn)
            a = pu @ wu / n  # X_u S_r mu_w
            c = float(wu @ a) / n  # mu_w^T S_r mu_w
            root = ops.sqrt(wu)
            centred = (pu - a[:, None] - a[None, :] + c) * root[:, None] * root[None, :]
            return _sum_sqrt_eigenvalues(ops, centred / (n - 1))

        roots[:] = _in_parallel(one, range(p.b), ops)
        return roots
    m = p.m
    q = ops.zeros(n, m)  # X Y^T, the references read in blocks
    for part in _blocks(m):
        q[:, part] = x @ ops.rows(p.y, part).T
    if ops.batched:
        return _gram_roots_batched(p, None, q)
    scale = 1.0 / math.sqrt((n - 1) * (m - 1))

    def one(k: int) -> float:
        w, v = p.w[k], p.v[k]
        su, sv = ops.drawn(w), ops.drawn(v)
        wu, vv = w[su], v[sv]
        qu = ops.take(q, su, sv)
        y_mu = wu @ qu / n  # Y_t mu_w
        x_nu = qu @ vv / m  # X_u nu_v
        both = float(wu @ x_nu) / n  # mu_w^T nu_v
        z = (qu - y_mu[None, :] - x_nu[:, None] + both) * (ops.sqrt(wu)[:, None] * scale)
        z = z * ops.sqrt(vv)[None, :]
        return _sum_sqrt_eigenvalues(ops, z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z)

    roots[:] = _in_parallel(one, range(p.b), ops)
    return roots


def _gram_roots_batched(p: _Problem, pmat: Any, q: Any) -> np.ndarray:
    """The gram route on a device: chunks of replicates as batched ``n x n`` (or
    ``m x m``) matrices, rows not drawn weighted 0."""
    ops, n, m = p.ops, p.n, p.m
    torch = ops.torch  # type: ignore[attr-defined]
    side = n if q is None or n <= m else m
    chunk = max(1, BATCH_BYTES // (8 * max(side * side, n * max(m, 1))))
    roots = []
    for start in range(0, p.b, chunk):
        w = p.w[start:start + chunk]
        s = torch.sqrt(w)
        if q is None:
            a = w @ pmat / n
            c = (w * a).sum(1) / n
            mats = pmat[None] - a[:, :, None] - a[:, None, :] + c[:, None, None]
            mats = mats * s[:, :, None] * s[:, None, :] / (n - 1)
        else:
            v = p.v[start:start + chunk]
            y_mu = w @ q / n  # c x m
            x_nu = v @ q.T / m  # c x n
            both = (w * x_nu).sum(1) / n
            z = q[None] - y_mu[:, None, :] - x_nu[:, :, None] + both[:, None, None]
            z = z * s[:, :, None] * torch.sqrt(v)[:, None, :] / math.sqrt((n - 1) * (m - 1))
            mats = z @ z.transpose(1, 2) if n <= m else z.transpose(1, 2) @ z
        eig = torch.linalg.eigvalsh(mats)
        floor = mats.shape[-1] * EPS * eig[:, -1:].clamp(min=0)
        roots.append(torch.where(eig > floor, eig, torch.zeros_like(eig)).sqrt().sum(1))
    return ops.numpy(torch.cat(roots))


def _dense_root(p: _Problem, k: int, transformed: Any = None, definite: bool = False) -> float:
    """``tr sqrt(S_w S_r)`` of replicate ``k`` from its weighted covariance(s).
    ``transformed``: ``(Z, R)`` with ``Z = X R`` and ``R = S_r^1/2`` (references fixed),
    then it is the sum of square roots of the eigenvalues of ``R S_w R``."""
    ops = p.ops
    if transformed is not None:
        z, root_r = transformed
        if z is not None:
            _, m_w = weighted_covariance(z, p.w[k], ops)
        else:
            _, s_w = weighted_covariance(p.x, p.w[k], ops)
            m_w = root_r @ s_w @ root_r
        return _sum_sqrt_eigenvalues(ops, (m_w + m_w.T) / 2)
    _, s_w = weighted_covariance(p.x, p.w[k], ops)
    if p.two_sided:
        _, s_v = weighted_covariance(p.y, p.v[k], ops)
    else:
        s_v = p.sigma_r
    return ops.trace_sqrt(s_w, s_v, definite)


class _Unsuitable(Exception):
    """The linearisation does not apply (a numerically singular covariance)."""


def control_replicates(n: int, d: int, replicates: int) -> int:
    """``K``, the exact replicates the ``linear`` route computes as control variates:
    more when ``d / n`` is larger (the linearisation misses more), at least 10, at most
    40 and at most ``replicates`` (``n``: the rows resampled, samples and references).

        >>> control_replicates(10_000, 2048, 200), control_replicates(50_000, 2048, 200)
        (21, 13)
    """
    wanted = 10 + math.ceil(50 * d / n)
    return int(min(replicates, max(10, min(wanted, 40))))


def _linear(p: _Problem, control: int | None) -> FrechetReplicates:
    """Linearised replicates with ``K`` exact control replicates (module docstring)."""
    ops, n = p.ops, p.n
    if p.mu_r is None:
        p.mu_r, p.sigma_r = row_moments(p.y, ops)
    _, sigma_s = row_moments(p.x, ops)
    floor = CONDITION_LIMIT * p.d * EPS
    (lam_r, vec_r), lam_s = _in_parallel(
        lambda i: ops.eigh(p.sigma_r) if i == 0 else ops.eigvalsh(sigma_s), [0, 1], ops)
    if not float(lam_r[0]) > floor * float(lam_r[-1]):
        raise _Unsuitable("the reference covariance is singular")
    if not float(lam_s[0]) > floor * float(lam_s[-1]):
        raise _Unsuitable("the sample covariance is singular")
    root_r = (vec_r * ops.sqrt(lam_r)) @ vec_r.T
    mmat = root_r @ sigma_s @ root_r
    lam, vec = ops.eigh((mmat + mmat.T) / 2)  # alone: BLAS keeps its threads
    # M = R S R is positive definite when S and S_r are, but its condition is about the
    # product of theirs: eigenvalues at rounding level are held at it (the control
    # replicates absorb what that changes)
    lam0 = lam.clip(min=0.0)
    lam_g = lam.clip(min=EPS * p.d * float(lam[-1]))  # for the gradient
    t0 = float(ops.sqrt(lam0).sum())
    ru = root_r @ vec
    g_s = (ru * (0.5 / ops.sqrt(lam_g))) @ ru.T
    g_s = (g_s + g_s.T) / 2
    at_s = 0.5 * float((lam0 / ops.sqrt(lam_g)).sum())  # tr(G_s S): T0 / 2 unless clipped
    terms = _terms(p)
    q_s = quadratic_forms(p.x, g_s, ops)
    lin = (p.w @ q_s - n * ops.einsum("bi,ij,bj->b", terms.mu_w, g_s, terms.mu_w)) / (n - 1)
    lin = lin + (t0 - at_s)  # tr sqrt(S_w S_r) ~ T0 + tr(G_s (S_w - S))
    if p.two_sided:  # ... + tr(G_r (S_v - S_r)), and tr(G_r S_r) = T0 / 2
        m = p.m
        inv_ru = (vec_r / ops.sqrt(lam_r)) @ (vec_r.T @ vec)
        g_r = (inv_ru * (0.5 * ops.sqrt(lam0))) @ inv_ru.T
        g_r = (g_r + g_r.T) / 2
        q_r = quadratic_forms(p.y, g_r, ops)
        lin = lin + (p.v @ q_r - m * ops.einsum("bi,ij,bj->b", terms.mu_v, g_r, terms.mu_v)
                     ) / (m - 1) - t0 / 2
    roots_lin = ops.numpy(lin)
    b = p.b
    k = control if control is not None else control_replicates(n + p.m * p.two_sided, p.d, b)
    k = int(min(max(k, 2), b))
    transformed = None
    if not p.two_sided:
        z = None
        if 8 * n * p.d <= TRANSFORMED_BYTES:
            z = ops.zeros(n, p.d) if ops.batched else np.empty((n, p.d))
            for part in _blocks(n):
                z[part] = ops.rows(p.x, part) @ root_r
        transformed = (z, root_r)
    roots_exact = np.array(_in_parallel(
        lambda j: _dense_root(p, j, transformed, definite=True), range(k), ops))
    base = _values(p, terms, np.zeros(b))
    exact, linear = base[:k] - 2.0 * roots_exact, base - 2.0 * roots_lin
    var = float(np.var(exact, ddof=1) + np.var(linear, ddof=1) - np.var(linear[:k], ddof=1))
    values = linear + float(np.mean(exact - linear[:k]))
    values[:k] = exact
    corr = float(np.corrcoef(exact, linear[:k])[0, 1]) if k > 2 else math.nan
    detail = {"control_replicates": k, "correlation": round(corr, 4),
              "linear_se": float(np.std(linear, ddof=1))}
    return FrechetReplicates(np.maximum(values, 0.0), math.sqrt(max(var, 0.0)), "linear", k,
                             detail)


# -- choosing a route --------------------------------------------------------------------

def route_costs(n: int, d: int, b: int, m: int | None = None,
                distinct: float = 0.632) -> dict[str, float]:
    """Estimated flops of each feasible route for ``b`` replicates (``m``: reference
    rows when they are resampled too; ``distinct``: the share of rows a replicate draws,
    about 0.632 for bootstrap counts, 0.5 for half-samples). ``linear`` is listed only
    when every resampled side has more rows than dimensions.

        >>> sorted(route_costs(300, 2048, 200)), sorted(route_costs(10_000, 2048, 200))
        (['dense', 'gram'], ['dense', 'gram', 'linear'])
    """
    nu = distinct * n
    mu = distinct * (m or 0)
    dense_one = (nu + mu) * d * d + 12.0 * d**3
    costs = {"dense": b * dense_one}
    if m is None:
        costs["gram"] = 2.0 * n * d * d + b * (5.0 * nu**3)
    elif n * m * 8 <= GRAM_BYTES:
        small, large = min(nu, mu), max(nu, mu)
        costs["gram"] = 2.0 * n * m * d + b * (small * small * large + 5.0 * small**3)
    if n > d and (m is None or m > d):
        k = control_replicates(n + (m or 0), d, b)
        costs["linear"] = 4.0 * (n + (m or 0)) * d * d + 60.0 * d**3 + k * dense_one
    return costs


def choose_route(n: int, d: int, b: int, m: int | None = None,
                 distinct: float = 0.632) -> str:
    """The cheapest route by :func:`route_costs`; an exact one whenever it costs at most
    :data:`EXACT_BUDGET` flops (the approximation buys nothing there).

        >>> choose_route(300, 2048, 200), choose_route(10_000, 2048, 200)
        ('gram', 'linear')
        >>> choose_route(300, 2048, 200, m=400), choose_route(10_000, 2048, 200, m=10_000)
        ('gram', 'linear')
        >>> choose_route(1000, 64, 200)
        'dense'
    """
    costs = route_costs(n, d, b, m, distinct)
    exact = min((r for r in costs if r != "linear"), key=costs.__getitem__)
    if costs[exact] <= EXACT_BUDGET:
        return exact
    return min(costs, key=costs.__getitem__)


def frechet_replicates(samples: Any, reference: Any, sample_weights: Any,
                       reference_weights: Any = None, *, route: str = "auto",
                       control: int | None = None, device: Any = None) -> FrechetReplicates:
    """Bootstrap replicates of the Fréchet distance between ``samples`` (``n x d`` rows)
    and ``reference``: a ``(mu, sigma)`` tuple of fixed statistics, or rows (``m x d``),
    resampled with ``reference_weights`` (``B x m``) when given, else fixed.
    ``sample_weights``: ``B x n`` weights, each row summing to ``n`` (bootstrap counts
    or half-sampling weights). ``route``: ``auto`` or one of ``gram``,
    ``dense``, ``linear`` (module docstring); ``control`` overrides the ``linear``
    route's ``K``; ``device``: ``None``/``"cpu"`` (numpy) or a torch device, where the
    linear algebra then runs (float64), the gram route's replicates batched.
    """
    if route not in ROUTES:
        raise ValueError(f"route {route!r}: choose one of {', '.join(ROUTES)}")
    ops = _backend(device)
    x = samples
    if len(np.shape(x)) != 2:
        raise MetricError(f"sample rows must be 2-D, got shape {np.shape(x)}")
    w = np.asarray(sample_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != x.shape[0]:
        raise MetricError(f"sample weights of shape {w.shape} do not fit {x.shape[0]} rows")
    problem = _Problem(ops, x, ops.put(w))
    if isinstance(reference, tuple):
        if reference_weights is not None:
            raise ValueError("reference statistics cannot be resampled: pass rows")
        mu_r, sigma_r = reference
        problem.mu_r = ops.put(np.asarray(mu_r, dtype=np.float64).reshape(-1))
        problem.sigma_r = ops.put(sigma_r)
    else:
        problem.y = reference
        if reference_weights is None:
            problem.mu_r, problem.sigma_r = row_moments(reference, ops)
        else:
            v = np.asarray(reference_weights, dtype=np.float64)
            if v.shape != (w.shape[0], reference.shape[0]):
                raise MetricError(f"reference weights of shape {v.shape} do not fit "
                                  f"{w.shape[0]} replicates of {reference.shape[0]} rows")
            problem.v = ops.put(v)
    d = problem.d
    if (problem.y is not None and problem.y.shape[1] != d) or \
            (problem.sigma_r is not None and tuple(problem.sigma_r.shape) != (d, d)):
        raise MetricError("the samples and the reference have different feature sizes")
    if problem.n < 2 or (problem.two_sided and problem.m < 2):
        raise MetricError("a bootstrap of the Fréchet distance needs at least 2 rows a side")
    m = problem.m if problem.two_sided else None
    distinct = float(np.mean(w > 0))  # the share of rows a replicate draws
    chosen = choose_route(problem.n, d, problem.b, m, distinct) if route == "auto" else route
    detail: dict[str, Any] = {}
    if chosen == "linear":
        try:
            return _linear(problem, control)
        except _Unsuitable as exc:
            detail["fallback"] = str(exc)
            costs = route_costs(problem.n, d, problem.b, m, distinct)
            costs.pop("linear", None)
            chosen = min(costs, key=costs.__getitem__)
    terms = _terms(problem)
    if chosen == "gram":
        roots = _gram_roots(problem)
    else:
        roots = np.array(_in_parallel(lambda k: _dense_root(problem, k), range(problem.b),
                                      ops))
    values = np.maximum(_values(problem, terms, roots), 0.0)
    finite = values[np.isfinite(values)]
    lost = values.size - finite.size
    if lost:  # counted, and no interval from what is left when more than a few are lost
        detail["non_finite"] = lost
        if lost > MAX_NON_FINITE * values.size:
            raise MetricError(f"{lost} of {values.size} replicates are not finite (a "
                              "covariance too ill-conditioned for a square root): no interval")
    se = float(np.std(finite, ddof=1)) if finite.size >= 2 else math.nan
    return FrechetReplicates(values, se, chosen, problem.b, detail)
