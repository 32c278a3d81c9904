"""Word and character error rate of text outputs, equal to ``jiwer`` 4.

Each sample is compared with its one reference: both are normalised (``normalize``:
``none`` by default for text, so the strings are compared as given; ``basic`` or
``whisper``, see :mod:`.error_rate`), split as jiwer's default transforms split them
(words, or characters with inner spaces), and aligned (:func:`.error_rate.edit_counts`).

* corpus value: total edits / total reference tokens, ``(S + D + I) / (S + D + H)``
  summed over the samples -- ``jiwer.wer(references, hypotheses)`` on the lists;
* per sample: the sample's own rate;
* components: the summed ``substitutions``, ``deletions``, ``insertions``, ``hits``
  and ``reference_tokens`` (counts over the scored samples).

A sample whose reference is empty (after normalisation) has no rate: it is left out of
the corpus value, its per-sample value is ``null`` and it is named under the component
``failed`` (jiwer would add its insertions to a corpus numerator whose denominator it
does not grow). The value is a fraction (0.25 = 25%) and may exceed 1 when the output
inserts many words. State: four int32 counts per sample (-1s for a sample that could
not be scored, with its reason).

:class:`ErrorRateMetric` is the one definition the audio ``wer`` / ``cer``
(:mod:`genmetrics.metrics.audio.asr_error_rate`) subclass: they put ASR and the
normaliser in front and hand :meth:`ErrorRateMetric.record` the counts (or a
:class:`~genmetrics.metrics._per_pair.Failed` for a clip without a usable text); the
components, corpus and per-sample arithmetic and bootstrap rows are this class's.

    >>> from genmetrics.metrics.text.wer import WER
    >>> m = WER()
    >>> m.update(["the cat sat on mat", "hello world"],
    ...          [["the cat sat on the mat"], ["hello world"]])
    >>> r = m.compute(per_sample=True)["wer"]
    >>> r.value, r.per_sample, r.components["deletions"]
    (0.125, [0.16666666666666666, 0.0], 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from genmetrics.errors import MetricError, UsageError
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics._per_pair import Failed
from genmetrics.metrics.text.error_rate import (
    NORMALIZERS,
    TOKENIZERS,
    EditCounts,
    edit_counts,
    normalizer,
)

FIELDS = ("substitutions", "deletions", "insertions", "hits")


class ErrorRateMetric(Metric):
    """Edit counts per sample (S, D, I, H); the rate of their sums is the value."""

    #: ``words`` or ``characters`` (:data:`.error_rate.TOKENIZERS`)
    unit_tokens: ClassVar[str] = "words"
    state_reductions = {"counts": "cat", "reasons": "cat"}
    sample_fields, reason_fields = ("counts",), ("reasons",)  # slices: no second ASR pass
    state_dtypes = {"counts": "int32"}

    def tokens(self, text: str) -> list[str]:
        """``text`` normalised (option ``normalize``) and split into tokens."""
        return TOKENIZERS[self.unit_tokens](normalizer(self.options["normalize"])(text))

    def record(self, counts: Iterable[EditCounts | Failed]) -> None:
        """Append each sample's counts (an empty reference is kept and reported as failed),
        or a :class:`Failed` with the reason the sample could not be scored."""
        rows = []
        for c in counts:
            if isinstance(c, Failed):
                rows.append([-1, -1, -1, -1])
                self.state["reasons"].append(c.reason)
            else:
                rows.append([c.substitutions, c.deletions, c.insertions, c.hits])
        if rows:
            self.state["counts"].append(rows)

    def signature_extra(self) -> dict[str, Any]:
        """Signature entries besides the options (the audio metrics: the recogniser)."""
        return {"tokens": self.unit_tokens}

    def failed_masks(self) -> dict[str, Any]:
        return {"reasons": self._counts()[:, 3] < 0}  # recorded as Failed

    def _counts(self) -> Any:
        import numpy as np

        return self.state["counts"].array().reshape(-1, 4).astype(np.int64)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        import numpy as np

        counts = self._counts()
        lost = counts[:, 3] < 0  # recorded as Failed: the reasons are in that order
        ref_len = np.where(lost, 0, counts[:, 0] + counts[:, 1] + counts[:, 3])
        edits = np.where(lost, 0, counts[:, :3].sum(axis=1))
        scored = ref_len > 0
        reasons = iter(self.state["reasons"])
        failed = [{"index": int(i), "reason": next(reasons) if lost[i] else
                   f"empty reference (normalize={self.options['normalize']}): "
                   f"{self.spec.name} undefined, {int(counts[i, 2])} {self.unit_tokens} "
                   "inserted"} for i in np.flatnonzero(~scored)]
        if not scored.any():
            if len(counts):
                raise MetricError(f"{self.spec.name}: none of the {len(counts)} samples could "
                                  f"be scored (first reason: {failed[0]['reason']})")
            self.require_samples(0)
        totals = counts[scored].sum(axis=0)
        components: dict[str, Any] = {f: int(v) for f, v in zip(FIELDS, totals, strict=True)}
        components["reference_tokens"] = int(ref_len[scored].sum())
        if failed:
            components["failed"] = failed
        values = None
        if per_sample:
            values = [int(e) / int(n) if n else None
                      for e, n in zip(edits.tolist(), ref_len.tolist(), strict=True)]
        value = int(edits[scored].sum()) / components["reference_tokens"]
        return {self.spec.name: self.result(value, n=int(scored.sum()), components=components,
                                            per_sample=values, **self.signature_extra())}

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        counts = self._counts()
        lost = counts[:, 3] < 0
        rows = np.column_stack([np.where(lost, 0, counts[:, :3].sum(axis=1)),
                                np.where(lost, 0, counts[:, 0] + counts[:, 1] + counts[:, 3])])
        return {self.spec.name: rows.astype(np.float64).reshape(-1, 2)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]

    def libraries(self) -> dict[str, str]:
        libs = {"rapidfuzz": library_version("rapidfuzz")}
        if self.options.get("normalize", "none") != "none":
            libs["transformers"] = library_version("transformers")
        if self.options.get("normalize") == "whisper":
            libs["whisper-normalizer"] = library_version("whisper-normalizer")
        return libs


def _text_options() -> tuple[Option, ...]:
    return (Option("normalize", "none", "text normalisation of both sides before scoring",
                   choices=NORMALIZERS),)


class _TextErrorRate(ErrorRateMetric):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        normalizer(self.options["normalize"])  # a missing spelling table fails here, early

    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError(f"{self.spec.name} needs one reference per sample")
        for k, refs in enumerate(references):
            if len(refs) != 1:
                raise UsageError(
                    f"{self.spec.name} compares each sample with exactly one reference; sample "
                    f"{k} of this batch has {len(refs)} (give one reference per sample, or "
                    "leave wer/cer out of multi-reference runs)")
        self.record(edit_counts(self.tokens(refs[0]), self.tokens(sample))
                    for sample, refs in zip(samples, references, strict=True))


class WER(_TextErrorRate):
    spec = MetricSpec(
        name="wer",
        modality="text",
        kind="paired",
        higher_is_better=False,
        unit="word error rate (edits / reference words)",
        value_range=(0.0, None),
        description="Word error rate against one reference (jiwer).",
        options=_text_options(),
        default=False,  # opt-in: one reference per sample, an ASR measure
    )
    unit_tokens = "words"


class CER(_TextErrorRate):
    """Character error rate: :class:`WER` on characters (spaces included, as jiwer).

        >>> m = CER()
        >>> m.update(["kitten"], [["sitting"]])
        >>> round(m.compute()["cer"].value, 4)
        0.4286
    """

    spec = MetricSpec(
        name="cer",
        modality="text",
        kind="paired",
        higher_is_better=False,
        unit="character error rate (edits / reference characters)",
        value_range=(0.0, None),
        description="Character error rate against one reference (jiwer).",
        options=_text_options(),
        default=False,  # opt-in: one reference per sample, an ASR measure
    )
    unit_tokens = "characters"
