"""Intelligibility of generated speech: word / character error rate of an ASR transcript
against the text each clip should say (what text-to-speech papers report as WER / CER).

Per clip: transcribe it (:mod:`genmetrics.features.asr`: ``whisper-large-v3`` by
default, ``pocketsphinx`` offline), normalise both the transcript and the expected text
(option ``normalize``: ``whisper``, Whisper's English normaliser, the papers' choice;
``basic``; ``none``), split into words (``wer``) or characters (``cer``) and count the
Levenshtein edits with :func:`genmetrics.metrics.text.error_rate.edit_counts`. From the
counts on, these metrics *are* the text ``wer``/``cer``
(:class:`genmetrics.metrics.text.wer.ErrorRateMetric`, their base class), equal to
``jiwer``: the corpus value is total edits / total reference tokens
(``(S + D + I) / (S + D + H)`` summed over the clips, as ``jiwer.wer`` over a list); the
per-sample value is the clip's own rate; the components are the summed counts
``substitutions``, ``deletions``, ``insertions``, ``hits`` and ``reference_tokens``.

The expected text comes from ``--transcripts texts.jsonl``, a ``.txt`` beside each clip
or ``Evaluator.update(waves, texts=[...], sample_rate=...)``. A clip whose text is
missing or empty (also after normalisation) is named with its reason under the component
``failed`` (the runner counts such clips in one warning; other metrics still score them),
and the rest are scored. With ``pocketsphinx`` the numbers are only good for ordering
systems over many clips (corpus WER 0.65 on six clean espeak-ng sentences; see
:mod:`genmetrics.features.asr`). ``cer`` takes the ``wer`` settings it is not given
(``--set wer.asr=pocketsphinx`` serves both, and each clip is transcribed once).

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> m = AudioWER(asr="pocketsphinx", normalize="basic")
    >>> silent = AudioClip("a", np.zeros(16000), 16000, text="Hello world")
    >>> m.update([silent], [[]])
    >>> r = m.compute(per_sample=True)["wer"]
    >>> r.value, r.n, r.signature["asr"]
    (1.0, 1, 'pocketsphinx')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from genmetrics.errors import MetricUnavailable
from genmetrics.features.asr import WHISPER_DEFAULT, WHISPER_MAX_SECONDS, load_asr
from genmetrics.io.audio import AudioClip
from genmetrics.io.common import Unusable
from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics._per_pair import Failed
from genmetrics.metrics.text.error_rate import NORMALIZERS, EditCounts, edit_counts, normalizer
from genmetrics.metrics.text.wer import ErrorRateMetric


def _options() -> tuple[Option, ...]:
    return (
        Option("asr", WHISPER_DEFAULT, f"speech recogniser: {WHISPER_DEFAULT} (transformers; "
               "from the asset or Hugging Face cache), pocketsphinx (offline, weak), or the "
               "folder of a Whisper model"),
        Option("normalize", "whisper", "text normaliser applied to transcript and "
               "expected text", choices=NORMALIZERS),
        Option("fp16", False, "Whisper on CUDA in float16", type=bool),
        Option("max_new_tokens", 440, "Whisper: longest transcript in tokens", type=int),
        Option("batch_size", 8, "Whisper: clips per forward pass", type=int,
               affects_values=False),
        Option("device", "auto", "auto (CUDA when present), cpu or cuda[:N]",
               affects_values=False),
    )


class _ASRErrorRate(ErrorRateMetric):
    """Shared by :class:`AudioWER` and :class:`AudioCER`: the ASR step in front of the text
    :class:`~genmetrics.metrics.text.wer.ErrorRateMetric` (``unit_tokens``: the token)."""

    merge_ignores = frozenset({"batch_size", "device"})

    def _asr(self) -> Any:
        from genmetrics.features.causal_lm import resolve_device

        o = self.options
        device = "cpu" if o["asr"] == "pocketsphinx" else resolve_device(o["device"])
        return load_asr(o["asr"], device, o["fp16"], o["batch_size"], o["max_new_tokens"])

    def preflight(self) -> None:
        self._asr()
        normalizer(self.options["normalize"])

    def default_unavailable(self) -> str | None:
        try:
            self._asr()
        except MetricUnavailable as exc:
            return str(exc)
        return None

    def signature_extra(self) -> dict[str, Any]:
        return {**super().signature_extra(), **self._asr().signature()}

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        asr = self._asr()
        outcomes: list[EditCounts | Failed | None] = [None] * len(samples)
        todo = []
        for k, clip in enumerate(samples):
            text = clip.text
            if text is None:
                outcomes[k] = Failed("no transcript given for this clip (--transcripts, a "
                                     ".txt beside it, or Evaluator.update(texts=...))")
            elif isinstance(text, Unusable):
                outcomes[k] = Failed(text.reason)
            elif not self.tokens(text):
                outcomes[k] = Failed(f"the transcript is empty after normalize="
                                     f"{self.options['normalize']}: {text[:60]!r}")
            elif asr.name == "whisper" and clip.seconds > WHISPER_MAX_SECONDS:
                outcomes[k] = Failed(f"clip is {clip.seconds:.1f} s; Whisper transcribes "
                                     f"{WHISPER_MAX_SECONDS:g} s windows (split the clip)")
            else:
                todo.append(k)
        heard = asr.transcribe([samples[k].waveform for k in todo],
                               [samples[k].sample_rate for k in todo])
        for k, hyp in zip(todo, heard, strict=True):
            outcomes[k] = edit_counts(self.tokens(samples[k].text),  # type: ignore[arg-type]
                                      self.tokens(hyp))
        self.record(o for o in outcomes if o is not None)


class AudioWER(_ASRErrorRate):
    """Word error rate of the ASR transcript against the expected text."""

    unit_tokens = "words"
    spec = MetricSpec(
        name="wer", modality="audio", kind="paired", needs=("transcript",),
        higher_is_better=False, unit="edits per reference word",
        description="word error rate of an ASR transcript (Whisper; pocketsphinx offline) "
                    "against the text the clip should say",
        value_range=(0.0, None), options=_options())


class AudioCER(_ASRErrorRate):
    """Character error rate of the ASR transcript against the expected text."""

    unit_tokens = "characters"
    #: the ASR settings not given to cer come from wer's (one transcription per clip)
    options_from: ClassVar[str] = "wer"
    spec = MetricSpec(
        name="cer", modality="audio", kind="paired", needs=("transcript",),
        higher_is_better=False, unit="edits per reference character",
        description="character error rate of an ASR transcript against the text the clip "
                    "should say", value_range=(0.0, None), options=_options())


__all__ = ["AudioWER", "AudioCER"]
