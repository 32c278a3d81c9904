"""Density and coverage equal ``prdc``; Vendi equals ``vendi-score``; the metrics move as
the papers say on real photographs; results do not depend on batch size or workers;
statistics without feature rows leave the k-NN metrics unavailable."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from genmetrics.metrics.image import _knn
from genmetrics.registry import get_metric
from tests.knn_features import gaussian_sets, photo_features, photo_tiles
from tests.photos import save_png


def _prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        return {k_: float(v) for k_, v in prdc.compute_prdc(real, fake, nearest_k=k).items()}


def test_prdc_equals_the_prdc_package(monkeypatch):
    f = photo_features()
    a, b = gaussian_sets()
    cases = [(16, f["refs"], f[key]) for key in ("clean", "blur", "noise", "clean_half")]
    cases += [(512, a, b), (512, b[:700], a[:900])]
    for block, real, fake in cases:
        monkeypatch.setattr(_knn, "BLOCK", block)  # several blocks, symmetric pairs too
        ours = _knn.prdc(real, fake, 5, device="cpu")
        assert ours == _prdc(real, fake)  # identical: same decisions on every pair
        dc = _knn.density_coverage(real, fake, 5, device="cpu")
        assert (dc.density, dc.coverage) == (ours["density"], ours["coverage"])


def test_density_coverage_metric_and_per_sample():
    f = photo_features()
    dc = get_metric("density_coverage")(device="cpu")
    dc.state["features"].append(f["blur"])
    dc.state["ref_features"].append(f["refs"])
    out = dc.compute(per_sample=True)
    theirs = _prdc(f["refs"], f["blur"])
    assert out["density"].value == theirs["density"]
    assert out["coverage"].value == theirs["coverage"]
    assert np.mean(out["density"].per_sample) == pytest.approx(theirs["density"], rel=1e-12)
    near = out["density"].components["nearest_reference"]
    from scipy.spatial.distance import cdist

    d = cdist(f["blur"].astype(np.float64), f["refs"].astype(np.float64))
    assert near["index"] == d.argmin(1).tolist()
    np.testing.assert_allclose(near["distance"], d.min(1), rtol=1e-12)
    plain = dc.compute()
    assert plain["density"].per_sample is None
    assert "nearest_reference" not in plain["density"].components
    assert out["density"].signature["k"] == 5


def test_the_metrics_move_as_the_papers_say():
    f = photo_features()
    clean = _knn.prdc(f["refs"], f["clean"], 5, device="cpu")
    for key in ("blur", "noise"):  # fidelity falls (density, with 45 tiles, only for noise)
        assert _knn.prdc(f["refs"], f[key], 5, device="cpu")["precision"] < clean["precision"]
    assert _knn.prdc(f["refs"], f["noise"], 5, device="cpu")["density"] < clean["density"]
    half = _knn.prdc(f["refs"], f["clean_half"], 5, device="cpu")
    assert half["coverage"] < clean["coverage"]
    assert half["recall"] < clean["recall"]


def test_vendi_equals_vendi_score():
    from vendi_score import vendi

    f = photo_features()
    a, _ = gaussian_sets()
    for rows in (f["blur"], np.concatenate([f["refs"], f["clean"]]), a[:600]):
        v = get_metric("vendi")(device="cpu")
        for chunk in np.array_split(rows, 3):  # streamed in three batches
            v.add_features(chunk)
        theirs = vendi.score_X(rows.astype(np.float64))
        assert v.compute()["vendi"].value == pytest.approx(theirs, rel=1e-9)
    # half of the photographs: fewer distinct images
    half = get_metric("vendi")(device="cpu")
    half.add_features(f["clean_half"])
    full = get_metric("vendi")(device="cpu")
    full.add_features(f["clean"])
    assert half.compute_value() < full.compute_value()


def test_vendi_states_merge():
    a = gaussian_sets()[0][:, :64]
    one = get_metric("vendi")(device="cpu")
    one.add_features(a[:300])
    parts = [get_metric("vendi")(device="cpu") for _ in range(2)]
    parts[0].add_features(a[:120])
    parts[1].add_features(a[120:300])
    parts[0].merge(parts[1])
    assert parts[0].compute_value() == pytest.approx(one.compute_value(), rel=1e-12)


def test_rows_metrics_share_one_stacked_copy_and_states_still_combine():
    """KID, precision/recall and density/coverage fed the same per-batch arrays: the first
    to compute stacks each side once, into one array they all keep; values, merges and
    saved states are those of the rows themselves."""
    f = photo_features()
    sam, ref = np.array_split(f["blur"], 5), np.array_split(f["refs"], 4)
    names = {"kid": {"subsets": 5}, "precision_recall": {}, "density_coverage": {}}
    metrics = [get_metric(n)(device="cpu", **o) for n, o in names.items()]
    for m in metrics:
        m.state["features"].extend(sam)
        m.state["ref_features"].extend(ref)
    cards = {"kid": metrics[0].compute()}  # the first to compute stacks for all three
    for key in ("features", "ref_features"):
        stacked = [m.state[key] for m in metrics]
        assert all(len(s) == 1 and s[0] is stacked[0][0] for s in stacked), key
    cards.update({m.spec.name: m.compute() for m in metrics[1:]})
    assert (cards["precision_recall"]["precision"].value,
            cards["precision_recall"]["recall"].value) == _knn.adm_precision_recall(
        f["refs"], f["blur"], device="cpu")
    dc = _prdc(f["refs"], f["blur"])
    assert cards["density_coverage"]["density"].value == dc["density"]
    assert cards["density_coverage"]["coverage"].value == dc["coverage"]
    assert cards["kid"]["kid"].value == metrics[0].compute_value(
        (f["blur"], f["refs"]))[0]
    for m in metrics:  # again, from the stacked state; merged halves; a saved state
        name = m.spec.name
        first, second = (get_metric(name)(device="cpu", **names[name]) for _ in range(2))
        first.state["features"].extend(sam[:2])
        second.state["features"].extend(sam[2:])
        first.state["ref_features"].extend(ref)
        first.compute()  # stacks the first half before the merge
        first.merge(second)
        loaded = get_metric(name)(device="cpu", **names[name])
        loaded.load_state_dict(m.state_dict())
        for other in (m, first, loaded):
            again = other.compute()
            assert {k: r.value for k, r in again.items()} == \
                {k: r.value for k, r in cards[name].items()}, name


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("knn-photos")
    tiles = photo_tiles()
    for side, key in (("s", "blur"), ("r", "refs")):
        (root / side).mkdir()
        for i, tile in enumerate(tiles[key]):
            save_png(tile, root / side / f"{i:03d}.png")
    return root


KNN = ["precision", "recall", "density", "coverage", "vendi"]


def test_batch_size_and_workers_do_not_change_results(photo_folders):
    from genmetrics.runner import score

    cards = [score(photo_folders / "s", photo_folders / "r", modality="image", metrics=KNN,
                   batch_size=bs, workers=w, per_sample=True, device="cpu")
             for bs, w in ((64, 0), (7, 2))]
    names = {"precision", "recall", "density", "coverage", "vendi"}
    assert set(cards[0].metrics) == names
    f = photo_features()
    # the runner's rows are the photo features (same images, same network)
    assert cards[0].metrics["density"].value == _prdc(f["refs"], f["blur"])["density"]
    for name in names - {"vendi"}:  # decided comparisons: identical
        assert cards[1].metrics[name].value == cards[0].metrics[name].value, name
    # float64 sums over other batches: equal to rounding
    assert cards[1].metrics["vendi"].value == pytest.approx(cards[0].metrics["vendi"].value,
                                                            rel=1e-12)
    assert cards[1].per_sample == cards[0].per_sample


def test_mean_covariance_statistics_leave_knn_metrics_unavailable(photo_folders, tmp_path):
    from genmetrics.runner import score

    f = photo_features()
    stats = tmp_path / "musigma.npz"
    np.savez(stats, mu=f["refs"].mean(0), sigma=np.cov(f["refs"], rowvar=False))
    card = score(photo_folders / "s", modality="image", reference_stats=stats, device="cpu")
    for name in ("precision_recall", "density_coverage"):
        assert "only mean and covariance" in card.unavailable[name], card.unavailable
    assert "fid" in card.metrics and "vendi" in card.metrics
