"""Audio input: find sample / reference files, pair them, decode, mix down, resample.

* **Files**: WAV, FLAC and OGG (and MP3 where libsndfile supports it), any sample rate,
  8/16/24/32-bit integer or float, read with ``soundfile`` as float64 in [-1, 1].
* **Mono mix-down**: the mean of the channels (so a stereo file whose channels are
  identical gives exactly that channel).
* **Pairs** are matched by relative path without the extension (``clean/a/1.wav`` <->
  ``degraded/a/1.flac``). A sample without a reference is skipped, naming the reference
  it looked for; when no sample has one, or a reference has no sample, that is an error
  listing the first few. Two files of one name (``a.wav``, ``a.flac``) are both skipped
  (as samples), or skip their sample (as references).
* **Lengths**: a pair whose durations differ gets a warning; metrics that compare
  sample by sample (SNR, SI-SNR, PESQ, STOI) use the first ``min(n, m)`` samples of
  both once they are at one rate, MCD aligns the full clips with DTW.
* **Sample rates**: the two sides of a pair may differ. Both clips are kept as read,
  each at its own rate (and a warning names the two rates); each metric brings the pair
  to the rate it compares at, so that resampling never removes a band the metric
  judges (see :meth:`~genmetrics.metrics.audio._base.PairedAudioMetric.pair_rate`):
  SNR, SI-SNR and STOI bring the clip at the lower rate up to the higher one, PESQ
  takes each clip to 16 kHz (``wb``) or 8 kHz (``nb``), MCD to the lower of the two
  rates with the library's own resampler, as ``mel-cepstral-distance`` does.
* **Bad files** (unreadable, 0 bytes, not decodable, no frames, NaN or Inf samples, a
  sample rate outside 1000-768000 Hz, which only a damaged header gives) are skipped and
  named with the reason in the scorecard; the rest is scored. ``--on-error fail`` makes
  each of them an error instead. Other files in the folders (not audio) are listed in
  one warning per folder.
* **A header that lies** about the length: libsndfile reads the frames actually present
  (when the header claims more) or the frames the header declares (when it claims
  fewer); either way the pair is scored and a warning names the file.
* **Clipped audio** is scored as it is (clipping is part of what the metrics judge).
* **Transcripts and speaker references** (text-to-speech metrics: ``wer``, ``cer``,
  ``speaker_sim``) ride on each sample clip as ``clip.text`` and ``clip.speaker``
  (:class:`Metadata`): the text from ``--transcripts texts.jsonl`` or a ``.txt`` beside
  the clip, the prompt speaker's recording from ``--speaker-reference`` (one file, or a
  folder paired by name). A clip without one is scored by every other metric; those that
  need it name it as failed, with the reason.

    >>> import numpy as np
    >>> clip = AudioClip("a", np.zeros(16000), 16000)
    >>> resample(clip.waveform, 16000, 8000).shape
    (8000,)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmetrics.errors import InputError
from genmetrics.io.common import (
    Discovery,
    Skipped,
    Unusable,
    anonymous_parts,
    discover,
    display_path,
    first_few,
    item_hash,
    os_reason,
    printable,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: sample rates a real recording can have; others come from a damaged header (a rate of
#: 1 Hz would make resampling a 3 s reference to 16 kHz allocate gigabytes)
RATE_RANGE = (1000, 768000)


@dataclass
class AudioClip:
    """A mono waveform (float64, nominally in [-1, 1]) and its sample rate."""

    id: str
    waveform: np.ndarray
    sample_rate: int
    #: per-item metadata for text-to-speech metrics (see "Transcripts and speaker
    #: references" above): the text the clip should say, and the prompt speaker's
    #: recording; ``None`` when not given, :class:`~genmetrics.io.common.Unusable` (with
    #: the reason) when given but unusable
    text: str | Unusable | None = None
    speaker: AudioClip | Unusable | None = None
    #: the text the clip was generated from (text-to-audio: ``clap_score``), see
    #: :mod:`genmetrics.io.prompts`
    prompt: str | Unusable | None = None

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

    try:
        info = sf.info(os.fsencode(path)).extra_info
    except (RuntimeError, TypeError):  # it was just decoded, so this is not expected
        return None
    if "should be" in info or "Exiting parser" in info:
        return "the header disagrees with the file size (truncated or damaged file)"
    return None


def read_clip(path: Path, clip_id: str) -> AudioClip:
    """Decode one file; raises ``ValueError`` with a short reason when it cannot be used.

    >>> import tempfile
    >>> empty = Path(tempfile.mkdtemp()) / "a.wav"; _ = empty.write_bytes(b"")
    >>> read_clip(empty, "a")
    Traceback (most recent call last):
    ValueError: empty file (0 bytes)
    """
    import soundfile as sf

    try:
        with path.open("rb") as fh:
            if not fh.read(1):
                raise ValueError("empty file (0 bytes)")
    except OSError as exc:
        raise ValueError(f"cannot read: {os_reason(exc)}") from None
    try:
        # bytes: soundfile cannot encode a str path whose name is not valid UTF-8
        data, rate = sf.read(os.fsencode(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        for shown in (repr(os.fsencode(path)), f"'{path}'", str(path)):
            reason = reason.replace(shown, "file")
        raise ValueError(f"cannot decode audio: {reason}") from None
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"sample rate {rate} Hz is outside {RATE_RANGE[0]}-{RATE_RANGE[1]} "
                         "Hz (a damaged header?)")
    if data.shape[0] == 0:
        raise ValueError("no audio frames")
    wave = mix_down(data)
    if not np.isfinite(wave).all():
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise ValueError(f"{bad} sample(s) are NaN or Inf")
    return AudioClip(clip_id, wave, int(rate))


@dataclass
class AudioPair:
    """A sample and its reference, each at its own rate (lengths may differ)."""

    id: str
    sample: AudioClip
    reference: AudioClip | None
    warning: str | None = None
    #: the id is a position the Evaluator made up: the digests leave it out
    #: (:func:`~genmetrics.io.common.anonymous_parts`)
    synthetic_id: bool = False

    def metric_inputs(self) -> tuple[AudioClip, list[AudioClip]]:
        """What metrics get: the sample clip and a list holding its reference clip."""
        return self.sample, [] if self.reference is None else [self.reference]

    def missing(self) -> dict[str, str]:
        """Per-item inputs given for the run but unusable for this clip, with the reason."""
        found = {"transcript": self.sample.text, "speaker_reference": self.sample.speaker,
                 "prompt": self.sample.prompt}
        return {k: v.reason for k, v in found.items() if isinstance(v, Unusable)}

    def digest_parts(self) -> tuple[list[str | bytes], list[str | bytes]]:
        """Sample and reference identity for the input digests (id, rate, float64 samples)."""
        def parts(clip: AudioClip | None) -> list[str | bytes]:
            if clip is None:
                return []
            return [self.id, str(clip.sample_rate), clip.waveform.astype("<f8").tobytes()]

        return anonymous_parts(parts(self.sample), parts(self.reference), self.synthetic_id)

    def need_parts(self) -> dict[str, list[str | bytes]]:
        """Digest parts of each per-item input given (``transcript``, ``speaker_reference``),
        kept apart from the references: only the metrics that need an input
        (:attr:`MetricSpec.needs`) carry its digest, so adding ``--transcripts`` to a run
        leaves MCD's signature as it was."""
        found: dict[str, list[str | bytes]] = {}
        if isinstance(self.sample.text, str):
            found["transcript"] = ["text", self.sample.text]
        if isinstance(self.sample.prompt, str):
            found["prompt"] = ["prompt", self.sample.prompt]
        speaker = self.sample.speaker
        if isinstance(speaker, AudioClip):
            found["speaker_reference"] = ["speaker", str(speaker.sample_rate),
                                          speaker.waveform.astype("<f8").tobytes()]
        # tied to its sample as a reference is: by id, or by content when the id is made up
        tie = item_hash(*self.digest_parts()[0]).hex() if self.synthetic_id else self.id
        return {need: [tie, *parts] for need, parts in found.items()}


class AudioSource:
    """Pairs of audio files from two folders, decoded lazily one pair at a time."""

    def __init__(self, samples: Path, references: Sequence[Path],
                 transcripts: Path | None = None,
                 speaker_reference: Path | None = None,
                 prompts: Path | None = None) -> None:
        if not samples.is_dir():
            raise InputError(f"{samples}: audio input must be a folder of audio files")
        if len(references) > 1:
            raise InputError("audio metrics take one reference folder")
        self.root = samples
        self.found = discover(samples, AUDIO_SUFFIXES)
        #: the sample files by key, and the problems (e.g. two files of one name) as
        #: Skipped under keys that start with PROBLEM_KEY, in order
        self.samples: dict[str, Path | Skipped] = dict(self.found.entries)
        if not self.samples:
            others = self.found.others
            held = f" (it holds {len(others)} other file(s): {first_few(others)})" if others else ""
            raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in "
                             f"{samples}{held}")
        self.reference_root = references[0] if references else None
        self.reference_found: Discovery | None = None
        self.references: dict[str, Path] = {}
        #: why a reference name cannot be used (two files of one name, a broken link)
        self.reference_problems: dict[str, str] = {}
        if self.reference_root is not None:
            if not self.reference_root.is_dir():
                raise InputError(f"{self.reference_root}: the reference must be a folder")
            self.reference_found = discover(self.reference_root, AUDIO_SUFFIXES)
            self.references = self.reference_found.files
            ambiguous = self.reference_found.ambiguous
            self.reference_problems = {
                _stem(p.path): printable(f"reference: {ambiguous[_stem(p.path)]}"
                                         if _stem(p.path) in ambiguous
                                         else f"reference {p.path}: {p.reason}")
                for p in self.reference_found.problems}
            self._check_pairing()
        self.metadata = Metadata(self.root, self.found, transcripts, speaker_reference,
                                 prompts)

    @property
    def provides(self) -> frozenset[str]:
        """Per-item inputs this source carries (:attr:`MetricSpec.needs`)."""
        return self.metadata.provides

    def _check_pairing(self) -> None:
        """No sample with a reference, or a reference without a sample: an error."""
        names = self._sample_names()
        refs = set(self.references) | set(self.reference_problems)
        if names and not names & refs:
            raise InputError(f"no file in {self.reference_root} has the name of a sample "
                             f"(e.g. {sorted(names)[0]}); references pair with samples by "
                             "relative path without the extension")
        extra = sorted(set(self.references) - names)
        if extra:
            raise InputError(f"{len(extra)} reference(s) have no sample in {self.root}: "
                             f"{first_few(extra)}")

    def _sample_names(self) -> set[str]:
        """The names of the samples, also of those that cannot be read (a broken link)."""
        return set(self.found.files) | {_stem(p.path) for p in self.found.problems}

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

    def warnings(self) -> list[dict[str, str]]:
        """Run-level notes: files in the folders that are not audio, folder links not
        followed, reference entries that cannot be read and pair with no sample."""
        notes = self.found.warnings("samples")
        if self.metadata.prompt_file is not None:
            note = self.metadata.prompt_file.unmatched_note(list(self.found.files))
            if note is not None:
                notes.append(note)
        if self.reference_found is not None:
            notes += self.reference_found.warnings("reference")
            names = self._sample_names()
            for stem, problem in self.reference_problems.items():
                if stem not in names:
                    notes.append({"path": str(self.reference_root), "message": problem})
        return [{k: printable(v) for k, v in note.items()} for note in notes]

    def __iter__(self) -> Iterator[AudioPair | Skipped]:
        for key, path in self.samples.items():
            if isinstance(path, Skipped):
                yield Skipped(printable(path.path), path.reason)
                continue
            name = printable(display_path(path, self.root))
            clip_id = printable(key)  # the pair's id in the scorecard
            try:
                sample = read_clip(path, clip_id)
                notes = [f"sample: {w}" for w in [header_problem(path)] if w]
            except (ValueError, OSError) as exc:
                yield Skipped(name, str(exc))
                continue
            self.metadata.attach(key, path, sample)
            if self.reference_root is None:
                yield AudioPair(clip_id, sample, None, "; ".join(notes) or None)
                continue
            ref_path = self.references.get(key)
            if ref_path is None:
                yield Skipped(name, self.reference_problems.get(key) or printable(
                    f"no reference: no file named {clip_id} (any of "
                    f"{', '.join(AUDIO_SUFFIXES)}) in {self.reference_root}"))
                continue
            try:
                reference = read_clip(ref_path, clip_id)
                notes += [f"reference: {w}" for w in [header_problem(ref_path)] if w]
            except (ValueError, OSError) as exc:
                ref_name = printable(display_path(ref_path, self.reference_root))
                yield Skipped(name, f"reference {ref_name}: {exc}")
                continue
            pair = align(sample, reference)
            if pair.warning:
                notes.append(pair.warning)
            pair.warning = "; ".join(notes) or None
            yield pair


def _stem(relative: str) -> str:
    return Path(relative).with_suffix("").as_posix()


def resampled_length(n: int, rate_from: int, rate_to: int) -> int:
    """The length :func:`resample` gives ``n`` samples: ``n * rate_to / rate_from``
    rounded half up (soxr's rule).

    >>> resampled_length(5, 16000, 8000), resampled_length(136977, 44100, 16000)
    (3, 49697)
    """
    return (2 * n * rate_to + rate_from) // (2 * rate_from)


def align(sample: AudioClip, reference: AudioClip) -> AudioPair:
    """Pair two clips as they are (each at its own rate); note, not fix, a difference
    in rate or length. Lengths are compared at the higher of the two rates."""
    notes = []
    s_rate, r_rate = sample.sample_rate, reference.sample_rate
    if s_rate != r_rate:
        notes.append(f"sample at {s_rate} Hz, reference at {r_rate} Hz: each metric brings "
                     "them to one rate without removing a band it judges (the rate is in "
                     "its signature or components)")
    rate = max(s_rate, r_rate)
    n = resampled_length(len(sample.waveform), s_rate, rate)
    m = resampled_length(len(reference.waveform), r_rate, rate)
    if n != m:
        notes.append(f"lengths differ ({n} vs {m} samples at {rate} Hz): metrics that "
                     f"compare sample by sample use the first {min(n, m)}; mcd aligns with DTW")
    reference = AudioClip(sample.id, reference.waveform, r_rate)
    return AudioPair(sample.id, sample, reference, "; ".join(notes) or None)


class Metadata:
    """Transcripts and speaker references of a folder of clips (text-to-speech metrics).

    * **Transcripts** (what each clip should say): ``transcripts``, a JSON Lines file of
      ``{"id": ..., "text": ...}`` whose ids are the clips' names (relative path without
      the extension), or else a ``.txt`` (UTF-8) beside each clip, of the same name --
      read when at least half of the clips have one; fewer are not transcripts but one
      run-level note naming the count.
    * **Speaker reference** (the prompt speaker's recording): one audio file for every
      clip, or a folder paired with the clips by name.
    * **Prompts** (text-to-audio, ``clap_score``): ``prompts``, a JSON Lines file of
      ``{"id": ..., "prompt": ...}`` (:mod:`genmetrics.io.prompts`) only: a ``.txt``
      beside a clip is its transcript (what a TTS clip should say), never its prompt.

    A clip without one gets :class:`~genmetrics.io.common.Unusable` with the reason; the
    metrics that need it record that clip as failed, the others score it.
    """

    def __init__(self, root: Path, found: Discovery, transcripts: Path | None,
                 speaker_reference: Path | None, prompts: Path | None = None) -> None:
        from genmetrics.io.prompts import PromptFile

        self.root = root
        self.prompt_file = None if prompts is None else PromptFile.read(prompts)
        if self.prompt_file is not None:
            self.prompt_file.check_keys(found.files, array=False)
        self.transcripts_path = transcripts
        self.texts: dict[str, str] | None = None
        self.beside = False  # transcripts are .txt files beside the clips
        if transcripts is not None:
            self.texts = read_transcripts(transcripts)
        else:
            txt = [o for o in found.others if o.lower().endswith(".txt")
                   and _stem(o) in found.files]
            if txt:
                found.others[:] = [o for o in found.others if o not in set(txt)]
                # transcripts when at least half of the clips have one (the others are
                # then named as failed by wer/cer); a few stray .txt files are notes
                self.beside = 2 * len(txt) >= len(found.files)
                if not self.beside:
                    found.notes.append(
                        f"{len(txt)} of {len(found.files)} clips have a .txt beside them "
                        f"({first_few(txt)}), fewer than half: not read as transcripts "
                        "(put one beside every clip, or pass --transcripts texts.jsonl)")
        self.speaker_path = speaker_reference
        self.speaker_clip: AudioClip | None = None
        self.speakers: dict[str, Path] = {}
        self.speaker_problems: dict[str, str] = {}
        if speaker_reference is not None:
            if not speaker_reference.exists():
                raise InputError(f"--speaker-reference {speaker_reference} does not exist")
            if speaker_reference.is_dir():
                spk = discover(speaker_reference, AUDIO_SUFFIXES)
                self.speakers = spk.files
                self.speaker_problems = {_stem(p.path): p.reason for p in spk.problems}
                if not set(self.speakers) & set(found.files):
                    raise InputError(f"no file in {speaker_reference} has the name of a "
                                     "clip; speaker references pair with clips by relative "
                                     "path without the extension (or give one file for all)")
            else:
                try:
                    self.speaker_clip = read_clip(speaker_reference, "speaker")
                except (ValueError, OSError) as exc:
                    raise InputError(f"--speaker-reference {speaker_reference}: {exc}") from None

    @property
    def provides(self) -> frozenset[str]:
        have = set()
        if self.texts is not None or self.beside:
            have.add("transcript")
        if self.speaker_path is not None:
            have.add("speaker_reference")
        if self.prompt_file is not None:  # a .txt beside a clip is its transcript only
            have.add("prompt")
        return frozenset(have)

    def attach(self, key: str, path: Path, clip: AudioClip) -> None:
        """Set ``clip.text`` and ``clip.speaker`` (the values, or why they are missing)."""
        if self.texts is not None:
            text = self.texts.get(key)
            clip.text = text if text is not None else Unusable(printable(
                f"no transcript: no id {key!r} in {self.transcripts_path}"))
        elif self.beside:
            clip.text = transcript_beside(path)
        if clip.text == "" or (isinstance(clip.text, str) and not clip.text.strip()):
            clip.text = Unusable("empty transcript")
        if self.prompt_file is not None:
            clip.prompt = self.prompt_file.lookup(key)
        if self.speaker_clip is not None:
            clip.speaker = self.speaker_clip
        elif self.speaker_path is not None:
            ref = self.speakers.get(key)
            if ref is None:
                clip.speaker = Unusable(printable(self.speaker_problems.get(key) or (
                    f"no speaker reference: no file named {key} in {self.speaker_path}")))
            else:
                try:
                    clip.speaker = read_clip(ref, key)
                except (ValueError, OSError) as exc:
                    clip.speaker = Unusable(printable(f"speaker reference "
                                                      f"{display_path(ref, self.speaker_path)}"
                                                      f": {exc}"))


def transcript_beside(path: Path) -> str | Unusable:
    """The text of the ``.txt`` of the same name beside an audio file (any case of
    ``.txt``), stripped; :class:`Unusable` when there is none or it cannot be read."""
    for suffix in (".txt", ".TXT", ".Txt"):
        txt = path.with_suffix(suffix)
        if txt.is_file():
            try:
                return txt.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                return Unusable(printable(f"transcript {txt.name}: cannot read: {exc}"))
    return Unusable(printable(f"no transcript: no {path.with_suffix('.txt').name} beside "
                              "the clip"))


def read_transcripts(path: Path) -> dict[str, str]:
    """``{"id": ..., "text": ...}`` per line -> {id: text}; a bad line is an error.

        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "t.jsonl"
        >>> _ = f.write_text('{"id": "a", "text": "hello"}\\n\\n{"id": "b", "text": ""}\\n')
        >>> read_transcripts(f)
        {'a': 'hello', 'b': ''}
    """
    import json

    if not path.is_file():
        raise InputError(f"--transcripts {path} does not exist or is not a file")
    texts: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--transcripts {path}: cannot read: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key, text = row["id"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"--transcripts {path} line {n}: expected a JSON object "
                             '{"id": "clip name", "text": "what it should say"}') from None
        if not isinstance(text, str):
            raise InputError(f"--transcripts {path} line {n}: text is not a string")
        key = str(key)
        if key in texts:
            raise InputError(f"--transcripts {path} line {n}: id {key!r} appears twice")
        texts[key] = text.strip()
    return texts


def open_audio(samples: Path, references: Sequence[Path] = (), *,
               transcripts: Path | None = None,
               speaker_reference: Path | None = None,
               prompts: Path | None = None) -> AudioSource:
    samples = Path(samples)
    for path in [samples, *references]:
        if not Path(path).exists():
            raise InputError(f"{path} does not exist")
    return AudioSource(samples, [Path(r) for r in references],
                       None if transcripts is None else Path(transcripts),
                       None if speaker_reference is None else Path(speaker_reference),
                       None if prompts is None else Path(prompts))
