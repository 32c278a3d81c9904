"""The shape shared by audio metrics: one value per pair, the corpus value their mean.

A subclass implements :meth:`PairedAudioMetric.score_pairs`, returning for each pair
either a float or a :class:`Failed` with the reason (e.g. PESQ's "no utterances
detected"). Failed pairs never abort the run: their per-sample value is ``None``
(``null`` in the scorecard), they are listed under the component ``failed`` with the
reason, and the corpus value is the mean over the pairs that have a value
(``math.fsum``, so independent of order and batching).

**Sample rates.** A sample and its reference may come at different rates. Each pair is
compared at :meth:`PairedAudioMetric.pair_rate`, chosen so that resampling never
removes a band the metric judges: by default the higher of the two rates (the clip at
the lower rate is brought up with :func:`~genmetrics.io.audio.resample`, soxr; that adds
no band, and the band it lacks counts against it). PESQ judges at 16 kHz (``wb``) or
8 kHz (``nb``), taking each clip straight there in its worker processes, and MCD at the
lower rate with its library's own resampler; both get the clips at their own rates
(``resamples_itself``). The rate of each pair is kept; when the scored pairs were
compared at more than one rate, the result's component ``rates`` counts them
(``{"16000": 12, "44100": 3}``).

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
from genmetrics.io.audio import AudioClip, resample
from genmetrics.metric import MetricResult, MetricSpec, library_version
from genmetrics.metrics._per_pair import Failed, PerPairMean

__all__ = ["Failed", "PairedAudioMetric", "MetricSpec"]


def _at(clip: AudioClip, rate: int) -> AudioClip:
    if clip.sample_rate == rate:
        return clip
    return AudioClip(clip.id, resample(clip.waveform, clip.sample_rate, rate), rate)


class PairedAudioMetric(PerPairMean):
    """Base class: per-pair values (or failures), mean over the scored pairs.

    ``equal_lengths``: when true (the default), each pair is cut to its shorter clip
    before :meth:`score_pairs`, for metrics that compare the signals sample by sample.
    ``resamples_itself``: when false (the default), both clips of a pair reach
    :meth:`score_pairs` at :meth:`pair_rate`; when true, each at its own rate.
    """

    equal_lengths: bool = True
    resamples_itself: bool = False
    # besides the values and reasons: the rate each pair was compared at
    state_reductions = {**PerPairMean.state_reductions, "rates": "cat"}
    state_dtypes = {**PerPairMean.state_dtypes, "rates": "int64"}
    sample_fields = (*PerPairMean.sample_fields, "rates")

    def pair_rate(self, sample_rate: int, reference_rate: int) -> int:
        """The rate a pair is compared at: the higher of its two rates, so that no band
        either clip holds is removed (subclasses judging a fixed band override it)."""
        return max(sample_rate, reference_rate)

    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        raise NotImplementedError

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[AudioClip]] | None = None) -> None:
        name = self.spec.name
        if references is None or len(references) != len(samples):
            raise UsageError(f"{name} needs one reference clip per sample")
        refs = []
        for ref in references:
            if len(ref) != 1:
                raise UsageError(f"{name} takes exactly one reference per sample")
            refs.append(ref[0])
        if not samples:
            return
        rates = [self.pair_rate(s.sample_rate, r.sample_rate)
                 for s, r in zip(samples, refs, strict=True)]
        if not self.resamples_itself:
            samples = [_at(s, k) for s, k in zip(samples, rates, strict=True)]
            refs = [_at(r, k) for r, k in zip(refs, rates, strict=True)]
        if self.equal_lengths:
            cut = [min(len(s.waveform), len(r.waveform)) for s, r in zip(samples, refs,
                                                                          strict=True)]
            samples = [AudioClip(s.id, s.waveform[:k], s.sample_rate)
                       for s, k in zip(samples, cut, strict=True)]
            refs = [AudioClip(r.id, r.waveform[:k], r.sample_rate)
                    for r, k in zip(refs, cut, strict=True)]
        outcomes = self.score_pairs(samples, refs)
        self.state["rates"].append(rates)
        self.record(outcomes)

    def scored_rates(self) -> dict[int, int]:
        """How many scored pairs were compared at each rate (``{}`` for a state saved
        before rates were kept)."""
        import numpy as np

        values, failed = self._values()
        rates = self.state["rates"].array()
        if len(rates) != len(values):
            return {}
        kept = rates[~failed]
        found, counts = np.unique(kept[kept > 0], return_counts=True)
        return dict(zip(found.tolist(), counts.tolist(), strict=True))

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        results = super().compute(per_sample)
        rates = self.scored_rates()
        if len(rates) > 1:
            for result in results.values():
                result.components["rates"] = {str(k): v for k, v in rates.items()}
        return results

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "rates" not in self.state:  # saved before rates were kept: unknown (0)
            from genmetrics.rows import Rows

            self.state["rates"] = Rows.of([0] * len(self.state["values"]), "int64")

    def signature(self, **extra: Any) -> dict[str, Any]:
        """Adds the decoder and resampler versions: both can move audio values."""
        sig = super().signature(**extra)
        sig.update({name: library_version(name) for name in ("soundfile", "soxr")})
        return sig
