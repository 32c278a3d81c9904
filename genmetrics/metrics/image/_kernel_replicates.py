"""Bootstrap replicates of KID, Inception Score and Vendi: rows and count weights in,
replicate values out (pure functions, metric-neutral; the gate can reuse them).

Every function takes the rows a metric kept and a ``B x n`` matrix of bootstrap counts
(row ``b``: how often each row is drawn in replicate ``b``; rows sum to ``n``, as
:class:`genmetrics.stats.Resampling` makes them) and returns the ``B`` replicate values.
With all-ones counts each gives the metric's own value (tested).

* **KID** -- :func:`kid_u_replicates`. The metric's value is the mean over random
  subsets of the unbiased MMD² of each subset. Over *all* subsets of a given size that
  mean equals the unbiased MMD² of the full sets (``U``, a U-statistic: each pair of
  distinct rows is in the same share of the subsets), so KID = U + subset noise, and
  ``Var(KID) = Var(U) + Var_subsets / subsets``. The replicates are bootstrap copies of
  ``U``: the resampled sets' unbiased MMD² with a row drawn twice counted as two distinct
  draws, ``(wᵀKxx w − Σ w_i Kxx_ii) / (n(n−1)) + (vᵀKyy v − Σ v_j Kyy_jj) / (m(m−1))
  − 2 wᵀKxy v / (nm)``. The kernels are made in blocks of rows against all rows
  (``KID_BLOCK`` rows at a time; the symmetric ones only on and above the diagonal),
  each block once for all replicates (``B x block @ block x n``): no ``n x n`` matrix is
  held. Inner products in float32 (the expensive part; a ~1e-7 relative error per
  kernel entry), the kernel and the weighted sums in float64.
* **Inception Score** -- :func:`inception_score_replicates`: exact. The replicate's rows
  are ``np.repeat(logits, counts)`` shuffled and split exactly as the metric does
  (``RandomState(seed).permutation(n)``, cut at ``i * n // splits``); each split's
  score needs only the sum of its rows' class probabilities and of their
  ``Σ p log p``, so a replicate costs a sparse ``splits x n`` count matrix times
  ``n x classes``.
* **Vendi** -- :func:`vendi_replicates`: exact, the Vendi score of the resampled
  multiset, ``exp(H(eig(Xᵀ diag(w) X / n)))`` with unit rows, on the ``d x d`` side or,
  when a replicate draws fewer distinct rows than ``d``, on the ``u x u`` side
  ``D^½ K D^½ / n`` (``K`` the cosine kernel of those rows). Its cost, ``B`` eigenproblems
  of ``min(u, d)``, is too much on a CPU at 10,000 rows; :func:`vendi_linear_replicates`
  is then the first-order (delta-method) approximation: ``H(Σ_w) ≈ H(Σ) − Σ_i (w_i − 1)
  x_iᵀ log(Σ) x_i / n`` (the trace of ``Σ_w`` stays 1), one eigendecomposition for all
  replicates. Both are checked for coverage (``loadtests/test_interval_coverage_kernel.py``).

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) + 0.5
    >>> ones = np.ones((1, 40)), np.ones((1, 30))
    >>> u = kid_u_replicates(x, y, *ones, device="cpu")[0]
    >>> bool(abs(u - mmd2_unbiased(x, y)) < 1e-9)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genmetrics.errors import MetricError

KID_BLOCK = 1024  # kernel rows per block: B x block @ block x n products
VENDI_EXACT_BUDGET = 4e11  # flops above which the metric uses the linearised replicates
VENDI_CHUNK = 8  # replicates per batched Gram / eigenvalue call


def _counts(weights: Any, n: int, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise MetricError(f"{what}: bootstrap counts must be B x {n}, not {w.shape}")
    return w


def _gamma(x: np.ndarray, gamma: float | None) -> float:
    return 1.0 / x.shape[1] if gamma is None else float(gamma)


# -- KID --------------------------------------------------------------------------------


def mmd2_unbiased(x: Any, y: Any, *, degree: float = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """The unbiased MMD² of all rows (the U-statistic KID's subset mean estimates), in
    float64 with ``n x n`` kernels: a reference for tests and small sets.

        >>> x = np.array([[0.0], [1.0], [2.0]])
        >>> round(mmd2_unbiased(x, x + 1.0, gamma=1.0), 6)
        6.0
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    g, n, m = _gamma(x, gamma), len(x), len(y)
    kxx = (x @ x.T * g + coef0) ** degree
    kyy = (y @ y.T * g + coef0) ** degree
    kxy = (x @ y.T * g + coef0) ** degree
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def _kernel_block(a: Any, b: Any, g: float, coef0: float, degree: float) -> Any:
    import torch

    return torch.pow((a @ b.T).double().mul_(g).add_(coef0), degree)


@dataclass
class _KernelSums:
    """What one blocked pass over a kernel matrix gives: ``diag(W K Vᵀ)`` per replicate,
    the row and column sums, and the sum of squared entries (all entries, diagonal too)."""

    quad: Any
    rows: Any
    cols: Any
    squares: float


def _kernel_pass(x: Any, wx: Any, y: Any | None, wy: Any | None, g: float, coef0: float,
                 degree: float, block: int) -> _KernelSums:
    """The sums of ``K(x, y)`` (``y`` None: the symmetric ``K(x, x)``, made from the
    blocks on and above the diagonal only), ``block`` rows at a time."""
    import torch

    n = x.shape[0]
    kw = {"dtype": torch.float64, "device": x.device}
    quad, rows = torch.zeros(wx.shape[0], **kw), torch.zeros(n, **kw)
    cols = torch.zeros(y.shape[0], **kw) if y is not None else rows  # symmetric: the same
    squares = torch.zeros((), **kw)
    for start in range(0, n, block):
        stop = min(start + block, n)
        if y is None:
            k = _kernel_block(x[start:stop], x[start:], g, coef0, degree)
            p = wx[:, start:stop] @ k  # B x (n - start)
            width = stop - start
            quad += (p[:, :width] * wx[:, start:stop]).sum(1)
            quad += 2.0 * (p[:, width:] * wx[:, stop:]).sum(1)
            rows[start:stop] += k.sum(1)
            rows[stop:] += k[:, width:].sum(0)
            squares += k[:, :width].square().sum() + 2.0 * k[:, width:].square().sum()
        else:
            k = _kernel_block(x[start:stop], y, g, coef0, degree)
            quad += ((wx[:, start:stop] @ k) * wy).sum(1)
            rows[start:stop] = k.sum(1)
            cols += k.sum(0)
            squares += k.square().sum()
    return _KernelSums(quad, rows, cols, float(squares))


def mmd2_variance(n: int, m: int, xx: tuple[np.ndarray, float], yy: tuple[np.ndarray, float],
                  xy: tuple[np.ndarray, np.ndarray, float]) -> float:
    """The unbiased estimate of ``Var(U)``, ``U`` the unbiased MMD², from kernel sums:
    ``xx`` = (off-diagonal row sums of ``Kxx``, off-diagonal sum of squares), ``yy`` the
    same for ``Kyy``, ``xy`` = (row sums, column sums, sum of squares of ``Kxy``).

    Hoeffding's exact variance of the two-sample U-statistic ``A + B − 2C``:
    ``Var A = 4(n−2)/(n(n−1)) ζ₁ + 2/(n(n−1)) ζ₂`` (and ``Var B``), ``Var C = ((m−1)σ₁₀ +
    (n−1)σ₀₁ + σ₁₁)/(nm)``, ``Cov(A, C) = 2τₓ/n``, ``Cov(B, C) = 2τ_y/m``, each moment
    estimated without bias by sums over distinct indices (row sums and sums of squares
    suffice). Needs ``n, m >= 4``; NaN otherwise.
    """
    if n < 4 or m < 4:
        return float("nan")
    rx, fx = xx
    ry, fy = yy
    cx, cy, fxy = xy

    def one_sample(r: np.ndarray, f: float, k: int) -> tuple[float, float, float]:
        s, r2 = float(r.sum()), float(r @ r)
        e2 = f / (k * (k - 1))  # E k(1,2)^2
        e1 = (r2 - f) / (k * (k - 1) * (k - 2))  # E k(1,2) k(1,3)
        e0 = (s * s - 4.0 * r2 + 2.0 * f) / (k * (k - 1) * (k - 2) * (k - 3))  # E k(1,2) k(3,4)
        var = 4.0 * (k - 2) / (k * (k - 1)) * (e1 - e0) + 2.0 / (k * (k - 1)) * (e2 - e0)
        return var, s, e0

    var_a, sx, _ = one_sample(rx, fx, n)
    var_b, sy, _ = one_sample(ry, fy, m)
    t, c2x, c2y = float(cx.sum()), float(cx @ cx), float(cy @ cy)
    e0 = (t * t - c2x - c2y + fxy) / (n * (n - 1) * m * (m - 1))  # E k(X,Y) k(X',Y')
    s10 = (c2x - fxy) / (n * m * (m - 1)) - e0  # shared X
    s01 = (c2y - fxy) / (n * (n - 1) * m) - e0  # shared Y
    s11 = fxy / (n * m) - e0
    var_c = ((m - 1) * s10 + (n - 1) * s01 + s11) / (n * m)
    rcx, rcy = float(rx @ cx), float(ry @ cy)
    tau_x = rcx / (n * (n - 1) * m) - (sx * t - 2.0 * rcx) / (n * (n - 1) * (n - 2) * m)
    tau_y = rcy / (m * (m - 1) * n) - (sy * t - 2.0 * rcy) / (m * (m - 1) * (m - 2) * n)
    return float(var_a + var_b + 4.0 * var_c - 8.0 * tau_x / n - 8.0 * tau_y / m)


@dataclass
class KIDReplicates:
    """What :func:`kid_replicates` gives: ``values``, the bootstrap replicates of ``U``;
    ``u``, ``U`` itself (from the same float32-product pass); ``variance``, the unbiased
    estimate of ``Var(U)`` (:func:`mmd2_variance`)."""

    values: np.ndarray
    u: float
    variance: float


def kid_replicates(x: Any, y: Any, wx: Any, wy: Any, *, degree: float = 3,
                   gamma: float | None = None, coef0: float = 1.0,
                   device: Any = "cpu", block: int = KID_BLOCK) -> KIDReplicates:
    """Bootstrap replicates of the unbiased MMD² ``U`` and the unbiased estimate of its
    variance, in one blocked pass. ``wx`` (``B x n``) and ``wy`` (``B x m``) count how often
    each row of ``x`` and ``y`` is drawn; a row drawn twice is two distinct draws (so
    replicate ``b`` equals :func:`mmd2_unbiased` of ``np.repeat(x, wx[b])`` and
    ``np.repeat(y, wy[b])``). See the module notes."""
    import torch

    from genmetrics.metrics.image._knn import _true_float32, resolve_device

    xa, ya = np.asarray(x), np.asarray(y)
    if xa.ndim != 2 or ya.ndim != 2 or xa.shape[1] != ya.shape[1]:
        raise MetricError(f"KID rows must be two N x d arrays of one width, not {xa.shape} "
                          f"and {ya.shape}")
    n, m = len(xa), len(ya)
    if n < 2 or m < 2:
        raise MetricError(f"KID needs at least 2 rows a side, not {n} and {m}")
    w, v = _counts(wx, n, "KID samples"), _counts(wy, m, "KID references")
    if len(w) != len(v):
        raise MetricError(f"{len(w)} sample and {len(v)} reference replicates")
    g = _gamma(xa, gamma)
    dev = resolve_device(device)
    with torch.no_grad(), _true_float32():
        xt = torch.as_tensor(xa, dtype=torch.float32).to(dev)
        yt = torch.as_tensor(ya, dtype=torch.float32).to(dev)
        wt = torch.as_tensor(w).to(dev)
        vt = torch.as_tensor(v).to(dev)
        ones_x = torch.ones((1, n), dtype=torch.float64, device=dev)
        ones_y = torch.ones((1, m), dtype=torch.float64, device=dev)
        # the diagonals exactly, in float64
        dx = (xt.double().square().sum(1) * g + coef0) ** degree
        dy = (yt.double().square().sum(1) * g + coef0) ** degree
        kxx = _kernel_pass(xt, torch.cat([ones_x, wt]), None, None, g, coef0, degree, block)
        kyy = _kernel_pass(yt, torch.cat([ones_y, vt]), None, None, g, coef0, degree, block)
        kxy = _kernel_pass(xt, torch.cat([ones_x, wt]), yt, torch.cat([ones_y, vt]), g, coef0,
                           degree, block)
        sxx = kxx.quad - torch.cat([ones_x, wt]) @ dx
        syy = kyy.quad - torch.cat([ones_y, vt]) @ dy
        u = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * kxy.quad / (n * m)
        u = u.cpu().numpy()
        off_x = ((kxx.rows - dx).cpu().numpy(), kxx.squares - float(dx.square().sum()))
        off_y = ((kyy.rows - dy).cpu().numpy(), kyy.squares - float(dy.square().sum()))
        cross = (kxy.rows.cpu().numpy(), kxy.cols.cpu().numpy(), kxy.squares)
    return KIDReplicates(u[1:], float(u[0]), mmd2_variance(n, m, off_x, off_y, cross))


def kid_u_replicates(x: Any, y: Any, wx: Any, wy: Any, **kwargs: Any) -> np.ndarray:
    """Just the replicate values of :func:`kid_replicates`."""
    return kid_replicates(x, y, wx, wy, **kwargs).values


def kid_standard_error(variance_u: float, subset_std: float, subsets: int) -> float:
    """The standard error of KID across reruns: ``sqrt(Var(U) + Var_subsets / subsets)``,
    ``subset_std`` the population std of the subset values (torch-fidelity's
    ``kid_std``), made unbiased (``subsets / (subsets - 1)``). A negative variance
    estimate (possible for an unbiased one, when the true variance is tiny) counts as 0.

        >>> round(kid_standard_error(2.0, 0.0, 100), 6)
        1.414214
    """
    var_sub = subset_std**2 * subsets / (subsets - 1) if subsets > 1 else 0.0
    return float(np.sqrt(max(variance_u, 0.0) + var_sub / subsets))


# -- Inception Score ----------------------------------------------------------------------


def inception_score_replicates(logits: Any, weights: Any, *, splits: int = 10,
                               seed: int = 2020, chunk: int = 8192) -> np.ndarray:
    """The Inception Score of each replicate: the metric on ``np.repeat(logits,
    weights[b], axis=0)`` (same shuffle, same splits), exactly (float64)."""
    import scipy.sparse as sp
    from scipy.special import xlogy

    x = np.asarray(logits)
    if x.ndim != 2:
        raise MetricError(f"Inception logits must be N x classes, not {x.shape}")
    n = len(x)
    w = _counts(weights, n, "Inception Score")
    if not np.all(w.sum(1) == n):
        raise MetricError("Inception Score replicates need counts that sum to n per row")
    if splits < 1 or n < splits:
        raise MetricError(f"the Inception Score splits {n} samples into {splits} parts")
    order = np.random.RandomState(seed).permutation(n)
    bounds = np.array([i * n // splits for i in range(splits + 1)])
    split_of_position = np.repeat(np.arange(splits), np.diff(bounds))[np.argsort(order)]
    reps = len(w)
    rows, cols = [], []
    counts_int = w.astype(np.int64)
    for b in range(reps):
        drawn = np.repeat(np.arange(n), counts_int[b])  # the resampled rows, in order
        rows.append(b * splits + split_of_position)
        cols.append(drawn)
    sel = sp.csr_matrix((np.ones(reps * n), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(reps * splits, n)).tocsc()
    classes = x.shape[1]
    sum_p = np.zeros((reps * splits, classes))
    sum_plogp = np.zeros(reps * splits)
    for start in range(0, n, chunk):
        part = x[start:start + chunk].astype(np.float64)
        part -= part.max(axis=1, keepdims=True)
        log_p = part - np.log(np.exp(part).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        block = sel[:, start:start + chunk]
        sum_p += block @ p
        sum_plogp += block @ (p * log_p).sum(axis=1)
    size = np.tile(np.diff(bounds), reps).astype(np.float64)
    mean_p = sum_p / size[:, None]
    kl = sum_plogp / size - xlogy(mean_p, mean_p).sum(axis=1)
    return np.exp(kl).reshape(reps, splits).mean(axis=1)


# -- Vendi -------------------------------------------------------------------------------


def _unit_rows(rows: Any) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2:
        raise MetricError(f"Vendi rows must be N x d, not {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _entropy_exp(eigenvalues: Any) -> Any:
    """exp(-Σ λ log λ) over the positive eigenvalues, per row (torch, float64)."""
    import torch

    lam = eigenvalues.clamp_min(0)
    return torch.exp(-torch.special.xlogy(lam, lam).sum(-1))


def vendi_cost(n: int, d: int, replicates: int) -> float:
    """Rough flops of :func:`vendi_replicates` (Gram plus eigenvalues per replicate)."""
    u = min(0.64 * n, d)  # distinct rows of a replicate: about (1 - 1/e) n
    gram = n * d * d if u == d else u * u * d
    return replicates * (2.0 * gram + 10.0 * u**3)


def vendi_replicates(rows: Any, weights: Any, *, device: Any = "cpu") -> np.ndarray:
    """The Vendi score of each replicate's multiset of rows, exactly: the eigenvalues of
    ``Xᵀ diag(w) X / n`` (unit rows) or, with fewer distinct rows ``u`` than ``d``, of
    ``D^½ K D^½ / n`` over those rows (same nonzero eigenvalues); float64."""
    import torch

    from genmetrics.metrics.image._knn import resolve_device

    x = _unit_rows(rows)
    n, d = x.shape
    w = _counts(weights, n, "Vendi")
    dev = resolve_device(device)
    out = np.empty(len(w))
    with torch.no_grad():
        xt = torch.as_tensor(x).to(dev)
        kernel = xt @ xt.T if n <= d else None  # every replicate on the n x n side
        for start in range(0, len(w), VENDI_CHUNK):
            mats = []
            for b in range(start, min(start + VENDI_CHUNK, len(w))):
                wb = torch.as_tensor(w[b]).to(dev)
                keep = torch.nonzero(wb > 0).squeeze(1)
                if kernel is not None or len(keep) < d:
                    root = wb[keep].sqrt()
                    k = kernel[keep][:, keep] if kernel is not None else \
                        xt[keep] @ xt[keep].T
                    mats.append(root[:, None] * k * root[None, :] / n)
                else:
                    mats.append((xt.T * wb) @ xt / n)
            for b, mat in enumerate(mats, start):  # sizes differ: one eigenproblem each
                out[b] = float(_entropy_exp(torch.linalg.eigvalsh(mat)))
    return out


def vendi_linear_replicates(rows: Any, weights: Any, *, device: Any = "cpu"
                            ) -> tuple[np.ndarray, float]:
    """First-order (delta-method) replicates of Vendi and its value: ``V exp(Σ_i (w_i − 1)
    a_i / n)`` with ``a_i = −x_iᵀ log(Σ) x_i`` (unit rows, ``Σ = XᵀX / n``, log over the
    positive eigenvalues), the linearisation of the entropy at all-ones weights."""
    import torch

    from genmetrics.metrics.image._knn import resolve_device

    x = _unit_rows(rows)
    n, d = x.shape
    w = _counts(weights, n, "Vendi")
    dev = resolve_device(device)
    with torch.no_grad():
        xt = torch.as_tensor(x).to(dev)
        small = n <= d  # eigenvectors on the smaller side
        gram = xt @ xt.T / n if small else xt.T @ xt / n
        lam, vec = torch.linalg.eigh(gram)
        tol = lam.max() * max(n, d) * torch.finfo(torch.float64).eps
        pos = lam > tol
        lam, vec = lam[pos], vec[:, pos]
        if small:
            # x_i^T log(S) x_i with S = X^T X / n: X = sqrt(n) U sqrt(L) V^T, so the
            # projections of row i on S's eigenvectors are sqrt(n L) U_i.
            proj2 = vec**2 * (n * lam)
        else:
            proj2 = (xt @ vec) ** 2
        a = -(proj2 * torch.log(lam)).sum(1)
        value = float(_entropy_exp(lam))
        shift = (torch.as_tensor(w).to(dev) - 1.0) @ a / n
    return (value * torch.exp(shift)).cpu().numpy(), value
