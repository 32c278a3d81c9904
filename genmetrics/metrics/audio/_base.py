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

from collections.abc import Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import MetricSpec, library_version
from genmetrics.metrics._per_pair import Failed, PerPairMean

__all__ = ["Failed", "PairedAudioMetric", "MetricSpec"]


class PairedAudioMetric(PerPairMean):
    """Base class: per-pair values (or failures), mean over the scored pairs.

    ``equal_lengths``: when true (the default), each pair is cut to its shorter clip
    before :meth:`score_pairs`, for metrics that compare the signals sample by sample.
    """

    equal_lengths: bool = True

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
        self.record(self.score_pairs(samples, refs))

    def signature(self, **extra: Any) -> dict[str, Any]:
        """Adds the decoder and resampler versions: both can move audio values."""
        sig = super().signature(**extra)
        sig.update({name: library_version(name) for name in ("soundfile", "soxr")})
        return sig
