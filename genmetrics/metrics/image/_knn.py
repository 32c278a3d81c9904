"""k-nearest-neighbour arithmetic on feature rows: precision, recall, density, coverage.

Metric-neutral: every function takes ``N x d`` arrays and knows nothing of Inception.
Pairwise distances are computed in row x column blocks on a torch device and reduced
as they are made: **no N x N matrix is ever held**. Peak memory is O(block x block)
for the distance blocks plus O(N x k) for the neighbour candidates (ADM's own blocks
are 10,000 x 10,000 float32; ours are smaller), besides the rows themselves.

Two distance semantics:

* ``adm`` -- openai/guided-diffusion ``evaluations/evaluator.py`` (``ManifoldEstimator``
  and ``DistanceBlock``), reproduced step by step: squared distances
  ``max(|u|^2 - 2 u.v + |v|^2, 0)`` evaluated in float16; a 10,000 x 10,000 block
  (``ADM_BLOCK``, its row and column batch size) in which any value is not finite is
  recomputed in float32 as a whole; the k-th neighbour radius is the value at index k
  of the row's ascending distances *including* the row's own (so k = 3 is the 3rd
  neighbour besides itself); a point is inside a ball when ``distance <= radius``; no
  clamping (``clamp_to_percentile=None``). Float16 accumulation emulated: the inputs
  are rounded to float16; the matrix product sums the (exact) float16 products in
  float32 and rounds the sum once to float16, as TensorFlow's GPU float16 ``MatMul``
  does by default (cuBLAS with float32 compute, ``TF_FP16_MATMUL_USE_FP32_COMPUTE``);
  the squared norms are the float16 squares summed in float32 and rounded once (the
  same reading: TF's own reduction order of a float16 sum is a kernel detail no port
  can reproduce, and the float32 sum is its exact-rounding limit); every elementwise
  step (square, ``2*``, ``-``, ``+``, ``max``) rounds to float16. The published ADM
  numbers were computed on GPUs, which is why that is the reading taken. It is a
  *reading* (float16 operands, float32 sums rounded once, as TF's GPU float16 matmul
  with float32 compute does), not verified against TensorFlow, which is not installed
  here: the adm-mode tests check the algorithm (blocks, fallback, ranks, ``<=``) against
  a plain numpy transcription of this reading, not TensorFlow's arithmetic.
* ``exact`` -- the decisions that float64 Euclidean distances give. Blocks are
  computed in float32 with a rigorous rounding-error bound (``(d + 16) 2^-24 (|u| +
  |v|)^2``); only the pairs and neighbour ranks that bound leaves undecided are
  recomputed in float64 as ``sum((u - v)^2)``. With ``round32`` the float64 distances
  are then rounded like scikit-learn's ``euclidean_distances`` rounds them for float32
  features (float32 squared distance, float32 square root), which is what ``prdc``
  compares.

Density and coverage follow Naeem et al. 2020 and equal the ``prdc`` package (k = 5,
k-th neighbour excluding self, strict ``<``); :func:`prdc` computes all four of its
numbers in one pass over the blocks (the self-distances once per pair). The decisions
are prdc's except possibly at float32 rounding ties: scikit-learn computes ``|x|^2 +
|y|^2 - 2 x.y`` in float64 before rounding to float32, where ``round32`` rounds the
exact distance, so the two float32 values can differ by one unit in the last place.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(60, 16)), rng.normal(size=(50, 16)) + 0.3
    >>> p, r = adm_precision_recall(real, fake)
    >>> 0 <= p <= 1 and 0 <= r <= 1
    True
    >>> out = prdc(real, fake, k=5)
    >>> sorted(out)
    ['coverage', 'density', 'precision', 'recall']
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from genmetrics.errors import MetricError, MetricUnavailable

if TYPE_CHECKING:  # the bootstrap's records (genmetrics.metrics.image._knn_bootstrap)
    from genmetrics.metrics.image._knn_bootstrap import Recorder, TileRecord

ADM_BLOCK = 10_000  # ADM's row_batch_size = col_batch_size: the float32 fallback granularity
ADM_K = 3  # ADM's nhood_sizes=(3,)
PRDC_K = 5  # prdc's (and Naeem et al.'s) nearest_k
BLOCK = 2048  # rows/columns per block in exact mode (a fast GEMM size on CPU)
SUB = 2500  # rows/columns per sub-block inside an ADM block (divides ADM_BLOCK)
SLACK = 4  # extra neighbour candidates kept per row, re-ranked in float64
PAIR_CHUNK = 2048  # pairs recomputed in float64 at a time
_U32 = 2.0**-24  # float32 unit roundoff
_MARGIN = 1e-6  # relative margin on r^2 that keeps float32 rounding of d and r decided


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device of a ``device`` option (None: ``auto``), resolved as the Inception
    extractor resolves it (:func:`genmetrics.features.causal_lm.resolve_device`)."""
    from genmetrics.features.causal_lm import resolve_device as resolve

    return torch.device(resolve("auto" if device is None else str(device)))


@contextlib.contextmanager
def _true_float32() -> Iterator[None]:
    """float32 matmuls in full float32 (no TF32 on CUDA, no bfloat16 passes on CPU):
    the error bounds below assume it."""
    previous = torch.get_float32_matmul_precision()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
        torch.backends.cuda.matmul.allow_tf32 = tf32


class TooFewRows(MetricError, MetricUnavailable):
    """Fewer rows than a k-NN manifold needs: an error when the metric was asked for,
    else (a default run) the metric is listed as unavailable with this reason."""


def check_count(n: int, k: int, side: str) -> None:
    """A k-th neighbour radius needs more than k points: a clear error otherwise."""
    if n <= k:
        raise TooFewRows(f"k-NN manifold with k={k} needs more than {k} {side} (it has "
                          f"n={n}); score more images or lower k")


# -- exact mode ---------------------------------------------------------------------


@dataclass
class _Set:
    """One side's rows on the device (float32), with the float64 squared norms of the
    rows minus ``center`` (shared by both sides): distances do not change, and the
    float32 blocks, computed on centred rows, have a far smaller error bound."""

    x: torch.Tensor
    center: torch.Tensor
    sq: torch.Tensor
    norm: torch.Tensor

    @classmethod
    def of(cls, rows: np.ndarray, device: torch.device, center: torch.Tensor | None = None
           ) -> _Set:
        with warnings.catch_warnings():  # read-only memory-mapped rows: never written here
            warnings.filterwarnings("ignore", message=".*not writable.*")
            x = torch.as_tensor(np.asarray(rows, dtype=np.float32)).to(device)
        if x.ndim != 2:
            raise MetricError(f"feature rows must be a 2-d array, not shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise MetricError("feature rows hold NaN or infinite values")
        if center is None:
            center = x.mean(0) if len(x) else x.new_zeros(x.shape[1])
        sq = torch.cat([((c - center).double() ** 2).sum(1) for c in x.split(BLOCK)]) \
            if len(x) else torch.zeros(0, dtype=torch.float64, device=device)
        return cls(x.contiguous(), center, sq, sq.sqrt())

    def __len__(self) -> int:
        return len(self.x)

    def bound(self, rows: torch.Tensor | float, cols: torch.Tensor | float) -> torch.Tensor:
        """An upper bound on |float32 d^2 - exact d^2| for centred norms ``rows``, ``cols``
        (the matrix product's ``d`` roundings, the centring's and the sums', doubled)."""
        return (self.x.shape[1] + 16) * _U32 * (rows + cols) ** 2


def _approx_sq(a: _Set, i0: int, i1: int, b: _Set, j0: int, j1: int) -> torch.Tensor:
    """float32 ``|u|^2 - 2 u.v + |v|^2`` of the centred rows ``i0:i1`` of ``a`` and
    ``j0:j1`` of ``b``."""
    u, v = a.x[i0:i1] - a.center, b.x[j0:j1] - b.center
    g = torch.addmm(b.sq[None, j0:j1].float(), u, v.T, alpha=-2)
    return g.add_(a.sq[i0:i1, None].float())


def _exact_sq(a: _Set, ia: torch.Tensor, b: _Set, ib: torch.Tensor) -> torch.Tensor:
    """float64 ``sum((u - v)^2)`` for the pairs ``(a[ia], b[ib])``."""
    out = torch.empty(len(ia), dtype=torch.float64, device=a.x.device)
    for s in range(0, len(ia), PAIR_CHUNK):
        u, v = a.x[ia[s:s + PAIR_CHUNK]].double(), b.x[ib[s:s + PAIR_CHUNK]].double()
        out[s:s + PAIR_CHUNK] = (u - v).pow_(2).sum(1)
    return out


def _decide(d2: torch.Tensor, r2: torch.Tensor, strict: bool, round32: bool) -> torch.Tensor:
    """``d < r`` (strict) or ``d <= r`` on exact squared distances, or on the float32
    distances scikit-learn returns for float32 features (``round32``)."""
    if round32:  # the float32 root, correctly rounded (torch's float32 sqrt on CPU is not)
        d2, r2 = (t.float().clamp_min(0).double().sqrt().float() for t in (d2, r2))
    return d2 < r2 if strict else d2 <= r2


def _merge_smallest(vals: torch.Tensor, idx: torch.Tensor, new_vals: torch.Tensor,
                    new_idx: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    v, order = torch.cat([vals, new_vals], 1).topk(keep, dim=1, largest=False, sorted=True)
    return v, torch.cat([idx, new_idx], 1).gather(1, order)


def ranked_sq(a: _Set, b: _Set, rank: int, same: bool,
              observe: Callable[[int, int, torch.Tensor], None] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``a``: the exact squared distance (float64) to the row of ``b`` at
    0-based ``rank`` in ascending order, and that row's index. ``same``: ``b`` is ``a``
    (the row itself counts, at distance 0), and each block pair is computed once.

    Candidates come from float32 blocks (``rank + SLACK + 1`` per row). Those whose
    float32 value is within twice the error bound of the rank's are recomputed in
    float64 (usually the rank's alone) and the rank is taken among them; a row whose
    excluded columns are not provably farther (a near-tie at the cut) is recomputed
    whole in float64. ``observe(i0, j0, block)`` sees every float32 block (rows ``i0:``
    of ``a``, columns ``j0:`` of ``b``; with ``same``, only blocks with ``j0 >= i0``).
    """
    n_a, n_b = len(a), len(b)
    keep = min(rank + SLACK + 1, n_b)
    dev = a.x.device
    vals = torch.full((n_a, keep), torch.inf, device=dev)
    idx = torch.full((n_a, keep), -1, dtype=torch.long, device=dev)
    for i0 in range(0, n_a, BLOCK):
        i1 = min(i0 + BLOCK, n_a)
        for j0 in range(i0 if same else 0, n_b, BLOCK):
            j1 = min(j0 + BLOCK, n_b)
            g = _approx_sq(a, i0, i1, b, j0, j1)
            if observe is not None:
                observe(i0, j0, g)
            v, k = g.topk(min(keep, j1 - j0), dim=1, largest=False)
            vals[i0:i1], idx[i0:i1] = _merge_smallest(vals[i0:i1], idx[i0:i1], v, k + j0, keep)
            if same and j0 > i0:  # the transposed block: rows j0:j1 against columns i0:i1
                v, k = g.topk(min(keep, i1 - i0), dim=0, largest=False)
                vals[j0:j1], idx[j0:j1] = _merge_smallest(vals[j0:j1], idx[j0:j1], v.T,
                                                          k.T + i0, keep)
            del g
    err = a.bound(a.norm, float(b.norm.max()))[:, None]  # per row, any column
    approx = vals.double()
    at = approx[:, rank:rank + 1]
    below = (approx < at - 2 * err).sum(1)  # certainly before the rank
    window = (approx - at).abs() <= 2 * err  # the rank is decided among these
    wi, wj = torch.nonzero(window, as_tuple=True)
    exact = torch.full((n_a, keep), torch.inf, dtype=torch.float64, device=dev)
    exact[wi, wj] = _exact_sq(a, wi, b, idx[wi, wj])
    exact, order = exact.sort(dim=1)
    pick = (rank - below)[:, None]
    value = exact.gather(1, pick)[:, 0]
    index = idx.gather(1, order.gather(1, pick))[:, 0]
    if keep < n_b:  # excluded columns are >= the last kept float32 value
        unsure = torch.nonzero(approx[:, -1] - err[:, 0] < value).flatten()
        if len(unsure):
            value[unsure], index[unsure] = _full_rows(a, unsure, b, rank)
    return value, index


def _full_rows(a: _Set, rows: torch.Tensor, b: _Set, rank: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 squared distance at ``rank`` (and its column) of rows ``rows`` of ``a``
    (``b`` made float64 a block at a time: never a float64 copy of all its rows)."""
    out_v, out_i = [], []
    for s in range(0, len(rows), 64):
        u = a.x[rows[s:s + 64]].double()
        d2 = torch.cat([torch.cdist(u, b.x[j0:j0 + BLOCK].double(),
                                    compute_mode="donot_use_mm_for_euclid_dist") ** 2
                        for j0 in range(0, len(b), BLOCK)], 1)
        v, k = d2.topk(rank + 1, dim=1, largest=False, sorted=True)
        out_v.append(v[:, rank])
        out_i.append(k[:, rank])
    return torch.cat(out_v), torch.cat(out_i)


def kth_radii_sq(a: _Set, k: int,
                 observe: Callable[[int, int, torch.Tensor], None] | None = None
                 ) -> torch.Tensor:
    """Exact squared distance of each row to its k-th nearest other row (float64)."""
    return ranked_sq(a, a, k, same=True, observe=observe)[0]


#: ``observe(i0, j0, block, worst, in_ref_balls, in_sample_balls)`` of
#: :func:`cross_counts`: a float32 block (sample rows ``i0:``, reference columns ``j0:``),
#: its error bound, and the global (sample, reference) pairs the value decided inside the
#: references' balls and (or None) inside the samples' balls
CrossObserver = Callable[[int, int, torch.Tensor, float,
                          tuple[torch.Tensor, torch.Tensor],
                          tuple[torch.Tensor, torch.Tensor] | None], None]


@dataclass
class CrossCounts:
    """What one pass over samples x references gives (exact mode)."""

    in_ref_balls: torch.Tensor  # per sample: how many reference balls contain it
    ref_ball_hit: torch.Tensor  # per reference: its ball contains some sample
    ref_in_sample_balls: torch.Tensor | None  # per reference: inside some sample ball


def cross_counts(samples: _Set, refs: _Set, ref_r2: torch.Tensor,
                 sample_r2: torch.Tensor | None, *, strict: bool, round32: bool,
                 observe: CrossObserver | None = None) -> CrossCounts:
    """Ball memberships between ``samples`` and ``refs`` (radii as exact squared
    distances): one float32 pass, float64 only for pairs within the error bound.
    ``observe`` sees each block with the pairs decided inside (see :data:`CrossObserver`)."""
    dev = samples.x.device
    counts = torch.zeros(len(samples), dtype=torch.long, device=dev)
    hit = torch.zeros(len(refs), dtype=torch.bool, device=dev)
    ref_in = None if sample_r2 is None else torch.zeros(len(refs), dtype=torch.bool,
                                                        device=dev)
    for i0 in range(0, len(samples), BLOCK):
        i1 = min(i0 + BLOCK, len(samples))
        for j0 in range(0, len(refs), BLOCK):
            j1 = min(j0 + BLOCK, len(refs))
            g = _approx_sq(samples, i0, i1, refs, j0, j1)
            worst = float(samples.bound(samples.norm[i0:i1].max(), refs.norm[j0:j1].max()))
            # references' balls: sample i inside ball j
            ii, jj = _inside_pairs(g, samples, i0, refs, j0, ref_r2[j0:j1][None, :], worst,
                                   radius_of_row=False, strict=strict, round32=round32)
            counts.index_add_(0, ii, torch.ones_like(ii))
            hit[jj] = True
            in_sample_balls = None
            if ref_in is not None and sample_r2 is not None:  # samples' balls
                in_sample_balls = _inside_pairs(g, samples, i0, refs, j0,
                                                sample_r2[i0:i1][:, None], worst,
                                                radius_of_row=True, strict=strict,
                                                round32=round32)
                ref_in[in_sample_balls[1]] = True
            if observe is not None:
                observe(i0, j0, g, worst, (ii, jj), in_sample_balls)
            del g
    return CrossCounts(counts, hit, ref_in)


def _inside_pairs(g: torch.Tensor, a: _Set, i0: int, b: _Set, j0: int, r2: torch.Tensor,
                  worst: float, *, radius_of_row: bool, strict: bool, round32: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Global (row, column) indices of the block's pairs inside the ball (radius ``r2``,
    broadcast along the block's rows or columns), decided exactly."""
    loose = (r2 * (1 + _MARGIN) + worst).float()
    li, lj = torch.nonzero(g <= loose, as_tuple=True)
    if not len(li):
        return li, lj
    gi, gj = li + i0, lj + j0
    radius = r2[li, 0] if radius_of_row else r2[0, lj]
    slack = a.bound(a.norm[gi], b.norm[gj]) + _MARGIN * radius
    approx = g[li, lj].double()
    inside = approx < radius - slack
    unsure = torch.nonzero(~inside & (approx <= radius + slack)).flatten()
    if len(unsure):
        d2 = _exact_sq(a, gi[unsure], b, gj[unsure])
        inside[unsure] = _decide(d2, radius[unsure], strict, round32)
    return gi[inside], gj[inside]


def _exact_pass(real: np.ndarray, fake: np.ndarray, k: int,
                device: str | torch.device | None, *, sample_balls: bool, strict: bool,
                round32: bool, nearest: bool = False, record: Recorder | None = None
                ) -> tuple[CrossCounts, tuple[torch.Tensor, torch.Tensor] | None]:
    """The exact-mode set-up and pass :func:`prdc`, :func:`exact_precision_recall` and
    :func:`density_coverage` share: both sides on the device (centred on the
    references' mean), the counts checked, reference balls (and ``sample_balls``), one
    :func:`cross_counts` pass, and with ``nearest`` each sample's nearest reference
    (float64 squared distance, index). ``record``: the bootstrap's records are kept
    (:mod:`genmetrics.metrics.image._knn_bootstrap`); the values do not change."""
    dev = resolve_device(device)
    with torch.no_grad(), _true_float32():
        r = _Set.of(real, dev)
        f = _Set.of(fake, dev, r.center)
        check_count(len(r), k, "reference rows")
        check_count(len(f), k if sample_balls else 0, "sample rows")
        rec = record.exact(len(r), len(f), dev) if record is not None else None
        sample_r2 = kth_radii_sq(f, k, rec.sample_block if rec else None) \
            if sample_balls else None
        ref_r2 = kth_radii_sq(r, k, rec.ref_block if rec else None)
        if rec is not None:
            rec.radii(ref_r2, sample_r2)
        c = cross_counts(f, r, ref_r2, sample_r2, strict=strict, round32=round32,
                         observe=rec.cross_block if rec else None)
        if rec is not None:
            rec.done()
        near = ranked_sq(f, r, 0, same=False) if nearest else None
    return c, near


def prdc(real: np.ndarray, fake: np.ndarray, k: int = PRDC_K,
         device: str | torch.device | None = "auto", record: Recorder | None = None
         ) -> dict[str, float]:
    """Precision, recall, density and coverage exactly as ``prdc.compute_prdc(real,
    fake, k)`` computes them (float32 features, strict ``<``), without N x N matrices."""
    c, _ = _exact_pass(real, fake, k, device, sample_balls=True, strict=True, round32=True,
                       record=record)
    assert c.ref_in_sample_balls is not None
    return {"precision": float((c.in_ref_balls > 0).double().mean()),
            "recall": float(c.ref_in_sample_balls.double().mean()),
            "density": (1.0 / k) * float(c.in_ref_balls.double().mean()),  # prdc's order
            "coverage": float(c.ref_ball_hit.double().mean())}


def exact_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = ADM_K,
                           device: str | torch.device | None = "auto",
                           record: Recorder | None = None) -> tuple[float, float]:
    """Kynkäänniemi et al.'s precision and recall on float64 distances (``<=``, the k-th
    neighbour excluding self)."""
    c, _ = _exact_pass(real, fake, k, device, sample_balls=True, strict=False, round32=False,
                       record=record)
    assert c.ref_in_sample_balls is not None
    return (float((c.in_ref_balls > 0).double().mean()),
            float(c.ref_in_sample_balls.double().mean()))


@dataclass
class DensityCoverage:
    density: float
    coverage: float
    counts: np.ndarray  # per sample: reference balls containing it (density = mean / k)
    nearest_index: np.ndarray | None = None  # per sample: its nearest reference row
    nearest_distance: np.ndarray | None = None  # and the Euclidean distance to it


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = PRDC_K, *,
                     nearest: bool = False, device: str | torch.device | None = "auto",
                     record: Recorder | None = None) -> DensityCoverage:
    """Naeem et al.'s density and coverage, equal to ``prdc``'s; with ``nearest``, each
    sample's nearest reference (index and float64 Euclidean distance) as well."""
    c, near = _exact_pass(real, fake, k, device, sample_balls=False, strict=True,
                          round32=True, nearest=nearest, record=record)
    out = DensityCoverage((1.0 / k) * float(c.in_ref_balls.double().mean()),
                          float(c.ref_ball_hit.double().mean()), c.in_ref_balls.cpu().numpy())
    if near is not None:
        d2, i = near
        out.nearest_index = i.cpu().numpy()
        out.nearest_distance = d2.sqrt().cpu().numpy()
    return out


# -- ADM mode -------------------------------------------------------------------------


@dataclass
class _AdmSet:
    """One side's rows as ADM's DistanceBlock sees them: float16-rounded rows with their
    float16 squared norms, and the float32 rows and norms of the fallback."""

    h: torch.Tensor
    n16: torch.Tensor
    x: torch.Tensor
    n32: torch.Tensor

    @classmethod
    def of(cls, rows: np.ndarray, device: torch.device) -> _AdmSet:
        with warnings.catch_warnings():  # read-only memory-mapped rows: never written here
            warnings.filterwarnings("ignore", message=".*not writable.*")
            x = torch.as_tensor(np.asarray(rows, dtype=np.float32)).to(device).contiguous()
        h = x.half()
        n16 = torch.cat([(c.float() * c.float()).half().float().sum(1).half().float()
                         for c in h.split(SUB)]) if len(x) else x.new_zeros(0)
        n32 = torch.cat([(c * c).sum(1) for c in x.split(SUB)]) if len(x) else x.new_zeros(0)
        return cls(h, n16, x, n32)

    def __len__(self) -> int:
        return len(self.x)


def adm_distances(u: _AdmSet, i0: int, i1: int, v: _AdmSet, j0: int, j1: int,
                  fp16: bool) -> torch.Tensor:
    """ADM's ``_batch_pairwise_distances`` for rows ``i0:i1`` of ``u`` (its U) against
    ``j0:j1`` of ``v`` (its V), in float16 (emulated, see the module docstring) or
    float32; returned as float32, like ADM's ``tf.cast``."""
    if fp16:
        m = (u.h[i0:i1].float() @ v.h[j0:j1].float().T).half().float()
        d = (u.n16[i0:i1, None] - (2 * m).half().float()).half().float()
        d = (d + v.n16[None, j0:j1]).half().float()
    else:
        d = u.n32[i0:i1, None] - 2 * (u.x[i0:i1] @ v.x[j0:j1].T) + v.n32[None, j0:j1]
    return d.clamp_min_(0)  # tf.maximum(., 0); NaN stays NaN, and fails the finite test


def _adm_blocks(n: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, ADM_BLOCK):
        yield s, min(s + ADM_BLOCK, n)


def _subs(a: int, b: int) -> Iterator[tuple[int, int]]:
    for s in range(a, b, SUB):
        yield s, min(s + SUB, b)


def adm_radii(a: _AdmSet, k: int = ADM_K, record: TileRecord | None = None) -> torch.Tensor:
    """ADM's ``manifold_radii``: per row, the (k+1)-th smallest squared distance of its
    row of distances (its own included), over ADM blocks with the float32 fallback.
    ``record`` sees the distance tiles of each ADM block as it was accepted (float16, or
    its float32 fallback)."""
    n = len(a)
    radii = torch.empty(n, device=a.x.device)
    for i0, i1 in _adm_blocks(n):
        best = torch.full((i1 - i0, k + 1), torch.inf, device=a.x.device)
        for j0, j1 in _adm_blocks(n):
            block = _adm_smallest(a, i0, i1, j0, j1, k + 1, fp16=True, record=record)
            if block is None:  # a value was not finite: ADM recomputes the block in float32
                block = _adm_smallest(a, i0, i1, j0, j1, k + 1, fp16=False, record=record)
            if block is None:
                raise MetricError("feature values too large for float32 distances")
            if record is not None:
                record.commit()
            best = torch.cat([best, block], 1).topk(k + 1, dim=1, largest=False).values
        radii[i0:i1] = best[:, k]
    return radii


def _adm_smallest(a: _AdmSet, i0: int, i1: int, j0: int, j1: int, keep: int,
                  fp16: bool, record: TileRecord | None = None) -> torch.Tensor | None:
    """The ``keep`` smallest distances per row within one ADM block (padded with inf), or
    None when any distance of the block is not finite (``record`` then drops what it
    staged of the block)."""
    out = torch.full((i1 - i0, keep), torch.inf, device=a.x.device)
    for r0, r1 in _subs(i0, i1):
        for c0, c1 in _subs(j0, j1):
            d = adm_distances(a, r0, r1, a, c0, c1, fp16)
            if not bool(torch.isfinite(d).all()):
                if record is not None:
                    record.drop()
                return None
            if record is not None:
                record.stage(r0, c0, d)
            v = d.topk(min(keep, c1 - c0), dim=1, largest=False).values
            rows = slice(r0 - i0, r1 - i0)
            out[rows] = torch.cat([out[rows], v], 1).topk(keep, dim=1, largest=False).values
    return out


def adm_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = ADM_K,
                         device: str | torch.device | None = "auto",
                         record: Recorder | None = None) -> tuple[float, float]:
    """ADM's ``compute_prec_recall(real, fake)``: (precision, recall) = (fraction of
    samples inside the reference manifold, fraction of references inside the sample
    manifold), with ``<=`` on float16 squared distances. ``record``: the bootstrap's
    records are kept from the same distances (the values do not change)."""
    dev = resolve_device(device)
    with torch.no_grad(), _true_float32():
        ref, sam = _AdmSet.of(real, dev), _AdmSet.of(fake, dev)
        check_count(len(ref), k, "reference rows")
        check_count(len(sam), k, "sample rows")
        rec = record.adm(len(ref), len(sam), dev) if record is not None else None
        ref_r = adm_radii(ref, k, rec.ref_tiles if rec else None)
        sam_r = adm_radii(sam, k, rec.sample_tiles if rec else None)
        cross = rec.cross_tiles(ref_r, sam_r) if rec else None
        ref_in = torch.zeros(len(ref), dtype=torch.bool, device=dev)
        sam_in = torch.zeros(len(sam), dtype=torch.bool, device=dev)
        for i0, i1 in _adm_blocks(len(ref)):  # ADM's evaluate_pr: references as rows
            for j0, j1 in _adm_blocks(len(sam)):
                got = _adm_less_thans(ref, i0, i1, ref_r, sam, j0, j1, sam_r, fp16=True,
                                      record=cross)
                if got is None:
                    got = _adm_less_thans(ref, i0, i1, ref_r, sam, j0, j1, sam_r, fp16=False,
                                          record=cross)
                if got is None:
                    raise MetricError("feature values too large for float32 distances")
                if cross is not None:
                    cross.commit()
                ref_in[i0:i1] |= got[0]
                sam_in[j0:j1] |= got[1]
        if rec is not None:
            rec.done()
    return float(sam_in.double().mean()), float(ref_in.double().mean())


def _adm_less_thans(ref: _AdmSet, i0: int, i1: int, ref_r: torch.Tensor, sam: _AdmSet,
                    j0: int, j1: int, sam_r: torch.Tensor, fp16: bool,
                    record: TileRecord | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """ADM's ``less_thans`` on one block: (reference inside some sample ball, sample
    inside some reference ball), or None when a distance of the block is not finite
    (``record`` then drops what it staged of the block)."""
    ref_in = torch.zeros(i1 - i0, dtype=torch.bool, device=ref.x.device)
    sam_in = torch.zeros(j1 - j0, dtype=torch.bool, device=ref.x.device)
    for r0, r1 in _subs(i0, i1):
        for c0, c1 in _subs(j0, j1):
            d = adm_distances(ref, r0, r1, sam, c0, c1, fp16)
            if not bool(torch.isfinite(d).all()):
                if record is not None:
                    record.drop()
                return None
            if record is not None:
                record.stage(r0, c0, d)
            ref_in[r0 - i0:r1 - i0] |= (d <= sam_r[None, c0:c1]).any(1)
            sam_in[c0 - j0:c1 - j0] |= (d <= ref_r[r0:r1, None]).any(0)
    return ref_in, sam_in


# -- Vendi ----------------------------------------------------------------------------


def cosine_gram(rows: np.ndarray, device: str | torch.device | None = "cpu") -> np.ndarray:
    """``sum_i x_i x_i^T`` (float64, d x d) of the L2-normalised rows (zero rows stay
    zero, as scikit-learn's ``normalize`` leaves them): Vendi's streaming state."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(rows)).to(resolve_device(device), torch.float64)
        norms = x.norm(dim=1, keepdim=True)
        x = x / torch.where(norms == 0, torch.ones_like(norms), norms)
        return (x.T @ x).cpu().numpy()


def vendi_from_gram(gram: np.ndarray, n: int) -> float:
    """The Vendi score (q = 1) from :func:`cosine_gram` summed over ``n`` rows: the
    exponential of the Shannon entropy of the eigenvalues of ``gram / n``, which are
    the nonzero eigenvalues of the n x n cosine kernel divided by n (the d x d form).

    >>> import numpy as np
    >>> round(vendi_from_gram(cosine_gram(np.eye(3)), 3), 6)  # 3 orthogonal samples
    3.0
    """
    w = np.linalg.eigvalsh(np.asarray(gram, dtype=np.float64) / n)
    w = w[w > 0]
    return float(np.exp(-np.sum(w * np.log(w))))
