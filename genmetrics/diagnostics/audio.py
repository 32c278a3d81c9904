"""Audio diagnostics: clipping, silence and DC offset of each sample's waveform.

Measured on the waveform the metrics get: mono (the mean of the file's channels), at
the file's sample rate, full scale = 1.0 (16-bit PCM is read as ``x / 32768``).

* ``clipping_ratio`` (per sample, flagged above 0.001): the fraction of samples with
  ``|x| >= 0.999``. Audio peak-normalised to full scale touches it at a few peaks;
  more than 0.1% of the samples there means flattened (clipped) waveforms.
* ``silence_ratio`` (per sample, flagged above 0.5): the fraction of 20 ms frames
  (non-overlapping; a tail shorter than a frame is left out, a clip shorter than one
  frame is one frame) whose RMS is below -60 dBFS (RMS < 0.001 of full scale).
* ``dc_offset`` (per sample, flagged above 0.01): ``|mean(x)|``, a constant offset that
  wastes headroom and clicks at the start and end of playback.

For each check the scorecard's value is the mean over samples. Nothing but these three
numbers per sample is looked at, and only the flagged ones are kept.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip, AudioPair
    >>> quiet = AudioClip("quiet", np.zeros(1600), 16000)
    >>> diag = AudioDiagnostics()
    >>> diag.update([AudioPair("quiet", quiet, None)])
    >>> diag.result()["silence_ratio"]["flagged"]
    [{'id': 'quiet', 'value': 1.0}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.diagnostics import ABOVE, Diagnostics, SampleCheck, checked_thresholds

#: default thresholds (override with ``collector("audio", name=value)``)
THRESHOLDS = {
    "clipping_ratio": 0.001,  # fraction of samples at >= 0.999 of full scale
    "silence_ratio": 0.5,  # fraction of 20 ms frames below -60 dBFS RMS
    "dc_offset": 0.01,  # |mean|, full scale = 1
}
CLIP_LEVEL = 0.999
FRAME_S = 0.02
SILENCE_DBFS = -60.0


def clipping_ratio(waveform: np.ndarray, level: float = CLIP_LEVEL) -> float:
    """The fraction of samples at or beyond ``level`` of full scale.

    >>> clipping_ratio(np.array([0.0, 1.0, -1.0, 0.5]))
    0.5
    """
    return float(np.count_nonzero(np.abs(waveform) >= level) / waveform.size)


def silence_ratio(waveform: np.ndarray, sample_rate: int, frame_s: float = FRAME_S,
                  dbfs: float = SILENCE_DBFS) -> float:
    """The fraction of ``frame_s`` frames whose RMS is below ``dbfs`` (re full scale 1).

    >>> silence_ratio(np.r_[np.zeros(320), np.full(320, 0.1)], 16000)
    0.5
    """
    frame = max(1, round(frame_s * sample_rate))
    count = waveform.size // frame
    if count == 0:
        frames = waveform[None, :]
    else:
        frames = waveform[:count * frame].reshape(count, frame)
    mean_square = np.einsum("ij,ij->i", frames, frames) / frames.shape[1]
    return float(np.count_nonzero(mean_square < 10.0 ** (dbfs / 10.0)) / frames.shape[0])


def dc_offset(waveform: np.ndarray) -> float:
    """``|mean(waveform)|``.

    >>> dc_offset(np.array([0.1, 0.3]))
    0.2
    """
    return float(abs(waveform.mean()))


class AudioDiagnostics(Diagnostics):
    """Clipping, silence and DC offset per sample (see the module docstring)."""

    modality = "audio"

    def __init__(self, **thresholds: float) -> None:
        super().__init__()
        self.thresholds = t = checked_thresholds(THRESHOLDS, thresholds)
        self.checks = {
            "clipping_ratio": SampleCheck(t["clipping_ratio"], ABOVE, (
                f"fraction of the samples at or beyond {CLIP_LEVEL} of full scale (clipped "
                "waveforms); value: the mean over clips")),
            "silence_ratio": SampleCheck(t["silence_ratio"], ABOVE, (
                f"fraction of {FRAME_S * 1000:g} ms frames whose RMS is below "
                f"{SILENCE_DBFS:g} dBFS (silent or nearly empty outputs); value: the mean")),
            "dc_offset": SampleCheck(t["dc_offset"], ABOVE, (
                "absolute mean of the waveform, full scale = 1 (a constant offset); value: "
                "the mean over clips")),
        }

    def update(self, items: Sequence[Any]) -> None:
        for item in items:
            clip = item.sample
            wave = np.asarray(clip.waveform, dtype=np.float64)
            if not wave.size:
                continue
            self.checks["clipping_ratio"].add(item.id, clipping_ratio(wave))
            self.checks["silence_ratio"].add(item.id, silence_ratio(wave, clip.sample_rate))
            self.checks["dc_offset"].add(item.id, dc_offset(wave))

    def merge(self, other: Diagnostics) -> None:
        assert isinstance(other, AudioDiagnostics)
        for name, check in self.checks.items():
            check.merge(other.checks[name])

    def result(self) -> dict[str, dict[str, Any]]:
        return {name: check.entry() for name, check in self.checks.items() if check.n}
