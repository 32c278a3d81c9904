"""CLIP backbones (image and text towers) through transformers' ``CLIPModel``.

Three built-ins, one model class, three preprocessings, each its reference's:

=================  ============================  =========================================
name               model (hub id)                preprocessing (as its reference does it)
=================  ============================  =========================================
clip-vitb32        openai/clip-vit-base-patch32  clean-fid's CLIP-FID: Pillow bicubic
                                                 resize of the shorter side to 224, centre
                                                 crop 224, ``/255``, CLIP mean/std
clip-vitl14        openai/clip-vit-large-patch14 the model folder's own ``CLIPProcessor``,
                                                 as torchmetrics' CLIPScore calls it
clip-vitl14-336    openai/clip-vit-large-patch14 google-research cmmd: centre square crop,
                   -336                          Pillow bicubic to 336, ``/255``, (bicubic
                                                 to 336 again: the identity), CLIP
                                                 mean/std
=================  ============================  =========================================

Output ``"embedding"``: the projected image embedding (``visual_projection`` of the
vision tower's pooled output: ``get_image_features``, clean-fid's ``encode_image``), not
L2-normalised (CLIPScore and CMMD normalise it themselves). :meth:`ClipBackbone.encode_text`
gives the projected text embedding; texts longer than the text tower's context (77
tokens for CLIP) are truncated to it and counted, and the policy is in the signature.

The model folder is found offline (:func:`~genmetrics.features.backbones.resolve_model_folder`):
``weights=DIR``, ``$GENMETRICS_CLIP_VITL14_WEIGHTS`` (and so on), the asset cache
(``genmetrics assets fetch clip-vitl14``) or the local Hugging Face cache.

    >>> import tempfile, torch
    >>> from tests.tiny_models import tiny_clip
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = tiny_clip(Path(tmp.name) / "clip")
    >>> clip = create("clip-vitl14", device="cpu", weights=str(folder))
    >>> clip.extract([torch.zeros(3, 40, 60, dtype=torch.uint8)])["embedding"].shape
    (1, 16)
    >>> embeddings, truncated = clip.encode_text(["a cat", "a dog " * 30])
    >>> embeddings.shape, truncated
    ((2, 16), 1)
    >>> clip.signature()["text"]
    'truncate-77'
    >>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmetrics.errors import UsageError
from genmetrics.features.backbones import (
    CLIP_MEAN,
    CLIP_STD,
    Backbone,
    ImageProcessorPreprocessing,
    Preprocessing,
    check_image,
    encode_texts,
    folder_digest,
    load_pretrained,
    resolve_model_folder,
)

#: backbone name -> (hub id, preprocessing policy)
MODELS = {
    "clip-vitb32": ("openai/clip-vit-base-patch32", "clean-fid"),
    "clip-vitl14": ("openai/clip-vit-large-patch14", "processor"),
    "clip-vitl14-336": ("openai/clip-vit-large-patch14-336", "cmmd"),
}


class ClipBackbone(Backbone):
    """A CLIP model folder as a backbone (see the module docstring)."""

    has_text = True

    def __init__(self, name: str, folder: Path, device: str, policy: str) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.name, self.folder, self.device, self.policy = name, Path(folder), device, policy
        self.processor, self.model = load_pretrained(self.folder, "CLIP", device, CLIPModel,
                                                     CLIPProcessor)
        self.weights_digest = folder_digest(self.folder)
        images = self.processor.image_processor
        config = self.model.config
        self.image_size = int(config.vision_config.image_size)
        self.context = int(config.text_config.max_position_embeddings)
        mean = tuple(float(v) for v in images.image_mean)
        std = tuple(float(v) for v in images.image_std)
        if policy == "clean-fid":  # cleanfid.clip_features: fixed CLIP constants
            self.preprocessing = Preprocessing(self.image_size, "pil-bicubic", "center",
                                               CLIP_MEAN, CLIP_STD)
        elif policy == "cmmd":  # cmmd/io_util.py + embedding.py: scenic's CLIP constants
            self.preprocessing = Preprocessing(self.image_size, "pil-bicubic", "square",
                                               CLIP_MEAN, CLIP_STD)
        elif policy == "processor":
            crop = images.crop_size if getattr(images, "do_center_crop", False) else images.size
            side = int(crop.get("height") or crop.get("shortest_edge") or self.image_size)
            self.preprocessing = Preprocessing(side, "processor", "center", mean, std)
            config_json = json.dumps(images.to_dict(), sort_keys=True, default=str)
            digest = hashlib.sha256(config_json.encode()).hexdigest()[:16]
            self._by_processor = ImageProcessorPreprocessing(
                images, f"processor:{type(images).__name__}:{digest}")
        else:
            raise UsageError(f"unknown CLIP preprocessing {policy!r}")
        self.outputs = {"embedding": int(config.projection_dim)}

    def signature(self) -> dict[str, Any]:
        sig = super().signature()
        if self.policy == "processor":
            sig["preprocessing"] = self._by_processor.signature()
        sig["text"] = f"truncate-{self.context}"
        return sig

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        if self.policy != "processor":
            return super().preprocess(images)
        for i, image in enumerate(images):
            check_image(image, i, self.name)
        # as torchmetrics' CLIPScore: the processor on a list of CHW uint8 tensors
        return self.processor(images=[image.cpu() for image in images],
                              return_tensors="pt")["pixel_values"]

    def worker_preprocessing(self) -> Any:
        """The processor one image at a time (policy ``processor``), else the Pillow
        resize: what decode workers run ahead of the network."""
        return self._by_processor if self.policy == "processor" else self.preprocessing

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.model.vision_model(pixel_values=batch).pooler_output
        return {"embedding": self.model.visual_projection(pooled)}

    def encode_text(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Projected text embeddings (float32 N x D) and how many texts were longer than
        the context and truncated to it."""
        model = self.model

        def embed(tokens: dict[str, torch.Tensor]) -> torch.Tensor:
            return model.text_projection(model.text_model(**tokens).pooler_output)

        return encode_texts(self.processor.tokenizer, texts, self.context, self.max_batch,
                            self.device, self.outputs["embedding"], embed)


def create(name: str = "clip-vitl14", device: str = "cpu",
           weights: str | None = None) -> ClipBackbone:
    """Factory of the ``clip-*`` backbones (``device`` already resolved)."""
    if name not in MODELS:
        raise UsageError(f"unknown CLIP backbone {name!r}; known: {', '.join(MODELS)}")
    folder = resolve_model_folder(name, weights)
    return ClipBackbone(name, folder, device, MODELS[name][1])
