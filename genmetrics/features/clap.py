"""The ``clap`` backbone: LAION-CLAP audio and text towers through transformers'
``ClapModel`` (default model ``laion/clap-htsat-unfused``).

* **Audio**: each clip (mono float) is resampled to the model's rate (its feature
  extractor's ``sampling_rate``, 48 kHz for LAION-CLAP) with soxr (very high quality,
  :func:`~genmetrics.io.audio.resample`), then goes through the folder's own
  ``ClapFeatureExtractor`` (log-mel, ``repeatpad`` for short clips) and
  ``get_audio_features``. A clip longer than the model's window (``max_length_s``,
  10 s) is cut to its first window first: the feature extractor would otherwise pick a
  random crop (``rand_trunc``) or random chunks (``fusion``), so the score would change
  from run to run. :meth:`ClapBackbone.embed_audio` counts the clips cut; the policy is
  in the signature (``preprocessing``).
* **Text**: the folder's tokenizer, texts longer than the text tower's context cut to it
  (end token kept) and counted (:meth:`ClapBackbone.encode_text`); ``get_text_features``.

Output ``"embedding"``: the projected audio embedding (not L2-normalised). The model
folder is found offline (:func:`~genmetrics.features.backbones.resolve_model_folder`):
``weights=DIR``, ``$GENMETRICS_CLAP_WEIGHTS``, the asset cache (``genmetrics assets
fetch clap``) or the local Hugging Face cache.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> window_cut(np.zeros(48000 * 12), 48000, 10.0)
    (480000, True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import InputError
from genmetrics.features.backbones import (
    Backbone,
    encode_texts,
    folder_digest,
    load_pretrained,
    resolve_model_folder,
)

HUB_ID = "laion/clap-htsat-unfused"


def window_cut(wave: np.ndarray, rate: int, seconds: float) -> tuple[int, bool]:
    """How many samples of ``wave`` (at ``rate``) are kept, and whether it was cut."""
    limit = int(round(seconds * rate))
    return (limit, True) if len(wave) > limit else (len(wave), False)


class ClapBackbone(Backbone):
    """A CLAP model folder (``save_pretrained``) as an audio + text backbone."""

    name = "clap"
    modality = "audio"
    has_text = True

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from transformers import ClapModel, ClapProcessor

        self.folder, self.device = Path(folder), device
        self.processor, self.model = load_pretrained(self.folder, "CLAP", device, ClapModel,
                                                     ClapProcessor)
        self.weights_digest = folder_digest(self.folder)
        extractor = self.processor.feature_extractor
        self.rate = int(extractor.sampling_rate)
        self.window_s = float(extractor.max_length_s)
        config = self.model.config
        limit = int(getattr(self.processor.tokenizer, "model_max_length", 10**9) or 10**9)
        # RoBERTa's positions start after the padding index: two fewer tokens than rows
        self.context = min(limit, int(config.text_config.max_position_embeddings) - 2)
        self.outputs = {"embedding": int(config.projection_dim)}
        settings = json.dumps(extractor.to_dict(), sort_keys=True, default=str)
        self._extractor_digest = hashlib.sha256(settings.encode()).hexdigest()[:16]

    def signature(self) -> dict[str, Any]:
        kind = type(self.processor.feature_extractor).__name__
        return {"backbone": self.name, "w": self.weights_digest,
                "preprocessing": (f"soxr-vhq-{self.rate}|{kind}:{self._extractor_digest}"
                                  f"|long:first-{self.window_s:g}s"),
                "text": f"truncate-{self.context}"}

    def embed_audio(self, clips: Sequence[Any]) -> tuple[np.ndarray, int]:
        """Projected audio embeddings (float32 ``N x D``) of ``AudioClip``-like items
        (``.waveform``, ``.sample_rate``), and how many clips were cut to the window."""
        import torch

        from genmetrics.io.audio import resample

        waves, cut = [], 0
        for i, clip in enumerate(clips):
            wave = np.asarray(clip.waveform, np.float64)
            if wave.ndim != 1 or not len(wave):
                raise InputError(f"clip {i}: the clap backbone needs a non-empty mono "
                                 f"waveform, got shape {wave.shape}")
            wave = resample(wave, int(clip.sample_rate), self.rate)
            keep, was_cut = window_cut(wave, self.rate, self.window_s)
            cut += was_cut
            waves.append(wave[:keep].astype(np.float32))
        out = np.empty((len(waves), self.outputs["embedding"]), np.float32)
        with torch.inference_mode():
            for start in range(0, len(waves), self.max_batch):
                chunk = waves[start:start + self.max_batch]
                # the feature extractor as ClapProcessor calls it (its keyword for audio
                # changed between transformers versions)
                inputs = self.processor.feature_extractor(chunk, sampling_rate=self.rate,
                                                          return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items()
                          if k in ("input_features", "is_longer")}
                value = self.model.get_audio_features(**inputs)
                value = getattr(value, "pooler_output", value)
                out[start:start + len(chunk)] = value.float().cpu().numpy()
        return out, cut

    def extract(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        return {"embedding": self.embed_audio(items)[0]}

    def encode_text(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Projected text embeddings (float32 ``N x D``) and how many texts were longer
        than the context and cut to it."""
        model = self.model
        return encode_texts(self.processor.tokenizer, texts, self.context, self.max_batch,
                            self.device, self.outputs["embedding"],
                            lambda tokens: model.get_text_features(**tokens))


def create(name: str = "clap", device: str = "cpu", weights: str | None = None) -> ClapBackbone:
    """Factory of the ``clap`` backbone (``device`` already resolved)."""
    return ClapBackbone(resolve_model_folder(name, weights), device)


__all__ = ["ClapBackbone", "create", "HUB_ID"]
