"""Intervals of FID and sFID (issue 19): replicate numerics, kept rows, the runner.

* every route of :func:`frechet_replicates` gives the metric's value with all weights 1,
  and the exact routes give ``frechet_distance`` of the explicitly resampled rows;
* the linearised route's standard error is within a stated tolerance of the exact
  bootstrap's, on a case where both run;
* the device code (torch) gives the CPU code's numbers, on CPU tensors;
* kept rows live in memory-mapped files (one per output and side, written once however
  many metrics keep them), named by the scorecard; ``--bootstrap 0`` keeps none;
* a small coverage check (the slow one is ``loadtests/test_interval_coverage.py``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from genmetrics.features.rowstore import RowStore, clear_rows, prune, read_rows
from genmetrics.metrics.image._distribution_math import frechet_distance
from genmetrics.metrics.image._replicates import frechet_replicates
from genmetrics.stats import Resampling, rerun_interval
from tests.conftest import TEST_DEVICE


def _fid_of_rows(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                            np.cov(b, rowvar=False))


def _sets(n: int, m: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    x = rng.standard_normal((n, d)) @ mixing + 0.1
    y = rng.standard_normal((m, d)) @ (mixing * 1.2)
    return x, y


CASES = [(30, 40, 50), (120, 150, 20)]  # fewer rows than dimensions; more


# the linearisation needs positive definite covariances: more rows than dimensions only
ROUTE_CASES = [(*case, route) for case in CASES for route in ("gram", "dense", "linear")
               if route != "linear" or case[0] > case[2]]


@pytest.mark.parametrize(("n", "m", "d", "route"), ROUTE_CASES)
def test_all_ones_weights_give_the_value(n, m, d, route):
    x, y = _sets(n, m, d)
    value = _fid_of_rows(x, y)
    ones = np.ones((3, n))
    mu, sigma = y.mean(0), np.cov(y, rowvar=False)
    fixed = frechet_replicates(x, (mu, sigma), ones, route=route, control=2)
    both = frechet_replicates(x, y, ones, np.ones((3, m)), route=route, control=2)
    for out in (fixed, both):
        assert out.route == route
        assert out.values == pytest.approx(np.full(3, value), rel=1e-9)


@pytest.mark.parametrize(("n", "m", "d"), CASES)
@pytest.mark.parametrize("route", ["gram", "dense"])
@pytest.mark.parametrize("scheme", ["bootstrap", "halves"])
def test_exact_replicates_are_the_fid_of_the_resampled_rows(n, m, d, route, scheme):
    x, y = _sets(n, m, d, seed=1)
    draws = Resampling(4, seed=3)
    if scheme == "halves":  # even sizes: half the rows, each weighted 2
        w, v = draws.sample_halves(n), draws.reference_halves(m)
        assert set(np.unique(w)) == {0.0, 2.0} and set(np.unique(v)) == {0.0, 2.0}
    else:
        w, v = draws.sample_weights(n), draws.reference_weights(m)
    mu, sigma = y.mean(0), np.cov(y, rowvar=False)
    fixed = frechet_replicates(x, (mu, sigma), w, route=route)
    both = frechet_replicates(x, y, w, v, route=route)
    for k in range(4):
        drawn = np.repeat(x, w[k].astype(int), axis=0)
        expected = frechet_distance(drawn.mean(0), np.cov(drawn, rowvar=False), mu, sigma)
        assert fixed.values[k] == pytest.approx(expected, rel=1e-9)
        refs = np.repeat(y, v[k].astype(int), axis=0)
        assert both.values[k] == pytest.approx(_fid_of_rows(drawn, refs), rel=1e-9)
    assert fixed.se == pytest.approx(np.std(fixed.values, ddof=1))


#: the linearised route's SE against the exact bootstrap's, same 200 draws: the control
#: variates' own noise (K exact replicates) plus the exact SE's (~5% at 200 replicates)
LINEAR_SE_TOLERANCE = 0.15


@pytest.mark.parametrize("two_sided", [False, True])
def test_linearised_standard_error_is_close_to_the_exact_one(two_sided):
    n, d = 400, 24
    x, y = _sets(n, n, d, seed=2)
    draws = Resampling(200, seed=5)
    w = draws.sample_weights(n)
    ref = y if two_sided else (y.mean(0), np.cov(y, rowvar=False))
    v = draws.reference_weights(n) if two_sided else None
    exact = frechet_replicates(x, ref, w, v, route="dense")
    linear = frechet_replicates(x, ref, w, v, route="linear")
    assert linear.route == "linear" and linear.exact == linear.detail["control_replicates"]
    assert linear.values[:linear.exact] == pytest.approx(exact.values[:linear.exact], rel=1e-9)
    assert linear.se == pytest.approx(exact.se, rel=LINEAR_SE_TOLERANCE)
    k = linear.exact  # past the K exact ones, the linearisation tracks the exact values
    assert np.corrcoef(linear.values[k:], exact.values[k:])[0, 1] > 0.9
    assert "linearised tr sqrt" in linear.method()


def test_linear_falls_back_to_an_exact_route_with_a_singular_covariance():
    x, y = _sets(20, 40, 30)  # 20 samples, 30 dimensions: S is singular
    out = frechet_replicates(x, (y.mean(0), np.cov(y, rowvar=False)), np.ones((2, 20)),
                             route="linear")
    assert out.route in ("gram", "dense") and "singular" in out.detail["fallback"]
    assert out.values[0] == pytest.approx(_fid_of_rows(x, y), rel=1e-9)


@pytest.mark.parametrize("route", ["gram", "dense", "linear"])
def test_device_code_on_cpu_tensors_matches_numpy(route):
    torch = pytest.importorskip("torch")
    x, y = _sets(80, 90, 12, seed=4)
    draws = Resampling(6, seed=1)
    w, v = draws.sample_weights(80), draws.reference_weights(90)
    for ref, ref_w in (((y.mean(0), np.cov(y, rowvar=False)), None), (y, v)):
        on_cpu = frechet_replicates(x, ref, w, ref_w, route=route, control=3)
        on_device = frechet_replicates(x, ref, w, ref_w, route=route, control=3,
                                       device=torch.device("cpu"))
        assert on_device.route == on_cpu.route == route
        assert on_device.values == pytest.approx(on_cpu.values, rel=1e-9)
        assert on_device.se == pytest.approx(on_cpu.se, rel=1e-9)


def test_memory_mapped_rows_give_the_same_replicates(tmp_path):
    x, y = _sets(60, 70, 10, seed=6)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    draws = Resampling(5, seed=2)
    w, v = draws.sample_weights(60), draws.reference_weights(70)
    a = frechet_replicates(x.astype(np.float32), y, w, v)
    b = frechet_replicates(mapped, y, w, v)
    assert np.array_equal(a.values, b.values)


# -- kept rows --------------------------------------------------------------------------

def test_row_store_writes_each_batch_once_and_maps_it_back(tmp_path):
    store = RowStore(tmp_path / "run")
    chunks = [np.random.default_rng(i).random((5, 4)).astype(np.float32) for i in range(3)]
    views = []
    for chunk in chunks:
        first = store.add("2048", "samples", chunk)
        assert store.add("2048", "samples", chunk) is first  # a second metric
        views.append(first)
    path = tmp_path / "run" / "2048-samples.npy"
    assert path.stat().st_size == 128 + 15 * 4 * 4  # written once
    rows = store.stack(views, "2048", "samples")
    assert isinstance(rows, np.memmap) and np.array_equal(rows, np.concatenate(chunks))
    assert np.array_equal(read_rows(path), np.concatenate(chunks))  # a plain .npy file
    # rows gathered from other processes (not this store's views): a new file, mapped
    gathered = store.stack([np.asarray(v) for v in views[::-1]], "2048", "samples")
    assert isinstance(gathered, np.memmap)
    assert np.array_equal(gathered, np.concatenate(chunks[::-1]))
    assert store.paths()["2048"]["samples"] != str(path)
    # stacked rows, then more (an evaluation loop between computes): still the spool's
    whole = store.spool("2048", "samples").array()
    more = store.add("2048", "samples", chunks[0] + 1)
    rows = store.stack([whole, more], "2048", "samples")
    assert len(rows) == 20 and np.array_equal(rows[-5:], chunks[0] + 1)
    store.close()
    assert len(store.add("2048", "samples", chunks[1])) == 5  # appending after close works


def test_row_store_keeps_float64_rows_exactly(tmp_path):
    store = RowStore(tmp_path / "run")
    chunk = np.array([[1.0 / 3.0, 2.0]])
    assert store.add("x", "references", chunk).dtype == np.float64
    assert store.stack([store.add("x", "references", chunk)], "x", "references")[0, 0] == 1 / 3


def test_rows_that_cannot_be_written_are_kept_in_memory(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    store = RowStore(tmp_path / "file" / "run")
    chunk = np.ones((3, 2), np.float32)
    assert store.add("2048", "samples", chunk) is chunk  # no error: the interval still comes
    assert "Error" in store.problem
    rows = store.stack([chunk, chunk + 1], "2048", "samples")
    assert rows.shape == (6, 2) and not isinstance(rows, np.memmap)
    assert store.paths() == {}


def test_old_run_folders_are_pruned_and_clear_removes_the_rest(tmp_path):
    root = tmp_path / "rows"
    old = time.time() - 2 * 86400
    for i in range(4):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        (run / "2048-samples.npy").write_bytes(b"x" * 10)
        stamp = old + i  # run0 is the oldest
        os.utime(run / "2048-samples.npy", (stamp, stamp))
        os.utime(run, (stamp, stamp))
    (root / "fresh").mkdir()  # written just now: another run may be using it
    removed = prune(root, keep=2)
    assert sorted(p.name for p in removed) == ["run0", "run1", "run2"]
    assert sorted(p.name for p in root.iterdir()) == ["fresh", "run3"]
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_text("not rows")
    assert clear_rows(root) == (2, 10)  # run3 and the empty fresh; notes/ is left alone
    assert [p.name for p in root.iterdir()] == ["notes"]


# -- the runner, the Evaluator, the scorecard ------------------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory, random_weights) -> dict[str, Path]:
    from tests.photos import degraded_folders

    return {**degraded_folders(tmp_path_factory.mktemp("fidci")), "weights": random_weights()}


def _score(folders, bootstrap: int, metrics=("fid", "sfid", "kid"), **kwargs):
    from genmetrics.runner import score

    return score(folders["samples"], folders["refs"], modality="image", metrics=list(metrics),
                 inception_weights=folders["weights"], device=TEST_DEVICE, workers=0,
                 bootstrap=bootstrap, diagnostics=False, **kwargs)


def test_score_gives_fid_and_sfid_rerun_intervals_from_kept_rows(folders, tmp_path):
    card = _score(folders, 40, seed=7)
    for name, output, width in (("fid", "2048", 2048), ("sfid", "mixed_6/conv", 2023)):
        result = card.metrics[name]
        interval = result.components["interval"]
        assert interval["replicates"] == 40 and interval["resampled"] == "samples+references"
        # 14 images, fewer than dimensions: the exact small-side route, over half-samples
        assert interval["method"] == "half-sampling: exact (gram)"
        assert result.ci95 == pytest.approx(
            rerun_interval(result.value, interval["se"], (0.0, None)))
        sig = result.signature
        assert (sig["bootstrap"], sig["bootstrap_seed"]) == (40, 7)
        assert sig["ci_method"].startswith("rerun 95%: value ± 1.96·√2·SE; half-sampling over "
                                           "samples+references")
        samples = read_rows(card.rows[output]["samples"])
        references = read_rows(card.rows[output]["references"])
        assert samples.shape == (14, width) and references.shape == (12, width)
        # the interval is the one the kept rows give
        draws = Resampling(40, seed=7)
        again = frechet_replicates(samples, references, draws.sample_halves(14),
                                   draws.reference_halves(12))
        assert again.se == pytest.approx(interval["se"], rel=1e-9)
    # KID keeps its pool3 rows in the same files as FID (one file per side)
    assert set(card.rows) == {"2048", "mixed_6/conv"}
    folder = Path(card.rows["2048"]["samples"]).parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "2048-references.npy", "2048-samples.npy", "mixed_6-conv-references.npy",
        "mixed_6-conv-samples.npy"]
    saved = tmp_path / "card.json"
    card.save(saved)  # the schema takes rows, ci_method and components.interval
    from genmetrics.scorecard import Scorecard

    assert Scorecard.load(saved).rows == card.rows
    assert card.timing["interval_s"] > 0


def test_bootstrap_0_keeps_no_rows(folders):
    from genmetrics.features.rowstore import rows_root

    before = set(rows_root().iterdir()) if rows_root().is_dir() else set()
    card = _score(folders, 0)
    assert card.rows is None and "rows" not in card.to_dict()
    assert all(r.ci95 is None and "interval" not in r.components for r in card.metrics.values())
    assert (set(rows_root().iterdir()) if rows_root().is_dir() else set()) == before


def test_against_statistics_only_the_samples_are_resampled(folders, tmp_path):
    from genmetrics.reference_stats import build_stats

    stats, _ = build_stats(folders["refs"], "refs", out_dir=tmp_path,
                           weights=str(folders["weights"]), device=TEST_DEVICE)
    card = _score(folders, 30, metrics=("fid",), reference_stats=stats)
    interval = card.metrics["fid"].components["interval"]
    assert interval["resampled"] == "samples"
    assert set(card.rows["2048"]) == {"samples"}
    assert "half-sampling over samples;" in card.metrics["fid"].signature["ci_method"]


def test_evaluator_keeps_rows_and_starts_afresh_after_reset(folders):
    import torch

    from genmetrics.evaluator import Evaluator

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (10, 3, 40, 40), dtype=np.uint8))
    refs = torch.from_numpy(rng.integers(0, 255, (12, 3, 40, 40), dtype=np.uint8))
    ev = Evaluator(["fid"], "image", device=TEST_DEVICE, bootstrap=25,
                   inception_weights=str(folders["weights"]))
    ev.update_reference(refs)
    ev.update(images[:6])
    ev.update(images[6:])
    first = ev.compute()
    fid = first.metrics["fid"]
    assert fid.ci95 is not None and fid.components["interval"]["replicates"] == 25
    assert read_rows(first.rows["2048"]["samples"]).shape == (10, 2048)
    ev.reset()
    ev.update(images[:7])
    second = ev.compute()
    assert read_rows(second.rows["2048"]["samples"]).shape == (7, 2048)
    # 7 samples: too few for half-samples, so no interval (the rows are still kept)
    assert second.metrics["fid"].ci95 is None
    assert second.rows["2048"]["references"] == first.rows["2048"]["references"]
    assert not Path(first.rows["2048"]["samples"]).exists()  # the old pass's rows
    ev.close()


def test_validate_leaves_rerun_intervals_alone_and_checks_paired_ones(tmp_path, run_cli):
    from genmetrics.metric import MetricResult
    from genmetrics.recompute import check_values
    from genmetrics.runner import score

    card = score("demo/text/samples", "demo/text/references", metrics=["bleu"],
                 per_sample=True, bootstrap=50)
    sig = {"metric": "fid", "v": "1", "n": 8, "genmetrics": "0.2.0", "bootstrap": 50,
           "bootstrap_seed": 12345,
           "ci_method": "rerun 95%: value ± 1.96·√2·SE; bootstrap over samples"}
    card.metrics["fid"] = MetricResult("fid", 12.0, 8, False, "-", sig, ci95=(9.0, 15.0),
                                       components={"interval": {"se": 1.08}})
    assert check_values(card) == []
    path = tmp_path / "card.json"
    card.save(path)
    assert run_cli("validate", str(path)).returncode == 0
    doc = json.loads(path.read_text())
    doc["metrics"]["bleu"]["ci95"][0] -= 1.0  # a hand-edited paired CI is still found
    path.write_text(json.dumps(doc))
    done = run_cli("validate", str(path))
    assert done.returncode == 2 and "bleu: the ci95" in done.stderr + done.stdout


# -- coverage (small; loadtests/test_interval_coverage.py is the real check) ----------------

@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize(("d", "n"), [(6, 120), (40, 30)])  # more rows than dimensions; fewer
def test_small_coverage_of_a_rerun(two_sided, d, n):
    """30 trials: the interval covers the rerun, and is not much wider than it needs to
    be (a bootstrap's would be ~5x wider at n < d, where repeated rows cost rank)."""
    trials = 30
    mean_r, scale_r = np.zeros(d), np.linspace(0.5, 1.5, d)
    mean_s, scale_s = np.full(d, 0.3), np.linspace(0.6, 1.4, d)
    covered, widths, gaps = 0, [], []
    for trial in range(trials):
        rng = np.random.default_rng([11, trial])
        runs = []
        for _ in range(2):
            x = mean_s + rng.standard_normal((n, d)) * scale_s
            y = mean_r + rng.standard_normal((n, d)) * scale_r
            runs.append((x, y))
        (x, y), (x2, y2) = runs
        ref = y if two_sided else (mean_r, np.diag(scale_r**2))
        value = _fid_of_rows(x, y) if two_sided else frechet_distance(
            x.mean(0), np.cov(x, rowvar=False), *ref)
        draws = Resampling(100, seed=trial)
        out = frechet_replicates(x, ref, draws.sample_halves(n),
                                 draws.reference_halves(n) if two_sided else None)
        low, high = rerun_interval(value, out.se, (0.0, None))
        again = _fid_of_rows(x2, y2) if two_sided else frechet_distance(
            x2.mean(0), np.cov(x2, rowvar=False), *ref)
        covered += low <= again <= high
        widths.append((high - low) / 2)
        gaps.append(value - again)
        assert math.isfinite(out.se) and out.se > 0
    assert covered / trials >= 0.8
    ideal = 1.959964 * np.std(gaps, ddof=1)  # what would cover 95% of these reruns
    assert np.mean(widths) <= 2.0 * ideal


def test_two_processes_give_the_intervals_of_one(folders, tmp_path, monkeypatch):
    """Under torchrun the kept rows are gathered in rank order (the shards' order), so
    the replicates are the one-process run's."""
    from tests.test_distributed_cli import TORCHRUN, _card, _single, _torchrun

    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed")
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    args = ["score", "--modality", "image", folders["samples"], "--reference", folders["refs"],
            "--metrics", "fid,sfid,kid", "--inception-weights", folders["weights"],
            "--workers", "0", "--bootstrap", "30", "--no-diagnostics", "-q"]
    two = _torchrun(*args, "--out", tmp_path / "two.json", tmp=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _single(*args, "--out", tmp_path / "one.json").returncode == 0
    one, two_card = _card(tmp_path / "one.json"), _card(tmp_path / "two.json")
    for name in ("fid", "sfid"):
        assert two_card["metrics"][name]["ci95"] == pytest.approx(
            one["metrics"][name]["ci95"], rel=1e-4)
        rows = read_rows(two_card["rows"]["2048"]["samples"])
        assert rows.shape == (14, 2048)
        assert np.allclose(rows, read_rows(one["rows"]["2048"]["samples"]), rtol=1e-4,
                           atol=1e-5)


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean with total weight n and covariance with divisor n - 1, as the value's."""
    n = len(x)
    mu = w @ x / n
    centred = x - mu
    return mu, (centred * w[:, None]).T @ centred / (n - 1)


@pytest.mark.parametrize(("n", "m", "d"), [(31, 41, 50), (41, 31, 20), (9, 11, 6)])
@pytest.mark.parametrize("route", ["gram", "dense"])
def test_odd_sizes_half_samples_are_the_fid_of_the_weighted_rows(n, m, d, route):
    """Odd n: replicates alternate halves of n // 2 and n // 2 + 1 rows, weighted n / h
    (fractional), and each is the FID of the weighted mean and covariance."""
    x, y = _sets(n, m, d, seed=2)
    draws = Resampling(6, seed=4)
    w, v = draws.sample_halves(n), draws.reference_halves(m)
    assert [int((row > 0).sum()) for row in w] == [n // 2, n // 2 + 1] * 3
    both = frechet_replicates(x, y, w, v, route=route)
    fixed = frechet_replicates(x, (y.mean(0), np.cov(y, rowvar=False)), w, route=route)
    for k in range(6):
        expected_both = frechet_distance(*_weighted_moments(x, w[k]),
                                         *_weighted_moments(y, v[k]))
        expected_fixed = frechet_distance(*_weighted_moments(x, w[k]), y.mean(0),
                                          np.cov(y, rowvar=False))
        assert both.values[k] == pytest.approx(expected_both, rel=1e-8)
        assert fixed.values[k] == pytest.approx(expected_fixed, rel=1e-8)


def test_too_few_rows_for_half_samples_are_refused_with_the_reason():
    from genmetrics.errors import MetricError
    from genmetrics.metrics.image.fid import FID

    fid = FID()
    fid.prepare_bootstrap()
    rng = np.random.default_rng(0)
    fid.add_features(rng.random((5, 8)))
    fid.add_reference_features(rng.random((40, 8)))
    with pytest.raises(MetricError, match="at least 8 samples, not 5"):
        fid.bootstrap_replicates(Resampling(20, seed=1))
