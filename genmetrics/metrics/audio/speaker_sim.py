"""Speaker similarity: the cosine similarity of speaker embeddings of each generated clip
and the prompt speaker's recording (what voice-cloning TTS papers report as SIM).

Per clip: ``cos(e(clip), e(speaker reference))`` with unit-length embeddings from
:mod:`genmetrics.features.speaker` (option ``model``: ``resemblyzer``, the offline
default, GE2E with resemblyzer's own preprocessing, equal to
``VoiceEncoder().embed_utterance``; or the folder of a ``WavLMForXVector``
speaker-verification model, as ``microsoft/wavlm-base-plus-sv``, the papers' usual
choice). The corpus value is the mean over clips. Values from different encoders are on
different scales (GE2E embeddings are non-negative, so its cosines sit around 0.5-0.95
for speech); the signature names the encoder.

The speaker reference comes from ``--speaker-reference`` (one file for every clip, or a
folder paired with the clips by name) or ``Evaluator.update(waves, speaker_reference=...,
sample_rate=...)``. A clip without one, or a silent clip or reference (no speech for the
encoder), is named as failed and the rest are scored.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> rng = np.random.default_rng(0)
    >>> voice = AudioClip("ref", 0.3 * rng.standard_normal(16000), 16000)
    >>> clip = AudioClip("a", voice.waveform, 16000, speaker=voice)
    >>> silent = AudioClip("b", np.zeros(16000), 16000, speaker=voice)
    >>> m = SpeakerSim(device="cpu")
    >>> m.update([clip, silent], [[], []])
    >>> r = m.compute(per_sample=True)["speaker_sim"]
    >>> round(r.value, 6), r.components["failed"][0]["reason"][:12]
    (1.0, 'silent clip ')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.io.audio import AudioClip
from genmetrics.io.common import Unusable
from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics._per_pair import Failed, PerPairMean


class SpeakerSim(PerPairMean):
    """Cosine similarity of each clip's speaker embedding to its speaker reference's."""

    spec = MetricSpec(
        name="speaker_sim", modality="audio", kind="paired", needs=("speaker_reference",),
        higher_is_better=True, unit="cosine similarity",
        description="cosine similarity of speaker embeddings (resemblyzer GE2E offline; "
                    "WavLM x-vector) of each clip and the prompt speaker's recording",
        value_range=(-1.0, 1.0),
        options=(
            Option("model", "resemblyzer", "speaker encoder: resemblyzer (GE2E, offline) "
                   "or the folder of a WavLMForXVector model"),
            Option("device", "auto", "auto (CUDA when present), cpu or cuda[:N]",
                   affects_values=False),
        ))
    merge_ignores = frozenset({"device"})

    def _encoder(self) -> Any:
        from genmetrics.features.speaker import load_encoder

        return load_encoder(self.options["model"], self.device())

    def preflight(self) -> None:
        self._encoder()

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        outcomes: list[float | Failed | None] = [None] * len(samples)
        todo = []
        for k, clip in enumerate(samples):
            if clip.speaker is None:
                outcomes[k] = Failed("no speaker reference given for this clip "
                                     "(--speaker-reference, or Evaluator.update("
                                     "speaker_reference=...))")
            elif isinstance(clip.speaker, Unusable):
                outcomes[k] = Failed(clip.speaker.reason)
            else:
                todo.append(k)
        clips = [samples[k] for k in todo]
        refs = [samples[k].speaker for k in todo]
        embeds = self._encoder().embed([c.waveform for c in clips + refs],  # type: ignore
                                       [c.sample_rate for c in clips + refs])  # type: ignore
        n = len(todo)
        for j, k in enumerate(todo):
            a, b = embeds[j], embeds[n + j]
            if isinstance(a, str):
                outcomes[k] = Failed(a)
            elif isinstance(b, str):
                outcomes[k] = Failed(f"speaker reference: {b}")
            else:
                outcomes[k] = float(np.dot(a, b))
        self.record(outcomes)  # type: ignore[arg-type]

    def signature_extra(self) -> dict[str, Any]:
        return self._encoder().signature()


__all__ = ["SpeakerSim"]
