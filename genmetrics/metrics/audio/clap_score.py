"""CLAP score: how well each generated clip matches the prompt it was generated from.

Per clip ``100 * cos`` of CLAP's projected audio and text embeddings (the ``clap``
backbone, :mod:`genmetrics.features.clap`: LAION-CLAP through transformers'
``ClapModel``, audio resampled to the model's rate, clips longer than its 10 s window
cut to their first window), the corpus value ``max(mean, 0)``: the same definition as
``clipscore`` (:mod:`genmetrics.metrics._prompt_alignment`). Papers on text-to-audio
report the mean cosine (0-1); divide by 100 for that scale.

Prompts: ``--prompts prompts.jsonl`` or ``Evaluator.update(waves, sample_rate=...,
prompts=[...])`` (a ``.txt`` beside a clip is its transcript, for wer/cer, not a
prompt). A clip without a usable prompt is named under ``failed``.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> m = ClapScore(device="cpu")
    >>> m.prompts_of([AudioClip("a", np.zeros(8), 8000, prompt="rain")])
    ['rain']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics._prompt_alignment import CLAMP_OPTION, PromptAlignment, weights_option
from genmetrics.metrics.image._inception import DEVICE_OPTION


def cut_flags(backbone: Any, clips: Sequence[Any], cut: int) -> np.ndarray:
    """Per clip, 1 where the backbone cut it to its window (``cut`` of them): none, all,
    or those longer than ``backbone.window_s`` once resampled to ``backbone.rate``."""
    if cut in (0, len(clips)):
        return np.full(len(clips), 1 if cut else 0, np.int8)
    from genmetrics.features.clap import window_cut
    from genmetrics.io.audio import resampled_length

    rate = int(backbone.rate)
    return np.array([window_cut(range(resampled_length(len(c.waveform), int(c.sample_rate),
                                                       rate)), rate, backbone.window_s)[1]
                     for c in clips], np.int8)


class ClapScore(PromptAlignment):
    """100 x cosine of CLAP audio and prompt embeddings, averaged."""

    spec = MetricSpec(
        name="clap_score", modality="audio", kind="distribution", needs=("prompt",),
        higher_is_better=True, unit="100 x cosine",
        description="CLAP score: 100 x cosine of LAION-CLAP audio and prompt embeddings "
                    "(transformers ClapModel), mean floored at 0; needs prompts",
        value_range=(0.0, 100.0),
        options=(
            Option("features", "clap", "the audio backbone with a text tower (clap or a "
                   "registered one)", affects_values=False),
            CLAMP_OPTION, DEVICE_OPTION, weights_option("clap", "CLAP"),
        ))
    # per clip: 1 where it was longer than the model's window and cut to its first one
    state_reductions = {**PromptAlignment.state_reductions, "cut": "cat"}
    state_dtypes = {**PromptAlignment.state_dtypes, "cut": "int8"}
    sample_fields = (*PromptAlignment.sample_fields, "cut")

    def prompts_of(self, samples: Sequence[Any]) -> list[Any]:
        return [getattr(clip, "prompt", None) for clip in samples]

    def update(self, samples: Sequence[Any],
               references: Sequence[Sequence[Any]] | None = None) -> None:
        self._cut = np.zeros(len(samples), np.int8)
        super().update(samples, references)
        self.state["cut"].append(self._cut)

    def item_embeddings(self, samples: Sequence[Any], todo: list[int]) -> np.ndarray:
        clips = [samples[k] for k in todo]
        embed = getattr(self.backbone, "embed_audio", None)
        if embed is None:
            return self.backbone.extract(clips)[self.backbone.embedding]
        rows, cut = embed(clips)
        self._cut[todo] = cut_flags(self.backbone, clips, cut)
        return rows

    def warnings(self) -> list[str]:
        notes = super().warnings()
        if self.count("cut"):
            notes.append(f"{self.count('cut')} clip(s) were longer than the CLAP "
                         "model's window and were cut to their first window (the policy "
                         "is in the signature's preprocessing)")
        return notes


__all__ = ["ClapScore"]
