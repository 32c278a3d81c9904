"""Bootstrap confidence intervals: seeded, in the signature, around the value, exact rows."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from genmetrics import get_metric
from genmetrics.runner import score
from genmetrics.stats import bootstrap_values, percentile_interval, resample_weights
from tests.textcorpus import make_pairs, write_folder_pairs


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("boot")
    write_folder_pairs(make_pairs(120, seed=5), root / "s", root / "r")
    return root / "s", root / "r"


def test_resample_weights_are_reproducible_counts():
    a = np.concatenate(list(resample_weights(50, 30, seed=7)))
    b = np.concatenate(list(resample_weights(50, 30, seed=7)))
    assert a.shape == (30, 50) and (a == b).all() and (a.sum(axis=1) == 50).all()


def test_rows_reproduce_each_metrics_value_exactly():
    pairs = make_pairs(150, seed=9, max_refs=2)
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    for name in ("bleu", "chrf", "rouge", "meteor"):
        metric = get_metric(name)()
        metric.update(hyps, refs)
        results = metric.compute()
        for result, rows in metric.bootstrap_rows().items():
            again = metric.value_from_totals(result, rows.sum(axis=0, keepdims=True), len(rows))
            assert again[0] == pytest.approx(results[result].value, rel=1e-12, abs=1e-15)


def test_bleu_replicate_equals_sacrebleu_on_the_resampled_corpus():
    pairs = make_pairs(60, seed=2)
    hyps, refs = [h for h, _ in pairs], [r[0] for r in (p[1] for p in pairs)]
    metric = get_metric("bleu")()
    metric.update(hyps, [[r] for r in refs])
    rows = metric.bootstrap_rows()["bleu"]
    w = next(resample_weights(len(hyps), 1, seed=3))[0]
    picked = [i for i, k in enumerate(w.astype(int)) for _ in range(k)]
    expected = sacrebleu.corpus_bleu([hyps[i] for i in picked], [[refs[i] for i in picked]])
    assert metric.value_from_totals("bleu", (w @ rows)[None, :], len(hyps))[0] == expected.score


def test_score_bootstrap_gives_seeded_intervals_in_the_signature(folders):
    samples, refs = folders
    kwargs = {"metrics": ["bleu", "rouge", "meteor"], "bootstrap": 300}
    a = score(samples, refs, seed=1, **kwargs)
    b = score(samples, refs, seed=1, **kwargs)
    c = score(samples, refs, seed=2, **kwargs)
    for name, r in a.metrics.items():
        lo, hi = r.ci95
        assert lo <= r.value <= hi and lo < hi, name
        assert r.signature["bootstrap"] == 300 and r.signature["bootstrap_seed"] == 1
        assert b.metrics[name].ci95 == r.ci95
        assert c.metrics[name].ci95 != r.ci95
    assert "bootstrap:300|bootstrap_seed:1" in a.metrics["bleu"].signature_str


def test_per_sample_statistics_are_stored(folders):
    samples, refs = folders
    card = score(samples, refs, metrics=["bleu", "rouge"], per_sample=True)
    stats = card.per_sample["stats"]
    assert set(stats) == {"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert len(stats["bleu"]) == len(card.per_sample["ids"]) == 120
    assert len(stats["bleu"][0]) == 10  # sys_len, ref_len, 4 matches, 4 totals


def test_interval_of_a_known_distribution():
    rng = np.random.default_rng(0)
    rows = rng.normal(10.0, 1.0, size=(400, 1))
    values = bootstrap_values(rows, lambda t, n: t[:, 0] / n, 2000, seed=4)
    lo, hi = percentile_interval(values)
    half = 1.96 * rows.std() / np.sqrt(400)  # the normal-theory half-width
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_bad_bootstrap_count_is_refused(folders):
    from genmetrics.errors import UsageError

    with pytest.raises(UsageError, match="number of replicates"):
        score(*folders, metrics=["bleu"], bootstrap=1)
