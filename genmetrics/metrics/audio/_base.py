"""The shape shared by audio metrics: one value per pair, the corpus value their mean.

A subclass implements :meth:`PairedAudioMetric.score_pairs`, returning for each pair
either a float or a :class:`Failed` with the reason (e.g. PESQ's "no utterances
detected"). Failed pairs never abort the run: their per-sample value is ``None``
(``null`` in the scorecard), they are listed under the component ``failed`` with the
reason, and the corpus value is the mean over the pairs that have a value
(``math.fsum``, so independent of order and batching).

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> class Peak(PairedAudioMetric):
    ...     spec = MetricSpec(name="peak", modality="audio", kind="paired",
    ...                       higher_is_better=True, unit="-")
    ...     def score_pairs(self, samples, references):
    ...         return [float(abs(s.waveform).max()) if s.waveform.any() else Failed("silent")
    ...                 for s in samples]
    >>> m = Peak()
    >>> clips = [AudioClip("a", np.array([0.0, 0.5]), 8000), AudioClip("b", np.zeros(2), 8000)]
    >>> m.update(clips, [[c] for c in clips])
    >>> r = m.compute(per_sample=True)["peak"]
    >>> r.value, r.per_sample, r.components["failed"]
    (0.5, [0.5, None], [{'index': 1, 'reason': 'silent'}])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import Metric, MetricResult, MetricSpec, library_version

__all__ = ["Failed", "PairedAudioMetric", "MetricSpec"]


@dataclass(frozen=True)
class Failed:
    """A pair the metric could not score, and why."""

    reason: str


class PairedAudioMetric(Metric):
    """Base class: per-pair values (or failures), mean over the scored pairs.

    ``equal_lengths``: when true (the default), each pair is cut to its shorter clip
    before :meth:`score_pairs`, for metrics that compare the signals sample by sample.
    """

    equal_lengths: bool = True
    _device: str | None = None  # option "device", resolved on first use

    # per pair: the value, or None; and the failure reason, or None
    state_reductions = {"values": "cat", "reasons": "cat"}

    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        raise NotImplementedError

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[AudioClip]] | None = None) -> None:
        name = self.spec.name
        if references is None or len(references) != len(samples):
            raise UsageError(f"{name} needs one reference clip per sample")
        refs = []
        for sample, ref in zip(samples, references, strict=True):
            if len(ref) != 1:
                raise UsageError(f"{name} takes exactly one reference per sample")
            if ref[0].sample_rate != sample.sample_rate:
                raise UsageError(f"{name}: sample {sample.id} and its reference differ in "
                                 "sample rate")
            refs.append(ref[0])
        if not samples:
            return
        if self.equal_lengths:
            cut = [min(len(s.waveform), len(r.waveform)) for s, r in zip(samples, refs,
                                                                          strict=True)]
            samples = [AudioClip(s.id, s.waveform[:k], s.sample_rate)
                       for s, k in zip(samples, cut, strict=True)]
            refs = [AudioClip(r.id, r.waveform[:k], r.sample_rate)
                    for r, k in zip(refs, cut, strict=True)]
        for out in self.score_pairs(samples, refs):
            if isinstance(out, Failed):
                self.state["values"].append(None)
                self.state["reasons"].append(out.reason)
            elif not math.isfinite(out):
                self.state["values"].append(None)
                self.state["reasons"].append(f"value is {out}")
            else:
                self.state["values"].append(float(out))
                self.state["reasons"].append(None)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        values, reasons = self.state["values"], self.state["reasons"]
        scored = [v for v in values if v is not None]
        if not scored:
            if values:
                raise MetricError(f"{self.spec.name}: none of the {len(values)} pairs could be "
                                  f"scored (first reason: {next(r for r in reasons if r)})")
            self.require_samples(0)
        components: dict[str, Any] = {}
        failed = [{"index": i, "reason": r} for i, r in enumerate(reasons) if r is not None]
        if failed:
            components["failed"] = failed
        return {self.spec.name: self.result(
            math.fsum(scored) / len(scored), n=len(scored), components=components,
            per_sample=list(values) if per_sample else None, **self.signature_extra())}

    def signature(self, **extra: Any) -> dict[str, Any]:
        """Adds the decoder and resampler versions: both can move audio values."""
        sig = super().signature(**extra)
        sig.update({name: library_version(name) for name in ("soundfile", "soxr")})
        return sig

    def device(self) -> str:
        """The torch device of option ``device`` (``auto`` resolved once, on first use)."""
        if self._device is None:
            from genmetrics.features.causal_lm import resolve_device

            self._device = resolve_device(self.options["device"])
        return self._device

    def signature_extra(self) -> dict[str, Any]:
        """Fields this metric adds to its signature (e.g. the rate it resamples to)."""
        return {}

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        rows = [[v, 1.0] if v is not None else [0.0, 0.0] for v in self.state["values"]]
        return {self.spec.name: np.asarray(rows, dtype=np.float64).reshape(-1, 2)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]
