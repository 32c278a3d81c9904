"""Bootstrap replicates of precision, recall, density and coverage.

Resampling a k-NN metric with replacement breaks it: a row drawn twice is its own
neighbour at distance 0, and the k-NN radii collapse. Holding the radii at their
full-set values breaks nothing but leaves out how the radii move with the set: such
intervals covered an independent rerun in as few as 78.5% of 200 trials (coverage,
256-d Gaussians with few, large balls; ``loadtests/test_interval_coverage_knn.py``
prints this comparison beside every case). So each replicate **recomputes every radius
on the rows it drew**: a ball's radius in replicate ``b`` is the ``(k+1)``-th smallest
of its distances to the drawn rows of its side, itself included and counted once --
the full-set radius when every row is drawn once. How a row drawn several times counts
is a choice, and each choice errs one way somewhere, so both are computed from the
same draws and the larger standard error is used
(:func:`genmetrics.metrics.image._knn_intervals.interval_replicates`):

* ``drawn``: each drawn row once. The replicate's set is thinner (about 1 - 1/e of the
  rows), so its balls are larger and hold more; alone, its intervals covered 91% of
  reruns for density of few, large balls, and 89-90.5% for coverage in 64-d Gaussians
  at n = 500 (development runs);
* ``copies``: each drawn row as often as it was drawn (the ball's own row still once).
  The set keeps its size but clumps, so the radii scatter more; alone, 86.5% for
  coverage of few, large balls, and about twice the rerun spread where coverage nears 1.

With the larger of the two, every case of the coverage test (Gaussian and real photo
features, 200 trials each) covered 95-100% of reruns: conservative, by design. Density's
SE is scaled by ``value / mean of the replicates`` before the comparison: a
replicate's radii change how many rows a ball holds on average, and density and its
spread with it. Samples and references are both resampled (their own count vectors
``w``, ``v`` from one :class:`~genmetrics.stats.Resampling`).

The value pass records what this needs, from the very distances and decisions that
give the value (:mod:`genmetrics.metrics.image._knn`, ``record=``), so no distance is
computed again:

* per ball, its ``L = 4k + 8`` nearest rows of its own side (:class:`Balls`:
  distances ascending, its own row included, and their indices; column ``k`` is the
  value's own radius). A replicate's radius is the list entry at which the count
  reaches ``k + 1``; a ball whose list holds fewer takes its last entry (probability
  below 1e-5 per ball and replicate for k = 3 or 5: each row is drawn with
  probability 1 - 1/e);
* per ball, the rows of the other side within its last list radius and, for each, the
  first list position whose radius holds it (:class:`Members`). At most
  :data:`MAX_MEMBERS` are kept; past that the replicates are NaN (no interval) and the
  value is unaffected.

A replicate then needs no distance: row ``j`` is inside ball ``r`` in replicate ``b``
when ``r`` was drawn and its radius position ``q_b(r) >= pos(j, r)``. With every weight
1, ``q = k`` and every decision is the value's own: the replicates reproduce the value
exactly (tested in both precision/recall modes and for ``prdc``'s numbers). In
``adm`` mode every replicate decision is made on ADM's float16 distances as the value
is; in ``exact`` mode the decisions at a replicate's other radii use the float32 block
distances (the value's float64 check is made at the full-set radius only), so pairs
tied to float32 rounding -- a sample that copies a reference row -- may fall either
way there.

    precision_b = sum_j w_bj [j inside some drawn reference ball] / n
    recall_b    = sum_r v_br [r inside some drawn sample ball] / m
    density_b   = (1/k) (sum_j w_bj sum_r v_br [j inside ball r]) / n
    coverage_b  = sum_r v_br [some drawn sample inside ball r] / m

The counts are sparse products (memberships x replicates), batched over replicates in
torch on the device of the records (a CUDA device when the value ran there).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref, sam = rng.normal(size=(60, 8)), rng.normal(size=(50, 8))
    >>> ones = np.ones((1, 50)), np.ones((1, 60))
    >>> out = brute_force_replicates(ref, sam, *ones, k=3, strict=False)
    >>> sorted(out)
    ['coverage', 'density', 'precision', 'recall']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: what one replicate value is made of; ``names`` of :func:`replicate_values`
RESULTS = ("precision", "recall", "density", "coverage")
_CHUNK_ELEMENTS = 1 << 23  # replicates x (rows x list | memberships) per chunk
#: how a replicate counts the drawn rows of a ball's list (see the module docstring);
#: ``fixed`` holds the full-set radii (a comparison: it under-covers)
RADII = ("drawn", "copies", "fixed")


def list_length(k: int) -> int:
    """Neighbours kept per ball (its own row included): a replicate runs out of them
    with probability below 1e-5 per ball for k = 3 or 5."""
    return 4 * k + 8


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

    def within(self, weights_t: torch.Tensor, radii: str = "drawn") -> torch.Tensor:
        """``N x L x B`` bool: per ball, list position and replicate, whether the
        position is at or before the replicate's radius: the first position at which
        ``k + 1`` rows are counted in the ball (all of them when fewer are listed).
        ``weights_t``: counts of this side, ``N x B`` (replicates last); ``radii``
        (:data:`RADII`): ``drawn`` counts each drawn row once, ``copies`` each with its
        count (the ball's own row once), ``fixed`` keeps position ``k``."""
        n, length = self.index.shape
        if radii == "fixed":
            steps = torch.arange(length, device=weights_t.device)
            return (steps <= self.k)[None, :, None].expand(n, length, weights_t.shape[1])
        if radii == "copies":
            own = self.index == torch.arange(n, device=self.index.device)[:, None]
            counts = weights_t.clamp(max=self.k + 1).to(torch.uint8)[self.index]
            counts = torch.where(own[:, :, None], counts.clamp(max=1), counts)
        elif radii == "drawn":
            counts = (weights_t > 0)[self.index].view(torch.uint8)  # N x L x B
        else:
            raise ValueError(f"radii must be one of {RADII}, not {radii!r}")
        # rows counted nearer than each position (uint8 holds the sum for k < 12)
        small = length * (self.k + 1) < 256
        before = counts.cumsum(1, dtype=torch.uint8 if small else torch.int32) - counts
        return before <= self.k

    def positions(self, weights: torch.Tensor, radii: str = "drawn") -> torch.Tensor:
        """``B x N``: the list position of each ball's radius per replicate
        (``weights``: ``B x N``)."""
        return (self.within(weights.T.contiguous(), radii).sum(1) - 1).T


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


def _incidence(members: Members, n_points: int, n_balls: int, length: int,
               transpose: bool) -> torch.Tensor:
    """The memberships as a sparse 0/1 matrix, float32 CSR: points x (ball, position)
    columns (``ball * length + pos``), or its transpose."""
    col = members.ball.long() * length + members.pos.long()
    row = members.point.long()
    shape = (n_points, n_balls * length)
    if transpose:
        row, col, shape = col, row, (shape[1], shape[0])
    ones = torch.ones(len(row), dtype=torch.float32, device=row.device)
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), ones, shape,
                                  check_invariants=False).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


@dataclass
class _Side:
    """One kind of ball with the rows of the other side near them, ready for products."""

    balls: Balls
    members: Members
    n_points: int

    def __post_init__(self) -> None:
        self.length = self.balls.lists.shape[1]
        self.by_point = _incidence(self.members, self.n_points, len(self.balls),
                                   self.length, transpose=False)
        self.by_ball: torch.Tensor | None = None

    def point_counts(self, within: torch.Tensor, weights_t: torch.Tensor) -> torch.Tensor:
        """``n_points x B`` (float64): the drawn balls (with multiplicity) holding each
        row of the other side (``within``: :meth:`Balls.within` of ``weights_t``, the
        balls' side, ``N x B``)."""
        levels = within * weights_t.float()[:, None, :]  # N x L x B
        return (self.by_point @ levels.reshape(-1, levels.shape[2])).double()

    def ball_hits(self, within: torch.Tensor, point_weights_t: torch.Tensor) -> torch.Tensor:
        """``N x B`` bool: the balls holding some drawn row of the other side (whether
        the ball itself was drawn is left to the caller's weights)."""
        if self.by_ball is None:
            self.by_ball = _incidence(self.members, self.n_points, len(self.balls),
                                      self.length, transpose=True)
        near = self.by_ball @ point_weights_t.float()  # (N * L) x B: drawn rows
        return ((near.reshape(within.shape) > 0) & within).any(1)


def _chunks(b: int, per_replicate: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(per_replicate, 1))
    return [slice(s, min(s + step, b)) for s in range(0, b, step)]


def replicate_values(sample_weights: np.ndarray | torch.Tensor,
                     ref_weights: np.ndarray | torch.Tensor, k: int, ref_balls: Balls,
                     samples_in_ref_balls: Members, sample_balls: Balls | None = None,
                     refs_in_sample_balls: Members | None = None,
                     names: tuple[str, ...] = RESULTS, radii: str = "drawn",
                     _sides: dict[str, _Side] | None = None) -> dict[str, np.ndarray]:
    """Replicate values (float64, one per row of the weights) of the results ``names``:
    ``precision``, ``density`` and ``coverage`` need the reference balls and the
    samples inside them; ``recall`` the sample balls and the references inside them.

    ``sample_weights`` (``B x n``) and ``ref_weights`` (``B x m``) are counts (rows of
    ones give the value itself). ``k`` divides density (its ``k``). Counts are summed in
    float32 sparse products (exact: integers below 2^24), values in float64.
    ``radii``: how a replicate's radii are recomputed (:meth:`Balls.within`).
    """
    dev = ref_balls.lists.device
    w = torch.as_tensor(np.asarray(sample_weights), dtype=torch.float64).to(dev)
    v = torch.as_tensor(np.asarray(ref_weights), dtype=torch.float64).to(dev)
    b, n = w.shape
    m = v.shape[1]
    if v.shape[0] != b or len(ref_balls) != m:
        raise ValueError(f"weights {tuple(w.shape)}, {tuple(v.shape)} do not fit "
                         f"{m} reference balls")
    wanted = set(names)
    cache = {} if _sides is None else _sides  # the sparse incidences, built once
    refs = sams = None
    if wanted - {"recall"}:
        if "refs" not in cache:
            cache["refs"] = _Side(ref_balls, samples_in_ref_balls, n)
        refs = cache["refs"]
    if "recall" in wanted:
        if sample_balls is None or refs_in_sample_balls is None:
            raise ValueError("recall needs the sample balls and the references inside them")
        if "samples" not in cache:
            cache["samples"] = _Side(sample_balls, refs_in_sample_balls, m)
        sams = cache["samples"]
    sides = [x for x in (refs, sams) if x is not None]
    out = {name: np.empty(b) for name in names}
    per = max(len(x.balls) * x.length for x in sides)
    for s in _chunks(b, 2 * per):
        wc, vc = w[s].T.contiguous(), v[s].T.contiguous()  # n x B, m x B
        if refs is not None:
            within = refs.balls.within(vc, radii)
            if wanted & {"precision", "density"}:
                counts = refs.point_counts(within, vc)
                if "precision" in wanted:
                    out["precision"][s] = ((wc * (counts > 0)).sum(0) / n).cpu().numpy()
                if "density" in wanted:  # prdc's order: (1 / k) * mean
                    out["density"][s] = ((1.0 / k) * ((wc * counts).sum(0) / n)).cpu().numpy()
            if "coverage" in wanted:
                hit = refs.ball_hits(within, wc)
                out["coverage"][s] = ((vc * hit).sum(0) / m).cpu().numpy()
            del within
        if sams is not None:
            counts = sams.point_counts(sams.balls.within(wc, radii), wc)
            out["recall"][s] = ((vc * (counts > 0)).sum(0) / m).cpu().numpy()
    return out


# -- recording during the value pass ---------------------------------------------------

#: memberships kept at most (about 18 bytes each); past it the records are dropped and
#: the replicates are NaN (the value is unaffected)
MAX_MEMBERS = 1 << 24


@dataclass
class KnnRecord:
    """What one value pass leaves for the replicates (see the module docstring)."""

    k: int
    ref_balls: Balls
    samples_in_ref_balls: Members
    sample_balls: Balls | None = None
    refs_in_sample_balls: Members | None = None
    overflow: bool = False  # more than MAX_MEMBERS memberships: no replicates

    def __post_init__(self) -> None:
        self._sides: dict[str, _Side] = {}

    def replicate_values(self, sample_weights: np.ndarray | torch.Tensor,
                         ref_weights: np.ndarray | torch.Tensor,
                         names: tuple[str, ...] = RESULTS, radii: str = "drawn"
                         ) -> dict[str, np.ndarray]:
        """:func:`replicate_values` on these records (NaN where they overflowed)."""
        if self.overflow:
            return {name: np.full(len(sample_weights), np.nan) for name in names}
        return replicate_values(sample_weights, ref_weights, self.k, self.ref_balls,
                                self.samples_in_ref_balls, self.sample_balls,
                                self.refs_in_sample_balls, names, radii, self._sides)


class _Lists:
    """Per row, the ``length`` smallest values (and their columns) seen so far."""

    def __init__(self, n: int, length: int, device: torch.device, dtype: torch.dtype) -> None:
        self.length = min(length, n)
        self.vals = torch.full((n, self.length), torch.inf, dtype=dtype, device=device)
        self.idx = torch.full((n, self.length), -1, dtype=torch.long, device=device)

    def add(self, r0: int, c0: int, tile: torch.Tensor) -> None:
        v, i = tile.topk(min(self.length, tile.shape[1]), dim=1, largest=False)
        self.merge(r0, v, i + c0)

    def merge(self, r0: int, v: torch.Tensor, i: torch.Tensor) -> None:
        rows = slice(r0, r0 + len(v))
        vals = torch.cat([self.vals[rows], v.to(self.vals.dtype)], 1)
        best, order = vals.topk(self.length, dim=1, largest=False, sorted=True)
        self.vals[rows] = best
        self.idx[rows] = torch.cat([self.idx[rows], i], 1).gather(1, order)

    def balls(self, radius: torch.Tensor, k: int) -> Balls:
        """The lists with column ``k`` set to the value's own radii (so that every
        weight 1 decides as the value did), kept ascending around it."""
        lists = self.vals.clone()
        r = radius.to(lists.dtype)[:, None]
        lists[:, :k] = torch.minimum(lists[:, :k], r)
        lists[:, k] = r[:, 0]
        lists[:, k + 1:] = torch.maximum(lists[:, k + 1:], r)
        return Balls(lists, self.idx, k)


class _Members:
    """Memberships collected over blocks, within :data:`MAX_MEMBERS`."""

    def __init__(self, owner: Recorder) -> None:
        self.owner, self.parts = owner, []  # type: list[Members]

    def add(self, point: torch.Tensor, ball: torch.Tensor, d: torch.Tensor, lists: Balls,
            strict: bool, inside_at_k: torch.Tensor | None = None) -> None:
        """Rows ``point`` at distances ``d`` (the metric's arithmetic) of balls ``ball``."""
        if self.owner.overflow or not len(point):
            return
        ls = lists.lists[ball]
        d = d.to(ls.dtype)[:, None]
        pos = (ls <= d if strict else ls < d).sum(1)  # list radii that leave it out
        if inside_at_k is not None:  # the value's own decision at the full-set radius
            k = lists.k
            pos = torch.where(inside_at_k, pos.clamp(max=k), pos.clamp(min=k + 1))
        keep = pos < ls.shape[1]
        self.parts.append(Members(point[keep], ball[keep], pos[keep].to(torch.int16)))
        self.owner.count(int(keep.sum()))

    def result(self, device: torch.device) -> Members:
        return Members.cat(self.parts, device)


class Recorder:
    """Pass one to a value function of :mod:`genmetrics.metrics.image._knn`
    (``record=``); :meth:`result` then holds the :class:`KnnRecord` of that pass."""

    def __init__(self, k: int, strict: bool, max_members: int = MAX_MEMBERS) -> None:
        self.k, self.strict, self.max_members = k, strict, max_members
        self.members, self.overflow = 0, False
        self._result: KnnRecord | None = None
        self._parts: list[_Members] = []

    def count(self, added: int) -> None:
        self.members += added
        if self.members > self.max_members:
            self.overflow = True
            for part in self._parts:
                part.parts.clear()

    def _collector(self) -> _Members:
        part = _Members(self)
        self._parts.append(part)
        return part

    def exact(self, m: int, n: int, device: torch.device) -> _ExactRecord:
        return _ExactRecord(self, m, n, device)

    def adm(self, m: int, n: int, device: torch.device) -> _AdmRecord:
        return _AdmRecord(self, m, n, device)

    def finish(self, record: KnnRecord) -> None:
        record.overflow = self.overflow
        self._result = record

    def result(self) -> KnnRecord:
        if self._result is None:
            raise RuntimeError("no value pass was recorded")
        return self._result


class _ExactRecord:
    """Exact mode: lists from the float32 blocks of the radii passes (column k: the
    exact radius), memberships from the cross blocks with the value's own decisions at
    the full-set radii."""

    def __init__(self, owner: Recorder, m: int, n: int, device: torch.device) -> None:
        length = list_length(owner.k)
        self.owner = owner
        self.ref_lists = _Lists(m, length, device, torch.float64)
        self.sample_lists = _Lists(n, length, device, torch.float64)
        self.ref_balls: Balls | None = None
        self.sample_balls: Balls | None = None
        self.in_ref, self.in_sample = owner._collector(), owner._collector()

    @staticmethod
    def _symmetric(lists: _Lists, i0: int, j0: int, g: torch.Tensor) -> None:
        lists.add(i0, j0, g)
        if j0 > i0:  # ranked_sq(same=True) computes each block pair once
            lists.add(j0, i0, g.T)

    def ref_block(self, i0: int, j0: int, g: torch.Tensor) -> None:
        self._symmetric(self.ref_lists, i0, j0, g)

    def sample_block(self, i0: int, j0: int, g: torch.Tensor) -> None:
        self._symmetric(self.sample_lists, i0, j0, g)

    def radii(self, ref_r2: torch.Tensor, sample_r2: torch.Tensor | None) -> None:
        k = self.owner.k
        self.ref_balls = self.ref_lists.balls(ref_r2, k)
        if sample_r2 is not None:
            self.sample_balls = self.sample_lists.balls(sample_r2, k)
        del self.ref_lists, self.sample_lists

    def cross_block(self, i0: int, j0: int, g: torch.Tensor, worst: float,
                    in_ref: tuple[torch.Tensor, torch.Tensor],
                    in_sample: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        from genmetrics.metrics.image._knn import _MARGIN

        strict = self.owner.strict
        assert self.ref_balls is not None
        mark = torch.zeros(g.shape, dtype=torch.bool, device=g.device)
        far = self.ref_balls.lists[j0:j0 + g.shape[1], -1]
        li, lj = torch.nonzero(g <= (far * (1 + _MARGIN) + worst).float()[None, :],
                               as_tuple=True)
        mark[in_ref[0] - i0, in_ref[1] - j0] = True
        self.in_ref.add(li + i0, lj + j0, g[li, lj], self.ref_balls, strict, mark[li, lj])
        if self.sample_balls is not None and in_sample is not None:
            mark.zero_()
            far = self.sample_balls.lists[i0:i0 + g.shape[0], -1]
            li, lj = torch.nonzero(g <= (far * (1 + _MARGIN) + worst).float()[:, None],
                                   as_tuple=True)
            mark[in_sample[0] - i0, in_sample[1] - j0] = True
            self.in_sample.add(lj + j0, li + i0, g[li, lj], self.sample_balls, strict,
                               mark[li, lj])

    def done(self) -> None:
        assert self.ref_balls is not None
        dev = self.ref_balls.lists.device
        self.owner.finish(KnnRecord(
            self.owner.k, self.ref_balls, self.in_ref.result(dev), self.sample_balls,
            self.in_sample.result(dev) if self.sample_balls is not None else None))


class TileRecord:
    """ADM mode: distance tiles staged per ADM block, kept when the block is accepted
    (:meth:`commit`), dropped when it falls back to float32 (:meth:`drop`)."""

    def __init__(self, reduce: Callable[[int, int, torch.Tensor], Any],
                 keep: Callable[[list[Any]], None]) -> None:
        self.reduce, self.keep, self.staged = reduce, keep, []  # type: ignore[var-annotated]

    def stage(self, r0: int, c0: int, d: torch.Tensor) -> None:
        self.staged.append(self.reduce(r0, c0, d))

    def drop(self) -> None:
        self.staged = []

    def commit(self) -> None:
        self.keep(self.staged)
        self.staged = []


class _AdmRecord:
    """ADM mode: lists and memberships from the very float16 (or fallback float32)
    distances the value compares, ``<=``."""

    def __init__(self, owner: Recorder, m: int, n: int, device: torch.device) -> None:
        length = list_length(owner.k)
        self.owner = owner
        self.lists = {"ref": _Lists(m, length, device, torch.float32),
                      "sample": _Lists(n, length, device, torch.float32)}
        self.ref_tiles = self._self_tiles("ref")
        self.sample_tiles = self._self_tiles("sample")
        self.in_ref, self.in_sample = owner._collector(), owner._collector()

    def _self_tiles(self, side: str) -> TileRecord:
        lists = self.lists[side]

        def reduce(r0: int, c0: int, d: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
            v, i = d.topk(min(lists.length, d.shape[1]), dim=1, largest=False)
            return r0, v, i + c0

        def keep(staged: list[Any]) -> None:
            for r0, v, i in staged:
                lists.merge(r0, v, i)
        return TileRecord(reduce, keep)

    def cross_tiles(self, ref_r: torch.Tensor, sam_r: torch.Tensor) -> TileRecord:
        k = self.owner.k
        ref_balls = self.lists["ref"].balls(ref_r, k)
        sample_balls = self.lists["sample"].balls(sam_r, k)
        del self.lists

        def reduce(r0: int, c0: int, d: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
            # d: references r0: as rows, samples c0: as columns (ADM's evaluate_pr)
            li, lj = torch.nonzero(d <= ref_balls.lists[r0:r0 + d.shape[0], -1:],
                                   as_tuple=True)
            out = [(lj + c0, li + r0, d[li, lj])]  # samples inside reference balls
            li, lj = torch.nonzero(d <= sample_balls.lists[c0:c0 + d.shape[1], -1][None, :],
                                   as_tuple=True)
            out.append((li + r0, lj + c0, d[li, lj]))  # references inside sample balls
            return out

        def keep(staged: list[Any]) -> None:
            for (sp, sb, sd), (rp, rb, rd) in staged:
                self.in_ref.add(sp, sb, sd, ref_balls, strict=False)
                self.in_sample.add(rp, rb, rd, sample_balls, strict=False)

        self.ref_balls, self.sample_balls = ref_balls, sample_balls
        return TileRecord(reduce, keep)

    def done(self) -> None:
        dev = self.ref_balls.lists.device
        self.owner.finish(KnnRecord(self.owner.k, self.ref_balls, self.in_ref.result(dev),
                                    self.sample_balls, self.in_sample.result(dev)))


# -- rows and weights in, replicates out -------------------------------------------------

def record_pass(real: np.ndarray, fake: np.ndarray, metric: str, k: int,
                mode: str = "exact", device: str | torch.device | None = "auto",
                nearest: bool = False) -> tuple[dict[str, float], KnnRecord, Any]:
    """One value pass of ``metric`` (``precision_recall`` in ``mode`` ``adm`` or
    ``exact``, ``density_coverage`` or ``prdc``) on reference rows ``real`` and sample
    rows ``fake``, keeping the records: (values, records, the value function's own
    output)."""
    from genmetrics.metrics.image import _knn
    from genmetrics.metrics.image._knn_intervals import METRICS

    if metric == "precision_recall":
        rec = Recorder(k, strict=False)
        fn = _knn.adm_precision_recall if mode == "adm" else _knn.exact_precision_recall
        out: Any = fn(real, fake, k, device=device, record=rec)
        values = dict(zip(METRICS[metric], out, strict=True))
    elif metric == "density_coverage":
        rec = Recorder(k, strict=True)
        out = _knn.density_coverage(real, fake, k, nearest=nearest, device=device, record=rec)
        values = {"density": out.density, "coverage": out.coverage}
    elif metric == "prdc":
        rec = Recorder(k, strict=True)
        out = values = _knn.prdc(real, fake, k, device=device, record=rec)
    else:
        raise ValueError(f"no k-NN replicates for {metric!r}")
    return values, rec.result(), out


def knn_replicates(real: np.ndarray, fake: np.ndarray, sample_weights: np.ndarray,
                   ref_weights: np.ndarray, metric: str, k: int, mode: str = "exact",
                   device: str | torch.device | None = "auto", radii: str = "drawn"
                   ) -> dict[str, np.ndarray]:
    """Replicate values of ``metric``'s results (see :func:`record_pass`) for the count
    rows ``sample_weights`` (``B x n``) and ``ref_weights`` (``B x m``), radii
    recomputed by the rule ``radii`` (:meth:`Balls.within`). The interval's SE takes
    both rules: :func:`genmetrics.metrics.image._knn_intervals.record_replicates`.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ref, sam = rng.normal(size=(40, 8)), rng.normal(size=(30, 8))
        >>> out = knn_replicates(ref, sam, np.ones((2, 30)), np.ones((2, 40)),
        ...                      "density_coverage", 5, device="cpu")
        >>> out["coverage"][0] == out["coverage"][1] > 0
        np.True_
    """
    from genmetrics.metrics.image._knn_intervals import METRICS

    _, record, _ = record_pass(real, fake, metric, k, mode, device)
    return record.replicate_values(sample_weights, ref_weights, METRICS[metric], radii=radii)


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
                           ref_weights: np.ndarray, k: int, strict: bool,
                           radii: str = "drawn") -> dict[str, np.ndarray]:
    """The replicates written out on float64 Euclidean distances (full matrices). For
    tests; see :func:`brute_force_from_distances`."""
    from scipy.spatial.distance import cdist

    ref, sam = np.asarray(ref, np.float64), np.asarray(sam, np.float64)
    return brute_force_from_distances(cdist(ref, ref), cdist(sam, sam), cdist(sam, ref),
                                      sample_weights, ref_weights, k, strict, radii)


def brute_force_from_distances(d_rr: np.ndarray, d_ss: np.ndarray, d_sr: np.ndarray,
                               sample_weights: np.ndarray, ref_weights: np.ndarray, k: int,
                               strict: bool, radii: str = "drawn") -> dict[str, np.ndarray]:
    """The replicates written out from full distance matrices (references x references,
    samples x samples, samples x references; any monotone distance): in each replicate a
    ball's radius is the ``(k+1)``-th smallest of its distances to the drawn rows of its
    side (itself included), each drawn row once (``radii="drawn"``) or repeated as often
    as it was drawn, the ball's own row once (``"copies"``); ``strict``: inside is
    ``<``, else ``<=``. For tests."""
    inside = np.less if strict else np.less_equal

    def kth(d: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if radii == "drawn":
            return np.sort(d[:, weights > 0], axis=1)[:, k]
        out = np.empty(len(d))
        for r in range(len(d)):
            counts = weights.astype(int).copy()
            counts[r] = min(counts[r], 1)
            out[r] = np.sort(np.repeat(d[r], counts))[k]
        return out

    out: dict[str, list[float]] = {name: [] for name in RESULTS}
    n, m = d_sr.shape
    for w, v in zip(np.asarray(sample_weights), np.asarray(ref_weights), strict=True):
        ws, vs = w > 0, v > 0
        ref_r, sam_r = kth(d_rr, v), kth(d_ss, w)
        a = inside(d_sr, ref_r[None, :]) & vs[None, :]  # sample j in reference ball r
        a2 = inside(d_sr, sam_r[:, None]) & ws[:, None]  # reference r in sample ball j
        counts = a.astype(np.float64) @ v
        out["precision"].append(float(np.sum(w * (counts > 0)) / n))
        out["density"].append((1.0 / k) * float(np.sum(w * counts) / n))
        out["coverage"].append(float(np.sum(v * (w @ a > 0)) / m))
        out["recall"].append(float(np.sum(v * (w @ a2 > 0)) / m))
    return {name: np.asarray(vals) for name, vals in out.items()}
