"""Shared machinery for metrics computed by sacrebleu (BLEU, chrF).

sacrebleu already separates *sufficient statistics* (per-segment n-gram counts) from
the *score* computed on their sum. We call that same code: statistics are extracted
once per sample in ``update`` and kept as the state (int32 rows, widened to int64 if a
count ever needs it: 4 bytes per count); the corpus score is sacrebleu's own computation
on their sum (exact integer sums), so it equals ``corpus_score`` exactly; the per-sample
score is sacrebleu's sentence-level computation on each row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import Metric, MetricResult


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Turn per-sample reference lists into sacrebleu's reference streams.

    Samples with fewer references than the most in the batch get ``None`` padding, which
    sacrebleu skips (variable number of references).

    >>> reference_streams([["a", "b"], ["c"]])
    [['a', 'c'], ['b', None]]
    """
    width = max((len(r) for r in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


class SacrebleuMetric(Metric):
    """A metric whose statistics and scores come from a sacrebleu metric object."""

    state_reductions = {"stats": "cat", "nrefs": "cat"}
    sample_fields = ("stats", "nrefs")  # one row per sample: slices restrict them
    state_dtypes = {"stats": "int32", "nrefs": "int32"}

    def corpus_scorer(self) -> Any:
        """The sacrebleu object that computes the corpus score."""
        raise NotImplementedError

    def sentence_scorer(self) -> Any:
        """The sacrebleu object that computes per-sample scores (sacrebleu's sentence API)."""
        raise NotImplementedError

    def components(self, score: Any) -> dict[str, Any]:
        return {}

    def column_totals(self, rows: Any) -> list[Any]:
        """The corpus statistics: the column sums of the per-sample rows. sacrebleu sums
        integer counts as Python ints, and int64 sums are the same numbers."""
        import numpy as np

        return rows.sum(axis=0, dtype=np.int64).tolist()

    def extract_statistics(
        self, samples: Sequence[str], streams: list[list[str | None]]
    ) -> list[list[Any]]:
        """Per-sample statistics rows, exactly as sacrebleu extracts them."""
        return self._corpus._extract_corpus_statistics(samples, streams)

    #: integer options that must be at least 1 (n-gram orders, beta)
    positive_options: tuple[str, ...] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in self.positive_options:
            if self.options[name] < 1:
                raise UsageError(f"{self.spec.name}: {name} must be at least 1")
        self._corpus = self.corpus_scorer()
        self._sentence = self.sentence_scorer()

    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError(f"{self.spec.name} needs one list of references per sample")
        if any(len(r) == 0 for r in references):
            raise UsageError(f"{self.spec.name}: every sample needs at least one reference")
        if not samples:
            return
        streams = reference_streams(references)
        self.state["stats"].append(self.extract_statistics(samples, streams))
        self.state["nrefs"].append([len(r) for r in references])

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        import numpy as np

        stats = self.state["stats"]
        self.require_samples(len(stats))
        totals = self.column_totals(stats.array())
        score = self._corpus._aggregate_and_compute([totals])
        sentence = None
        if per_sample:
            sentence = [self._sentence._aggregate_and_compute([row]).score
                        for row in stats.iter_lists()]
        counts = np.unique(self.state["nrefs"].array()).tolist()
        nrefs = counts[0] if len(counts) == 1 else "var"
        return {
            self.spec.name: self.result(
                score.score,
                n=len(stats),
                components=self.components(score),
                per_sample=sentence,
                nrefs=nrefs,
            )
        }

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        return {self.spec.name: self.state["stats"].array().astype(np.float64)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        # totals are sums of integer counts, exact in float64: sacrebleu scores them as ints
        return np.array([self._corpus._compute_score_from_stats([int(v) for v in row]).score
                         for row in totals])

    def libraries(self) -> dict[str, str]:
        import sacrebleu

        return {"sacrebleu": sacrebleu.__version__}
