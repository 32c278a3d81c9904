"""Word and character error rates: the edit arithmetic, once, for text and audio.

``edit_counts(reference, hypothesis)`` aligns two token sequences with the Levenshtein
distance and counts substitutions, deletions, insertions and hits exactly as ``jiwer``
4 does: both use rapidfuzz's ``Levenshtein`` alignment (jiwer maps words to integers
and reads ``opcodes``; we map each pair's tokens to integers and read ``editops``, the
same alignment before it is grouped into blocks), so the counts -- not only their sum --
are jiwer's. :func:`words` and :func:`characters` split a string as jiwer's default
``wer_default`` and ``cer_default`` transforms do. The tests prove the counts equal to
``jiwer.process_words`` / ``process_characters`` on thousands of realistic pairs.

A corpus rate is total edits / total reference tokens (``S + D + I`` over ``S + D + H``
summed over the pairs), as jiwer computes it over a list; a pair's rate is its own.

Text normalisation before tokenising (:func:`normalizer`): ``none`` (the text as it
is), ``basic`` (Whisper's ``BasicTextNormalizer``: lowercase, drop bracketed spans and
punctuation) or ``whisper`` (Whisper's ``EnglishTextNormalizer``: also numbers,
contractions, British spellings). Both come from ``transformers``; the English one
needs Whisper's spelling table (``english.json``, 1,739 British -> American spellings),
which Whisper checkpoints ship as ``normalizer.json`` and which we read from the
``whisper-normalizer`` package, checked against its SHA-256.

    >>> from genmetrics.metrics.text.error_rate import edit_counts, words
    >>> c = edit_counts(words("the cat sat on the mat"), words("the big cat sit on mat"))
    >>> c
    EditCounts(substitutions=1, deletions=1, insertions=1, hits=4)
    >>> c.reference_length, c.rate()
    (6, 0.5)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

__all__ = ["EditCounts", "edit_counts", "words", "characters", "normalizer", "NORMALIZERS",
           "TOKENIZERS"]

NORMALIZERS = ("none", "basic", "whisper")

#: SHA-256 of Whisper's English spelling table as the ``whisper-normalizer`` wheel ships it
#: (``whisper_normalizer/normalizers/english.json``, the same table as openai-whisper's
#: ``whisper/normalizers/english.json`` and a Whisper checkpoint's ``normalizer.json``)
SPELLING_SHA256 = "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465"

_MULTIPLE_SPACES = re.compile(r"\s\s+")


@dataclass(frozen=True)
class EditCounts:
    """Edit operations that turn a reference into a hypothesis, and the tokens kept."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def reference_length(self) -> int:
        """Tokens in the reference: substitutions + deletions + hits."""
        return self.substitutions + self.deletions + self.hits

    @property
    def edits(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    def rate(self) -> float:
        """Edits per reference token; ``ZeroDivisionError`` for an empty reference.

        >>> EditCounts(0, 0, 2, 0).rate()
        Traceback (most recent call last):
        ...
        ZeroDivisionError: error rate of an empty reference (2 inserted tokens)
        """
        if self.reference_length == 0:
            raise ZeroDivisionError(
                f"error rate of an empty reference ({self.insertions} inserted tokens)")
        return self.edits / self.reference_length


def words(text: str) -> list[str]:
    """Words as jiwer's ``wer_default`` splits them: runs of two or more whitespace
    characters become one space, the ends are stripped, then the text is split on single
    spaces (so a lone tab or newline stays inside a word, as in jiwer).

    >>> words("  a  b\\tc d ")
    ['a', 'b\\tc', 'd']
    """
    return [w for w in _MULTIPLE_SPACES.sub(" ", text).strip().split(" ") if w]


def characters(text: str) -> list[str]:
    """Characters as jiwer's ``cer_default`` splits them: the ends stripped, inner spaces
    kept (a space is a character that can be substituted or deleted).

    >>> characters(" a b ")
    ['a', ' ', 'b']
    """
    return list(text.strip())


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"words": words, "characters": characters}


def edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """Levenshtein alignment counts of two token sequences, equal to jiwer's.

    >>> edit_counts([], ["a", "b"])
    EditCounts(substitutions=0, deletions=0, insertions=2, hits=0)
    """
    from rapidfuzz.distance import Levenshtein

    ids: dict[str, int] = {}
    ref = [ids.setdefault(t, len(ids)) for t in reference]
    hyp = [ids.setdefault(t, len(ids)) for t in hypothesis]
    subs = dels = ins = 0
    for tag, _, _ in Levenshtein.editops(ref, hyp):
        if tag == "replace":
            subs += 1
        elif tag == "delete":
            dels += 1
        else:
            ins += 1
    return EditCounts(subs, dels, ins, len(ref) - subs - dels)


@cache
def english_spelling_mapping() -> dict[str, str]:
    """Whisper's British -> American spelling table, from the ``whisper-normalizer``
    package (checksummed); a :class:`~genmetrics.errors.UsageError` says what to install
    when it is missing."""
    import hashlib
    import json
    from importlib import resources

    from genmetrics.errors import UsageError

    try:
        data = (resources.files("whisper_normalizer") / "normalizers" / "english.json"
                ).read_bytes()
    except (ImportError, FileNotFoundError) as exc:
        raise UsageError("normalize=whisper needs Whisper's English spelling table: pip "
                         "install whisper-normalizer (or 'genmetrics[text]'), or use "
                         f"normalize=basic ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SPELLING_SHA256:
        raise UsageError(f"whisper_normalizer/normalizers/english.json has SHA-256 {digest}, "
                         f"not {SPELLING_SHA256}: reinstall whisper-normalizer==0.1.15")
    return json.loads(data)


@cache
def normalizer(name: str) -> Callable[[str], str]:
    """The text normaliser called ``name`` (one of :data:`NORMALIZERS`).

    >>> normalizer("basic")("Hello, World! [laughs]").split()
    ['hello', 'world']
    >>> normalizer("whisper")("Mr. Smith's colour: twenty-five percent")
    'mister smith is color 25%'
    """
    if name == "none":
        return str
    if name == "basic":
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer

        return BasicTextNormalizer()
    if name == "whisper":
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        return EnglishTextNormalizer(english_spelling_mapping())
    from genmetrics.errors import UsageError

    raise UsageError(f"unknown normaliser {name!r}; choose one of {', '.join(NORMALIZERS)}")
