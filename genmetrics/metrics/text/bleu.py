"""BLEU, identical to sacrebleu's ``corpus_score``; per sample, sacrebleu's ``sentence_bleu``.

The corpus value is computed from the summed n-gram statistics of all samples (so it
is not the mean of the sentence scores). Per-sample values use effective n-gram order,
as ``sacrebleu.sentence_bleu`` does by default. Scale 0-100.

    >>> from genmetrics.metrics.text.bleu import BLEU
    >>> m = BLEU()
    >>> m.update(["the cat sat on the mat"], [["the cat sat on the mat"]])
    >>> m.compute()["bleu"].value
    100.00000000000004
"""

from __future__ import annotations

from typing import Any

from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics.text._sacrebleu import SacrebleuMetric

TOKENIZERS = ("13a", "intl", "zh", "char", "none")
SMOOTHING = ("exp", "floor", "add-k", "none")


class BLEU(SacrebleuMetric):
    spec = MetricSpec(
        name="bleu",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="BLEU, 0-100",
        value_range=(0.0, 100.0),
        description="Corpus BLEU (sacrebleu); sentence BLEU per sample.",
        options=(
            Option("tokenize", "13a", "sacrebleu tokenizer", choices=TOKENIZERS),
            Option("smooth_method", "exp", "smoothing of zero n-gram counts", choices=SMOOTHING),
            Option("smooth_value", None, "value for floor / add-k smoothing", type=float),
            Option("lowercase", False, "lowercase before tokenizing", type=bool),
            Option("max_ngram_order", 4, "largest n-gram order", type=int),
        ),
    )

    def _make(self, effective_order: bool) -> Any:
        from sacrebleu.metrics import BLEU as SacreBLEU

        o = self.options
        return SacreBLEU(
            lowercase=o["lowercase"],
            tokenize=o["tokenize"],
            smooth_method=o["smooth_method"],
            smooth_value=o["smooth_value"],
            max_ngram_order=o["max_ngram_order"],
            effective_order=effective_order,
        )

    def corpus_scorer(self) -> Any:
        return self._make(effective_order=False)

    def sentence_scorer(self) -> Any:
        return self._make(effective_order=True)

    def components(self, score: Any) -> dict[str, Any]:
        return {
            "precisions": [float(p) for p in score.precisions],
            "bp": float(score.bp),
            "sys_len": int(score.sys_len),
            "ref_len": int(score.ref_len),
            "counts": [int(c) for c in score.counts],
            "totals": [int(t) for t in score.totals],
        }
