"""Bootstrap replicates of precision, recall, density and coverage.

Resampling a k-NN metric with replacement breaks it: a row drawn twice is its own
neighbour at distance 0, and the k-NN radii collapse. Holding the radii at their
full-set values does not break anything, but it leaves out how the radii move with
the set, and its intervals cover a rerun only 75-90% of the time where the balls are
few and large (see ``loadtests/test_interval_coverage_knn.py``). So each replicate
**recomputes the radii on the rows it drew** (each counted once, its weight used for
the sums): a ball's radius in replicate ``b`` is the ``(k+1)``-th smallest of its
distances to the drawn rows of its side, itself included -- the full-set radius when
every row is drawn, larger when neighbours were left out. Samples and references are
both resampled (their own count vectors ``w``, ``v`` from one
:class:`~genmetrics.stats.Resampling`).

The value pass records what this needs, from the very distance values and decisions
that give the value (:mod:`genmetrics.metrics.image._knn`, ``record=``):

* per ball, its ``L = 6k + 8`` nearest rows of its own side (:class:`Balls`:
  distances ascending, its own row included, and their indices). A replicate's radius
  is the list entry at which the drawn count reaches ``k + 1``; a ball whose list holds
  fewer than ``k + 1`` drawn rows takes its last entry (probability below 1e-8 per ball
  and replicate for k = 3 or 5, each row being drawn with probability 1 - 1/e);
* per ball, the rows of the other side within its last list radius and, for each, the
  first list position whose radius holds it (:class:`Members`).

A replicate then needs no distance at all: row ``j`` is inside ball ``r`` in replicate
``b`` when ``r`` was drawn and its radius position ``q_b(r) >= pos(j, r)``. With every
weight 1, ``q = k`` and every decision is the value's: the replicates reproduce the
value exactly (tested in both precision/recall modes and for ``prdc``'s numbers).

    precision_b = sum_j w_bj [j inside some drawn reference ball] / n
    recall_b    = sum_r v_br [r inside some drawn sample ball] / m
    density_b   = (1/k) (sum_j w_bj sum_r v_br [j inside ball r]) / n
    coverage_b  = sum_r v_br [some drawn sample inside ball r] / m

Everything here is batched over replicates in torch, on the device of the records.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref, sam = rng.normal(size=(60, 8)), rng.normal(size=(50, 8))
    >>> ones = np.ones((1, 50)), np.ones((1, 60))
    >>> out = brute_force_replicates(ref, sam, *ones, k=3, strict=False)
    >>> sorted(out)
    ['coverage', 'density', 'precision', 'recall']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: what one replicate value is made of; ``names`` of :func:`replicate_values`
RESULTS = ("precision", "recall", "density", "coverage")
_CHUNK_ELEMENTS = 1 << 23  # replicates x (rows x list | memberships) per chunk


def list_length(k: int) -> int:
    """Neighbours kept per ball (its own row included): a replicate runs out of them
    with probability below 1e-8 per ball for k = 3 or 5."""
    return 6 * k + 8


@dataclass
class Balls:
    """One side's k-NN balls, as a replicate recomputes their radii: per row, the
    distances to its ``L`` nearest rows of its own side (itself included) ascending, in
    the metric's own distance arithmetic, and which rows they are."""

    lists: torch.Tensor  # N x L, ascending; column k is the full-set radius
    index: torch.Tensor  # N x L long
    k: int

    def __len__(self) -> int:
        return len(self.lists)

    def positions(self, weights: torch.Tensor) -> torch.Tensor:
        """``B x N``: per replicate and ball, the list position of its radius (the first
        at which ``k + 1`` drawn rows are in the ball; ``L - 1`` when fewer are listed)."""
        drawn = (weights > 0)[:, self.index]  # B x N x L
        reached = drawn.cumsum(2, dtype=torch.int16) <= self.k
        return reached.sum(2).clamp_(max=self.lists.shape[1] - 1)


@dataclass
class Members:
    """Rows of the other side near these balls: row ``point[p]`` is inside ball
    ``ball[p]`` whenever that ball's radius is its list entry ``pos[p]`` or a later one
    (pairs beyond the last list entry are not kept)."""

    point: torch.Tensor  # P long
    ball: torch.Tensor  # P long
    pos: torch.Tensor  # P int16

    def __len__(self) -> int:
        return len(self.point)

    @classmethod
    def empty(cls, device: torch.device | str = "cpu") -> Members:
        z = torch.zeros(0, dtype=torch.long, device=device)
        return cls(z, z, z.to(torch.int16))

    @classmethod
    def cat(cls, parts: list[Members], device: torch.device | str = "cpu") -> Members:
        if not parts:
            return cls.empty(device)
        return cls(torch.cat([p.point for p in parts]), torch.cat([p.ball for p in parts]),
                   torch.cat([p.pos for p in parts]))


def _inside(members: Members, positions: torch.Tensor, ball_weights: torch.Tensor
            ) -> torch.Tensor:
    """``B x P``: membership ``p`` holds in replicate ``b`` (its ball drawn, and the
    ball's radius position at or past the membership's)."""
    return (ball_weights[:, members.ball] > 0) & \
        (positions[:, members.ball] >= members.pos.to(positions.dtype))


def point_counts(members: Members, positions: torch.Tensor, ball_weights: torch.Tensor,
                 n_points: int) -> torch.Tensor:
    """``B x n_points`` (float64): per replicate, the drawn balls (with their
    multiplicity) holding each row."""
    inside = _inside(members, positions, ball_weights)
    vals = ball_weights[:, members.ball].double() * inside
    out = torch.zeros(len(positions), n_points, dtype=torch.float64, device=vals.device)
    return out.index_add_(1, members.point, vals)


def ball_hits(members: Members, positions: torch.Tensor, point_weights: torch.Tensor,
              ball_weights: torch.Tensor, n_balls: int) -> torch.Tensor:
    """``B x n_balls`` bool: per replicate, the balls holding some drawn row."""
    inside = _inside(members, positions, ball_weights) & (point_weights[:, members.point] > 0)
    out = torch.zeros(len(positions), n_balls, dtype=torch.float64, device=inside.device)
    return out.index_add_(1, members.ball, inside.double()) > 0


def _chunks(b: int, per_replicate: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(per_replicate, 1))
    return [slice(s, min(s + step, b)) for s in range(0, b, step)]


def replicate_values(sample_weights: np.ndarray | torch.Tensor,
                     ref_weights: np.ndarray | torch.Tensor, k: int, ref_balls: Balls,
                     samples_in_ref_balls: Members, sample_balls: Balls | None = None,
                     refs_in_sample_balls: Members | None = None,
                     names: tuple[str, ...] = RESULTS) -> dict[str, np.ndarray]:
    """Replicate values (float64, one per row of the weights) of the results ``names``:
    ``precision``, ``density`` and ``coverage`` need the reference balls and the
    samples inside them; ``recall`` the sample balls and the references inside them.

    ``sample_weights`` (``B x n``) and ``ref_weights`` (``B x m``) are counts (rows of
    ones give the value itself). ``k`` divides density (its ``k``).
    """
    dev = ref_balls.lists.device
    w = torch.as_tensor(np.asarray(sample_weights), dtype=torch.float64).to(dev)
    v = torch.as_tensor(np.asarray(ref_weights), dtype=torch.float64).to(dev)
    b, n = w.shape
    m = v.shape[1]
    if v.shape[0] != b or len(ref_balls) != m:
        raise ValueError(f"weights {tuple(w.shape)}, {tuple(v.shape)} do not fit "
                         f"{m} reference balls")
    out = {name: np.empty(b) for name in names}
    ref_side = {"precision", "density", "coverage"} & set(names)
    per = len(ref_balls) * ref_balls.lists.shape[1] + len(samples_in_ref_balls) * 3
    if sample_balls is not None and refs_in_sample_balls is not None:
        per = max(per, len(sample_balls) * sample_balls.lists.shape[1]
                  + len(refs_in_sample_balls) * 3)
    elif "recall" in names:
        raise ValueError("recall needs the sample balls and the references inside them")
    for s in _chunks(b, per):
        wc, vc = w[s], v[s]
        if ref_side:
            q = ref_balls.positions(vc)
            if {"precision", "density"} & set(names):
                counts = point_counts(samples_in_ref_balls, q, vc, n)
                if "precision" in names:
                    out["precision"][s] = ((wc * (counts > 0)).sum(1) / n).cpu().numpy()
                if "density" in names:  # prdc's order: (1 / k) * mean
                    out["density"][s] = ((1.0 / k) * ((wc * counts).sum(1) / n)).cpu().numpy()
            if "coverage" in names:
                hit = ball_hits(samples_in_ref_balls, q, wc, vc, m)
                out["coverage"][s] = ((vc * hit).sum(1) / m).cpu().numpy()
        if "recall" in names:
            assert sample_balls is not None and refs_in_sample_balls is not None
            q = sample_balls.positions(wc)
            counts = point_counts(refs_in_sample_balls, q, wc, m)
            out["recall"][s] = ((vc * (counts > 0)).sum(1) / m).cpu().numpy()
    return out


# -- building the records from full distance matrices (small sets, tests) -------------


def balls_from_matrix(d_self: np.ndarray, k: int, length: int | None = None) -> Balls:
    """:class:`Balls` from one side's full distance matrix (any monotone distance)."""
    d_self = np.asarray(d_self)
    length = min(length or list_length(k), d_self.shape[1])
    index = np.argsort(d_self, axis=1, kind="stable")[:, :length]
    return Balls(torch.from_numpy(np.take_along_axis(d_self, index, 1).copy()),
                 torch.from_numpy(index.astype(np.int64)), k)


def members_from_matrix(d_cross: np.ndarray, balls: Balls, strict: bool) -> Members:
    """:class:`Members` from the full ``points x balls`` distance matrix; ``strict``:
    inside is ``d < radius`` (prdc), else ``d <= radius`` (ADM, Kynkäänniemi et al.)."""
    lists = balls.lists.numpy()
    d_cross = np.asarray(d_cross, dtype=lists.dtype)
    side = "right" if strict else "left"
    pos = np.stack([np.searchsorted(lists[r], d_cross[:, r], side=side)
                    for r in range(len(lists))], 1)  # points x balls
    point, ball = np.nonzero(pos < lists.shape[1])
    return Members(torch.from_numpy(point.astype(np.int64)),
                   torch.from_numpy(ball.astype(np.int64)),
                   torch.from_numpy(pos[point, ball].astype(np.int16)))


def brute_force_replicates(ref: np.ndarray, sam: np.ndarray, sample_weights: np.ndarray,
                           ref_weights: np.ndarray, k: int, strict: bool
                           ) -> dict[str, np.ndarray]:
    """The replicates written out (float64 Euclidean distances, full matrices): each
    replicate's radii recomputed on the rows it drew, every row once. For tests."""
    from scipy.spatial.distance import cdist

    ref, sam = np.asarray(ref, np.float64), np.asarray(sam, np.float64)
    d_rr, d_ss, d_sr = cdist(ref, ref), cdist(sam, sam), cdist(sam, ref)
    inside = np.less if strict else np.less_equal
    out: dict[str, list[float]] = {name: [] for name in RESULTS}
    n, m = len(sam), len(ref)
    for w, v in zip(np.asarray(sample_weights), np.asarray(ref_weights), strict=True):
        ws, vs = w > 0, v > 0
        ref_r = np.sort(d_rr[:, vs], axis=1)[:, k]  # k-th among the drawn, itself at 0
        sam_r = np.sort(d_ss[:, ws], axis=1)[:, k]
        a = inside(d_sr, ref_r[None, :]) & vs[None, :]  # sample j in reference ball r
        a2 = inside(d_sr, sam_r[:, None]) & ws[:, None]  # reference r in sample ball j
        counts = a.astype(np.float64) @ v
        out["precision"].append(float(np.sum(w * (counts > 0)) / n))
        out["density"].append((1.0 / k) * float(np.sum(w * counts) / n))
        out["coverage"].append(float(np.sum(v * (w @ a > 0)) / m))
        out["recall"].append(float(np.sum(v * (w @ a2 > 0)) / m))
    return {name: np.asarray(vals) for name, vals in out.items()}
