"""Precision and recall (k-NN manifolds): ``adm`` mode equals ADM's algorithm written out
here with full matrices, ``exact`` mode equals brute-force float64, on real pool3
features of real photographs and on Gaussian sets; ``--set`` options under aliases.

The ``adm`` tests check ADM's algorithm (blocks, float32 fallback, ranks, ``<=``) on our
reading of its float16 arithmetic, transcribed in numpy below; TensorFlow's own float16
arithmetic is not checked (TensorFlow is not installed)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.metrics.image import _knn
from genmetrics.registry import get_metric
from tests.knn_features import gaussian_sets, photo_features


# -- ADM's algorithm, written out (full matrices, numpy float16 arithmetic) ----------
def adm_distances(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ADM's DistanceBlock on one block: float16 (float32 sums rounded once), float32
    when any value is not finite."""
    u16, v16 = u.astype(np.float16), v.astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        nu = (u16 * u16).astype(np.float32).sum(1).astype(np.float16)
        nv = (v16 * v16).astype(np.float32).sum(1).astype(np.float16)
        m = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
        d = np.maximum(nu[:, None] - np.float16(2) * m + nv[None, :], np.float16(0))
    if np.isfinite(d).all():
        return d.astype(np.float32)
    nu32, nv32 = (u * u).sum(1), (v * v).sum(1)
    return np.maximum(nu32[:, None] - 2 * (u @ v.T) + nv32[None, :], 0).astype(np.float32)


def adm_matrix(u: np.ndarray, v: np.ndarray, block: int) -> np.ndarray:
    out = np.empty((len(u), len(v)), np.float32)
    for i in range(0, len(u), block):
        for j in range(0, len(v), block):
            out[i:i + block, j:j + block] = adm_distances(u[i:i + block], v[j:j + block])
    return out


def adm_reference(ref: np.ndarray, sam: np.ndarray, k: int, block: int) -> tuple[float, float]:
    ref_r = np.partition(adm_matrix(ref, ref, block), k, axis=1)[:, k]
    sam_r = np.partition(adm_matrix(sam, sam, block), k, axis=1)[:, k]
    d = adm_matrix(ref, sam, block)  # references as rows, as ADM's evaluate_pr
    precision = (d <= ref_r[:, None]).any(0).mean()
    recall = (d <= sam_r[None, :]).any(1).mean()
    return float(precision), float(recall)


def brute_exact(ref: np.ndarray, sam: np.ndarray, k: int) -> tuple[float, float]:
    from scipy.spatial.distance import cdist

    r64, s64 = ref.astype(np.float64), sam.astype(np.float64)
    ref_r = np.sort(cdist(r64, r64), axis=1)[:, k]
    sam_r = np.sort(cdist(s64, s64), axis=1)[:, k]
    d = cdist(r64, s64)
    return float((d <= ref_r[:, None]).any(0).mean()), float((d <= sam_r[None, :]).any(1).mean())


def _sphere(n: int, seed: int) -> np.ndarray:
    """The origin and ``n`` unit vectors: the origin's neighbours all tie to float32
    rounding, so exact mode re-ranks its whole row in float64."""
    x = np.random.default_rng(seed).normal(size=(n, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.concatenate([np.zeros((1, 64)), x]).astype(np.float32)


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    f = photo_features()
    g = gaussian_sets()
    return [("photos clean", f["refs"], f["clean"]), ("photos blur", f["refs"], f["blur"]),
            ("photos noise", f["refs"], f["noise"]), ("gaussian", g[0][:300], g[1][:250]),
            ("sphere ties", _sphere(60, 0), _sphere(50, 1))]


def test_adm_mode_equals_adm_algorithm(small_blocks):
    for name, ref, sam in _cases():
        ours = _knn.adm_precision_recall(ref, sam, 3, device="cpu")
        assert ours == adm_reference(ref, sam, 3, small_blocks), name


def test_adm_float32_fallback_per_block(small_blocks):
    f = photo_features()
    ref, sam = f["refs"].copy(), f["clean"].copy()
    ref[:5] *= 400.0  # squared norms beyond float16's 65504: those blocks fall back
    sam[-3:] *= 400.0
    ours = _knn.adm_precision_recall(ref, sam, 3, device="cpu")
    assert ours == adm_reference(ref, sam, 3, small_blocks)
    # the fallback really ran: the same block in float16 is not finite
    u16 = ref[:40].astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = (u16 * u16).astype(np.float32).sum(1).astype(np.float16)
    assert not np.isfinite(norms).all()


def test_exact_mode_equals_brute_force_float64(small_blocks):
    for name, ref, sam in _cases():
        ours = _knn.exact_precision_recall(ref, sam, 3, device="cpu")
        assert ours == brute_exact(ref, sam, 3), name


def test_exact_mode_near_prdc_where_defined_alike():
    """prdc compares with ``<`` on float32 distances, ADM/exact with ``<=``: on real
    features (no exact ties) the k = 5 values agree."""
    import prdc

    f = photo_features()
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = prdc.compute_prdc(f["refs"], f["blur"], nearest_k=5)
    p, r = _knn.exact_precision_recall(f["refs"], f["blur"], 5, device="cpu")
    assert (p, r) == (theirs["precision"], theirs["recall"])


def test_blur_and_noise_lower_precision():
    f = photo_features()
    for mode in ("adm", "exact"):
        fn = _knn.adm_precision_recall if mode == "adm" else _knn.exact_precision_recall
        clean = fn(f["refs"], f["clean"], 3, device="cpu")[0]
        assert fn(f["refs"], f["blur"], 3, device="cpu")[0] < clean, mode
        assert fn(f["refs"], f["noise"], 3, device="cpu")[0] < clean, mode


def test_half_of_the_photographs_lowers_recall():
    f = photo_features()
    full = _knn.exact_precision_recall(f["refs"], f["clean"], 3, device="cpu")[1]
    half = _knn.exact_precision_recall(f["refs"], f["clean_half"], 3, device="cpu")[1]
    assert half < full


@pytest.mark.parametrize("metric, k, side, n_samples, n_refs", [
    ("precision_recall", 3, "sample", 3, 10),
    ("precision_recall", 3, "reference", 10, 2),
    ("density_coverage", 5, "reference", 20, 5),
])
def test_too_few_rows_is_a_clear_error(metric, k, side, n_samples, n_refs):
    rng = np.random.default_rng(0)
    m = get_metric(metric)(device="cpu")
    m.state["features"].append(rng.random((n_samples, 4), dtype=np.float32))
    m.state["ref_features"].append(rng.random((n_refs, 4), dtype=np.float32))
    n = n_samples if side == "sample" else n_refs
    with pytest.raises(MetricError, match=rf"k={k} needs more than {k} {side} rows .*n={n}\)"):
        m.compute()


def test_metric_results_and_signature():
    f = photo_features()
    pr = get_metric("precision_recall")(device="cpu")
    pr.state["features"].append(f["clean"])
    pr.state["ref_features"].append(f["refs"])
    out = pr.compute()
    assert set(out) == {"precision", "recall"}
    assert (out["precision"].value, out["recall"].value) == _knn.adm_precision_recall(
        f["refs"], f["clean"], 3, device="cpu")
    sig = out["precision"].signature
    assert sig["mode"] == "adm" and sig["k"] == 3 and sig["metric"] == "precision_recall"
    assert "device" not in sig
    with pytest.raises(UsageError, match="mode"):
        get_metric("precision_recall")(mode="fast").preflight()


def test_stats_without_rows_are_refused_with_the_reason():
    class MeanCovOnly:
        name, features, has_rows = "musigma", None, False

        def check_extractor(self, *args):
            pass

    with pytest.raises(UsageError, match="defined against a reference set; these "
                       "statistics hold only mean and covariance"):
        get_metric("precision_recall")().use_reference_stats(MeanCovOnly())


def test_options_under_aliases_reach_their_metric():
    from genmetrics.cli import parse_settings
    from genmetrics.runner import build_metrics

    def built(*settings: str, names=("precision", "recall")):
        return build_metrics(list(names), "image", parse_settings(list(settings)), True)

    pr = built("precision.mode=exact", "recall.k=5")["precision_recall"]
    assert (pr.options["mode"], pr.options["k"]) == ("exact", 5)
    pr = built("precision_recall.mode=exact", "recall.k=5", "precision.k=5",
               names=("precision_recall",))["precision_recall"]
    assert (pr.options["mode"], pr.options["k"]) == ("exact", 5)
    with pytest.raises(UsageError) as err:
        built("precision.k=4", "recall.k=5")
    assert str(err.value) == ("--set precision.k=4 and --set recall.k=5 both set "
                              "precision_recall.k, to different values")
