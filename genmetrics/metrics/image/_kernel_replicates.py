"""Bootstrap replicates of KID, Inception Score and Vendi: rows and count weights in,
replicate values out (pure functions, metric-neutral; the gate can reuse them).

Every function takes the rows a metric kept and a ``B x n`` matrix of bootstrap counts
(row ``b``: how often each row is drawn in replicate ``b``; rows sum to ``n``, as
:class:`genmetrics.stats.Resampling` makes them) and returns the ``B`` replicate values.
With all-ones counts each gives the metric's own value (tested).

* **KID** -- :func:`kid_u_replicates`, :func:`kid_standard_error`. The metric's value
  is the mean over random subsets of the unbiased MMD² of each subset. Over *all*
  subsets of a given size that mean equals the unbiased MMD² of the full sets (``U``, a
  U-statistic: each pair of distinct rows is in the same share of the subsets; tested
  by enumeration), so KID = ``U`` + subset noise, and ``SE² = Var_boot(U) +
  Var_subsets / subsets`` (``Var_subsets``: the variance of the subset values, the
  square of torch-fidelity's ``kid_std``). The replicates are bootstrap copies of
  ``U``: the resampled sets' unbiased MMD² with a row drawn twice counted as two
  distinct draws, ``(wᵀKxx w − Σ w_i Kxx_ii) / (n(n−1)) + (vᵀKyy v − Σ v_j Kyy_jj) /
  (m(m−1)) − 2 wᵀKxy v / (nm)``. The kernels are made in blocks of rows against all
  rows (``KID_BLOCK`` rows at a time; the symmetric ones only on and above the
  diagonal), each block once for all replicates (``B x block @ block x n``): no
  ``n x n`` matrix is held. Inner products in float32 (the expensive part; ~1e-7
  relative error per kernel entry: all-ones counts give the float64 ``U`` within 1e-6
  of the kernel's scale, tested), the kernel and the weighted sums in float64.
  Accuracy: where KID is well above its noise the bootstrap variance of ``U`` is
  consistent; where it is not (near-identical distributions, ``U`` nearly degenerate)
  it overstates the variance: at KID = 0 by 3x in theory (the bootstrap's own
  first-order term adds twice the degenerate part), 3.4x measured at n = 300 (a row
  drawn twice adds its self-similarity too), so the interval is then conservative
  (coverage ~99% instead of 95%). We tried the unbiased (Hoeffding)
  estimate of ``Var(U)`` from the same kernel sums: right on average, but so noisy
  near KID = 0 that its intervals covered only 75-82% of reruns at n = 300; the
  bootstrap is kept.
* **Inception Score** -- :func:`inception_score_replicates`: exact. The replicate's rows
  are ``np.repeat(logits, counts)`` shuffled and split exactly as the metric does
  (``RandomState(seed).permutation(n)``, cut at ``i * n // splits``); each split's
  score needs only the sum of its rows' class probabilities and of their
  ``Σ p log p``, so a replicate costs a sparse ``splits x n`` count matrix times
  ``n x classes``. The replicates' spread ran ~5% below the rerun spread at 50-500
  samples in our simulations (and ~15% above at 2,000): coverage 91-97%.
* **Vendi** -- :func:`vendi_replicates`: exact, the Vendi score of the resampled
  multiset, ``exp(H(eig(Xᵀ diag(w) X / n)))`` with unit rows, on the ``d x d`` side or,
  when a replicate draws fewer distinct rows than ``d``, on the ``u x u`` side
  ``D^½ K D^½ / n`` (``K`` the cosine kernel of those rows). Its cost, ``B``
  eigenproblems of ``min(u, d)`` (:func:`vendi_cost`), is too much on a CPU beyond a few
  hundred rows at ``d = 2048``; :func:`vendi_linear_replicates` is then the first-order
  (delta-method) approximation: ``H(Σ_w) ≈ H(Σ) − Σ_i (w_i − 1) x_iᵀ log(Σ) x_i / n``
  (the trace of ``Σ_w`` stays 1), one eigendecomposition for all replicates.
  The standard error is not their spread but the grouped jackknife's
  (:func:`vendi_jackknife_se`, 20 groups: 20 eigenproblems). Measured against the
  spread of independent reruns: on pool3-like Gaussian rows the exact replicates
  overstate it by 30-40% with fewer rows than dimensions (a replicate has only ~63%
  distinct rows, a lower rank than any rerun) and the linearised ones understate it by
  4-13%; on real Inception features of photo crops (60-400 rows) both understate it,
  by 5-13% (exact) and 12-18% (linearised) -- Vendi's curvature, which a first-order
  view misses -- while the jackknife came within +3..+16% above it (Efron–Stein: a
  jackknife variance is conservative in expectation). Coverage in
  ``loadtests/test_interval_coverage_kernel.py``.

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) + 0.5
    >>> ones = np.ones((1, 40)), np.ones((1, 30))
    >>> u = kid_u_replicates(x, y, *ones, device="cpu")[0]
    >>> bool(abs(u - mmd2_unbiased(x, y)) < 1e-6)  # float32 inner products
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from genmetrics.errors import MetricError

KID_BLOCK = 1024  # kernel rows per block: B x block @ block x n products
VENDI_EXACT_BUDGET = 4e11  # flops above which the metric uses the linearised replicates
VENDI_CHUNK = 8  # replicates per batched Gram / eigenvalue call
VENDI_LINEAR_METHOD = "linearised (delta method)"
VENDI_JACKKNIFE_GROUPS = 20  # groups of the jackknife that gives Vendi's standard error
VENDI_SE_METHOD = f"SE: jackknife over {VENDI_JACKKNIFE_GROUPS} groups"


def _counts(weights: Any, n: int, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise MetricError(f"{what}: bootstrap counts must be B x {n}, not {w.shape}")
    return w


def _tensor(rows: np.ndarray, dtype: Any, device: Any) -> Any:
    """``rows`` as a torch tensor on ``device``, sharing memory where it can: a read-only
    (memory-mapped) array is only ever read, so torch's non-writable warning is moot."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(rows, dtype=dtype).to(device)


def _gamma(x: np.ndarray, gamma: float | None) -> float:
    return 1.0 / x.shape[1] if gamma is None else float(gamma)


# -- KID --------------------------------------------------------------------------------


def mmd2_unbiased(x: Any, y: Any, *, degree: float = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """The unbiased MMD² of all rows (the U-statistic KID's subset mean estimates), in
    float64 with ``n x n`` kernels: a reference for tests and small sets.

        >>> x = np.array([[0.0], [1.0], [2.0]])
        >>> round(mmd2_unbiased(x, x + 1.0, gamma=1.0), 6)  # (58 + 868) / 6 - 2 * 597 / 9
        21.666667
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    g, n, m = _gamma(x, gamma), len(x), len(y)
    kxx = (x @ x.T * g + coef0) ** degree
    kyy = (y @ y.T * g + coef0) ** degree
    kxy = (x @ y.T * g + coef0) ** degree
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def _kernel_block(a: Any, b: Any, g: float, coef0: float, degree: float) -> Any:
    """``(g a bᵀ + coef0) ** degree``: float32 inner products, float64 from there on."""
    return (a @ b.T).double().mul_(g).add_(coef0).pow_(degree)


def _quadratic_forms(x: Any, wx: Any, y: Any | None, wy: Any | None, g: float, coef0: float,
                     degree: float, block: int) -> Any:
    """``diag(Wx K Wyᵀ)`` for every replicate, ``K = K(x, y)`` made ``block`` rows at a
    time (``y`` None: ``Wx Kxx Wxᵀ``, from the blocks on and above the diagonal only)."""
    import torch

    n = x.shape[0]
    out = torch.zeros(wx.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        if y is None:
            k = _kernel_block(x[start:stop], x[start:], g, coef0, degree)
            p = wx[:, start:stop] @ k  # B x (n - start)
            width = stop - start
            out += (p[:, :width] * wx[:, start:stop]).sum(1)
            out += 2.0 * (p[:, width:] * wx[:, stop:]).sum(1)
        else:
            k = _kernel_block(x[start:stop], y, g, coef0, degree)
            out += ((wx[:, start:stop] @ k) * wy).sum(1)
    return out


def kid_u_replicates(x: Any, y: Any, wx: Any, wy: Any, *, degree: float = 3,
                     gamma: float | None = None, coef0: float = 1.0,
                     device: Any = "cpu", block: int = KID_BLOCK) -> np.ndarray:
    """The unbiased MMD² of each bootstrap replicate, in one blocked pass per kernel.
    ``wx`` (``B x n``) and ``wy`` (``B x m``) count how often each row of ``x`` and ``y``
    is drawn; a row drawn twice is two distinct draws, so replicate ``b`` equals
    :func:`mmd2_unbiased` of ``np.repeat(x, wx[b], axis=0)`` and ``np.repeat(y, wy[b],
    axis=0)``, and all-ones counts give ``U`` itself (to the float32 products)."""
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
        xt, yt = _tensor(xa, torch.float32, dev), _tensor(ya, torch.float32, dev)
        wt, vt = torch.as_tensor(w).to(dev), torch.as_tensor(v).to(dev)
        # the diagonals (a row paired with itself) exactly, in float64
        dx = (xt.double().square().sum(1) * g + coef0) ** degree
        dy = (yt.double().square().sum(1) * g + coef0) ** degree
        sxx = _quadratic_forms(xt, wt, None, None, g, coef0, degree, block) - wt @ dx
        syy = _quadratic_forms(yt, vt, None, None, g, coef0, degree, block) - vt @ dy
        sxy = _quadratic_forms(xt, wt, yt, vt, g, coef0, degree, block)
        u = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
    return u.cpu().numpy()


def kid_standard_error(u_replicates: np.ndarray, subset_std: float, subsets: int) -> float:
    """The standard error of KID across reruns: ``sqrt(Var_boot(U) + Var_subsets /
    subsets)``, ``subset_std`` the population std of the subset values (torch-fidelity's
    ``kid_std``), made unbiased (``subsets / (subsets - 1)``).

        >>> round(kid_standard_error(np.array([1.0, 3.0]), 0.0, 100), 6)
        1.414214
    """
    finite = u_replicates[np.isfinite(u_replicates)]
    var_u = float(np.var(finite, ddof=1)) if finite.size >= 2 else float("nan")
    var_sub = subset_std**2 * subsets / (subsets - 1) if subsets > 1 else 0.0
    return float(np.sqrt(var_u + var_sub / subsets))


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
            if len({tuple(mat.shape) for mat in mats}) == 1:  # one batched eigenproblem
                out[start:start + len(mats)] = _entropy_exp(
                    torch.linalg.eigvalsh(torch.stack(mats))).cpu().numpy()
            else:  # sizes differ (distinct rows drawn): one each
                for b, mat in enumerate(mats, start):
                    out[b] = float(_entropy_exp(torch.linalg.eigvalsh(mat)))
    return out


def vendi_linear_replicates(rows: Any, weights: Any, *, gram: Any = None,
                            device: Any = "cpu", block: int = 4096
                            ) -> tuple[np.ndarray, float]:
    """First-order (delta-method) replicates of Vendi, and its value: ``V exp(Σ_i (w_i −
    1) a_i / n)`` with ``a_i = −x_iᵀ log(Σ) x_i`` (unit rows, ``Σ = XᵀX / n``, the log
    over the positive eigenvalues): the linearisation of the entropy at all-ones weights
    (``tr Σ_w`` stays 1). ``gram``: ``XᵀX`` of the unit rows when already summed (Vendi's
    state); with more rows than dimensions the rows are then read ``block`` at a time."""
    import torch

    from genmetrics.metrics.image._knn import _true_float32, cosine_gram, resolve_device

    n, d = np.shape(rows)
    w = _counts(weights, n, "Vendi")
    dev = resolve_device(device)
    with torch.no_grad(), _true_float32():
        if n <= d:  # eigenvectors on the n x n side
            xt = torch.as_tensor(_unit_rows(rows)).to(dev)
            lam, vec = torch.linalg.eigh(xt @ xt.T / n)
        else:
            s = cosine_gram(rows, dev) if gram is None else np.asarray(gram, np.float64)
            lam, vec = torch.linalg.eigh(torch.as_tensor(s).to(dev) / n)
        pos = lam > lam.max() * max(n, d) * torch.finfo(torch.float64).eps
        lam, vec = lam[pos], vec[:, pos]
        log_lam = torch.log(lam)
        if n <= d:
            # X = sqrt(n) U sqrt(L) V^T: row i's squared projections on the eigenvectors
            # of S = X^T X / n are n L U_i^2
            a = -((vec**2 * (n * lam)) @ log_lam)
        else:  # x_i^T log(S) x_i = |diag(log L)^1/2 V^T x_i|^2 sums; float32 products
            # (the replicates move by sums of ~1e-6 relative errors: far below their spread)
            a = torch.empty(n, dtype=torch.float64, device=dev)
            vec32 = vec.float()
            for start in range(0, n, block):
                part = torch.as_tensor(_unit_rows(rows[start:start + block])).float().to(dev)
                a[start:start + block] = -(((part @ vec32).double() ** 2) @ log_lam)
        value = float(_entropy_exp(lam))
        shift = (torch.as_tensor(w).to(dev) - 1.0) @ a / n
    return (value * torch.exp(shift)).cpu().numpy(), value


def _jackknife_groups(n: int, groups: int, seed: int) -> list[np.ndarray]:
    """A fixed random partition of ``range(n)`` into ``min(groups, n)`` groups."""
    order = np.random.default_rng([seed, n]).permutation(n)
    return [np.sort(g) for g in np.array_split(order, min(groups, n))]


def vendi_jackknife_se(rows: Any, *, groups: int = 20, seed: int = 0, gram: Any = None,
                       device: Any = "cpu", block: int = 4096) -> float:
    """The grouped (delete-a-group) jackknife standard error of Vendi: the rows split
    into ``groups`` fixed random groups, Vendi recomputed without each, ``SE² = (G − 1)/G
    Σ_g (V_(g) − V̄)²``. One eigenproblem per group: of the cosine kernel without the
    group (``n <= d``), or of ``XᵀX − X_gᵀX_g`` (``gram``: ``XᵀX`` when already summed,
    as Vendi's state holds it). By the Efron–Stein inequality a jackknife variance
    overstates, in expectation, the variance of the statistic (at ``n(G − 1)/G`` rows):
    conservative, and it sees the curvature the bootstrap and its linearisation miss
    (module notes)."""

    from genmetrics.metrics.image._knn import resolve_device

    n, d = np.shape(rows)
    if n < 2:
        raise MetricError(f"a jackknife needs at least 2 rows, not {n}")
    parts = _jackknife_groups(n, groups, seed)
    dev = resolve_device(device)
    values = np.empty(len(parts))
    if dev.type == "cpu":  # the groups' eigenproblems side by side, one per core
        values[:] = _jackknife_values_cpu(rows, parts, gram, block)
    else:
        values[:] = _jackknife_values_torch(rows, parts, gram, block, dev)
    g = len(parts)
    return float(np.sqrt((g - 1) / g * np.sum((values - values.mean()) ** 2)))


def _jackknife_values_cpu(rows: Any, parts: list[np.ndarray], gram: Any,
                          block: int) -> list[float]:
    """Vendi without each group, numpy eigenproblems run by :func:`~genmetrics.metrics.
    image._threads.in_parallel` (LAPACK is faster on one thread per problem here)."""
    import torch

    from genmetrics.metrics.image._threads import in_parallel

    n, d = np.shape(rows)
    if n <= d:
        x = _unit_rows(rows)
        kernel = x @ x.T

        def without(part: np.ndarray) -> np.ndarray:
            keep = np.setdiff1d(np.arange(n), part)
            return kernel[np.ix_(keep, keep)] / len(keep)
    else:
        total = np.asarray(gram, np.float64) if gram is not None else _unit_gram(rows, block)

        def without(part: np.ndarray) -> np.ndarray:
            return (total - _unit_gram(rows, block, part)) / (n - len(part))

    def value(part: np.ndarray) -> float:
        return float(_entropy_exp(torch.as_tensor(np.linalg.eigvalsh(without(part)))))

    return in_parallel(value, parts)


def _jackknife_values_torch(rows: Any, parts: list[np.ndarray], gram: Any, block: int,
                            dev: Any) -> np.ndarray:
    """Vendi without each group, on a torch device (one eigenproblem after another)."""
    import torch

    n, d = np.shape(rows)
    values = np.empty(len(parts))
    with torch.no_grad():
        if n <= d:
            x = torch.as_tensor(_unit_rows(rows)).to(dev)
            kernel = x @ x.T
            for j, part in enumerate(parts):
                keep = torch.as_tensor(np.setdiff1d(np.arange(n), part)).to(dev)
                sub = kernel[keep][:, keep] / len(keep)
                values[j] = float(_entropy_exp(torch.linalg.eigvalsh(sub)))
        else:
            total = torch.as_tensor(
                np.asarray(gram, np.float64) if gram is not None else _unit_gram(rows, block)
            ).to(dev)
            for j, part in enumerate(parts):
                own = torch.as_tensor(_unit_gram(rows, block, part)).to(dev)
                values[j] = float(_entropy_exp(
                    torch.linalg.eigvalsh((total - own) / (n - len(part)))))
    return values


def _unit_gram(rows: Any, block: int, which: np.ndarray | None = None) -> np.ndarray:
    """``Σ x xᵀ`` over the unit rows (``which``: those rows only), ``block`` rows at a time."""
    index = np.arange(len(rows)) if which is None else which
    d = np.shape(rows)[1]
    out = np.zeros((d, d))
    for start in range(0, len(index), block):
        part = _unit_rows(rows[index[start:start + block]])
        out += part.T @ part
    return out
