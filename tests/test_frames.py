"""``Scorecard.to_frame()`` and ``per_sample_frame()``: pandas views of a real scorecard."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from genmetrics.cli import signature_line
from genmetrics.errors import UsageError
from genmetrics.metric import MetricResult
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import DEMO_TEXT

pd = pytest.importorskip("pandas")

COLUMNS = ["metric", "result", "value", "ci_low", "ci_high", "n", "direction", "signature"]


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Scorecard:
    """The text demo: BLEU and ROUGE with CIs, chrF without, per-sample values; saved
    and loaded back, as a reader of scorecards gets it."""
    with_ci = score(DEMO_TEXT / "samples", DEMO_TEXT / "references",
                    metrics=["bleu", "rouge"], bootstrap=100, per_sample=True)
    chrf = score(DEMO_TEXT / "samples", DEMO_TEXT / "references", metrics=["chrf"])
    with_ci.metrics["chrf"] = chrf.metrics["chrf"]
    path = tmp_path_factory.mktemp("frames") / "card.json"
    with_ci.save(path)
    return Scorecard.load(path)


def test_to_frame_has_one_row_per_result(card: Scorecard) -> None:
    frame = card.to_frame()
    assert list(frame.columns) == COLUMNS
    assert frame["result"].tolist() == list(card.metrics)
    assert frame["metric"].tolist() == ["bleu", "rouge", "rouge", "rouge", "rouge", "chrf"]
    assert {c: str(frame[c].dtype) for c in ("value", "ci_low", "ci_high", "n")} == {
        "value": "float64", "ci_low": "float64", "ci_high": "float64", "n": "int64"}
    for row in frame.itertuples(index=False):
        result = card.metrics[row.result]
        assert row.value == result.value and row.n == result.n == 8
        assert row.direction == ("higher" if result.higher_is_better else "lower")
        assert row.signature == result.signature_str  # full by default
        if result.ci95 is None:
            assert row.result == "chrf" and math.isnan(row.ci_low) and math.isnan(row.ci_high)
        else:
            assert (row.ci_low, row.ci_high) == result.ci95
            assert row.ci_low <= row.value <= row.ci_high


def test_to_frame_short_signatures_are_the_summarys(card: Scorecard) -> None:
    short = card.to_frame(signatures="short").set_index("result")["signature"]
    for name, result in card.metrics.items():
        assert short[name] == signature_line(result, "short")
        assert short[name].split("|")[-1].startswith("#")
        assert short[name] != result.signature_str
    with pytest.raises(UsageError, match="'full' or 'short'"):
        card.to_frame(signatures="none")


def test_to_frame_of_a_card_without_results() -> None:
    empty = Scorecard("text", {}, errors={"bleu": "no references"}).to_frame()
    assert list(empty.columns) == COLUMNS and len(empty) == 0


def test_per_sample_frame_of_a_real_card(card: Scorecard) -> None:
    frame = card.per_sample_frame()
    ids = sorted(p.name for p in (DEMO_TEXT / "samples").iterdir())
    assert frame.index.name == "id" and frame.index.tolist() == ids
    assert list(frame.columns) == list(card.per_sample["values"])
    assert {"bleu", "rouge1", "rougeLsum"} <= set(frame.columns)
    assert all(str(dtype) == "float64" for dtype in frame.dtypes)
    for name in frame.columns:
        assert frame[name].tolist() == card.per_sample["values"][name]
    # the corpus value of ROUGE is the mean of its per-sample F-measures
    assert math.isclose(frame["rouge1"].mean(), card.metrics["rouge1"].value, rel_tol=1e-12)


def test_per_sample_frame_fills_what_is_missing_with_nan() -> None:
    per_sample = {
        "ids": ["a", "b", "c"],
        "values": {"snr": [3.0, None, 1.5], "short": [0.5]},
        "stats": {"snr": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]},
        "nearest_reference": {"density": {"rows": [4, None, 0], "distance": [0.5, None, 2.0]},
                              "coverage": {"ids": ["r1", "r2", None],
                                           "distance": [1.0, 0.0, None]}},
    }
    frame = Scorecard("audio", {}, per_sample=per_sample).per_sample_frame()
    assert list(frame.columns) == ["snr", "short", "density.nearest_reference",
                                   "density.nearest_distance", "coverage.nearest_reference",
                                   "coverage.nearest_distance"]
    assert frame.loc["a", "snr"] == 3.0 and math.isnan(frame.loc["b", "snr"])
    assert frame.loc["a", "short"] == 0.5 and frame[["short"]].iloc[1:].isna().all().item()
    assert frame["density.nearest_reference"].tolist()[::2] == [4, 0]
    assert pd.isna(frame.loc["b", "density.nearest_reference"])
    assert math.isnan(frame.loc["b", "density.nearest_distance"])
    assert frame.loc["b", "coverage.nearest_reference"] == "r2"
    assert pd.isna(frame.loc["c", "coverage.nearest_reference"])


def test_per_sample_frame_needs_per_sample_values() -> None:
    result = MetricResult("bleu", 30.0, 3, True, "", {"metric": "bleu"})
    with pytest.raises(UsageError, match="--per-sample"):
        Scorecard("text", {}, {"bleu": result}).per_sample_frame()


def test_without_pandas_a_clear_error(card: Scorecard, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    for method in (card.to_frame, card.per_sample_frame):
        with pytest.raises(UsageError, match=r"needs pandas: pip install pandas") as err:
            method()
        assert err.value.__cause__ is None and f"{method.__name__}()" in str(err.value)


def test_importing_scorecard_loads_no_pandas() -> None:
    code = "import sys, genmetrics.scorecard; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
