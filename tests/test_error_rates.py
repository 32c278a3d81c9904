"""WER / CER (jiwer 4) and TER (sacrebleu) on realistic text: the counts, the corpus and
per-sample values, normalisation, bad input, batching, the CLI.

The pairs come from ``tests.textcorpus`` (perturbed prose with unicode, CJK, multi-line
texts, an empty hypothesis, a hypothesis sharing no word with its reference).
"""

from __future__ import annotations

import json
import random

import jiwer
import pytest
from sacrebleu.metrics import TER as SacreTER

from genmetrics.errors import MetricError, UsageError
from genmetrics.metrics.text.error_rate import (
    EditCounts,
    characters,
    edit_counts,
    normalizer,
    words,
)
from genmetrics.metrics.text.ter import TER
from genmetrics.metrics.text.wer import CER, WER
from tests.textcorpus import make_pairs

PAIRS = make_pairs(400, seed=21, multiline=False) + make_pairs(200, seed=22, multiline=True)
MULTI = make_pairs(120, seed=23, max_refs=4, multiline=False, words=30)  # TER is slow


def _whitespace_pairs() -> list[tuple[str, str]]:
    """Strings that exercise jiwer's tokenising: tabs, newlines, runs of spaces, empty
    hypotheses, hypotheses that only insert."""
    rng = random.Random(5)
    pieces = ["a", "b", "cat", "Cat", "é", "猫", " ", "  ", "\t", "\n", " \t ", ".", "a.b"]
    out = [("a b", ""), ("a b", "   "), ("x", "x y z w"), ("  lead", "lead  "),
           ("a\tb", "a b"), ("a \t b", "a b"), ("one\ntwo", "one two")]
    for _ in range(400):
        ref = "".join(rng.choices(pieces, k=rng.randint(1, 12)))
        hyp = "".join(rng.choices(pieces, k=rng.randint(0, 12)))
        out.append((ref, hyp))
    return [(r, h) for r, h in out if r.strip()]


def _jiwer_counts(out) -> EditCounts:
    return EditCounts(out.substitutions, out.deletions, out.insertions, out.hits)


@pytest.mark.parametrize("unit", ["words", "characters"])
def test_counts_equal_jiwer_pair_by_pair(unit):
    split, process = {"words": (words, jiwer.process_words),
                      "characters": (characters, jiwer.process_characters)}[unit]
    pairs = [(refs[0], hyp) for hyp, refs in PAIRS] + _whitespace_pairs()
    checked = 0
    for ref, hyp in pairs:
        if not split(ref):
            continue  # jiwer's per-pair rate of an empty reference is undefined: see below
        expected = _jiwer_counts(process(ref, hyp))
        got = edit_counts(split(ref), split(hyp))
        assert got == expected, (ref, hyp)
        assert got.rate() == pytest.approx(expected.edits / expected.reference_length, abs=0)
        checked += 1
    assert checked > 950
    # the tokenisers are jiwer's default transforms
    for ref, hyp in pairs:
        assert jiwer.process_words(ref or "x", hyp).hypotheses[0] == words(hyp)
        assert jiwer.process_characters(ref or "x", hyp).hypotheses[0] == characters(hyp)


def test_realistic_pairs_have_all_three_kinds_of_edit():
    total = EditCounts(0, 0, 0, 0)
    for hyp, refs in PAIRS:
        c = edit_counts(words(refs[0]), words(hyp))
        total = EditCounts(*(a + b for a, b in zip(
            (total.substitutions, total.deletions, total.insertions, total.hits),
            (c.substitutions, c.deletions, c.insertions, c.hits), strict=True)))
    assert min(total.substitutions, total.deletions, total.insertions) > 100


@pytest.mark.parametrize("cls,measure,process", [
    (WER, jiwer.wer, jiwer.process_words),
    (CER, jiwer.cer, jiwer.process_characters),
])
def test_corpus_and_per_sample_values_equal_jiwer(cls, measure, process):
    hyps, refs = [h for h, _ in PAIRS], [r[0] for _, r in PAIRS]
    metric = cls()
    for start in range(0, len(PAIRS), 37):  # batching changes nothing
        metric.update(hyps[start:start + 37], [[r] for r in refs[start:start + 37]])
    result = metric.compute(per_sample=True)[cls.spec.name]
    assert result.value == measure(refs, hyps)  # exact: the same integers, one division
    out = process(refs, hyps)
    assert {k: result.components[k] for k in ("substitutions", "deletions", "insertions",
                                              "hits")} == {
        "substitutions": out.substitutions, "deletions": out.deletions,
        "insertions": out.insertions, "hits": out.hits}
    assert result.per_sample == [measure(r, h) for r, h in zip(refs, hyps, strict=True)]
    assert result.n == len(PAIRS) and not result.higher_is_better
    assert 0.05 < result.value < 1.0  # realistic: neither trivially 0 nor all wrong


def test_empty_reference_is_named_and_left_out():
    metric = WER()
    metric.update(["a b c", "words where none are due", "x y"], [["a b d"], ["  "], ["x y"]])
    result = metric.compute(per_sample=True)["wer"]
    assert result.per_sample == [1 / 3, None, 0.0]
    assert result.value == jiwer.wer(["a b d", "x y"], ["a b c", "x y"])
    (failed,) = result.components["failed"]
    assert failed["index"] == 1 and "empty reference" in failed["reason"]
    assert "5 words inserted" in failed["reason"]
    only_empty = WER()
    only_empty.update(["a"], [[""]])
    with pytest.raises(MetricError, match="empty"):
        only_empty.compute()


def test_empty_hypothesis_is_all_deletions():
    metric = CER()
    metric.update([""], [["abc"]])
    result = metric.compute()["cer"]
    assert result.value == 1.0 == jiwer.cer("abc", "")
    assert result.components["deletions"] == 3


def test_bad_reference_lists_are_refused():
    with pytest.raises(UsageError, match="exactly one reference"):
        WER().update(["a"], [["a", "b"]])
    with pytest.raises(UsageError, match="one reference per sample"):
        WER().update(["a", "b"], [["a"]])
    with pytest.raises(UsageError, match="one of none, basic, whisper"):
        WER(normalize="lower")


def test_normalisers_are_whispers():
    from transformers.models.whisper.english_normalizer import (
        BasicTextNormalizer,
        EnglishTextNormalizer,
    )

    texts = [hyp for hyp, _ in PAIRS[:150]] + [
        "Mr. Smith's colour costs twenty-five dollars, isn't it? [noise] Hmm.",
        "The 1st of March, 2024 at 3:30 PM -- two hundred and five metres."]
    english = normalizer("whisper")
    for text in texts:
        assert normalizer("basic")(text) == BasicTextNormalizer()(text)
        assert english(text) == EnglishTextNormalizer(english.standardize_spellings.mapping)(
            text)
    assert isinstance(english, EnglishTextNormalizer)
    assert english("Mr. Smith's colour") == "mister smith is color"  # Whisper's own rules
    assert len(english.standardize_spellings.mapping) == 1739  # the whole spelling table
    metric = WER(normalize="whisper")
    metric.update(["mister smith's color is 25%"], [["Mr. Smith's colour is twenty-five "
                                                      "percent."]])
    result = metric.compute()["wer"]
    assert result.value == 0.0
    assert result.signature["normalize"] == "whisper"
    assert "whisper-normalizer" in result.signature and "rapidfuzz" in result.signature


def test_state_merges_and_bootstrap_rows_reproduce_the_value():
    hyps, refs = [h for h, _ in PAIRS], [[r[0]] for _, r in PAIRS]
    one, a, b = WER(), WER(), WER()
    one.update(hyps, refs)
    a.update(hyps[:250], refs[:250])
    b.update(hyps[250:], refs[250:])
    a.merge(b)
    assert a.compute()["wer"].value == one.compute()["wer"].value
    rows = one.bootstrap_rows()["wer"]
    assert one.value_from_totals("wer", rows.sum(axis=0)[None], len(rows))[0] == \
        pytest.approx(one.compute()["wer"].value, rel=1e-15)


@pytest.mark.parametrize("data", ["single", "multi"])
@pytest.mark.parametrize("options", [{}, {"normalized": True, "case_sensitive": True},
                                     {"no_punct": True}])
def test_ter_equals_sacrebleu(data, options):
    pairs = {"single": PAIRS[:120], "multi": MULTI}[data]
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    metric = TER(**options)
    for start in range(0, len(pairs), 64):
        metric.update(hyps[start:start + 64], refs[start:start + 64])
    result = metric.compute(per_sample=True)["ter"]
    theirs = SacreTER(**options).corpus_score(hyps, streams)
    if data == "single":
        assert result.value == theirs.score  # integer statistics: exact
    else:  # fractional mean reference lengths: fsum vs a left-to-right sum
        assert result.value == pytest.approx(theirs.score, rel=1e-12)
    assert result.components["edits"] == theirs.num_edits
    sentence = SacreTER(**options)
    assert result.per_sample == [sentence.sentence_score(h, r).score
                                 for h, r in zip(hyps, refs, strict=True)]
    assert 5 < result.value < 100


def test_text_cli_scores_wer_cer_ter(run_cli, tmp_path):
    pairs = PAIRS[:40]
    rows = [{"id": f"s{i}", "text": h, "references": [r[0]]} for i, (h, r) in enumerate(pairs)]
    data = tmp_path / "hyps.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "card.json"
    done = run_cli("score", "--modality", "text", data, "--metrics", "wer,cer,ter",
                   "--set", "wer.normalize=basic", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text(encoding="utf-8"))
    hyps, refs = [h for h, _ in pairs], [r[0] for _, r in pairs]
    basic = normalizer("basic")
    assert card["metrics"]["wer"]["value"] == jiwer.wer([basic(r) for r in refs],
                                                        [basic(h) for h in hyps])
    assert card["metrics"]["cer"]["value"] == jiwer.cer(refs, hyps)
    assert card["metrics"]["ter"]["value"] == SacreTER().corpus_score(hyps, [refs]).score


def test_ter_is_in_the_default_text_set_and_wer_cer_are_opt_in():
    from genmetrics.runner import default_metrics

    names = default_metrics("text", True)
    assert {"bleu", "chrf", "ter"} <= set(names)
    assert "wer" not in names and "cer" not in names
    assert "ter" not in default_metrics("text", False)  # paired: needs references
