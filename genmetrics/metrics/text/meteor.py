"""METEOR, identical per sample to NLTK's ``nltk.translate.meteor_score.meteor_score``.

Per sample the value equals, bit for bit::

    meteor_score([tok(r) for r in references], tok(hypothesis), preprocess=str.lower,
                 stemmer=PorterStemmer(), wordnet=wn, alpha=alpha, beta=beta, gamma=gamma)

where ``wn`` is WordNet 3.0 from the genmetrics asset manager
(:func:`genmetrics.features.wordnet.load_wordnet`) and ``tok`` is the tokenizer chosen
by the ``tokenize`` option:

* ``whitespace`` (default): ``str.split``, so punctuation stays attached to words
  ("mat." and "mat" are different words) -- what most METEOR users feed NLTK;
* ``13a``: sacrebleu's ``13a`` tokenizer (punctuation split off), as in BLEU.

(``nltk.word_tokenize`` is not offered: it needs NLTK's ``punkt_tab`` data, which is
not available offline.) Tokens are lowercased after tokenizing, as NLTK's default
``preprocess=str.lower`` does. The tokenizer, the WordNet digest and the NLTK version
are part of the signature.

What NLTK computes, and therefore what this module reproduces:

* words are aligned in three stages -- exact, Porter stem, WordNet synonym -- each
  stage on the words left unmatched by the previous ones. Within a stage, hypothesis
  words are taken from last to first, and each takes the *last* still unmatched
  reference word that matches it;
* the synonym stage works on the **stems** left over by the stem stage (NLTK passes its
  stemmed lists on): a hypothesis word matches a reference word when the reference
  word's stem is the hypothesis word's stem or a single-word lemma name of a WordNet
  synset of that stem. So some plain synonyms are missed -- "feline" (stem "felin")
  does not match "cat", "car" does not match "automobile" (stem "automobil") though
  it matches "auto" -- while "ran" matches "running" (WordNet maps "ran" to "run").
  Every sense counts: "cats" matches "sick" (to cat: to vomit). Lemma names keep
  WordNet's case ("CAT") and words are lowercased, so capitalised lemmas never match.
  "rug" and "mat" share no synset;
* score: ``P = m / len(hyp)``, ``R = m / len(ref)``,
  ``Fmean = P * R / (alpha * P + (1 - alpha) * R)``, ``frag = chunks / m``,
  ``(1 - gamma * frag ** beta) * Fmean``, where ``m`` is the number of aligned words
  and ``chunks`` the number of runs of aligned words adjacent in both sentences; 0.0
  when there is no match, and for an empty hypothesis or an empty reference. With
  several references the best score counts.

Corpus value: the arithmetic mean of the per-sample scores (``math.fsum``, so it does
not depend on sample order or batching). Scale 0-1.

Speed: NLTK builds lists of (position, word) pairs and a dict of position lists in
each stage, stems every leftover word of every pair and asks WordNet (morphology, index
look-up; its reader caches the synsets it parses) for every leftover hypothesis word.
Here (see :meth:`Aligner.align`) the common ending of the two sentences is aligned
word to word without any index (what NLTK's rule does to it); the exact stage runs
over one dict of the reference words (a position, a list only for repeated words) and
counts the chunks as it goes; the Porter stem of a word and the synonym set of a stem
are memoised per process (dicts shared by every instance on the same WordNet reader,
emptied when they reach ``CACHE_SIZE`` entries); and the stem and synonym stages only
run when a leftover hypothesis word can match a leftover reference word at all (on
the benchmark text, in a quarter of the pairs). The alignment and the float operations
are NLTK's, in the same order. With warm caches on both sides this scores about 10 to
14 times as many pairs per second as NLTK (``scripts/bench.py --rows meteor``); from
empty caches both spend their time in NLTK's stemmer and WordNet reader, and the gain
is small (about 1.3x). ``tests/test_meteor.py`` proves the per-sample scores and alignments equal
(``==``) to NLTK's on realistic and fuzzed text.

    >>> from genmetrics.metrics.text.meteor import METEOR
    >>> m = METEOR()
    >>> m.update(["the cat sat on the mat"], [["the cat was sitting on the mat"]])
    >>> round(m.compute()["meteor"].value, 4)
    0.8535
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import repeat
from operator import itemgetter
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option
from genmetrics.metrics.text._bleu_fast import tokenize_13a

CACHE_SIZE = 1 << 18  # entries kept per memo (words or stems) per process
UNMATCHED = -2  # reference position of an unaligned hypothesis word
_first = itemgetter(0)
_NO_SYNONYMS: frozenset[str] = frozenset()


def _align_pair(ref_of: list[int], i: int, j: int) -> int:
    """Align hypothesis word ``i`` to reference position ``j`` (``ref_of[i] = j``) in the
    stem or synonym stage; returns how many of its hypothesis neighbours are aligned to
    the reference neighbours of ``j`` (0-2: chunk joins for the chunk count).

    >>> ref_of = [4, UNMATCHED, 6]
    >>> _align_pair(ref_of, 1, 5), ref_of
    (2, [4, 5, 6])
    """
    ref_of[i] = j
    return (i > 0 and ref_of[i - 1] == j - 1) + (i + 1 < len(ref_of) and ref_of[i + 1] == j + 1)


def lowercase_split(text: str) -> list[str]:
    """``[t.lower() for t in text.split()]``, faster.

    The same list: lowering never turns a non-space character into a space or back,
    and Greek final sigma looks no further than the word (the tests prove both).
    """
    return text.lower().split()


def lowercase_13a(text: str) -> list[str]:
    """sacrebleu's ``13a`` tokens, each lowercased."""
    return [token.lower() for token in tokenize_13a(text)]


#: ``tokenize`` option -> the lowercased tokens METEOR sees (NLTK's ``preprocess=str.lower``)
TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": lowercase_split,
    "13a": lowercase_13a,
}


def _tokenized(texts: Iterable[str], tokens: Callable[[str], list[str]]) -> Iterator[list[str]]:
    """``map(tokens, texts)``; for ``lowercase_split`` without a Python call per text."""
    if tokens is lowercase_split:
        return map(str.split, map(str.lower, texts))
    return map(tokens, texts)


class Memo(dict):
    """``memo[key]`` is ``function(key)``, computed once; forgets everything at ``limit``.

    A hit is a plain dict look-up (no Python call); a miss calls ``__missing__``.

    >>> memo = Memo(str.upper, limit=2)
    >>> memo["a"], memo["b"], len(memo), memo["c"], len(memo)
    ('A', 'B', 2, 'C', 1)
    """

    def __init__(self, function: Callable[[str], Any], limit: int = CACHE_SIZE) -> None:
        super().__init__()
        self.function = function
        self.limit = limit

    def __missing__(self, key: str) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.function(key)
        return value


class Aligner:
    """NLTK's METEOR alignment and score, with memoised stems and synonym sets.

    One instance per WordNet reader (see :func:`aligner`); its caches only depend on
    the WordNet data and NLTK's ``PorterStemmer``, never on the options.

    >>> from genmetrics.features.wordnet import load_wordnet
    >>> hyp, ref = "the cat sat on the mat".split(), "the cat sat".split()
    >>> aligner(load_wordnet()).align(hyp, ref)  # the last "the" takes the first: 2 chunks
    (3, 2)
    """

    def __init__(self, wordnet: Any) -> None:
        from nltk.stem.porter import PorterStemmer

        self.wordnet = wordnet
        self._porter = PorterStemmer().stem
        self.stems = Memo(self._stem)  # word -> Porter stem
        self.synonyms = Memo(self._synonyms)  # stem -> NLTK's synonym set, less the stem
        self._stem_of = self.stems.__getitem__  # bound once, for map()

    def _stem(self, word: str) -> str:
        stem = self._porter(word)
        return word if stem == word else stem  # the key itself: one object less to read

    def _synonyms(self, stem: str) -> frozenset[str]:
        """The single-word lemma names of the synsets of ``stem``, but ``stem``.

        NLTK's synonym set also holds the stem itself, which never counts: a hypothesis
        stem left over by the stem stage is the stem of no unused reference word.
        """
        names = {
            name
            for synset in self.wordnet.synsets(stem)
            for name in (lemma.name() for lemma in synset.lemmas())
            if "_" not in name
        }
        names.discard(stem)
        return frozenset(names) if names else _NO_SYNONYMS

    def clear_caches(self) -> None:
        self.stems.clear()
        self.synonyms.clear()

    def align(self, hyp: list[str], ref: list[str]) -> tuple[int, int]:
        """``(matches, chunks)`` of NLTK's alignment of two lowercased token lists.

        ``chunks`` is counted as ``matches`` minus the hypothesis neighbours ``i, i + 1``
        aligned to reference neighbours ``j, j + 1``: NLTK's ``_count_chunks`` on its
        matches sorted by hypothesis position (but 0 chunks for 0 matches). The stages
        are NLTK's, on the same words in the same order, but for words that cannot
        change the outcome: the common ending of the two lists (aligned word to word,
        as NLTK's rule does) and, in the stem and synonym stages, hypothesis words whose
        stem and synonyms are the stem of no leftover reference word.
        """
        m = h = len(hyp)
        n = r = len(ref)
        # 0. the common suffix: from the end, each of its hypothesis words finds its
        #    counterpart to be the last unused reference position of the same word, so
        #    NLTK aligns them (one chunk) and the rest aligns as hyp[:h] against ref[:r]
        while h and r and hyp[h - 1] == ref[r - 1]:
            h -= 1
            r -= 1
        matches = m - h
        if not h or not r:  # nothing left to align on one side
            return matches, 1 if matches else 0
        adjacent = matches - 1 if matches else 0  # i, i + 1 aligned to j, j + 1
        # reference position of hypothesis word i + 1 if it has one in the exact stage;
        # hyp[h - 1] is not ref[r - 1], so nothing here joins the ending's chunk
        following = -1

        # Reference index of ref[:r]: word -> its last position j, or -2 - j (<= -2)
        # when the word also occurs before j; those earlier positions are then
        # ``earlier[word]``, ascending. Plain ints, no list per word: most occur once.
        last: dict[str, int] = {}
        earlier: dict[str, list[int]] = {}
        j = 0
        for word in ref if r == n else ref[:r]:
            if word in last:
                previous = last[word]
                if previous >= 0:
                    earlier[word] = [previous]
                else:
                    earlier[word].append(-2 - previous)
                last[word] = -2 - j
            else:
                last[word] = j
            j += 1

        # 1. exact: from the last hypothesis word to the first, each takes the last
        #    unused reference position of the same word (NLTK's position lists + pop).
        #    A used position leaves the index, so ``last`` ends with the unused words.
        ref_of = [UNMATCHED] * h  # ref_of[i]: reference position of hypothesis word i
        ref_of.extend(range(r, n))
        left_hyp = []  # unmatched hypothesis positions, last first
        take = last.pop
        for i in range(h - 1, -1, -1):
            j = take(hyp[i], -1)
            if j < 0:
                if j == -1:
                    left_hyp.append(i)
                    following = -1
                    continue
                # the word has earlier positions: the next one becomes its last
                j = -2 - j
                before = earlier[hyp[i]]
                previous = before.pop()
                last[hyp[i]] = -2 - previous if before else previous
            ref_of[i] = j
            if j + 1 == following:
                adjacent += 1
            following = j
        matches += h - len(left_hyp)
        if not left_hyp or not last:
            return matches, matches - adjacent

        # In the stem and synonym stages a hypothesis word can only take a reference
        # word with the same stem or with a stem in the synonyms of its stem. Mostly there
        # is none: then both stages align nothing.
        ref_stems = set(map(self._stem_of, last))
        stems = self.stems
        synonyms = self.synonyms
        for i in left_hyp:
            stem = stems[hyp[i]]
            if stem in ref_stems:
                break
            others = synonyms[stem]
            if others and not ref_stems.isdisjoint(others):
                break
        else:
            return matches, matches - adjacent
        # the hypothesis words before ``i`` take no part in stages 2 and 3
        matches, adjacent = self._stem_and_synonym_stages(
            hyp, ref_of, left_hyp[left_hyp.index(i):], last, earlier, matches, adjacent
        )
        return matches, matches - adjacent

    def _stem_and_synonym_stages(
        self,
        hyp: list[str],
        ref_of: list[int],
        left_hyp: list[int],
        last: dict[str, int],
        earlier: dict[str, list[int]],
        matches: int,
        adjacent: int,
    ) -> tuple[int, int]:
        """Stages 2 and 3 on the words left over by the exact stage: ``(matches, adjacent)``.

        ``left_hyp``: unmatched hypothesis positions, last first; ``last`` and
        ``earlier``: the unused reference positions (see :meth:`align`).
        """
        # the unused reference positions by stem, ascending
        stems = self.stems
        positions: dict[str, list[int]] = {}
        for word, j in last.items():
            stem = stems[word]
            if j >= 0:
                found = [j]
            else:
                found = earlier[word]
                found.append(-2 - j)
            same_stem = positions.get(stem)
            if same_stem is None:
                positions[stem] = found
            else:  # another word has this stem: merge, ascending
                same_stem.extend(found)
                same_stem.sort()

        # 2. Porter stems, same rule as the exact stage
        still_left = []  # (position, synonym set), last first
        for i in left_hyp:
            stem = stems[hyp[i]]
            found = positions.get(stem)
            if found is None:
                others = self.synonyms[stem]
                if others and not others.isdisjoint(positions):  # else it can match nothing
                    still_left.append((i, others))
                continue
            j = found.pop()
            if not found:
                del positions[stem]
            adjacent += _align_pair(ref_of, i, j)
            matches += 1

        # 3. synonyms: NLTK goes on with the stems; each hypothesis stem takes the last
        #    unused reference position whose stem is in the stem's synonym set
        for i, others in still_left:
            if not positions:
                break
            best_j = -1
            best = ""
            for stem in others.intersection(positions):
                j = positions[stem][-1]
                if j > best_j:
                    best_j, best = j, stem
            if best_j >= 0:
                found = positions[best]
                found.pop()
                if not found:
                    del positions[best]
                adjacent += _align_pair(ref_of, i, best_j)
                matches += 1
        return matches, adjacent

    def score_one(
        self, hyp: list[str], ref: list[str], alpha: float, beta: float, gamma: float
    ) -> float:
        """NLTK's ``single_meteor_score`` on lowercased tokens."""
        matches, chunks = self.align(hyp, ref)
        if not matches:  # NLTK divides by zero somewhere and returns 0.0
            return 0.0
        # NLTK's arithmetic, operation for operation (``int / int`` is NLTK's
        # ``float(int) / int``: both are exact doubles and the quotient is rounded once)
        precision = matches / len(hyp)
        recall = matches / len(ref)
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        return (1 - gamma * (chunks / matches) ** beta) * fmean

    def score(
        self, hyp: list[str], refs: Sequence[list[str]], alpha: float, beta: float, gamma: float
    ) -> float:
        """NLTK's ``meteor_score`` on lowercased tokens: the best over the references."""
        if not refs:
            raise UsageError("meteor: every sample needs at least one reference")
        # max(): the first of equal values (equal floats: the same value)
        return max(self.score_one(hyp, ref, alpha, beta, gamma) for ref in refs)


@lru_cache(maxsize=2)
def aligner(wordnet: Any) -> Aligner:
    """The shared :class:`Aligner` (and caches) of a WordNet reader."""
    return Aligner(wordnet)


class METEOR(Metric):
    spec = MetricSpec(
        name="meteor",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="METEOR, 0-1",
        value_range=(0.0, 1.0),
        description="METEOR (NLTK meteor_score: exact, stem, WordNet synonyms), mean over "
        "samples.",
        options=(
            Option("alpha", 0.9, "weight of precision against recall (0-1)", type=float),
            Option("beta", 3.0, "shape of the fragmentation penalty (>= 0)", type=float),
            Option("gamma", 0.5, "weight of the fragmentation penalty (0-1)", type=float),
            Option("tokenize", "whitespace", "tokens (then lowercased): whitespace or 13a",
                   choices=tuple(TOKENIZERS)),
        ),
        assets=("wordnet",),
    )
    state_reductions = {"scores": "cat", "nrefs": "cat"}
    sample_fields = ("scores", "nrefs")
    state_dtypes = {"scores": "float64", "nrefs": "int32"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if not 0.0 <= o["alpha"] <= 1.0:
            raise UsageError(f"meteor: alpha must be between 0 and 1, not {o['alpha']}")
        if not 0.0 <= o["gamma"] <= 1.0:
            raise UsageError(f"meteor: gamma must be between 0 and 1, not {o['gamma']}")
        if not (o["beta"] >= 0.0 and math.isfinite(o["beta"])):
            raise UsageError(f"meteor: beta must be a number >= 0, not {o['beta']}")
        self.tokens = TOKENIZERS[o["tokenize"]]

    @property
    def aligner(self) -> Aligner:
        """The shared aligner over genmetrics' WordNet (loaded on first use)."""
        from genmetrics.features.wordnet import load_wordnet

        return aligner(load_wordnet())

    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError("meteor needs one list of references per sample")
        counts = list(map(len, references))
        if 0 in counts:
            raise UsageError("meteor: every sample needs at least one reference")
        if not samples:
            return
        aligner = self.aligner
        options = [repeat(self.options[k]) for k in ("alpha", "beta", "gamma")]
        hyps = _tokenized(samples, self.tokens)
        if counts.count(1) == len(counts):  # one reference each: no lists of lists
            refs = _tokenized(map(_first, references), self.tokens)
            scores = list(map(aligner.score_one, hyps, refs, *options))
        else:
            refs = (list(_tokenized(r, self.tokens)) for r in references)
            scores = list(map(aligner.score, hyps, refs, *options))
        self.state["scores"].append(scores)
        self.state["nrefs"].append(counts)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        import numpy as np

        n = len(self.state["scores"])
        self.require_samples(n)
        scores = self.state["scores"].tolist()
        counts = np.unique(self.state["nrefs"].array()).tolist()
        return {
            "meteor": self.result(
                math.fsum(scores) / n,
                n=n,
                per_sample=scores if per_sample else None,
                nrefs=counts[0] if len(counts) == 1 else "var",
            )
        }

    def bootstrap_rows(self) -> dict[str, Any]:
        return {"meteor": self.state["scores"].array().reshape(-1, 1)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        return totals[:, 0] / n

    def libraries(self) -> dict[str, str]:
        return dict(_libraries())


@lru_cache(maxsize=1)
def _libraries() -> tuple[tuple[str, str], ...]:
    """NLTK's version and the digest of the WordNet in use (one per process)."""
    import nltk

    from genmetrics.features.wordnet import wordnet_digest

    return (("nltk", nltk.__version__), ("wordnet", wordnet_digest() or "-"))
