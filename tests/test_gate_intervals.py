"""The gate with rerun intervals: the half-width rule, the bootstrap difference on the same
references (and each reason it falls back), and ``compare`` showing the intervals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from genmetrics.compare import compare, render
from genmetrics.difference import (
    DIFFERENCE_Z,
    RULE,
    NotPaired,
    bootstrap_difference,
    difference_replicates,
)
from genmetrics.gate import Rule, Rules, gate, junit_xml, markdown
from genmetrics.metric import MetricResult
from genmetrics.metrics.image._replicates import frechet_replicates
from genmetrics.scorecard import Scorecard
from genmetrics.stats import Resampling, rerun_interval

B, SEED, D = 200, 3, 6
REFS = "sha256:" + "a" * 64
HALF_WIDTH = "baseline 95% rerun-interval half-width"


def fid_card(tmp: Path, name: str, samples: np.ndarray, refs: np.ndarray,
             refs_digest: str = REFS, keep_rows: bool = True) -> Scorecard:
    """A scorecard with one FID result of ``samples`` against ``refs`` (rows on disk), its
    rerun interval made as the runner makes it."""
    ones = np.ones((1, len(samples)))
    value = float(frechet_replicates(samples, refs, ones).values[0])
    r = Resampling(B, SEED)
    reps = frechet_replicates(samples, refs, r.sample_halves(len(samples)),
                              r.reference_halves(len(refs)))
    signature = {"metric": "fid", "v": "1", "n": len(samples), "ref": "folder",
                 "refs": refs_digest, "bootstrap": B, "bootstrap_seed": SEED,
                 "ci_method": "rerun 95%: value ± 1.96·√2·SE; half-sampling over "
                 "samples+references; exact (gram)"}
    result = MetricResult("fid", value, len(samples), False, "-", signature,
                          ci95=rerun_interval(value, reps.se, (0.0, None)),
                          components={"interval": {"se": reps.se, "replicates": B,
                                                   "resampled": "samples+references"}})
    card = Scorecard("image", {"samples": {"path": name, "count": len(samples)}},
                     {"fid": result})
    if keep_rows:
        folder = tmp / name
        folder.mkdir()
        np.save(folder / "2048-samples.npy", samples.astype(np.float32))
        np.save(folder / "2048-references.npy", refs.astype(np.float32))
        card.rows = {"2048": {"samples": str(folder / "2048-samples.npy"),
                              "references": str(folder / "2048-references.npy")}}
    return card


@pytest.fixture(scope="module")
def rows():
    """Reference rows, two sample sets of the same distribution, and a shifted one."""
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(120, D))
    same1, same2 = rng.normal(size=(100, D)), rng.normal(size=(100, D))
    worse = rng.normal(size=(100, D)) + 0.6
    return refs, same1, same2, worse


def test_same_model_passes_and_a_shift_fails_on_the_bootstrap_difference(tmp_path, rows):
    refs, same1, same2, worse = rows
    base = fid_card(tmp_path, "base", same1, refs)
    for new, status in ((fid_card(tmp_path, "rerun", same2, refs), "pass"),
                        (fid_card(tmp_path, "shifted", worse, refs), "regression")):
        check = gate(new, base).checks[0]
        assert check.status == status, check.message
        assert check.allowance.startswith(RULE) and RULE in check.message
        assert check.difference_se is not None and check.difference_se > 0
        assert math.isclose(check.allowed, DIFFERENCE_Z * check.difference_se)
    assert gate(base, base).passed  # identical cards always pass


def _fid(x: np.ndarray, y: np.ndarray) -> float:
    return float(frechet_replicates(x, y, np.ones((1, len(x)))).values[0])


@pytest.mark.parametrize("shift", [0.0, 0.6])  # the same generator as the references; not
def test_the_difference_sees_the_noise_of_new_minus_baseline_alone(rows, shift):
    """The references both runs were scored against are held fixed: the difference's SE
    tracks the true spread of FID(new) - FID(base) over fresh sample sets against these
    very references (simulated here), and stays below the √2·SE of two independent runs
    each against a fresh reference draw (what the half-width rule assumes)."""
    refs, same1, same2, _ = rows
    r = Resampling(B, SEED)
    diff = difference_replicates("fid", same1 + shift, same2 + shift, refs, r, {})
    one = frechet_replicates(same1 + shift, refs, r.sample_halves(100),
                             r.reference_halves(120))
    rng = np.random.default_rng(5)
    true = np.std([_fid(rng.normal(size=(100, D)) + shift, refs)
                   - _fid(rng.normal(size=(100, D)) + shift, refs) for _ in range(300)],
                  ddof=1)
    assert 0.75 * true < diff.se < 1.6 * true
    assert diff.se < math.sqrt(2.0) * one.se
    assert diff.reference == "rows, fixed" and diff.values.shape == (B,)


def test_fid_differences_draw_half_samples_as_fid_intervals_do(rows):
    """Replicate b of the difference is FID(new, half-sample) - FID(base, half-sample),
    both against all the references: the sample draws FID's own interval uses."""
    refs, same1, _, worse = rows
    r = Resampling(B, SEED)
    diff = difference_replicates("fid", same1, worse, refs, r, {})
    base = frechet_replicates(same1, refs, r.sample_halves(100)).values
    new = frechet_replicates(worse, refs, Resampling(B, SEED + 1).sample_halves(100)).values
    np.testing.assert_allclose(diff.values, new - base, rtol=1e-9)


def test_without_rows_the_half_width_rule_says_why(tmp_path, rows):
    refs, same1, _, worse = rows
    base = fid_card(tmp_path, "base", same1, refs, keep_rows=False)
    new = fid_card(tmp_path, "new", worse, refs, keep_rows=False)
    check = gate(new, base).checks[0]
    se = base.metrics["fid"].components["interval"]["se"]
    assert math.isclose(check.allowed, 1.959963984540054 * math.sqrt(2.0) * se)
    assert check.allowance.startswith(HALF_WIDTH)
    assert "no bootstrap difference: the baseline scorecard recorded no 2048 feature rows" \
        in check.allowance
    assert check.difference_se is None


def test_rows_deleted_or_other_references_fall_back(tmp_path, rows):
    refs, same1, same2, _ = rows
    base = fid_card(tmp_path, "base", same1, refs)
    new = fid_card(tmp_path, "new", same2, refs)
    Path(new.rows["2048"]["samples"]).unlink()
    with pytest.raises(NotPaired, match="the new scorecard's samples rows are gone"):
        bootstrap_difference(new, base, "fid")
    assert "rows are gone" in gate(new, base).checks[0].allowance
    other = fid_card(tmp_path, "other", same2, refs, refs_digest="sha256:" + "b" * 64)
    check = gate(other, base, allow_signature_mismatch=True).checks[0]
    assert check.allowance == f"{HALF_WIDTH} (no bootstrap difference: the reference sets differ)"


def test_a_reference_free_metric_keeps_the_half_width(tmp_path, rows):
    refs, same1, same2, _ = rows
    base, new = fid_card(tmp_path, "base", same1, refs), fid_card(tmp_path, "new", same2, refs)
    for card in (base, new):  # as Vendi: a rerun interval, no references digest
        card.metrics["fid"].signature.pop("refs")
    with pytest.raises(NotPaired, match="reads no references, so nothing cancels"):
        bootstrap_difference(new, base, "fid")


def test_explicit_rules_win_and_significance_uses_the_difference(tmp_path, rows):
    refs, same1, _, worse = rows
    base = fid_card(tmp_path, "base", same1, refs)
    new = fid_card(tmp_path, "new", worse, refs)
    check = gate(new, base, Rules(Rule(max_drop=1e6))).checks[0]
    assert (check.status, check.allowance) == ("pass", "max_drop 1e+06")
    # require_significance: no per-sample statistics, the difference's SE gives p
    check = gate(new, base, Rules(Rule(max_drop=0.0, require_significance=True))).checks[0]
    assert check.status == "regression" and check.p_value is not None and check.p_value < 0.05
    assert "significant (p = " in check.message


def test_outputs_name_the_rule(tmp_path, rows):
    refs, same1, _, worse = rows
    report = gate(fid_card(tmp_path, "new", worse, refs), fid_card(tmp_path, "base", same1, refs))
    assert not report.passed and RULE in markdown(report) and RULE in junit_xml(report)


def test_compare_shows_rerun_intervals(tmp_path, rows):
    refs, same1, same2, _ = rows
    cards = [fid_card(tmp_path, "a", same1, refs), fid_card(tmp_path, "b", same2, refs)]
    comparison = compare(cards, ["a.json", "b.json"])
    assert comparison.rerun == ["fid"]
    lo, hi = cards[1].metrics["fid"].ci95
    for fmt in ("table", "markdown"):
        text = render(comparison, fmt)
        assert f"({lo:.4f}–{hi:.4f})" in text and "rerun intervals (fid)" in text
    csv_text = render(comparison, "csv")
    assert repr(lo) in csv_text and "rerun interval" in csv_text
    assert '"rerun_intervals": [' in render(comparison, "json")
