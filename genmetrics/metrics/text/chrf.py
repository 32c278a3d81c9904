"""chrF / chrF++, identical to sacrebleu's ``CHRF`` (corpus score and sentence score).

    >>> from genmetrics.metrics.text.chrf import ChrF
    >>> m = ChrF(word_order=2)          # chrF++
    >>> m.update(["a small cat"], [["a small cat"]])
    >>> round(m.compute()["chrf"].value, 6)
    100.0
"""

from __future__ import annotations

from typing import Any

from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics.text._sacrebleu import SacrebleuMetric


class ChrF(SacrebleuMetric):
    spec = MetricSpec(
        name="chrf",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="chrF, 0-100",
        value_range=(0.0, 100.0),
        description="Character n-gram F-score (sacrebleu); word_order=2 gives chrF++.",
        options=(
            Option("char_order", 6, "character n-gram order", type=int),
            Option("word_order", 0, "word n-gram order (2 = chrF++)", type=int),
            Option("beta", 2, "recall weight", type=int),
            Option("lowercase", False, "lowercase before scoring", type=bool),
            Option("whitespace", False, "keep whitespace in character n-grams", type=bool),
            Option("eps_smoothing", False, "smooth as chrF++.py / NLTK / Moses do", type=bool),
        ),
    )

    positive_options = ("char_order", "beta")

    def corpus_scorer(self) -> Any:
        from sacrebleu.metrics import CHRF

        return CHRF(**self.options)

    def sentence_scorer(self) -> Any:
        return self.corpus_scorer()
