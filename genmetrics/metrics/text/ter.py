"""TER (translation edit rate), identical to sacrebleu's ``TER``.

Per sample sacrebleu extracts ``[edits, mean reference length]`` (the fewest shift-aware
edits over the references, and their mean length in tercom tokens); the corpus score is
sacrebleu's own computation on the column sums, ``100 * edits / reference length``
(equal to ``TER().corpus_score``), and the per-sample value is ``sentence_score``. Lower
is better; scale 0-100, and above 100 when the output is much longer than the
reference. An empty reference with a non-empty output scores 100, as in sacrebleu.

The statistics are float64 rows (the mean reference length is fractional with several
references of different lengths); the sums use ``math.fsum``, so they do not depend on
sample order or batching. With one reference per sample every number is an integer and
the value is sacrebleu's to the last bit; with several, sacrebleu's left-to-right sum
may differ in the last bits (the tests allow 1e-12 relative).

    >>> from genmetrics.metrics.text.ter import TER
    >>> m = TER()
    >>> m.update(["the cat sat on mat"], [["the cat sat on the mat"]])
    >>> round(m.compute()["ter"].value, 4)
    16.6667
"""

from __future__ import annotations

import math
from typing import Any

from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics.text._sacrebleu import SacrebleuMetric


class TER(SacrebleuMetric):
    spec = MetricSpec(
        name="ter",
        modality="text",
        kind="paired",
        higher_is_better=False,
        unit="TER, edits per 100 reference words",
        value_range=(0.0, None),
        description="Translation edit rate (sacrebleu TER, tercom tokenisation).",
        options=(
            Option("normalized", False, "tercom's punctuation and XML normalisation", type=bool),
            Option("no_punct", False, "remove punctuation", type=bool),
            Option("asian_support", False, "split CJK characters (with normalized or no_punct)",
                   type=bool),
            Option("case_sensitive", False, "keep case (tercom lowercases by default)",
                   type=bool),
        ),
    )
    state_dtypes = {"stats": "float64", "nrefs": "int32"}

    def corpus_scorer(self) -> Any:
        from sacrebleu.metrics import TER as SacreTER

        return SacreTER(**self.options)

    def sentence_scorer(self) -> Any:
        return self.corpus_scorer()

    def column_totals(self, rows: Any) -> list[Any]:
        return [math.fsum(column) for column in rows.reshape(-1, 2).T.tolist()]

    def components(self, score: Any) -> dict[str, Any]:
        return {"edits": int(score.num_edits), "ref_len": float(score.ref_length)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        return np.array([self._corpus._compute_score_from_stats([float(v) for v in row]).score
                         for row in totals])
