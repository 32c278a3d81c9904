"""Intelligibility of generated speech: word / character error rate of an ASR transcript
against the text each clip should say (what text-to-speech papers report as WER / CER).

Per clip: transcribe it (:mod:`genmetrics.features.asr`: ``whisper-large-v3`` by
default, ``pocketsphinx`` offline), normalise both the transcript and the expected text
(option ``normalize``: ``whisper``, Whisper's English normaliser, the papers' choice;
``basic``; ``none``), split into words (``wer``) or characters (``cer``) and count the
Levenshtein edits with :func:`genmetrics.metrics.text.error_rate.edit_counts` -- the same
arithmetic as the text ``wer``/``cer``, equal to ``jiwer``. The corpus value is total
edits / total reference tokens (``(S + D + I) / (S + D + H)`` summed over the clips, as
``jiwer.wer`` over a list); the per-sample value is the clip's own rate; the components
hold the substitution, deletion and insertion rates (each over the reference tokens).

The expected text comes from ``--transcripts texts.jsonl``, a ``.txt`` beside each clip
or ``Evaluator.update(waves, texts=[...], sample_rate=...)``. A clip whose text is
missing or empty (also after normalisation) is named as failed (and under ``skipped``),
and the rest are scored. With ``pocketsphinx`` the numbers are only good for ordering
systems over many clips (about 0.7-1.0 on clean espeak-ng speech; see
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

from genmetrics.errors import MetricError, MetricUnavailable
from genmetrics.features.asr import WHISPER_DEFAULT, WHISPER_MAX_SECONDS, load_asr
from genmetrics.io.audio import AudioClip
from genmetrics.io.common import Unusable
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option
from genmetrics.metrics._per_pair import Failed
from genmetrics.metrics.text.error_rate import NORMALIZERS, TOKENIZERS, edit_counts, normalizer

FIELDS = ("substitutions", "deletions", "insertions", "hits")


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


class _ASRErrorRate(Metric):
    """Shared by :class:`AudioWER` and :class:`AudioCER` (``unit``: the token)."""

    unit: ClassVar[str] = "words"
    state_reductions = {**{f: "cat" for f in FIELDS}, "reasons": "cat"}
    state_dtypes = {f: "int64" for f in FIELDS}
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

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        norm = normalizer(self.options["normalize"])
        tokens = TOKENIZERS[self.unit]
        asr = self._asr()
        outcomes: list[Any] = [None] * len(samples)
        todo = []
        for k, clip in enumerate(samples):
            text = clip.text
            if text is None:
                outcomes[k] = Failed("no transcript given for this clip (--transcripts, a "
                                     ".txt beside it, or Evaluator.update(texts=...))")
            elif isinstance(text, Unusable):
                outcomes[k] = Failed(text.reason)
            elif not tokens(norm(text)):
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
            outcomes[k] = edit_counts(tokens(norm(samples[k].text)),  # type: ignore[arg-type]
                                      tokens(norm(hyp)))
        rows: dict[str, list[int]] = {f: [] for f in FIELDS}
        for out in outcomes:
            if isinstance(out, Failed):
                self.state["reasons"].append(out.reason)
                for f in FIELDS:
                    rows[f].append(-1)
            else:
                for f in FIELDS:
                    rows[f].append(getattr(out, f))
        for f in FIELDS:
            self.state[f].append(rows[f])

    def _counts(self) -> tuple[Any, Any]:
        import numpy as np

        counts = np.stack([self.state[f].array() for f in FIELDS], axis=1).reshape(-1, 4)
        return counts, counts[:, 3] < 0

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        import numpy as np

        counts, failed = self._counts()
        reasons = self.state["reasons"]
        ok = counts[~failed]
        if not len(ok):
            if len(counts):
                raise MetricError(f"{self.spec.name}: none of the {len(counts)} clips could be "
                                  f"scored (first reason: {reasons[0]})")
            self.require_samples(0)
        s, d, i, h = (int(x) for x in ok.sum(axis=0))
        ref = s + d + h
        components: dict[str, Any] = {"substitutions": s / ref, "deletions": d / ref,
                                      "insertions": i / ref, f"reference_{self.unit}": ref}
        failed_at = np.flatnonzero(failed).tolist()
        if failed_at:
            components["failed"] = [{"index": k, "reason": r}
                                    for k, r in zip(failed_at, reasons, strict=True)]
        values = None
        if per_sample:
            values = [None if bad else float((c[0] + c[1] + c[2]) / (c[0] + c[1] + c[3]))
                      for c, bad in zip(counts.tolist(), failed.tolist(), strict=True)]
        return {self.spec.name: self.result((s + d + i) / ref, n=len(ok),
                                            components=components, per_sample=values,
                                            **self._asr().signature())}

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        counts, failed = self._counts()
        edits = counts[:, 0] + counts[:, 1] + counts[:, 2]
        ref = counts[:, 0] + counts[:, 1] + counts[:, 3]
        rows = np.column_stack([np.where(failed, 0, edits), np.where(failed, 0, ref)])
        return {self.spec.name: rows.astype(np.float64).reshape(-1, 2)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]


class AudioWER(_ASRErrorRate):
    """Word error rate of the ASR transcript against the expected text."""

    unit = "words"
    spec = MetricSpec(
        name="wer", modality="audio", kind="paired", needs=("transcript",),
        higher_is_better=False, unit="edits per reference word",
        description="word error rate of an ASR transcript (Whisper; pocketsphinx offline) "
                    "against the text the clip should say",
        value_range=(0.0, None), options=_options())


class AudioCER(_ASRErrorRate):
    """Character error rate of the ASR transcript against the expected text."""

    unit = "characters"
    #: the ASR settings not given to cer come from wer's (one transcription per clip)
    options_from: ClassVar[str] = "wer"
    spec = MetricSpec(
        name="cer", modality="audio", kind="paired", needs=("transcript",),
        higher_is_better=False, unit="edits per reference character",
        description="character error rate of an ASR transcript against the text the clip "
                    "should say", value_range=(0.0, None), options=_options())


__all__ = ["AudioWER", "AudioCER"]
