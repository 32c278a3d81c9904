"""Text diagnostics: repetition inside a sample, empty or short outputs, identical outputs,
and the corpus' lexical diversity (distinct-1, distinct-2).

Words are the sample's whitespace-separated tokens, lower-cased (text without spaces
between words, such as Chinese or Japanese, is one "word" per run of characters).

* ``repetition_rate`` (per sample, flagged above 0.3): the fraction of the sample's word
  4-grams that repeat an earlier 4-gram of the same sample (0 when it has fewer than 4
  words). Fluent text stays near 0; a model stuck in a loop approaches 1.
* ``short_outputs`` (per sample, flagged below 3 words): empty outputs are always
  flagged; a 1- or 2-word output only when its longest reference has 3 words or more
  (or when there are no references), so "Thank you." against "Thanks." is not.
* ``duplicate_outputs`` (per sample): non-empty outputs identical (ignoring case and
  runs of whitespace) to another sample's. Value per sample: how many other samples say the
  same; flagged above 0, unless every sample of the group has the same reference (a
  repeated source sentence). The set's value is the fraction of samples flagged.
* ``distinct_1`` / ``distinct_2`` (the set): distinct word unigrams / bigrams over all
  unigrams / bigrams of all outputs (Li et al., 2016). Both fall as a corpus grows, so
  with references the threshold is half the references' own distinct-n (the first
  reference of each sample, the same words counted; recorded as ``baseline``); without
  references it is an absolute 0.005 (distinct-1) and 0.05 (distinct-2), far below
  fluent text of up to millions of words.

Memory: per sample a few numbers and two 8-byte hashes; the corpus' distinct n-grams
are kept as 8-byte hashes (8 bytes per distinct unigram and bigram), never the text.

    >>> from genmetrics.io.text import TextPair
    >>> diag = TextDiagnostics()
    >>> diag.update([TextPair("loop", "I am here. " * 10, []),
    ...              TextPair("ok", "a perfectly ordinary sentence about cats", [])])
    >>> [f["id"] for f in diag.result()["repetition_rate"]["flagged"]]
    ['loop']
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genmetrics.diagnostics import (
    ABOVE,
    BELOW,
    Diagnostics,
    SampleCheck,
    checked_thresholds,
    set_entry,
)

#: default thresholds (override with ``collector("text", name=value)``)
THRESHOLDS = {
    "repetition_rate": 0.3,  # repeated fraction of a sample's word 4-grams
    "short_outputs": 3.0,  # words
    "duplicate_outputs": 0.0,  # other samples with the same output
    "distinct_1": 0.005,  # without references
    "distinct_2": 0.05,  # without references
    "distinct_ratio": 0.5,  # with references: this fraction of the references' distinct-n
}
REPEAT_N = 4
_MASK = (1 << 64) - 1
#: the polynomial string hash's base (odd, so invertible modulo 2**64)
_BASE = 0x100000001B3
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
#: odd 64-bit multipliers that combine word hashes into n-gram hashes
_K = [np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                             0xD6E8FEB86659FD93)]


def words(text: str) -> list[str]:
    """The words diagnostics count: whitespace-separated, lower-cased.

    >>> words("The cat  SAT.")
    ['the', 'cat', 'sat.']
    """
    return text.lower().split()


def repetition_rate(tokens: Sequence[str], n: int = REPEAT_N) -> float:
    """The fraction of the ``n``-grams of ``tokens`` that repeat an earlier one.

    >>> repetition_rate("a b c d a b c d".split())
    0.2
    >>> repetition_rate("a b c".split())
    0.0
    """
    count = len(tokens) - n + 1
    if count <= 0:
        return 0.0
    grams = set(zip(*(tokens[i:] for i in range(n)), strict=False))
    return (count - len(grams)) / count


def _mix(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads a 64-bit value's bits over the whole word."""
    z = values ^ (values >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _powers(base: int, count: int) -> np.ndarray:
    """``base ** i`` modulo 2**64 for i < count."""
    out = np.full(count, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


@dataclass
class HashedWords:
    """The words of a batch of texts as stable 64-bit hashes (the same in every process,
    unlike Python's ``hash``), computed for the whole batch at once.

    >>> batch = HashedWords.of(["a b a", "", "A  b"])
    >>> batch.counts.tolist(), bool(batch.hashes[0] == batch.hashes[2])
    ([3, 0, 2], True)
    >>> bool(batch.texts[0] == batch.texts[2]), bool(batch.hashes[0] == batch.hashes[3])
    (False, True)
    """

    hashes: np.ndarray  # uint64, one per word, in order
    owner: np.ndarray  # int64, the text each word belongs to
    counts: np.ndarray  # int64, words per text
    texts: np.ndarray  # uint64, one per text: its words (lower-cased) joined by spaces

    @classmethod
    def of(cls, texts: Sequence[str]) -> HashedWords:
        joined = "\n".join(" ".join(words(t)) for t in texts)  # no newline inside a text
        data = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        size = data.size
        if not size:
            empty = np.zeros(0, dtype=np.uint64)
            return cls(empty, np.zeros(0, dtype=np.int64), np.zeros(len(texts), np.int64),
                       np.zeros(len(texts), dtype=np.uint64))
        # prefix[i]: sum of (byte + 1) * BASE**k over the first i bytes, modulo 2**64
        prefix = np.zeros(size + 1, dtype=np.uint64)
        np.cumsum((data.astype(np.uint64) + np.uint64(1)) * _powers(_BASE, size),
                  dtype=np.uint64, out=prefix[1:])
        inverse = _powers(_BASE_INVERSE, size + 1)

        def span_hashes(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
            return _mix((prefix[stop] - prefix[start]) * inverse[start])

        newline = np.flatnonzero(data == 10)
        text_start = np.concatenate(([0], newline + 1))
        text_stop = np.concatenate((newline, [size]))
        separator = (data == 32) | (data == 10)
        inside = ~separator
        edge = np.diff(np.concatenate(([False], inside, [False])).astype(np.int8))
        word_start = np.flatnonzero(edge == 1)
        word_stop = np.flatnonzero(edge == -1)
        owner = np.searchsorted(text_start, word_start, side="right") - 1
        return cls(span_hashes(word_start, word_stop), owner,
                   np.bincount(owner, minlength=len(texts)),
                   span_hashes(text_start, text_stop))

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of the word ``n``-grams inside each text, and the text of each."""
        count = self.hashes.size - n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        grams = self.hashes[:count] * _K[0]
        for i in range(1, n):
            grams = grams + self.hashes[i:i + count] * _K[i]
        inside = self.owner[:count] == self.owner[n - 1:]
        return grams[inside], self.owner[:count][inside]

    def repetition_rates(self, n: int = REPEAT_N) -> np.ndarray:
        """Per text, :func:`repetition_rate` of its words (0 with fewer than ``n``)."""
        grams, owner = self.ngrams(n)
        texts = self.counts.size
        if not grams.size:
            return np.zeros(texts)
        order = np.lexsort((grams, owner))
        grams, owner = grams[order], owner[order]
        first = np.ones(grams.size, dtype=bool)
        first[1:] = (grams[1:] != grams[:-1]) | (owner[1:] != owner[:-1])
        total = np.bincount(owner, minlength=texts)
        distinct = np.bincount(owner[first], minlength=texts)
        return (total - distinct) / np.maximum(total, 1)


def _unique(values: np.ndarray, kind: str | None = None) -> np.ndarray:
    """Sorted distinct values (a sort and a comparison: many times faster than
    ``np.unique``'s hash table on 64-bit hashes)."""
    ordered = np.sort(values, kind=kind)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


class DistinctNgrams:
    """Distinct unigrams and bigrams of a stream of texts, kept as 64-bit hashes.

    >>> counter = DistinctNgrams()
    >>> counter.add(HashedWords.of(["a b a", "a b"]))
    >>> counter.distinct(1), counter.distinct(2)
    (0.4, 0.6666666666666666)
    """

    def __init__(self) -> None:
        self.totals = [0, 0]
        #: per n: a compacted array of distinct hashes, then batches not yet merged in
        self.parts: list[list[np.ndarray]] = [[], []]

    def add(self, batch: HashedWords) -> None:
        self._add(0, batch.hashes)
        self._add(1, batch.ngrams(2)[0])

    def _add(self, order: int, hashes: np.ndarray) -> None:
        if not hashes.size:
            return
        self.totals[order] += int(hashes.size)
        parts = self.parts[order]
        parts.append(_unique(hashes))
        # merge when the pending batches outgrow the compacted set: O(n log n) in all,
        # and never more than twice the distinct hashes held
        if len(parts) > 1 and sum(p.size for p in parts[1:]) >= parts[0].size:
            self.parts[order] = [_unique(np.concatenate(parts), kind="stable")]

    def distinct(self, n: int) -> float | None:
        """Distinct ``n``-grams over all ``n``-grams (n = 1 or 2); None when there are none."""
        order = n - 1
        if not self.totals[order]:
            return None
        parts = self.parts[order]
        if len(parts) > 1:
            self.parts[order] = parts = [_unique(np.concatenate(parts), kind="stable")]
        return parts[0].size / self.totals[order]

    def merge(self, other: DistinctNgrams) -> None:
        for order in (0, 1):
            self.totals[order] += other.totals[order]
            both = self.parts[order] + other.parts[order]
            self.parts[order] = [_unique(np.concatenate(both), kind="stable")] if both else []


class TextDiagnostics(Diagnostics):
    """Repetition, short or identical outputs, distinct-1/2 (see the module docstring)."""

    modality = "text"

    def __init__(self, **thresholds: float) -> None:
        super().__init__()
        self.thresholds = t = checked_thresholds(THRESHOLDS, thresholds)
        self.repetition = SampleCheck(t["repetition_rate"], ABOVE, (
            f"fraction of a sample's word {REPEAT_N}-grams that repeat an earlier one in the "
            "same sample (a generation loop); value: the mean over samples"))
        self.short = SampleCheck(t["short_outputs"], BELOW, (
            "words in the output: empty outputs, and outputs shorter than the threshold "
            "whose reference is not (any length without references); value: the mean"))
        self.hypotheses = DistinctNgrams()
        self.references = DistinctNgrams()
        self.has_references = False
        # for identical outputs: per non-empty sample its id and two 8-byte hashes
        self.ids: list[str] = []
        self.output_hashes = array("Q")
        self.reference_hashes = array("Q")

    def update(self, items: Sequence[Any]) -> None:
        if not items:
            return
        ids = [item.id for item in items]
        outputs = HashedWords.of([item.text for item in items])
        has_ref = np.array([bool(item.references) for item in items])
        refs = HashedWords.of([item.references[0] if item.references else ""
                               for item in items])
        self.repetition.add_many(ids, outputs.repetition_rates())
        longest = refs.counts.copy()
        for i, item in enumerate(items):  # several references: the longest counts
            if len(item.references) > 1:
                longest[i] = max(len(r.split()) for r in item.references)
        threshold = self.short.threshold
        short = (outputs.counts == 0) | ((outputs.counts < threshold)
                                         & (~has_ref | (longest >= threshold)))
        self.short.add_many(ids, outputs.counts.astype(np.float64), flagged=short)
        self.hypotheses.add(outputs)
        if has_ref.any():
            self.has_references = True
            self.references.add(refs)
        kept = np.flatnonzero(outputs.counts > 0)
        self.ids.extend(ids[i] for i in kept)
        self.output_hashes.extend(outputs.texts[kept].tolist())
        # "| 1": a reference's hash is never 0, the mark of "no reference"
        self.reference_hashes.extend(
            np.where(has_ref, refs.texts | np.uint64(1), np.uint64(0))[kept].tolist())

    def merge(self, other: Diagnostics) -> None:
        assert isinstance(other, TextDiagnostics)
        self.repetition.merge(other.repetition)
        self.short.merge(other.short)
        self.hypotheses.merge(other.hypotheses)
        self.references.merge(other.references)
        self.has_references = self.has_references or other.has_references
        self.ids.extend(other.ids)
        self.output_hashes.extend(other.output_hashes)
        self.reference_hashes.extend(other.reference_hashes)

    def result(self) -> dict[str, dict[str, Any]]:
        if not self.short.n:
            return {}
        doc = {"repetition_rate": self.repetition.entry(), "short_outputs": self.short.entry(),
               "duplicate_outputs": self._duplicates()}
        for n in (1, 2):
            entry = self._distinct(n)
            if entry is not None:
                doc[f"distinct_{n}"] = entry
        return doc

    def _duplicates(self) -> dict[str, Any]:
        check = SampleCheck(self.thresholds["duplicate_outputs"], ABOVE, (
            "other samples whose output is identical (ignoring case and runs of whitespace; "
            "empty outputs left out), unless all of them share one reference; value: the "
            "fraction of samples flagged"))
        check.n = self.short.n
        groups: dict[int, list[int]] = {}
        for index, key in enumerate(self.output_hashes):
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            others = len(members) - 1
            if others <= check.threshold:
                continue
            references = {self.reference_hashes[i] for i in members}
            if len(references) == 1 and 0 not in references:
                continue  # the same reference throughout: a repeated source, not a collapse
            for i in members:
                match = members[1] if i == members[0] else members[0]
                check.flag(self.ids[i], float(others), match=self.ids[match])
        return check.entry(value=check.flagged_count / check.n if check.n else 0.0)

    def _distinct(self, n: int) -> dict[str, Any] | None:
        value = self.hypotheses.distinct(n)
        if value is None:
            return None
        baseline = self.references.distinct(n) if self.has_references else None
        what = "unigrams" if n == 1 else "bigrams"
        if baseline is None:
            return set_entry(value, self.thresholds[f"distinct_{n}"], BELOW, self.short.n, (
                f"distinct word {what} over all {what} of the outputs (low: repetitive, "
                "generic outputs); no references, so an absolute threshold"))
        ratio = self.thresholds["distinct_ratio"]
        return set_entry(value, ratio * baseline, BELOW, self.short.n, (
            f"distinct word {what} over all {what} of the outputs (low: repetitive, generic "
            f"outputs); threshold: {ratio:g} x the references' own distinct-{n} (baseline)"),
            baseline=baseline)
