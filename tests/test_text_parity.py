"""Parity of the text metrics with their reference libraries: exact equality, no tolerance.

* BLEU and chrF / chrF++ against sacrebleu (corpus score, its components, sentence scores);
* ROUGE-1/2/L/Lsum against Google's rouge-score (per-sample P/R/F, multi-reference
  ``score_multi``, corpus mean), and rouge-score-rs (the compiled scorer genmetrics
  runs) against rouge-score on fuzzed text;
* the numbers do not depend on how samples are batched or merged.

The pairs come from ``tests.textcorpus`` (perturbed realistic prose, some unicode and
CJK, variable reference counts, an empty / identical / one-word / no-overlap
hypothesis among them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest
import sacrebleu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer as py_rouge
from rouge_score_rs import rouge_scorer as rs_rouge
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import CHRF

from genmetrics.metric import Metric
from genmetrics.metrics.text.bleu import BLEU
from genmetrics.metrics.text.chrf import ChrF
from genmetrics.metrics.text.rouge import ROUGE, ROUGE_TYPES
from tests.textcorpus import make_pairs

Pairs = list[tuple[str, list[str]]]

# BLEU / chrF see one segment per line, as in MT evaluation; ROUGE sees one sentence
# per line, as ROUGE-Lsum expects.
DATA: dict[str, Pairs] = {
    "single": make_pairs(200, seed=11, multiline=False),
    "multi": make_pairs(200, seed=12, max_refs=4, multiline=False),
}
ROUGE_DATA: dict[str, Pairs] = {
    "single": make_pairs(250, seed=13, multiline=True),
    "multi": make_pairs(200, seed=14, max_refs=3, multiline=True),
}


def ref_streams(refs: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds reference k of every sample (None if absent)."""
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def run(metric: Metric, pairs: Pairs, per_sample: bool = True) -> dict[str, Any]:
    metric.update([h for h, _ in pairs], [r for _, r in pairs])
    return metric.compute(per_sample=per_sample)


def test_corpus_has_what_the_tests_rely_on():
    for pairs in (*DATA.values(), *ROUGE_DATA.values()):
        hyps = [h for h, _ in pairs]
        assert "" in hyps
        assert any(h == r[0] for h, r in pairs)
        assert any(h and len(h.split()) == 1 for h in hyps)
        assert any(not set(h.lower().split()) & set(r[0].lower().split()) for h, r in pairs if h)
    assert all("\n" not in h for h, _ in DATA["single"])
    assert sum("\n" in h for h, _ in ROUGE_DATA["single"]) > 100
    assert any(ord(c) > 0x2E80 for h, _ in DATA["single"] for c in h)  # some CJK
    assert {len(r) for _, r in DATA["multi"]} == {1, 2, 3, 4}
    assert {len(r) for _, r in ROUGE_DATA["multi"]} == {1, 2, 3}


def test_textcorpus_is_deterministic_and_round_trips_through_folders(tmp_path):
    from genmetrics.io.text import open_text
    from tests.textcorpus import write_folder_pairs

    assert make_pairs(40, seed=12, max_refs=4, multiline=False) == DATA["multi"][:40]
    for name, pairs in (("single", ROUGE_DATA["single"][:25]), ("multi", DATA["multi"][:25])):
        write_folder_pairs(pairs, tmp_path / name / "samples", tmp_path / name / "refs")
        source = open_text(tmp_path / name / "samples", [tmp_path / name / "refs"])
        assert [(p.text, p.references) for p in source] == pairs


# -- BLEU ------------------------------------------------------------------------------
BLEU_CASES: list[dict[str, Any]] = [
    {"tokenize": "13a", "smooth_method": "exp", "lowercase": False},
    {"tokenize": "13a", "smooth_method": "add-k", "lowercase": False},
    {"tokenize": "13a", "smooth_method": "floor", "lowercase": True},
    {"tokenize": "intl", "smooth_method": "exp", "lowercase": True},
    {"tokenize": "intl", "smooth_method": "floor", "smooth_value": 0.05, "lowercase": False},
    {"tokenize": "zh", "smooth_method": "exp", "lowercase": False},
    {"tokenize": "zh", "smooth_method": "add-k", "lowercase": True},
    {"tokenize": "char", "smooth_method": "none", "lowercase": False},
    {"tokenize": "char", "smooth_method": "exp", "lowercase": True},
    {"tokenize": "none", "smooth_method": "floor", "lowercase": True},
    {"tokenize": "none", "smooth_method": "add-k", "smooth_value": 0.5, "lowercase": True},
]


def _case_id(case: dict[str, Any]) -> str:
    return "-".join(str(v) for v in case.values())


@cache
def bleu_results(case_index: int, refs: str) -> Any:
    return run(BLEU(**BLEU_CASES[case_index]), DATA[refs])["bleu"]


def _bleu_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    return {"smooth_value": None, **case}


@cache
def sacrebleu_corpus(case_index: int, refs: str) -> Any:
    pairs = DATA[refs]
    return sacrebleu.corpus_bleu(
        [h for h, _ in pairs],
        ref_streams([r for _, r in pairs]),
        **_bleu_kwargs(BLEU_CASES[case_index]),
    )


BLEU_PARAMS = [
    pytest.param(i, refs, id=f"{_case_id(c)}-{refs}")
    for i, c in enumerate(BLEU_CASES)
    for refs in DATA
]


@pytest.mark.parametrize(("case_index", "refs"), BLEU_PARAMS)
def test_bleu_corpus_value(case_index, refs):
    got = bleu_results(case_index, refs)
    assert got.value == sacrebleu_corpus(case_index, refs).score
    assert got.n == len(DATA[refs])


@pytest.mark.parametrize(("case_index", "refs"), BLEU_PARAMS)
def test_bleu_components(case_index, refs):
    expected = sacrebleu_corpus(case_index, refs)
    comps = bleu_results(case_index, refs).components
    assert comps["bp"] == expected.bp
    assert comps["sys_len"] == expected.sys_len
    assert comps["ref_len"] == expected.ref_len
    assert comps["precisions"] == expected.precisions
    assert comps["counts"] == expected.counts
    assert comps["totals"] == expected.totals


@pytest.mark.parametrize(("case_index", "refs"), BLEU_PARAMS)
def test_bleu_sentence(case_index, refs):
    kwargs = _bleu_kwargs(BLEU_CASES[case_index])
    expected = [sacrebleu.sentence_bleu(h, r, **kwargs).score for h, r in DATA[refs]]
    assert bleu_results(case_index, refs).per_sample == expected


@pytest.mark.parametrize("refs", list(DATA))
def test_bleu_max_ngram_order(refs):
    pairs = DATA[refs]
    hyps, refl = [h for h, _ in pairs], [r for _, r in pairs]
    got = run(BLEU(max_ngram_order=2, smooth_method="floor"), pairs)["bleu"]
    opts = {"max_ngram_order": 2, "smooth_method": "floor"}
    assert got.value == SacreBLEU(**opts).corpus_score(hyps, ref_streams(refl)).score
    sentence = SacreBLEU(effective_order=True, **opts)
    assert got.per_sample == [sentence.sentence_score(h, r).score for h, r in pairs]


# -- chrF / chrF++ -----------------------------------------------------------------------
CHRF_PARAMS = (
    [pytest.param({"word_order": 0}, refs, id=f"chrf-{refs}") for refs in DATA]
    + [pytest.param({"word_order": 2}, refs, id=f"chrf++-{refs}") for refs in DATA]
    + [
        pytest.param(
            {"word_order": 2, "lowercase": True, "whitespace": True, "eps_smoothing": True},
            "multi",
            id="chrf++-lowercase-whitespace-eps-multi",
        )
    ]
)


@pytest.mark.parametrize(("case", "refs"), CHRF_PARAMS)
def test_chrf_corpus_and_sentence(case, refs):
    pairs = DATA[refs]
    got = run(ChrF(**case), pairs)["chrf"]
    expected = CHRF(**case).corpus_score([h for h, _ in pairs], ref_streams([r for _, r in pairs]))
    assert got.value == expected.score
    sentence = CHRF(**case)
    assert got.per_sample == [sentence.sentence_score(h, r).score for h, r in pairs]


# -- ROUGE -----------------------------------------------------------------------------
@cache
def rouge_expected(refs: str, use_stemmer: bool):
    """rouge-score's scores, one dict per sample (type -> Score)."""
    scorer = py_rouge.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    out = []
    for hyp, rl in ROUGE_DATA[refs]:
        # target first: score(target, prediction)
        out.append(scorer.score(rl[0], hyp) if len(rl) == 1 else scorer.score_multi(rl, hyp))
    return out


ROUGE_PARAMS = [
    pytest.param(refs, stem, id=f"{refs}-{'stem' if stem else 'nostem'}")
    for refs in ROUGE_DATA
    for stem in (False, True)
]


@pytest.mark.parametrize(("refs", "use_stemmer"), ROUGE_PARAMS)
def test_rouge_matches_rouge_score(refs, use_stemmer):
    pairs = ROUGE_DATA[refs]
    expected = rouge_expected(refs, use_stemmer)
    metric = ROUGE(use_stemmer=use_stemmer)
    got = run(metric, pairs)
    assert metric.types == ROUGE_TYPES
    n = len(pairs)
    state = metric.state["scores"]
    assert len(state) == n
    for k, rouge_type in enumerate(ROUGE_TYPES):
        rows = [tuple(e[rouge_type]) for e in expected]
        # per sample precision, recall, F (kept in the state) and F (per_sample)
        assert [tuple(row[k]) for row in state.tolist()] == rows
        result = got[rouge_type]
        fs = [f for _, _, f in rows]
        assert result.per_sample == fs
        assert result.n == n
        assert result.value == math.fsum(fs) / n
        assert result.components == {
            "precision": math.fsum(p for p, _, _ in rows) / n,
            "recall": math.fsum(r for _, r, _ in rows) / n,
            "fmeasure": math.fsum(fs) / n,
        }


@pytest.mark.parametrize("refs", list(ROUGE_DATA))
@pytest.mark.parametrize("types", ["rougeLsum", "rouge2,rougeL", "rougeLsum,rouge1"])
def test_rouge_subset_of_types(types, refs):
    wanted = tuple(types.split(","))
    pairs = ROUGE_DATA[refs][:60]
    scorer = py_rouge.RougeScorer(list(wanted), use_stemmer=True)
    expected = [
        scorer.score(rl[0], hyp) if len(rl) == 1 else scorer.score_multi(rl, hyp)
        for hyp, rl in pairs
    ]
    metric = ROUGE(rouge_types=types, use_stemmer=True)
    got = run(metric, pairs)
    assert metric.types == wanted
    assert sorted(got) == sorted(wanted)
    for k, rouge_type in enumerate(wanted):
        assert [tuple(row[k]) for row in metric.state["scores"].tolist()] == [
            tuple(e[rouge_type]) for e in expected
        ]


def test_rouge_multi_reference_ties_keep_the_first_reference():
    # Both references give F = 2/3 (P and R swapped); rouge-score's np.argmax keeps the first.
    hyp = "a b c d"
    for refs in (["a b", "a b c d e f g h"], ["a b c d e f g h", "a b"]):
        expected = py_rouge.RougeScorer(list(ROUGE_TYPES)).score_multi(refs, hyp)
        metric = ROUGE()
        metric.update([hyp], [refs])
        assert metric.state["scores"].tolist()[0] == [list(expected[t]) for t in ROUGE_TYPES]


# -- batching and merging ------------------------------------------------------------------
def _numbers(results: dict[str, Any]) -> dict[str, Any]:
    return {k: (r.value, r.n, r.components, r.per_sample) for k, r in results.items()}


def _batched(make: Any, pairs: Pairs, size: int) -> dict[str, Any]:
    metric = make()
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        metric.update([h for h, _ in chunk], [r for _, r in chunk])
    return _numbers(metric.compute(per_sample=True))


BATCH_CASES = [
    pytest.param(lambda: BLEU(), DATA["multi"], id="bleu-13a-multi"),
    pytest.param(
        lambda: BLEU(tokenize="char", smooth_method="add-k"),
        DATA["single"],
        id="bleu-char-addk-single",
    ),
    pytest.param(lambda: ChrF(word_order=2), DATA["multi"], id="chrf++-multi"),
    pytest.param(lambda: ROUGE(use_stemmer=True), ROUGE_DATA["multi"], id="rouge-stem-multi"),
    pytest.param(lambda: ROUGE(), ROUGE_DATA["single"], id="rouge-single"),
]


@pytest.mark.parametrize(("make", "pairs"), BATCH_CASES)
def test_result_does_not_depend_on_batching(make, pairs):
    pairs = pairs[:120]
    whole = _batched(make, pairs, len(pairs))
    assert _batched(make, pairs, 1) == whole
    assert _batched(make, pairs, 7) == whole

    cut = 77
    first, second = make(), make()
    for metric, part in ((first, pairs[:cut]), (second, pairs[cut:])):
        metric.update([h for h, _ in part], [r for _, r in part])
    first.merge(second)
    assert _numbers(first.compute(per_sample=True)) == whole

    # Merging the other way round permutes the samples; the corpus numbers stay the same.
    first, second = make(), make()
    first.update([h for h, _ in pairs[:cut]], [r for _, r in pairs[:cut]])
    second.update([h for h, _ in pairs[cut:]], [r for _, r in pairs[cut:]])
    second.merge(first)
    swapped = second.compute()
    for name, (value, n, components, _) in whole.items():
        assert (swapped[name].value, swapped[name].n, swapped[name].components) == (
            value,
            n,
            components,
        )


# -- rouge-score-rs == rouge-score on fuzzed text ---------------------------------------------
_WORDS = st.sampled_from(
    "the a I of running runs ran agreed agreement feed sky skies dying lying news bus "
    "caresses ponies happy happiness relational conditional generalizations oscillators "
    "hopefulness digitizer formality proceed succeed exceed innings outing canning "
    "1990s mp3s x86 covid19 2024 e-mail don't O'Brien U.S.A. state-of-the-art".split()
)
_RANDOM_WORDS = st.text(alphabet="aeiouyslnedcgtbrzx0123", min_size=1, max_size=12)
_PUNCT = st.sampled_from(list(".,;:!?'\"()[]-–—…“”‘’/\\@#&%*+=_<>|~^`$€"))
_NUMBERS = st.from_regex(r"[0-9]{1,4}([.,][0-9]{1,3})?%?", fullmatch=True)
_UNICODE = st.text(
    alphabet=st.characters(
        categories=("Lu", "Ll", "Lt", "Lo", "Mn", "Nd", "No", "Zs", "Pd", "Po", "So")
    ),
    min_size=1,
    max_size=5,
)
# Characters whose lower case is (or contains) ASCII, separators, ligatures, CJK.
_SPECIAL = st.sampled_from(
    "İ K Å ẞ ß ﬁ ﬀ Σ ς é É ñ Ⅻ ² ① Ａ ａ 中文 日本語 한국어 你好 café Zoë naïve".split()
    + ["\u00a0", "\u2028", "\u2029", "\u200b", "\u0085", "\r", "\t", "\x0b", "\x0c", "São Paulo"]
)
_NEWLINES = st.sampled_from(["\n", "\n\n", " \n ", "\r\n", "\n\n\n"])
# Words three times as often as the rest; made-up words twice.
_TOKEN = st.one_of(
    *[_WORDS] * 3, *[_RANDOM_WORDS] * 2, _PUNCT, _NUMBERS, _UNICODE, _SPECIAL, _NEWLINES
)
_SPACING = st.sampled_from(["", " ", " ", " ", "  "])
TEXTS = st.lists(st.tuples(_TOKEN, _SPACING), max_size=40).map(
    lambda parts: "".join(token + space for token, space in parts)
)
SCORERS = {
    stem: (
        py_rouge.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem),
        rs_rouge.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem),
    )
    for stem in (False, True)
}
_FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _as_tuples(scores: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    return {k: tuple(v) for k, v in scores.items()}


@_FUZZ
@given(target=TEXTS, prediction=TEXTS, use_stemmer=st.booleans())
def test_rouge_score_rs_equals_rouge_score(target, prediction, use_stemmer):
    py, rs = SCORERS[use_stemmer]
    expected = _as_tuples(py.score(target, prediction))
    assert _as_tuples(rs.score(target, prediction)) == expected
    assert _as_tuples(rs.score_batch([target], [prediction])[0]) == expected


@settings(_FUZZ, max_examples=60)
@given(targets=st.lists(TEXTS, min_size=1, max_size=4), prediction=TEXTS, use_stemmer=st.booleans())
def test_rouge_score_rs_multi_equals_rouge_score(targets, prediction, use_stemmer):
    py, rs = SCORERS[use_stemmer]
    expected = _as_tuples(py.score_multi(targets, prediction))
    assert _as_tuples(rs.score_multi(targets, prediction)) == expected


# -- BLEU statistics == sacrebleu's on fuzzed text (13a has its own fast path) -----------------
_BLEU_SPECIAL = st.sampled_from(
    ["&quot;", "&amp;", "&lt;", "&gt;", "&", "&amp;quot;", "<skipped>", "-\n", " -\n", "-", "--"]
    + ["3.5", "1,000", "2-3", "10-", ".5", "5.", ",5", "a.b", "x,y", "..", ",,", "...", "-1"]
    + ["e.g.", "U.S.", "3.5%", "$4", "(a)", "[b]", "{c}", "<d>", "a/b", "a\\b", "@x", "#1"]
)
_BLEU_TOKEN = st.one_of(_TOKEN, _BLEU_SPECIAL, _BLEU_SPECIAL)
BLEU_TEXTS = st.lists(st.tuples(_BLEU_TOKEN, _SPACING), max_size=30).map(
    lambda parts: "".join(token + space for token, space in parts)
)


@_FUZZ
@given(
    hyps=st.lists(BLEU_TEXTS, min_size=1, max_size=3),
    data=st.data(),
    tokenize=st.sampled_from(["13a", "13a", "intl", "zh"]),
    lowercase=st.booleans(),
    max_ngram_order=st.sampled_from([1, 2, 4]),
)
def test_bleu_statistics_equal_sacrebleu_on_fuzzed_text(
    hyps, data, tokenize, lowercase, max_ngram_order
):
    refs = [data.draw(st.lists(BLEU_TEXTS, min_size=1, max_size=3)) for _ in hyps]
    opts = {"tokenize": tokenize, "lowercase": lowercase, "max_ngram_order": max_ngram_order}
    metric = BLEU(**opts)
    metric.update(hyps, refs)
    expected = SacreBLEU(**opts)
    assert metric.state["stats"].tolist() == \
        expected._extract_corpus_statistics(hyps, ref_streams(refs))
    got = metric.compute(per_sample=True)["bleu"]
    assert got.value == expected.corpus_score(hyps, ref_streams(refs)).score
    sentence = SacreBLEU(effective_order=True, **opts)
    assert got.per_sample == [
        sentence.sentence_score(h, r).score for h, r in zip(hyps, refs, strict=True)
    ]
