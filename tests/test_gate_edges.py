"""Edge cases of the gate, ``validate`` and ``compare`` found by trying them as a new user
(issue 20, items 9, 10 and 12): reference-free metrics carrying a references digest,
digests that depended on input order, an unreadable refusal, an unmarked signature
mismatch, a failed baseline metric shown as a pass, CI files missing on refusal,
hand-edited scorecards, "CI overlap" next to a paired test that disagrees, a small-sample
FID flagged only in the JSON, and help text / tables mangled by rich."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from genmetrics.compare import compare, render
from genmetrics.errors import InputError
from genmetrics.gate import Rule, Rules, gate, junit_xml, markdown, report_rows
from genmetrics.io.common import Digest
from genmetrics.metric import Metric, MetricSpec
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import cli_env, write_files
from tests.test_gate import card, paired_cards, result

TEXTS = {
    "a": ("The cat sat on the mat.", "The cat was sitting on the mat."),
    "b": ("A quick brown fox jumps over the dog.", "The quick brown fox jumped over the dog."),
    "c": ("Prices rose by 3.5% in May.", "Prices went up 3.5% in May."),
    "d": ("She opened the window.", "She opened the window and let air in."),
    "e": ("The meeting was moved to Friday.", "The meeting was moved to Friday afternoon."),
}


def jsonl(path: Path, order: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": i, "text": TEXTS[i][0],
                                        "references": [TEXTS[i][1]]}) + "\n" for i in order))
    return path


# -- item 9: reference-free metrics and order-independent digests ---------------------
class _Words(Metric):
    """Reference-free: a distribution metric with no reference set (as perplexity)."""

    spec = MetricSpec(name="words", modality="text", kind="distribution",
                      higher_is_better=True, unit="words")
    state_reductions = {"n": "sum"}

    def update(self, samples, references=None):
        self.state["n"] += sum(len(s.split()) for s in samples)

    def compute(self, per_sample=False):
        return {"words": self.result(float(self.state["n"]), n=1)}


class _Overlap(_Words):
    spec = MetricSpec(name="overlap", modality="text", kind="paired", higher_is_better=True,
                      unit="words")

    def compute(self, per_sample=False):
        return {"overlap": self.result(float(self.state["n"]), n=1)}


def test_only_metrics_that_read_references_record_their_digest():
    from genmetrics.runner import _compute, _Pass

    run = _Pass()
    run.reference_digest.add("a", "a reference")
    metrics = {"words": _Words(), "overlap": _Overlap()}
    for metric in metrics.values():
        metric.update(["one two three"], [["one"]])
    results, _ = _compute(metrics, run, have_refs=True, per_sample=False, bootstrap=0, seed=0)
    assert "refs" not in results["words"].signature  # perplexity's case
    assert results["overlap"].signature["refs"] == run.reference_digest.hexdigest()


def test_gate_ignores_a_references_digest_on_a_reference_free_metric():
    """A baseline written before the fix (perplexity with ``refs``) still gates."""
    base = card(result("perplexity", 40.0, higher=False, refs="sha256:" + "a" * 64))
    new = card(result("perplexity", 40.0, higher=False))
    assert gate(new, base).passed
    # a metric that reads references is still refused
    with pytest.raises(InputError, match="refs"):
        gate(card(result("bleu", 30.0)), card(result("bleu", 30.0, refs="sha256:" + "b" * 64)))


def test_identical_perplexity_runs_with_and_without_references_pass_the_gate(tmp_path):
    pytest.importorskip("transformers")
    from tests.test_perplexity import _save_tiny_model

    lm = _save_tiny_model(tmp_path / "tiny-lm")
    data = jsonl(tmp_path / "in" / "samples.jsonl", list(TEXTS))
    samples = write_files(tmp_path / "plain", {"samples.txt": "".join(
        TEXTS[i][0] + "\n" for i in TEXTS)})
    options = {"perplexity": {"lm": str(lm), "device": "cpu"}}
    with_refs = score(data, metrics=["perplexity"], options=options)
    without = score(samples / "samples.txt", metrics=["perplexity"], options=options)
    assert "reference" in with_refs.inputs and "reference" not in without.inputs
    assert with_refs.metrics["perplexity"].value == pytest.approx(
        without.metrics["perplexity"].value, rel=1e-9)
    assert "refs" not in with_refs.metrics["perplexity"].signature
    assert gate(without, with_refs).passed


def test_digest_does_not_depend_on_the_order_of_items():
    items = [("a", "x"), ("b", "y"), ("c", "z")]
    one, other = Digest(), Digest()
    for parts in items:
        one.add(*parts)
    for parts in reversed(items):
        other.add(*parts)
    assert one.hexdigest() == other.hexdigest()
    changed = Digest()
    for parts in [("a", "x"), ("b", "y"), ("c", "Z")]:
        changed.add(*parts)
    assert changed.hexdigest() != one.hexdigest()
    kept = Digest()
    kept.add("a", "x")
    assert kept.items == [one.items[0]]  # items kept for distributed runs and checkpoints


def test_digests_combined_over_ranks_ignore_rank_order(monkeypatch):
    from genmetrics import distributed

    whole = Digest()
    parts = [Digest(), Digest()]
    for k, item in enumerate(["p", "q", "r", "s"]):
        whole.add(item)
        parts[k % 2].add(item)
    for gathered in ([parts[0].items, parts[1].items], [parts[1].items, parts[0].items]):
        monkeypatch.setattr(distributed, "all_gather", lambda obj, g=gathered: g)
        assert distributed.combine_digests(parts[0]) == whole.hexdigest()


def test_same_ids_in_another_order_give_the_same_digests_and_pass(tmp_path):
    first = score(jsonl(tmp_path / "one" / "s.jsonl", list(TEXTS)), metrics=["bleu"])
    other = score(jsonl(tmp_path / "two" / "s.jsonl", list(reversed(TEXTS))), metrics=["bleu"])
    assert first.inputs["samples"]["digest"] == other.inputs["samples"]["digest"]
    assert first.inputs["reference"]["digest"] == other.inputs["reference"]["digest"]
    assert first.metrics["bleu"].signature["refs"] == other.metrics["bleu"].signature["refs"]
    assert gate(other, first).passed


# -- item 9: refusals, markers, failed baselines -----------------------------------------
def test_a_refusal_is_short_and_groups_identical_differences():
    names = ["bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"]
    base = card(*(result(n, 0.5, refs="sha256:" + "1" * 64) for n in names))
    new = card(*(result(n, 0.5, refs="sha256:" + "2" * 64) for n in names[:-1]),
               result("meteor", 0.5, refs="sha256:" + "2" * 64, alpha=0.8))
    with pytest.raises(InputError) as caught:
        gate(new, base)
    message = str(caught.value)
    assert len(message) < 400, message
    assert message.count("11111111") == 1 and "1" * 9 not in message  # one short digest
    for name in names:
        assert name in message
    assert "alpha" in message and "--allow-signature-mismatch" in message


def test_an_allowed_signature_mismatch_is_marked():
    base = card(result("bleu", 30.0, tokenize="13a"), result("chrf", 50.0))
    new = card(result("bleu", 30.0, tokenize="intl"), result("chrf", 50.0))
    report = gate(new, base, allow_signature_mismatch=True)
    assert report.passed
    rows = {row[0]: row for row in report_rows(report)}
    assert "≠sig" in rows["bleu ≠sig"][-1] or "≠sig" in rows["bleu ≠sig"][0]
    assert "chrf" in rows  # unmarked
    text = markdown(report)
    assert "bleu ≠sig" in text and "tokenize" in text and "intl" in text
    assert "≠sig" in junit_xml(report)


def test_a_metric_failed_in_the_baseline_is_skipped_not_passed():
    base = card(result("bleu", 30.0), result("rouge1", math.nan, metric="rouge"),
                errors={"meteor": "meteor: WordNet missing"})
    base.metrics["rouge1"].reason = "no finite value"
    new = card(result("bleu", 30.0), result("rouge1", 0.4, metric="rouge"),
               result("meteor", 0.3))
    report = gate(new, base)
    assert report.passed
    status = {c.metric: c.status for c in report.checks}
    assert status == {"bleu": "pass", "rouge1": "skipped", "meteor": "skipped"}
    rows = {row[0]: row for row in report_rows(report)}
    assert rows["meteor"][1] == "-" and "nan" not in " ".join(rows["meteor"])
    assert rows["meteor"][6] == "SKIPPED" and "WordNet missing" in rows["meteor"][7]
    assert "nan" not in " ".join(rows["rouge1"])
    suite = ET.fromstring(junit_xml(report).split("\n", 1)[1]).find("testsuite")
    assert suite.get("skipped") == "2" and suite.get("failures") == "0"
    skipped = {c.get("name"): c.find("skipped") for c in suite.iter("testcase")}
    assert skipped["bleu"] is None
    assert "WordNet missing" in skipped["meteor"].get("message")
    assert "not compared" in markdown(report).lower() or "SKIPPED" in markdown(report)


def test_a_rule_may_name_a_metric_that_failed_in_the_baseline():
    base = card(result("bleu", 30.0), errors={"meteor": "meteor: WordNet missing"})
    new = card(result("bleu", 30.0), result("meteor", 0.3))
    report = gate(new, base, Rules(metrics={"meteor": Rule(ignore=True)}))
    assert [c.metric for c in report.checks] == ["bleu"] and report.passed


def _save(c: Scorecard, path: Path) -> Path:
    c.save(path)
    return path


def test_a_refused_gate_still_writes_junit_and_markdown(run_cli, tmp_path):
    base = _save(card(result("bleu", 30.0, tokenize="13a")), tmp_path / "base.json")
    new = _save(card(result("bleu", 30.0, tokenize="intl")), tmp_path / "new.json")
    junit, md = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    junit.parent.mkdir()
    done = run_cli("gate", new, "--baseline", base, "--junit", junit, "--markdown", md)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "tokenize" in done.stderr and "Traceback" not in done.stderr
    suite = ET.fromstring(junit.read_text().split("\n", 1)[1]).find("testsuite")
    assert suite.get("errors") == "1"
    error = suite.find("testcase").find("error")
    assert error is not None and "tokenize" in error.get("message")
    text = md.read_text()
    assert text.startswith("### genmetrics gate: REFUSED") and "tokenize" in text


# -- item 10: tampered scorecards ---------------------------------------------------------
@pytest.fixture(scope="module")
def text_card(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tamper")
    data = jsonl(root / "in" / "s.jsonl", list(TEXTS))
    made = score(data, metrics=["bleu", "chrf", "rouge"], per_sample=True, bootstrap=200)
    return _save(made, root / "card.json")


def _edited(path: Path, tmp_path: Path, edit) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))
    return out


def test_validate_recomputes_values_from_per_sample_statistics(run_cli, text_card, tmp_path):
    from genmetrics.recompute import check_values

    assert check_values(Scorecard.load(text_card)) == []  # every stored value holds
    done = run_cli("validate", text_card)
    assert done.returncode == 0, done.stderr
    assert "recomputed" in done.stdout and "bleu" in done.stdout

    def raise_bleu(doc):
        doc["metrics"]["bleu"]["value"] += 5.0

    tampered = _edited(text_card, tmp_path, raise_bleu)
    problems = check_values(Scorecard.load(tampered))
    assert len(problems) == 1 and problems[0].startswith("bleu:"), problems
    done = run_cli("validate", tampered)
    assert done.returncode == 2 and "bleu" in done.stderr and "per-sample" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("gate", tampered, "--baseline", text_card)
    assert done.returncode == 2 and "bleu" in done.stderr, done.stdout + done.stderr
    done = run_cli("gate", text_card, "--baseline", tampered)
    assert done.returncode == 2 and "baseline" in done.stderr


def test_a_hand_edited_confidence_interval_is_found(text_card, tmp_path):
    from genmetrics.recompute import check_values

    def widen(doc):
        doc["metrics"]["rouge1"]["ci95"] = [0.0, 1.0]

    problems = check_values(Scorecard.load(_edited(text_card, tmp_path, widen)))
    assert len(problems) == 1 and "rouge1" in problems[0] and "ci95" in problems[0]


# -- item 12: compare's CI overlap next to the paired test ----------------------------
def wide_ci_cards(shift: float):
    """Two ROUGE-1 cards (NEW, BASE) over the same 300 samples, wide CIs that overlap."""
    return paired_cards(shift, noise=0.01, ci_half=0.03)


def test_compare_shows_the_paired_test_where_both_cards_hold_statistics():
    new, base = wide_ci_cards(shift=-0.01)
    comparison = compare([base, new], ["base.json", "new.json"])
    row = comparison.rows[0]
    assert row.ci_overlap == [None, True]
    assert row.paired_p[0] is None and row.paired_p[1] < 0.01
    # the gate's one-sided test agrees
    check = gate(new, base, Rules(Rule(max_drop=0.0, require_significance=True))).checks[0]
    assert check.status == "regression" and check.p_value < 0.01
    text = render(comparison, "markdown")
    assert "| paired p new.json |" in text
    assert "paired bootstrap" in text and "CI overlap" in text
    assert re.search(r"\| yes \| 0\.00\d+ \|", text), text
    assert "paired_p" in json.loads(render(comparison, "json"))["metrics"][0]
    assert "new.json paired p" in render(comparison, "csv").splitlines()[0]
    # without per-sample statistics: no paired column, and the legend says why
    for c in (base, new):
        c.per_sample = None
    plain = render(compare([base, new], ["base.json", "new.json"]), "markdown")
    assert "paired p" not in plain.split("\n")[0]


def test_report_comparison_shows_the_paired_test():
    from genmetrics.report.sections import LoadedCard, comparison_section

    new, base = wide_ci_cards(shift=-0.01)
    html = comparison_section([LoadedCard(base, "A"), LoadedCard(new, "B")])
    assert "paired p B" in html and "paired bootstrap" in html


# -- item 12: small-sample FID ----------------------------------------------------------
SUMMARY_CARD = Path(__file__).parent / "fixtures" / "summary" / "image_card.json"


def test_rank_deficient_fid_is_said_below_the_summary_table(capsys, monkeypatch):
    from genmetrics.cli import print_summary

    monkeypatch.setenv("COLUMNS", "80")
    print_summary(Scorecard.load(SUMMARY_CARD), None)
    lines = capsys.readouterr().out.splitlines()
    table_end = max(i for i, line in enumerate(lines) if line.startswith("└"))
    below = " ".join(line.strip() for line in lines[table_end + 1:])
    assert "fid: small sample" in below and "covariance is singular" in below
    assert max(len(line) for line in lines) <= 80


def test_rank_deficient_fid_is_flagged_in_the_html_report():
    from genmetrics.report.sections import LoadedCard, metrics_table

    html = metrics_table(LoadedCard(Scorecard.load(SUMMARY_CARD), "A"))
    assert "small sample" in html and "covariance is singular" in html


# -- item 12: help and table at 80 columns -----------------------------------------------
def test_gate_help_shows_brackets(run_cli):
    done = run_cli("gate", "--help", env=cli_env(COLUMNS="80"))
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "[default]" in text and "[metrics.NAME]" in text


def test_gate_table_keeps_words_whole_at_80_columns(run_cli, tmp_path):
    base = _save(card(result("bleu", 30.0), result("rougeLsum", 0.5123, metric="rouge"),
                      result("perplexity", 123.4567, higher=False)), tmp_path / "base.json")
    new = _save(card(result("bleu", 20.0), result("rougeLsum", 0.5123, metric="rouge"),
                     result("perplexity", 150.0, higher=False)), tmp_path / "new.json")
    done = run_cli("gate", new, "--baseline", base, env=cli_env(COLUMNS="80"))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    words = re.findall(r"\w+", done.stdout)
    for word in ("REGRESSION", "rougeLsum", "perplexity", "baseline", "allowed"):
        assert word in words, done.stdout
    assert "worse by 10" in done.stdout  # the note, on a line of its own
