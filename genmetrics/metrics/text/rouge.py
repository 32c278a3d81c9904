"""ROUGE-1/2/L/Lsum, identical to Google's ``rouge-score`` package.

Per sample: rouge-score's precision, recall and F-measure (``RougeScorer.score``, or
``score_multi`` with several references: per ROUGE type, the reference with the
highest F-measure). ROUGE-Lsum splits sentences on newlines, as rouge-score does.

Corpus value: the arithmetic mean of the per-sample F-measures (the precision, recall
and F-measure means are reported as components; ``fmeasure`` equals the value, and the
experiment loggers leave it out, :data:`genmetrics.loggers.SAME_AS_VALUE`).
rouge-score's ``BootstrapAggregator`` reports a bootstrap *median* as ``mid``, which is
random; genmetrics keeps resampling for confidence intervals and reports the plain mean
as the value. Means are computed with ``math.fsum``, so they do not depend on sample
order or batching. Scale 0-1.

Scoring runs in ``rouge-score-rs``, a compiled re-implementation of rouge-score; the
test suite proves it equal to rouge-score on realistic and fuzzed text.

    >>> from genmetrics.metrics.text.rouge import ROUGE
    >>> m = ROUGE(rouge_types="rouge1")
    >>> m.update(["the cat sat"], [["the cat sat down"]])
    >>> round(m.compute()["rouge1"].value, 4)
    0.8571
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _parse_types(text: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in ROUGE_TYPES]
    if bad or not types:
        raise UsageError(f"rouge_types must be a comma-separated subset of {','.join(ROUGE_TYPES)}")
    return types


class ROUGE(Metric):
    spec = MetricSpec(
        name="rouge",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="F-measure, 0-1",
        value_range=(0.0, 1.0),
        description="ROUGE-1/2/L/Lsum F-measure (rouge-score), mean over samples.",
        options=(
            Option("rouge_types", ",".join(ROUGE_TYPES), "comma-separated ROUGE types"),
            Option("use_stemmer", False, "Porter-stem tokens (rouge-score's option)", type=bool),
        ),
        outputs=ROUGE_TYPES,
    )
    # per sample: for each type, (precision, recall, fmeasure): rows of types x 3 float64
    state_reductions = {"scores": "cat"}
    sample_fields = ("scores",)
    state_dtypes = {"scores": "float64"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.types = _parse_types(self.options["rouge_types"])
        from rouge_score_rs import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(list(self.types), use_stemmer=self.options[
            "use_stemmer"])

    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError("rouge needs one list of references per sample")
        if any(len(r) == 0 for r in references):
            raise UsageError("rouge: every sample needs at least one reference")
        if all(len(r) == 1 for r in references):
            scored = self._scorer.score_batch([r[0] for r in references], list(samples))
        else:
            scorer = self._scorer
            pairs = zip(samples, references, strict=True)
            scored = [scorer.score_multi(list(r), s) for s, r in pairs]
        if not scored:
            return
        self.state["scores"].append(
            [[tuple(row[t]) for t in self.types] for row in scored])

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        n = len(self.state["scores"])
        self.require_samples(n)
        scores = self.state["scores"].array()
        results = {}
        for k, rouge_type in enumerate(self.types):
            p, r, f = (scores[:, k, i].tolist() for i in range(3))
            results[rouge_type] = self.result(
                math.fsum(f) / n,
                n=n,
                name=rouge_type,
                # fmeasure is the value itself: kept for code that reads components, but
                # not logged twice to a tracker (genmetrics.loggers.SAME_AS_VALUE)
                components={"precision": math.fsum(p) / n, "recall": math.fsum(r) / n,
                            "fmeasure": math.fsum(f) / n},
                per_sample=f if per_sample else None,
                rouge_type=rouge_type,
                aggregate="mean",
            )
        return results

    def bootstrap_rows(self) -> dict[str, Any]:
        scores = self.state["scores"].array().reshape(-1, len(self.types), 3)
        return {t: scores[:, k, 2:3] for k, t in enumerate(self.types)}  # per-sample F

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        return totals[:, 0] / n

    def signature(self, **extra: Any) -> dict[str, Any]:
        sig = super().signature(**extra)
        sig.pop("rouge_types")  # each result names its own type
        return sig

    def libraries(self) -> dict[str, str]:
        return {"rouge-score-rs": library_version("rouge-score-rs"),
                "rouge-score": library_version("rouge-score")}
