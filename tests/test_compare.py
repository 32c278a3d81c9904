"""``genmetrics compare``: side-by-side scorecards in every format, deltas, CI overlap,
missing and failed metrics, signature differences, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from genmetrics import tables
from genmetrics.compare import compare, render, run_compare
from genmetrics.errors import InputError, UsageError
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import assert_one_line_error, write_files

SAMPLES = {
    "a.txt": "The cat sat on the mat.",
    "b.txt": "A quick brown fox jumps over the dog.\nIt was fast.",
    "sub/c.txt": "Prices rose by 3.5% in May.",
}
REFS = {
    "a.txt": "The cat was sitting on the mat.",
    "b.txt": "The quick brown fox jumped over the lazy dog.\nIt was very fast.",
    "sub/c.txt": "Prices went up 3.5% in May.",
}
ROUGE = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> dict[str, Path]:
    """Scorecards on disk, scored once for the module.

    base:    bleu + rouge, 95% CIs
    reseed:  same inputs and metrics, other seed (CIs overlap, signatures match)
    perfect: samples equal to the references (BLEU 100, ROUGE 1: CIs do not overlap)
    char:    bleu only, tokenize=char, no CI (signature differs; rouge missing)
    chrf:    bleu + chrf (chrf only in a later card)
    failed:  undecodable sample, so bleu and rouge are under ``errors``
    selfref: the samples as their own references (another reference digest)
    """
    root = tmp_path_factory.mktemp("compare")
    samples = write_files(root / "samples", SAMPLES)
    refs = write_files(root / "refs", REFS)
    # every metric failed (a run whose every input is unreadable is now an input error,
    # so the card is written as such a run would have left it)
    failed = Scorecard("text", {"samples": {"path": str(root / "bad"), "count": 0}},
                       errors={m: f"{m}: no samples were scored" for m in ("bleu", "rouge")})
    runs = {
        "base": score(samples, refs, metrics=["bleu", "rouge"], bootstrap=200),
        "reseed": score(samples, refs, metrics=["bleu", "rouge"], bootstrap=200, seed=7),
        "perfect": score(refs, refs, metrics=["bleu", "rouge"], bootstrap=200),
        "char": score(samples, refs, metrics=["bleu"], options={"bleu": {"tokenize": "char"}}),
        "chrf": score(samples, refs, metrics=["bleu", "chrf"]),
        "failed": failed,
        "selfref": score(samples, samples, metrics=["bleu", "rouge"]),
    }
    paths = {}
    for name, card in runs.items():
        paths[name] = root / f"{name}.json"
        card.save(paths[name])
    return paths


def load(*paths: Path):
    return [Scorecard.load(p) for p in paths]


def comparison_of(*paths: Path):
    return compare(load(*paths), [p.name for p in paths], [str(p) for p in paths])


def row_of(comparison, metric):
    return next(r for r in comparison.rows if r.metric == metric)


# ------------------------------------------------------------------ semantics


def test_values_deltas_and_overlap(cards):
    base, reseed, perfect = load(cards["base"], cards["reseed"], cards["perfect"])
    comparison = comparison_of(cards["base"], cards["reseed"], cards["perfect"])
    assert comparison.cards == ["base.json", "reseed.json", "perfect.json"]
    assert [r.metric for r in comparison.rows] == ["bleu", *ROUGE]
    for row in comparison.rows:
        b, p = base.metrics[row.metric], perfect.metrics[row.metric]
        assert row.values == [b.value, reseed.metrics[row.metric].value, p.value]
        assert row.ci95[0] == b.ci95 and row.ci95[2] == p.ci95
        assert row.delta == [None, 0.0, p.value - b.value]
        assert row.delta[2] > 0 and row.higher_is_better is True
        # Same values, other seed: the CIs overlap; perfect samples: they do not.
        assert row.ci_overlap == [None, True, False]
        # n, bootstrap and seed are not compared.
        assert row.signature_differences == {}
        assert row.status == ["ok"] * 3
    assert row_of(comparison, "bleu").values[2] == pytest.approx(100.0)


def test_missing_failed_and_later_metrics(cards):
    comparison = comparison_of(cards["base"], cards["char"], cards["chrf"], cards["failed"])
    assert [r.metric for r in comparison.rows] == ["bleu", *ROUGE, "chrf"]
    rouge1 = row_of(comparison, "rouge1")
    # char and chrf lack ROUGE; failed has it under errors as "rouge", which covers rouge1.
    assert rouge1.status == ["ok", "missing", "missing", "failed"]
    assert rouge1.errors == [None, None, None, "rouge: no samples were scored"]
    assert rouge1.values[1:] == [None, None, None] and rouge1.delta == [None] * 4
    chrf = row_of(comparison, "chrf")
    assert chrf.status == ["missing", "missing", "ok", "missing"]
    assert chrf.delta == [None] * 4 and chrf.higher_is_better is True
    bleu = row_of(comparison, "bleu")
    assert bleu.status == ["ok", "ok", "ok", "failed"]
    # A CI on one side only: overlap unknown.
    assert bleu.ci_overlap == [None, None, None, None]
    text = render(comparison, "table")
    assert "failed in failed.json: bleu: bleu: no samples were scored" in text
    assert "failed in failed.json: rouge1, rouge2, rougeL, rougeLsum: rouge: no samples" in text


def test_failed_metric_with_no_result_anywhere_gets_its_own_row(cards):
    comparison = comparison_of(cards["failed"], cards["char"])
    assert [r.metric for r in comparison.rows] == ["bleu", "rouge"]
    rouge = row_of(comparison, "rouge")
    assert rouge.status == ["failed", "missing"] and rouge.higher_is_better is None
    assert "| rouge | ? | failed | - | - | - |" in render(comparison, "markdown")


def test_signature_differences_are_flagged(cards):
    comparison = comparison_of(cards["base"], cards["char"])
    bleu = row_of(comparison, "bleu")
    assert bleu.signature_differences == {"tokenize": ["13a", "char"]}
    assert row_of(comparison, "rouge1").signature_differences == {}
    note = "≠sig bleu: signatures differ in tokenize (base.json: 13a, char.json: char)"
    for fmt in ("table", "markdown"):
        text = render(comparison, fmt)
        assert "bleu ≠sig" in text and note in text
        assert "rouge1 ≠sig" not in text
    doc = json.loads(render(comparison, "json"))
    assert doc["metrics"][0]["signature_differences"] == {"tokenize": ["13a", "char"]}
    rows = list(csv.DictReader(io.StringIO(render(comparison, "csv"))))
    assert "≠sig" in rows[0]["note"] and "tokenize" in rows[0]["note"]
    assert rows[1]["note"] == ""


def test_same_differences_share_one_footnote_with_short_digests(cards):
    comparison = comparison_of(cards["base"], cards["selfref"])
    digests = row_of(comparison, "bleu").signature_differences["refs"]
    assert all(d.startswith("sha256:") and len(d) == 71 for d in digests)
    assert all(r.signature_differences == {"refs": digests} for r in comparison.rows)
    lines = [ln for ln in render(comparison, "table").splitlines() if ln.startswith("≠sig")]
    assert lines == [f"≠sig bleu, {', '.join(ROUGE)}: signatures differ in refs "
                     f"(base.json: {digests[0][7:15]}, selfref.json: {digests[1][7:15]})"]


def test_names_that_are_not_unique_become_letters(cards, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    copy = other / "base.json"
    copy.write_bytes(cards["base"].read_bytes())
    comparison = comparison_of(cards["base"], copy)
    assert comparison.cards == ["A", "B"] and comparison.lettered
    text = render(comparison, "markdown")
    assert text.startswith("| metric | better | A | B | Δ B | CI overlap B |")
    assert f"cards: A = {cards['base']}, B = {copy}" in text
    assert all(d == 0.0 for r in comparison.rows for d in r.delta[1:])


# ------------------------------------------------------------------ formats


def test_json_format(cards):
    doc = json.loads(render(comparison_of(cards["base"], cards["perfect"]), "json"))
    assert doc["cards"] == ["base.json", "perfect.json"]
    assert doc["paths"] == [str(cards["base"]), str(cards["perfect"])]
    base, perfect = load(cards["base"], cards["perfect"])
    assert [m["metric"] for m in doc["metrics"]] == ["bleu", *ROUGE]
    for m in doc["metrics"]:
        b, p = base.metrics[m["metric"]], perfect.metrics[m["metric"]]
        assert set(m) >= {"metric", "higher_is_better", "values", "ci95", "delta", "ci_overlap",
                          "signature_differences"}
        assert m["higher_is_better"] is True
        assert m["values"] == [b.value, p.value]
        assert m["ci95"] == [list(b.ci95), list(p.ci95)]
        assert m["delta"] == [None, p.value - b.value]
        assert m["ci_overlap"] == [None, False]
        assert m["signature_differences"] == {}


def test_csv_format(cards):
    base, char = load(cards["base"], cards["char"])
    text = render(comparison_of(cards["base"], cards["char"]), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "metric", "better", "base.json", "base.json ci95 low", "base.json ci95 high",
        "char.json", "char.json ci95 low", "char.json ci95 high", "char.json delta",
        "char.json ci overlap", "note"]
    bleu = rows[0]
    assert bleu["metric"] == "bleu" and bleu["better"] == "higher"
    assert float(bleu["base.json"]) == base.metrics["bleu"].value  # full precision
    assert (float(bleu["base.json ci95 low"]), float(bleu["base.json ci95 high"])
            ) == base.metrics["bleu"].ci95
    assert bleu["char.json ci95 low"] == "" and bleu["char.json ci overlap"] == ""
    assert float(bleu["char.json delta"]) == char.metrics["bleu"].value - base.metrics["bleu"].value
    assert [r["metric"] for r in rows[1:]] == ROUGE
    assert all(r["char.json"] == "" and r["char.json delta"] == "" for r in rows[1:])


def test_csv_reads_into_float_columns_with_pandas(cards):
    """Missing and failed numbers are empty cells: every number column is float64."""
    pd = pytest.importorskip("pandas")
    names = ["base", "char", "failed"]
    text = render(comparison_of(*(cards[n] for n in names)), "csv")
    frame = pd.read_csv(io.StringIO(text), index_col="metric")
    numbers = [c for c in frame.columns if c.endswith((".json", "ci95 low", "ci95 high",
                                                       "delta"))]
    assert len(numbers) == 3 * 3 + 2
    assert all(frame[c].dtype == "float64" for c in numbers), frame.dtypes
    base, char, _ = load(*(cards[n] for n in names))
    assert frame.loc["bleu", "base.json"] == base.metrics["bleu"].value
    assert frame.loc["bleu", "char.json delta"] == (char.metrics["bleu"].value
                                                    - base.metrics["bleu"].value)
    assert frame.loc["rouge1", "base.json ci95 low"] == base.metrics["rouge1"].ci95[0]
    assert pd.isna(frame.loc["rouge1", "char.json"])  # missing in char.json
    assert pd.isna(frame.loc["rouge1", "char.json delta"])
    assert pd.isna(frame.loc["bleu", "char.json ci95 low"])  # char.json has no CI
    assert frame["failed.json"].isna().all()  # failed: the note says so
    assert "failed in failed.json" in frame.loc["bleu", "note"]
    assert frame["failed.json ci overlap"].isna().all()


def test_markdown_format(cards):
    text = render(comparison_of(cards["base"], cards["reseed"], cards["perfect"]), "markdown")
    table, _, notes = text.partition("\n\n")
    lines = table.splitlines()
    assert lines[0] == ("| metric | better | base.json | reseed.json | Δ reseed.json | "
                        "CI overlap reseed.json | perfect.json | Δ perfect.json | "
                        "CI overlap perfect.json |")
    assert lines[1] == "|---|:---:|---:|---:|---:|:---:|---:|---:|:---:|"
    assert len(lines) == 2 + 5
    for line in lines:
        assert line.startswith("| ") or line.startswith("|-")
        assert line.count("|") == 10
    bleu = [c.strip() for c in lines[2].strip("|").split("|")]
    assert bleu[0] == "bleu" and bleu[1] == "↑"
    assert bleu[3].endswith(")") and "–" in bleu[3]  # value (low–high)
    assert bleu[4] == "+0.0000" and bleu[5] == "yes" and bleu[8] == "no"
    assert bleu[6] == "100.0000 (100.0000–100.0000)"
    assert notes.startswith("- Δ: value − base.json's value")
    assert all(n.startswith("- ") for n in notes.splitlines())


def test_table_format(cards):
    text = render(comparison_of(cards["base"], cards["perfect"]), "table")
    for fragment in ("metric", "better", "base.json", "Δ perfect.json", "CI overlap perfect.json",
                     "rougeLsum", "100.0000", " no "):
        assert fragment in text
    assert "\x1b[" not in text  # plain text, no colour codes
    # A width bound makes rich fit the table into it.
    assert max(map(len, render(comparison_of(cards["base"], cards["perfect"]), "table",
                               width=60).splitlines()[:8])) <= 60


def test_markdown_escapes_pipes():
    assert tables.markdown(["a"], [["x|y"]]).splitlines()[-1] == "| x\\|y |"


# ------------------------------------------------------------------ errors, run_compare


def test_run_compare_writes_out(cards, tmp_path):
    out = tmp_path / "cmp.md"
    text = run_compare([cards["base"], cards["char"]], "markdown", out)
    assert out.read_text("utf-8") == text and text.startswith("| metric |")


def test_run_compare_errors(cards, tmp_path):
    with pytest.raises(UsageError, match="at least two scorecards"):
        run_compare([cards["base"]])
    with pytest.raises(UsageError, match="at least two scorecards"):
        compare(load(cards["base"]), ["base.json"])
    with pytest.raises(UsageError, match="table, markdown, csv, json"):
        run_compare([cards["base"], cards["char"]], "html")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "genmetrics.scorecard/1"}))
    with pytest.raises(InputError, match="bad.json"):
        run_compare([cards["base"], bad])
    with pytest.raises(InputError, match="nope.json does not exist"):
        run_compare([cards["base"], tmp_path / "nope.json"])


# ------------------------------------------------------------------ the command line


def _wired() -> bool:
    from genmetrics.cli import app

    return any(c.name == "compare" for c in app.registered_commands)


needs_command = pytest.mark.skipif(not _wired(), reason="`compare` is not registered in cli.py")


@needs_command
def test_cli_compare(run_cli, cards, tmp_path):
    done = run_cli("compare", cards["base"], cards["perfect"], "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cards"] == ["base.json", "perfect.json"]
    done = run_cli("compare", cards["base"], cards["char"])
    assert done.returncode == 0, done.stderr
    assert "bleu ≠sig" in done.stdout and "Δ char.json" in done.stdout
    out = tmp_path / "cmp.csv"
    done = run_cli("compare", cards["base"], cards["char"], "--format", "csv", "--out", out)
    assert done.returncode == 0 and done.stdout == ""
    assert next(csv.reader(io.StringIO(out.read_text("utf-8"))))[0] == "metric"


@needs_command
def test_cli_compare_errors(run_cli, cards, tmp_path):
    assert_one_line_error(run_cli("compare", cards["base"]), "at least two scorecards")
    assert_one_line_error(run_cli("compare"), "at least two scorecards")
    assert_one_line_error(run_cli("compare", cards["base"], cards["char"], "--format", "html"),
                          "--format")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(run_cli("compare", cards["base"], bad), "bad.json")
