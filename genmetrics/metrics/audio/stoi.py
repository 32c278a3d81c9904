"""STOI (short-time objective intelligibility), pair by pair identical to ``pystoi.stoi``.

For each pair the value is exactly::

    pystoi.stoi(reference, sample, sample_rate, extended=extended)

on the float64 waveforms genmetrics decodes (clean speech first, then the degraded
sample). A sample and a reference at different rates are handed over at the higher of
the two (the other clip resampled up with soxr, see :mod:`._base`), so the reference
keeps its whole band: an 8 kHz sample is judged against everything a 16 kHz reference
holds up to pystoi's 5 kHz, not against a reference cut to 4 kHz. pystoi resamples both
to 10 kHz itself, drops the frames where the reference
is more than 40 dB below its loudest frame, and averages the correlations of 384 ms
segments of one-third-octave band envelopes. Higher is better; the value is a mean of
correlations, about 0-1 for speech (1: the sample is as intelligible as the reference).
Option ``extended`` (default false) selects ESTOI (Jensen and Taal, 2016); pystoi's
ESTOI adds noise of size ``eps`` drawn from numpy's global random generator, so its
last digits (about 1e-15) can vary from run to run. The corpus value is the mean over
the scored pairs (see :mod:`._base`); the signature records ``extended`` and the
pystoi version.

Pairs that STOI cannot score fail (per-sample value ``None``, reason under the
component ``failed``) instead of giving pystoi's placeholder numbers:

* **too short**: fewer than 30 STFT frames (about 0.4 s of speech at 10 kHz) remain
  after silent frames are removed; pystoi warns and returns 1e-5. Clips of a few
  frames make pystoi raise; the reason names the clip's length and the error.
* **silent reference** (all zeros): pystoi returns 0.0, which says nothing about the
  sample.
* a NaN result (only possible for in-memory clips with NaN or Inf samples).

    >>> STOI(extended=True).signature()["extended"]
    True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from genmetrics.io.audio import AudioClip
from genmetrics.metric import Option, library_version
from genmetrics.metrics.audio._base import Failed, MetricSpec, PairedAudioMetric

__all__ = ["STOI", "score_pair"]

TOO_FEW_FRAMES = ("not enough speech: fewer than 30 STFT frames (about 0.4 s at 10 kHz) "
                  "remain after removing silent frames; pystoi would return 1e-05")


def score_pair(reference: Any, degraded: Any, sample_rate: int,
               extended: bool = False) -> float | Failed:
    """STOI of one pair, or :class:`Failed` with the reason; never raises."""
    from pystoi import stoi

    if not reference.any():
        return Failed("silent reference: STOI undefined")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(stoi(reference, degraded, sample_rate, extended=extended))
    except Exception as exc:  # e.g. AxisError for clips of a few frames
        seconds = len(reference) / sample_rate
        return Failed(f"pystoi failed on a clip of {len(reference)} samples ({seconds:.3f} s "
                      f"at {sample_rate} Hz): {type(exc).__name__}: {exc}")
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return Failed(TOO_FEW_FRAMES)
    if not math.isfinite(value):
        return Failed(f"pystoi returned {value}")
    return value


class STOI(PairedAudioMetric):
    """STOI / ESTOI via ``pystoi``; see the module docstring."""

    spec = MetricSpec(
        name="stoi",
        modality="audio",
        kind="paired",
        higher_is_better=True,
        unit="STOI, 0-1",
        description="Short-time objective intelligibility (Taal et al., 2011), pystoi; "
        "extended=true for ESTOI",
        value_range=(None, 1.0),
        options=(
            Option("extended", False, "extended STOI (ESTOI, Jensen and Taal 2016)",
                   type=bool),
        ),
    )

    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        # pairs arrive cut to equal lengths (PairedAudioMetric.equal_lengths)
        return [score_pair(r.waveform, s.waveform, s.sample_rate, self.options["extended"])
                for s, r in zip(samples, references, strict=True)]

    def libraries(self) -> dict[str, str]:
        return {"pystoi": library_version("pystoi")}


