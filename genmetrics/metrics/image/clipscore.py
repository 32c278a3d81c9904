"""CLIPScore: how well each image matches the prompt it was generated from.

Per image ``100 * cos(E_I, E_C)`` of CLIP's projected image and text embeddings, the
corpus value ``max(mean, 0)``: torchmetrics' ``CLIPScore`` definition (see
:mod:`genmetrics.metrics._prompt_alignment` for the floor, the ``clamp`` option and the
truncation of long prompts). Backbone ``clip-vitl14`` (openai/clip-vit-large-patch14,
torchmetrics' default) with the model folder's own ``CLIPProcessor``; the ``features``
option picks another CLIP backbone (the signature names it). The image embeddings come
from the run's one forward per backbone per batch, shared with CMMD or FD on the same
backbone; both towers run batched.

Prompts: ``--prompts prompts.jsonl``, a ``.txt`` beside each image, or
``Evaluator.update(images, prompts=[...])`` (:mod:`genmetrics.io.prompts`). An image
without a usable prompt is named under ``failed``; the rest are scored.

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from tests.tiny_models import tiny_clip
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = tiny_clip(Path(tmp.name) / "clip")
    >>> from genmetrics.io.image_batch import ImageBatch
    >>> batch = ImageBatch([torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2)
    >>> batch.prompts = ["a black square", ""]
    >>> m = CLIPScore(device="cpu", weights=str(folder))
    >>> m.update(batch, [[], []])
    >>> r = m.compute()["clipscore"]
    >>> r.n, r.components["failed"], r.signature["backbone"]
    (1, [{'index': 1, 'reason': 'empty prompt'}], 'clip-vitl14')
    >>> tmp.cleanup()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.metric import MetricSpec, Option
from genmetrics.metrics._prompt_alignment import CLAMP_OPTION, PromptAlignment, weights_option
from genmetrics.metrics.image._inception import DEVICE_OPTION

CLIPSCORE_BACKBONE = "clip-vitl14"


class CLIPScore(PromptAlignment):
    """100 x cosine of CLIP image and prompt embeddings, averaged (torchmetrics')."""

    spec = MetricSpec(
        name="clipscore", modality="image", kind="distribution", needs=("prompt",),
        higher_is_better=True, unit="100 x cosine",
        description="CLIPScore: 100 x cosine of CLIP ViT-L/14 image and prompt embeddings, "
                    "mean floored at 0 (torchmetrics' definition); needs prompts",
        value_range=(0.0, 100.0),
        options=(
            Option("features", CLIPSCORE_BACKBONE, "the CLIP backbone: clip-vitl14 "
                   "(torchmetrics' default), clip-vitb32, clip-vitl14-336 or a registered "
                   "one with a text tower", affects_values=False),
            CLAMP_OPTION, DEVICE_OPTION, weights_option(CLIPSCORE_BACKBONE, "CLIP"),
        ))

    def prompts_of(self, samples: Sequence[Any]) -> list[Any]:
        return list(getattr(samples, "prompts", [None] * len(samples)))

    def image_backbones(self) -> list[Any]:
        """The backbone whose preprocessing the decode workers run (see the runner)."""
        return [self.backbone]

    def item_embeddings(self, samples: Sequence[Any], todo: list[int]) -> np.ndarray:
        backbone = self.backbone
        if hasattr(samples, "memo"):  # one forward per backbone per batch, shared
            from genmetrics.metrics.image._inception import extract_with_cache

            key = ("backbone", self.backbone_name, id(backbone))
            rows = samples.memo(key, lambda: extract_with_cache(backbone, samples))
            return rows[backbone.embedding][todo]
        return backbone.extract([samples[k] for k in todo])[backbone.embedding]


__all__ = ["CLIPScore"]
