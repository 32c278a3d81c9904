"""Bootstrap intervals of precision, recall, density and coverage (k-NN manifolds).

Each replicate recomputes the k-NN radii on the rows it drew
(:mod:`genmetrics.metrics.image._knn_bootstrap`): with every weight 1 the replicates
are the values, bit for bit, in both precision/recall modes and for ``prdc``'s numbers;
with random weights they equal the definition written out on full distance matrices;
and a small trial loop checks that the 95% rerun interval covers an independent rerun.
The full coverage runs (200+ trials, Gaussian and real photo features) are in
``loadtests/test_interval_coverage_knn.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmetrics.metrics.image import _knn
from genmetrics.metrics.image import _knn_bootstrap as kb
from genmetrics.metrics.image._knn_intervals import (
    METRICS,
    SCHEMES,
    interval_replicates,
    record_replicates,
)
from genmetrics.registry import get_metric
from genmetrics.stats import Replicates, Resampling, rerun_interval
from tests.knn_features import gaussian_sets
from tests.test_precision_recall import _sphere, adm_matrix


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    g = gaussian_sets()
    rng = np.random.default_rng(3)
    dup = rng.normal(size=(70, 16)).astype(np.float32)
    dup_s = np.concatenate([dup[:20], rng.normal(size=(45, 16)).astype(np.float32)])
    return [("gaussian", g[0][:120], g[1][:100]),
            ("sphere ties", _sphere(60, 0), _sphere(50, 1)),
            ("duplicate rows", np.concatenate([dup, dup[:10]]), dup_s)]


# (metric, mode, k, the value function)
PASSES = [
    ("precision_recall", "adm", 3, lambda r, s: dict(zip(
        ("precision", "recall"), _knn.adm_precision_recall(r, s, 3, device="cpu"),
        strict=True))),
    ("precision_recall", "exact", 3, lambda r, s: dict(zip(
        ("precision", "recall"), _knn.exact_precision_recall(r, s, 3, device="cpu"),
        strict=True))),
    ("density_coverage", "exact", 5, lambda r, s: (lambda o: {
        "density": o.density, "coverage": o.coverage})(_knn.density_coverage(r, s, 5,
                                                                            device="cpu"))),
    ("prdc", "exact", 5, lambda r, s: _knn.prdc(r, s, 5, device="cpu")),
]


@pytest.mark.parametrize("metric,mode,k,value", PASSES,
                         ids=["pr-adm", "pr-exact", "density-coverage", "prdc"])
def test_all_ones_weights_reproduce_the_values_exactly(small_blocks, metric, mode, k, value):
    for name, ref, sam in _cases():
        expected = value(ref, sam)
        values, record, _ = kb.record_pass(ref, sam, metric, k, mode, "cpu")
        assert values == expected, name  # recording leaves the value as it was
        ones = record.replicate_values(np.ones((2, len(sam))), np.ones((2, len(ref))),
                                       METRICS[metric])
        for result, v in expected.items():
            assert ones[result].tolist() == [v, v], (name, result)


def test_adm_records_follow_the_float32_fallback(small_blocks):
    """A block that falls back to float32 is recorded from its float32 distances."""
    ref, sam = (x.copy() for x in _cases()[0][1:])
    ref[:5] *= 400.0  # squared norms beyond float16's range: those blocks fall back
    sam[-3:] *= 400.0
    p, r = _knn.adm_precision_recall(ref, sam, 3, device="cpu")
    rs = Resampling(8, seed=1)
    w, v = rs.sample_weights(len(sam)), rs.reference_weights(len(ref))
    values, record, _ = kb.record_pass(ref, sam, "precision_recall", 3, "adm", "cpu")
    assert values == {"precision": p, "recall": r}
    reps = record.replicate_values(w, v, ("precision", "recall"))
    bf = kb.brute_force_from_distances(adm_matrix(ref, ref, small_blocks),
                                       adm_matrix(sam, sam, small_blocks),
                                       adm_matrix(ref, sam, small_blocks).T, w, v, 3,
                                       strict=False)
    for result in ("precision", "recall"):
        assert reps[result].tolist() == bf[result].tolist(), result


@pytest.mark.parametrize("radii", SCHEMES)
@pytest.mark.parametrize("metric,mode,k,strict", [
    ("precision_recall", "adm", 3, False), ("precision_recall", "exact", 3, False),
    ("prdc", "exact", 5, True), ("density_coverage", "exact", 5, True)])
def test_replicates_equal_the_definition_written_out(small_blocks, metric, mode, k, strict,
                                                     radii):
    """Random weights: each replicate equals its radii recomputed on the drawn rows
    (each counted once, or with its copies), on full distance matrices (ADM's float16
    distances in adm mode). Exact mode decides at the full-set radii on float64
    distances but at a replicate's other radii on its float32 blocks, so its float32
    near-ties (the sphere; samples that copy a reference row) are checked in adm mode
    only."""
    rs = Resampling(30, seed=5)
    for name, ref, sam in _cases():
        if mode == "exact" and name != "gaussian":
            continue
        w, v = rs.sample_weights(len(sam)), rs.reference_weights(len(ref))
        _, record, _ = kb.record_pass(ref, sam, metric, k, mode, "cpu")
        reps = record.replicate_values(w, v, METRICS[metric], radii=radii)
        if mode == "adm":
            bf = kb.brute_force_from_distances(
                adm_matrix(ref, ref, small_blocks), adm_matrix(sam, sam, small_blocks),
                adm_matrix(ref, sam, small_blocks).T, w, v, k, strict, radii)
        else:
            bf = kb.brute_force_replicates(ref, sam, w, v, k, strict, radii)
        for result in METRICS[metric]:
            assert np.array_equal(reps[result], bf[result]), (name, result)
        assert not np.array_equal(reps[METRICS[metric][0]],  # the weights matter
                                  np.full(len(w), reps[METRICS[metric][0]][0]))


def test_radii_move_with_the_drawn_rows():
    """A replicate's radius is the (k+1)-th drawn row of its list: leaving out a
    ball's nearest neighbours moves its radius outwards."""
    ref = np.arange(10, dtype=np.float32)[:, None] ** 1.5  # a line, spacing growing
    _, record, _ = kb.record_pass(ref, ref[:6] + 0.1, "density_coverage", 2, "exact", "cpu")
    balls = record.ref_balls
    everyone = np.ones((1, 10))
    assert balls.positions(torch.as_tensor(everyone)).tolist() == [[2] * 10]
    v = everyone.copy()
    v[0, 1] = 0  # row 1, the nearest neighbour of row 0, left out
    q = balls.positions(torch.as_tensor(v))[0]
    assert int(q[0]) == 3 and int(q[9]) == 2
    v[0, 2] = 2  # row 2 drawn twice: counted once, or twice (then it is row 0's 2nd)
    assert int(balls.positions(torch.as_tensor(v))[0][0]) == 3
    assert int(balls.positions(torch.as_tensor(v), "copies")[0][0]) == 2
    v[0, 0] = 3  # a ball's own copies never count for its own radius
    assert int(balls.positions(torch.as_tensor(v), "copies")[0][0]) == 2
    assert balls.positions(torch.as_tensor(v), "fixed").tolist() == [[2] * 10]


def test_the_larger_scheme_se_is_taken_and_density_is_scaled_to_the_value():
    a = np.array([1.4, 1.6, 1.5, 1.7, 1.3])  # density: sd 0.158, mean 1.5
    b = np.array([1.0, 1.2, 1.1, 1.15, 0.95])  # sd 0.105, mean 1.08
    out = interval_replicates({"density": 1.0, "coverage": 0.5},
                              {"drawn": {"density": a, "coverage": a / 4},
                               "copies": {"density": b, "coverage": b / 2}})
    assert out["density"].standard_error() == pytest.approx(np.std(a, ddof=1) / 1.5)
    assert out["coverage"].standard_error() == pytest.approx(np.std(b / 2, ddof=1))
    assert out["coverage"].values is not None and np.array_equal(out["coverage"].values, b / 2)
    assert {r.resampled for r in out.values()} == {"samples+references"}
    assert "recomputed" in out["coverage"].method


def test_too_many_memberships_give_nan_replicates_not_a_wrong_value():
    ref, sam = _cases()[0][1:]
    expected = _knn.density_coverage(ref, sam, 5, device="cpu")
    rec = kb.Recorder(5, strict=True, max_members=50)
    out = _knn.density_coverage(ref, sam, 5, device="cpu", record=rec)
    assert (out.density, out.coverage) == (expected.density, expected.coverage)
    reps = rec.result().replicate_values(np.ones((3, len(sam))), np.ones((3, len(ref))),
                                         ("density", "coverage"))
    assert np.isnan(reps["density"]).all() and np.isnan(reps["coverage"]).all()


@pytest.mark.parametrize("name,mode", [("precision_recall", "adm"),
                                       ("precision_recall", "exact"),
                                       ("density_coverage", None)])
def test_metric_bootstrap_replicates(name, mode):
    """The metric's hook: records of compute() after prepare_bootstrap, the same
    replicates as a fresh recording pass, the value unchanged."""
    ref, sam = _cases()[0][1:]
    opts = {"device": "cpu", **({"mode": mode} if mode else {})}
    kept, plain = get_metric(name)(**opts), get_metric(name)(**opts)
    kept.prepare_bootstrap()
    for m in (kept, plain):
        m.state["features"].append(sam)
        m.state["ref_features"].append(ref)
    a, b = kept.compute(), plain.compute()
    assert {k: r.value for k, r in a.items()} == {k: r.value for k, r in b.items()}
    assert kept._knn_pass is not None and plain._knn_pass is None
    rs = Resampling(20, seed=2)
    ra, rb = kept.bootstrap_replicates(rs), plain.bootstrap_replicates(rs)
    assert set(ra) == set(a)
    for result, rep in ra.items():
        assert isinstance(rep, Replicates) and rep.resampled == "samples+references"
        assert np.array_equal(rep.values, rb[result].values)
        assert 0 < rep.standard_error() < 0.5
    kept.state["features"].append(sam[:7])  # rows changed: a new pass, not stale records
    assert len(kept.bootstrap_replicates(rs)) == 2
    assert len(kept._knn_pass[0]) == len(sam) + 7


def test_small_rerun_coverage():
    """40 trials, 16-d Gaussians, 150 samples and references a side: the 95% rerun
    interval of each result covers an independent rerun's value (new samples and
    references) at least 80% of the time. The 200-trial runs are in loadtests/."""
    rng = np.random.default_rng(11)
    scale = np.linspace(0.5, 1.5, 16)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        return ((rng.normal(size=(150, 16)) * scale).astype(np.float32),
                (rng.normal(size=(150, 16)) * scale + 0.25).astype(np.float32))

    covered = dict.fromkeys(kb.RESULTS, 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small passes: one thread is much faster
    try:
        _trials(draw, covered)
    finally:
        torch.set_num_threads(threads)
    rates = {name: c / 40 for name, c in covered.items()}
    assert min(rates.values()) >= 0.8, rates


def _trials(draw, covered: dict[str, int]) -> None:
    for trial in range(40):
        ref, sam = draw()
        values, record, _ = kb.record_pass(ref, sam, "prdc", 5, "exact", "cpu")
        rs = Resampling(100, seed=trial)
        reps = record_replicates(values, record, rs.sample_weights(150),
                                 rs.reference_weights(150))
        again = _knn.prdc(*draw(), 5, device="cpu")
        for name, rep in reps.items():
            low, high = rerun_interval(values[name], rep.standard_error())
            covered[name] += int(low <= again[name] <= high)


def test_score_gives_knn_rerun_intervals_from_the_kept_rows(tmp_path, random_weights):
    """`score --bootstrap N`: each k-NN result's interval is the rerun interval of the
    SE its kept rows give (samples and references resampled), method in the signature."""
    from genmetrics.features.rowstore import read_rows
    from genmetrics.runner import score
    from tests.conftest import TEST_DEVICE
    from tests.photos import resize_longer_side, save_png, tiles

    pictures = [resize_longer_side(t, 48) for _, t in tiles()]
    for folder, part in (("samples", pictures[:30]), ("refs", pictures[40:66])):
        (tmp_path / folder).mkdir()
        for i, tile in enumerate(part):
            save_png(tile, tmp_path / folder / f"{i:03d}.png")
    card = score(tmp_path / "samples", tmp_path / "refs", modality="image",
                 metrics=["precision_recall", "density_coverage"],
                 inception_weights=random_weights(), device=TEST_DEVICE, workers=0,
                 bootstrap=40, seed=3, diagnostics=False)
    samples, refs = (read_rows(card.rows["2048"][side]) for side in ("samples", "references"))
    draws = Resampling(40, seed=3)
    w, v = draws.sample_weights(len(samples)), draws.reference_weights(len(refs))
    for metric, mode, k in (("precision_recall", "adm", 3), ("density_coverage", "exact", 5)):
        values, record, _ = kb.record_pass(refs, samples, metric, k, mode, "cpu")
        expected = record_replicates(values, record, w, v)
        for name in METRICS[metric]:
            result = card.metrics[name]
            assert result.value == values[name]
            interval = result.components["interval"]
            assert interval["resampled"] == "samples+references"
            assert interval["se"] == pytest.approx(expected[name].standard_error(), rel=1e-9)
            assert "recomputed per replicate" in result.signature["ci_method"]
            assert result.ci95 == pytest.approx(rerun_interval(
                result.value, interval["se"], (0.0, None if name == "density" else 1.0)))
