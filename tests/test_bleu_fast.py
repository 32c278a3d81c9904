"""The fast 13a statistics route equals sacrebleu's own extraction, row for row."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from genmetrics.metrics.text._bleu_fast import bleu_statistics, tokenize_13a
from genmetrics.metrics.text._sacrebleu import reference_streams
from tests.textcorpus import make_pairs

# Characters that exercise every 13a rule: punctuation classes, digits, entities,
# dashes and newlines, plus non-ASCII letters and spaces.
ALPHABET = list("ab Zé.,-–—!?\"'()[]{}<>/\\:;@#$%^&*_=+~`|0123456789\n\t\u00a0\u3000漢字")
TOKENS = ["&quot;", "&amp;", "&lt;", "&gt;", "<skipped>", "-\n", " .", "3.5", "1,000", "e.g."]
texts = st.lists(st.one_of(st.sampled_from(ALPHABET), st.sampled_from(TOKENS)),
                 max_size=40).map("".join)


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_tokenizer_equals_sacrebleu_13a(text):
    assert tokenize_13a(text) == Tokenizer13a()(text).split()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, st.lists(texts, min_size=1, max_size=3)), min_size=1,
                max_size=5), st.booleans(), st.integers(1, 5))
def test_statistics_equal_sacrebleu_on_fuzzed_text(pairs, lowercase, order):
    hyps = [h for h, _ in pairs]
    streams = reference_streams([r for _, r in pairs])
    ref = SacreBLEU(lowercase=lowercase, max_ngram_order=order)
    expected = ref._extract_corpus_statistics(hyps, streams)
    got = bleu_statistics(hyps, streams, max_order=order, lowercase=lowercase,
                          closest_ref_len=ref._get_closest_ref_len)
    assert got == expected


@pytest.mark.parametrize("max_refs", [1, 4])
@pytest.mark.parametrize("lowercase", [False, True])
def test_statistics_equal_sacrebleu_on_realistic_text(max_refs, lowercase):
    pairs = make_pairs(400, seed=11, max_refs=max_refs)
    hyps = [h for h, _ in pairs]
    streams = reference_streams([r for _, r in pairs])
    ref = SacreBLEU(lowercase=lowercase)
    assert bleu_statistics(hyps, streams, max_order=4, lowercase=lowercase,
                           closest_ref_len=ref._get_closest_ref_len) == \
        ref._extract_corpus_statistics(hyps, streams)
