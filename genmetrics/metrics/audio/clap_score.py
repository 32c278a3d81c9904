"""CLAP score: how well each generated clip matches the prompt it was generated from.

Per clip ``100 * cos`` of CLAP's projected audio and text embeddings (the ``clap``
backbone, :mod:`genmetrics.features.clap`: LAION-CLAP through transformers'
``ClapModel``, audio resampled to the model's rate, clips longer than its 10 s window
cut to their first window), the corpus value ``max(mean, 0)``: the same definition as
``clipscore`` (:mod:`genmetrics.metrics._prompt_alignment`). Papers on text-to-audio
report the mean cosine (0-1); divide by 100 for that scale.

Prompts: ``--prompts prompts.jsonl``, a ``.txt`` beside each clip, or
``Evaluator.update(waves, sample_rate=..., prompts=[...])``. A clip without a usable
prompt is named under ``failed``.

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
from genmetrics.metrics._prompt_alignment import CLAMP_OPTION, PromptAlignment


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
            CLAMP_OPTION,
            Option("device", "auto", "auto (CUDA when present), cpu or cuda[:N]",
                   affects_values=False),
            Option("weights", None, "the CLAP model folder (save_pretrained); default: "
                   "$GENMETRICS_CLAP_WEIGHTS, the asset cache, the Hugging Face cache; its "
                   "digest goes into the signature", affects_values=False),
        ))
    state_reductions = {**PromptAlignment.state_reductions, "cut": "sum"}

    def prompts_of(self, samples: Sequence[Any]) -> list[Any]:
        return [getattr(clip, "prompt", None) for clip in samples]

    def item_embeddings(self, samples: Sequence[Any], todo: list[int]) -> np.ndarray:
        clips = [samples[k] for k in todo]
        embed = getattr(self.backbone, "embed_audio", None)
        if embed is None:
            return self.backbone.extract(clips)[self.backbone.embedding]
        rows, cut = embed(clips)
        self.state["cut"] += int(cut)
        return rows

    def warnings(self) -> list[str]:
        notes = super().warnings()
        if self.state["cut"]:
            notes.append(f"{int(self.state['cut'])} clip(s) were longer than the CLAP "
                         "model's window and were cut to their first window (the policy "
                         "is in the signature's preprocessing)")
        return notes


__all__ = ["ClapScore"]
