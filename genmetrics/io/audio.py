"""Audio input: find sample / reference files, pair them, decode, mix down, resample.

* **Files**: WAV, FLAC and OGG (and MP3 where libsndfile supports it), any sample rate,
  8/16/24/32-bit integer or float, read with ``soundfile`` as float64 in [-1, 1].
* **Mono mix-down**: the mean of the channels (so a stereo file whose channels are
  identical gives exactly that channel).
* **Pairs** are matched by relative path without the extension (``clean/a/1.wav`` <->
  ``degraded/a/1.flac``); an unpaired name is an error listing the first few.
* **Lengths**: a pair whose lengths differ (after bringing both to one rate) gets a
  warning; metrics that compare sample by sample (SNR, SI-SNR, PESQ, STOI) use the
  first ``min(n, m)`` samples of both, MCD aligns the full clips with DTW.
* **Sample rates**: the two sides of a pair may differ: the reference is resampled to
  the sample's rate (soxr, very-high quality). Each metric then resamples the pair to
  the rate it needs (PESQ: 8 or 16 kHz) with :func:`resample`.
* **Bad files** (unreadable, empty, NaN or Inf samples) are skipped and named with the
  reason in the scorecard; the rest is scored.
* **A header that lies** about the length: libsndfile reads the frames actually present
  (when the header claims more) or the frames the header declares (when it claims
  fewer); either way the pair is scored and a warning names the file.
* **Clipped audio** is scored as it is (clipping is part of what the metrics judge).

    >>> import numpy as np
    >>> clip = AudioClip("a", np.zeros(16000), 16000)
    >>> resample(clip.waveform, 16000, 8000).shape
    (8000,)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmetrics.errors import InputError
from genmetrics.io.common import Skipped, display_path, files_by_stem, first_few

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class AudioClip:
    """A mono waveform (float64, nominally in [-1, 1]) and its sample rate."""

    id: str
    waveform: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.waveform) / self.sample_rate


def resample(waveform: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """Resample with soxr (very high quality); a no-op when the rates are equal."""
    if rate_from == rate_to:
        return waveform
    import soxr

    return soxr.resample(waveform, rate_from, rate_to, quality="VHQ")


def mix_down(data: np.ndarray) -> np.ndarray:
    """Frames x channels -> mono, the mean of the channels."""
    return data if data.ndim == 1 else data.mean(axis=1)


def header_problem(path: Path) -> str | None:
    """libsndfile's note when a file's header disagrees with its size, else None."""
    import soundfile as sf

    info = sf.info(str(path)).extra_info
    if "should be" in info or "Exiting parser" in info:
        return "the header disagrees with the file size (truncated or damaged file)"
    return None


def read_clip(path: Path, clip_id: str) -> AudioClip:
    """Decode one file; raises ``ValueError`` with a short reason when it cannot be used."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).replace(f"'{path}'", "file").replace(str(path), "file")
        raise ValueError(f"cannot decode audio: {reason}") from None
    if data.shape[0] == 0:
        raise ValueError("no audio frames")
    wave = mix_down(data)
    if not np.isfinite(wave).all():
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise ValueError(f"{bad} sample(s) are NaN or Inf")
    return AudioClip(clip_id, wave, int(rate))


def _audio_files(folder: Path) -> dict[str, Path]:
    return files_by_stem(folder, AUDIO_SUFFIXES)


@dataclass
class AudioPair:
    """A sample and its reference, both at the sample's rate (lengths may differ)."""

    id: str
    sample: AudioClip
    reference: AudioClip | None
    warning: str | None = None

    def metric_inputs(self) -> tuple[AudioClip, list[AudioClip]]:
        """What metrics get: the sample clip and a list holding its reference clip."""
        return self.sample, [] if self.reference is None else [self.reference]

    def digest_parts(self) -> tuple[list[str | bytes], list[str | bytes]]:
        """Sample and reference identity for the input digests (id, rate, float64 samples)."""
        def parts(clip: AudioClip | None) -> list[str | bytes]:
            if clip is None:
                return []
            return [self.id, str(clip.sample_rate), clip.waveform.astype("<f8").tobytes()]

        return parts(self.sample), parts(self.reference)


class AudioSource:
    """Pairs of audio files from two folders, decoded lazily one pair at a time."""

    def __init__(self, samples: Path, references: Sequence[Path]) -> None:
        if not samples.is_dir():
            raise InputError(f"{samples}: audio input must be a folder of audio files")
        if len(references) > 1:
            raise InputError("audio metrics take one reference folder")
        self.root = samples
        self.samples = _audio_files(samples)
        if not self.samples:
            raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {samples}")
        self.reference_root = references[0] if references else None
        self.references: dict[str, Path] = {}
        if self.reference_root is not None:
            if not self.reference_root.is_dir():
                raise InputError(f"{self.reference_root}: the reference must be a folder")
            self.references = _audio_files(self.reference_root)
            missing = sorted(set(self.samples) - set(self.references))
            if missing:
                raise InputError(f"{len(missing)} sample(s) have no reference in "
                                 f"{self.reference_root}: {first_few(missing)}")
            extra = sorted(set(self.references) - set(self.samples))
            if extra:
                raise InputError(f"{len(extra)} reference(s) have no sample in {samples}: "
                                 f"{first_few(extra)}")

    def __len__(self) -> int:
        return len(self.samples)

    def shard(self, rank: int, size: int) -> None:
        """Keep only this rank's contiguous block of samples (for torchrun)."""
        from genmetrics.distributed import shard_bounds

        start, stop = shard_bounds(len(self.samples), rank, size)
        self.samples = dict(list(self.samples.items())[start:stop])

    @property
    def has_references(self) -> bool:
        return self.reference_root is not None

    def __iter__(self) -> Iterator[AudioPair | Skipped]:
        for key, path in self.samples.items():
            name = display_path(path, self.root)
            try:
                sample = read_clip(path, key)
                notes = [f"sample: {w}" for w in [header_problem(path)] if w]
            except (ValueError, OSError) as exc:
                yield Skipped(name, str(exc))
                continue
            if self.reference_root is None:
                yield AudioPair(key, sample, None, "; ".join(notes) or None)
                continue
            ref_path = self.references[key]
            try:
                reference = read_clip(ref_path, key)
                notes += [f"reference: {w}" for w in [header_problem(ref_path)] if w]
            except (ValueError, OSError) as exc:
                yield Skipped(name, f"reference {display_path(ref_path, self.reference_root)}: "
                              f"{exc}")
                continue
            pair = align(sample, reference)
            if pair.warning:
                notes.append(pair.warning)
            pair.warning = "; ".join(notes) or None
            yield pair


def align(sample: AudioClip, reference: AudioClip) -> AudioPair:
    """Bring the reference to the sample's rate; note (not fix) a length difference."""
    warning = None
    ref_wave = resample(reference.waveform, reference.sample_rate, sample.sample_rate)
    if reference.sample_rate != sample.sample_rate:
        warning = (f"reference resampled from {reference.sample_rate} Hz to "
                   f"{sample.sample_rate} Hz")
    n, m = len(sample.waveform), len(ref_wave)
    if n != m:
        note = (f"lengths differ ({n} vs {m} samples at {sample.sample_rate} Hz): metrics "
                f"that compare sample by sample use the first {min(n, m)}; mcd aligns with DTW")
        warning = f"{warning}; {note}" if warning else note
    return AudioPair(sample.id, sample, AudioClip(sample.id, ref_wave, sample.sample_rate),
                     warning)


def open_audio(samples: Path, references: Sequence[Path] = ()) -> AudioSource:
    samples = Path(samples)
    for path in [samples, *references]:
        if not Path(path).exists():
            raise InputError(f"{path} does not exist")
    return AudioSource(samples, [Path(r) for r in references])
