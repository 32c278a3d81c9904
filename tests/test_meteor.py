"""METEOR equals NLTK's ``meteor_score`` per sample: exact equality, no tolerance.

NLTK is called as the module docstring of :mod:`genmetrics.metrics.text.meteor`
promises -- pre-tokenized text, ``preprocess=str.lower``, a ``PorterStemmer`` and the
same WordNet reader (genmetrics' asset) -- on realistic pairs from ``tests.textcorpus``
(synonyms, inflections, repeated words, unicode, empty / identical / no-overlap
hypotheses, several references), on hand-made cases and on fuzzed word sequences drawn
from a vocabulary full of WordNet synonyms and inflections (independent ones, and edits
of a reference, which share beginnings and endings with it). The alignments themselves
(matches, chunks) are compared with NLTK's ``align_words`` too.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer
from nltk.translate import meteor_score as nltk_meteor

from genmetrics.errors import MetricError, UsageError
from genmetrics.features.wordnet import load_wordnet, wordnet_digest
from genmetrics.metrics.text._bleu_fast import tokenize_13a
from genmetrics.metrics.text.meteor import METEOR, Aligner, aligner
from tests.textcorpus import make_pairs

Pairs = list[tuple[str, list[str]]]
TOKENIZE: dict[str, Callable[[str], list[str]]] = {"whitespace": str.split, "13a": tokenize_13a}

PAIRS: dict[str, Pairs] = {
    "single": make_pairs(300, seed=31, words=30),
    "multi": make_pairs(150, seed=32, max_refs=4, multiline=False),
}


@cache
def wordnet():
    return load_wordnet()


def nltk_score(hyp: str, refs: list[str], tokenize: str = "whitespace", alpha: float = 0.9,
               beta: float = 3.0, gamma: float = 0.5) -> float:
    tok = TOKENIZE[tokenize]
    return nltk_meteor.meteor_score(
        [tok(r) for r in refs], tok(hyp), preprocess=str.lower, stemmer=PorterStemmer(),
        wordnet=wordnet(), alpha=alpha, beta=beta, gamma=gamma,
    )


def ours(pairs: Pairs, **options) -> list[float]:
    metric = METEOR(**options)
    metric.update([h for h, _ in pairs], [r for _, r in pairs])
    return metric.compute(per_sample=True)["meteor"].per_sample


def nltk_alignment(hyp: list[str], ref: list[str]) -> tuple[int, int]:
    """(matches, chunks) of NLTK's alignment (0 chunks without matches)."""
    matches, _, _ = nltk_meteor.align_words(hyp, ref, stemmer=PorterStemmer(), wordnet=wordnet())
    return len(matches), nltk_meteor._count_chunks(matches) if matches else 0


def lowered(text: str) -> list[str]:
    return [t.lower() for t in text.split()]


def stage_matches(hyp: str, ref: str) -> tuple[int, int, int]:
    """Matches of NLTK's exact, stem and synonym stages (to show the data uses them)."""
    h, r = nltk_meteor._generate_enums(hyp.split(), ref.split())
    exact, h, r = nltk_meteor._match_enums(h, r)
    stem, h, r = nltk_meteor._enum_stem_match(h, r)
    syn, h, r = nltk_meteor._enum_wordnetsyn_match(h, r, wordnet=wordnet())
    return len(exact), len(stem), len(syn)


# -- realistic text ------------------------------------------------------------------------
def test_corpus_exercises_every_stage():
    pairs = PAIRS["single"]
    totals = [sum(col) for col in zip(*(stage_matches(h, r[0]) for h, r in pairs), strict=True)]
    assert all(t >= 10 for t in totals), totals  # exact, stem and synonym matches
    assert any(not h for h, _ in pairs)
    assert {len(r) for _, r in PAIRS["multi"]} == {1, 2, 3, 4}


@pytest.mark.parametrize("name", list(PAIRS))
def test_per_sample_equals_nltk(name):
    pairs = PAIRS[name]
    assert ours(pairs) == [nltk_score(h, r) for h, r in pairs]


def test_13a_tokenizer_equals_nltk_on_13a_tokens():
    pairs = PAIRS["multi"][:100]
    assert ours(pairs, tokenize="13a") == [nltk_score(h, r, "13a") for h, r in pairs]


@pytest.mark.parametrize("params", [
    {"alpha": 0.5, "beta": 1.0, "gamma": 0.0},
    {"alpha": 0.85, "beta": 2.35, "gamma": 0.45},
    {"alpha": 1.0, "beta": 0.0, "gamma": 1.0},
    {"alpha": 0.0, "beta": 3.0, "gamma": 0.5},
])
def test_parameters_equal_nltk(params):
    pairs = PAIRS["single"][:120]
    assert ours(pairs, **params) == [nltk_score(h, r, **params) for h, r in pairs]


def test_corpus_value_is_fsum_mean_of_samples():
    pairs = PAIRS["multi"]
    metric = METEOR()
    metric.update([h for h, _ in pairs], [r for _, r in pairs])
    result = metric.compute()["meteor"]
    expected = [nltk_score(h, r) for h, r in pairs]
    assert result.value == math.fsum(expected) / len(expected)
    assert result.n == len(pairs)
    assert result.per_sample is None
    assert result.signature["nrefs"] == "var"


# -- hand-made cases ------------------------------------------------------------------------
CASES: list[tuple[str, list[str]]] = [
    ("the cat sat on the mat", ["the cat sat on the mat"]),
    ("the cat sat on the rug", ["the cat sat on the mat"]),  # rug / mat: no shared synset
    ("the cat sat on the carpet", ["the cat sat on the rug"]),  # synonyms
    ("the feline sat", ["the cat sat"]),  # "felin" (a stem) has no synsets
    ("he ran home", ["he is running home"]),  # WordNet maps "ran" to "run"
    ("she runs fast", ["she ran quick"]),
    ("they started the car", ["they began the auto"]),
    ("they drove the car", ["they drove the automobile"]),  # "automobil" is no lemma
    ("they drove the car", ["they drove the auto"]),
    ("the the the cat", ["the cat the"]),  # repeated words: last takes last
    ("cat the cat the", ["the cat the cat the"]),
    ("a b c d", ["d c b a"]),  # all matched, four chunks
    ("mat on the sat cat the", ["the cat sat on the mat"]),
    ("The CAT Sat", ["the cat sat"]),  # preprocess=str.lower
    ("the cat sat", ["a dog stood", "the cat sat down", "cat the sat"]),  # best reference
    ("", ["the cat sat"]),  # empty hypothesis
    ("the cat sat", [""]),  # empty reference
    ("", [""]),
    ("the cat sat", ["", "the cat"]),
    ("Straße über naïve ΟΔΟΣ İstanbul 中文 日本語 café",
     ["strasse uber naive οδος istanbul 中文 café"]),
    ("ΟΔΟΣ. Σίσυφος", ["οδος. σίσυφος"]),  # Greek final sigma
    ("hello,world ! ...", ["hello , world!"]),  # punctuation stays on words
    ("qwzx plim vrek", ["the cat sat"]),  # no overlap
    ("cats sick", ["cat cats"]),  # "cat" also means to vomit
    # a common ending (aligned word to word) after all kinds of beginnings
    ("a dog sat on the mat", ["the cat sat on the mat"]),
    ("cats sat on the mat", ["cat sat on the mat"]),  # stem match joins the ending's chunk
    ("on the mat", ["the cat sat on the mat"]),  # the hypothesis is the ending
    ("the cat sat on the mat", ["on the mat"]),
    ("the the cat", ["the cat"]),
    ("cat the the", ["the cat the"]),
    ("a b a b a", ["b a b a b a"]),
    ("the cat the dog the", ["the the cat dog"]),  # repeated words, no common ending
    ("the dog the cat the", ["the the cat dog the"]),
    ("running dogs ran fast", ["run dog runs quick"]),  # stems and synonyms compete
    ("auto car machine", ["car auto automobile"]),
    ("sick cats ill", ["cat sick ill"]),
    ("catting y", ["cat x cats y cat"]),  # two words with stem "cat": the last one counts
    ("dogged cats y", ["cats dog x dogs y cat"]),
]


@pytest.mark.parametrize(("hyp", "refs"), CASES)
def test_hand_made_cases_equal_nltk(hyp, refs):
    for tokenize in TOKENIZE:
        assert ours([(hyp, refs)], tokenize=tokenize) == [nltk_score(hyp, refs, tokenize)]


def test_documented_outcomes():
    score = {}
    for h, r in CASES:
        score.setdefault(h, ours([(h, r)])[0])  # the first case of each hypothesis
    assert score["the cat sat on the mat"] == 1.0 - 0.5 * (1 / 6) ** 3  # one chunk
    assert score["the cat sat on the carpet"] == score["the cat sat on the mat"]
    assert score["the cat sat on the rug"] < score["the cat sat on the carpet"]
    assert score["the feline sat"] == ours([("the dog sat", ["the cat sat"])])[0]
    assert score["he ran home"] > ours([("he flew home", ["he is running home"])])[0]
    assert score["The CAT Sat"] == ours([("the cat sat", ["the cat sat"])])[0]
    for empty in ("", "the cat sat"):
        assert ours([(empty, [""])]) == [0.0]
    assert ours([("", ["a"])]) == [0.0]
    assert score["qwzx plim vrek"] == 0.0
    assert ours([("car", ["auto"]), ("car", ["automobile"]), ("cats", ["sick"])]) == [0.5, 0.0, 0.5]
    refs = ["a dog stood", "the cat sat down", "cat the sat"]
    single = [ours([("the cat sat", [r])])[0] for r in refs]
    assert ours([("the cat sat", refs)]) == [max(single)] == [single[1]]


def test_lowercasing_the_text_equals_lowercasing_each_token():
    # METEOR lowercases "text.lower().split()" for speed; NLTK lowers each token
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        lowered = c.lower()
        if c.isspace():
            assert lowered.isspace(), hex(cp)
        else:
            assert not any(x.isspace() for x in lowered), hex(cp)
    spaces = [chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isspace()]
    for s in spaces:
        for text in (f"ΑΣ{s}Α", f"Α{s}ΣΑ", f"Α'Σ{s}'Α", f"ΑΣ.{s}.Α", f"Σ{s}Σ", f"İ{s}I"):
            assert text.lower().split() == [t.lower() for t in text.split()]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aAΣσςΑ'.İI ß\u00a0\u2028\t\n·\u0345\u00ad")),
               max_size=30))
def test_lowercasing_fuzzed(text):
    assert text.lower().split() == [t.lower() for t in text.split()]


# -- fuzzed word sequences ----------------------------------------------------------------
VOCAB = (
    "the a of on in and cat cats Cat kitty sick ill dog dogs car auto automobile machine "
    "ran run runs running rug carpet mat mats begin began start started starting buy bought "
    "purchase fast quick quickly rapid sofa couch shut close closed stone rock rocks house home "
    "big large happy glad feline über naïve Σίσυφος ς hello, world."
).split()
words = st.lists(st.sampled_from(VOCAB), max_size=14).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(words, st.lists(words, min_size=1, max_size=3))
def test_fuzzed_word_sequences_equal_nltk(hyp, refs):
    assert ours([(hyp, refs)]) == [nltk_score(hyp, refs)]


@st.composite
def edited_pairs(draw) -> tuple[str, str]:
    """A reference and a few word edits of it: shared beginnings, endings, repeats."""
    ref = draw(st.lists(st.sampled_from(VOCAB), max_size=16))
    hyp = list(ref)
    edits = st.tuples(st.sampled_from("dirs"), st.integers(0, 30), st.sampled_from(VOCAB))
    for op, k, word in draw(st.lists(edits, max_size=4)):
        if op == "i":
            hyp.insert(k % (len(hyp) + 1), word)
        elif hyp and op == "d":
            del hyp[k % len(hyp)]
        elif hyp and op == "r":
            hyp[k % len(hyp)] = word
        elif hyp:  # swap two neighbours
            i = k % len(hyp)
            j = (i + 1) % len(hyp)
            hyp[i], hyp[j] = hyp[j], hyp[i]
    return " ".join(hyp), " ".join(ref)


@settings(max_examples=300, deadline=None)
@given(edited_pairs())
def test_edited_pairs_align_and_score_as_nltk(pair):
    hyp, ref = pair
    assert aligner(wordnet()).align(lowered(hyp), lowered(ref)) == nltk_alignment(
        hyp.split(), ref.split())
    assert ours([(hyp, [ref])]) == [nltk_score(hyp, [ref])]


def test_corpus_alignments_equal_nltk():
    # matches and chunks themselves, not only the scores they give
    al = aligner(wordnet())
    for hyp, refs in PAIRS["single"] + PAIRS["multi"][:60]:
        for ref in refs:
            assert al.align(lowered(hyp), lowered(ref)) == nltk_alignment(hyp.split(),
                                                                          ref.split())


def test_tiny_memos_give_the_same_alignments():
    # memos that forget everything every few words (CACHE_SIZE reached) change nothing
    pairs = [(lowered(h), lowered(r[0])) for h, r in PAIRS["single"][:80]]
    shared = aligner(wordnet())
    tiny = Aligner(wordnet())
    tiny.stems.limit, tiny.synonyms.limit = 3, 2
    assert [tiny.align(h, r) for h, r in pairs] == [shared.align(h, r) for h, r in pairs]
    assert len(tiny.stems) <= 3 and len(tiny.synonyms) <= 2


# -- batching, state, options -------------------------------------------------------------
def test_batching_and_merging_do_not_change_anything():
    pairs = PAIRS["multi"]
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    whole = METEOR()
    whole.update(hyps, refs)
    expected = whole.compute(per_sample=True)["meteor"]
    for size in (1, 7):
        batched = METEOR()
        for k in range(0, len(pairs), size):
            batched.update(hyps[k : k + size], refs[k : k + size])
        got = batched.compute(per_sample=True)["meteor"]
        assert got.per_sample == expected.per_sample
        assert got.value == expected.value
    left, right = METEOR(), METEOR()
    left.update(hyps[:50], refs[:50])
    right.update(hyps[50:], refs[50:])
    left.merge(right)
    assert left.compute()["meteor"].value == expected.value
    restored = METEOR()
    restored.load_state_dict(left.state_dict())
    assert restored.compute(per_sample=True)["meteor"].per_sample == expected.per_sample
    # the corpus mean does not depend on order either (math.fsum)
    shuffled = METEOR()
    shuffled.update(hyps[::-1], refs[::-1])
    assert shuffled.compute()["meteor"].value == expected.value


def test_cold_caches_give_the_same_scores():
    pairs = PAIRS["single"][:60]
    warm = ours(pairs)
    aligner(wordnet()).clear_caches()
    assert ours(pairs) == warm


def test_signature():
    metric = METEOR(tokenize="13a", alpha=1)
    metric.update(["the cat"], [["the cat"]])
    result = metric.compute()["meteor"]
    sig = result.signature
    assert (sig["alpha"], sig["beta"], sig["gamma"], sig["tokenize"]) == (1.0, 3.0, 0.5, "13a")
    assert sig["n"] == 1 and sig["nrefs"] == 1
    assert sig["wordnet"] == (wordnet_digest() or "-")
    import nltk

    assert sig["nltk"] == nltk.__version__
    assert result.signature_str.startswith("meteor|v:1|alpha:1.0|beta:3.0|gamma:0.5|tok:13a|")
    assert METEOR.spec.name == "meteor" and METEOR.spec.higher_is_better
    assert metric.required_assets() == ["wordnet"]


@pytest.mark.parametrize("options", [
    {"alpha": 1.5}, {"alpha": -0.1}, {"gamma": 2}, {"beta": -1}, {"beta": "inf"},
    {"tokenize": "nltk"}, {"alpha": "nan"},
])
def test_bad_options(options):
    with pytest.raises(UsageError):
        METEOR(**options)


def test_bad_input():
    metric = METEOR()
    with pytest.raises(UsageError):
        metric.update(["a"], None)
    with pytest.raises(UsageError):
        metric.update(["a"], [[]])
    with pytest.raises(UsageError):
        metric.update(["a", "b"], [["a"]])
    metric.update([], [])
    with pytest.raises(MetricError):
        metric.compute()
