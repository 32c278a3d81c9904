"""DINOv2 backbones (``dinov2-vit{s,b,l,g}14``) through transformers' ``Dinov2Model``.

Preprocessing as dgm-eval's ``DINOv2Encoder.transform`` (``dgm_eval/models/dinov2.py``,
default ``clean_resize=False``): the RGB image is squashed to 224 x 224 by torchvision's
``Resize((224, 224), BICUBIC)`` on the PIL image (Pillow's bicubic, with its
antialiasing; no crop), scaled to [0, 1] and normalised with the ImageNet mean and std.
The model folder's own image processor (resize 256 + crop 224) is *not* used: FD-DINOv2
numbers in the literature (dgm-eval, EDM2) come from dgm-eval's transform.

Output ``"embedding"``: the class token after the final layer norm
(``Dinov2Model``'s ``pooler_output``), which is what the torch-hub model dgm-eval loads
returns from its forward (``x_norm_clstoken`` through an identity head).

    >>> import tempfile, torch
    >>> from tests.tiny_models import tiny_dinov2
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = tiny_dinov2(Path(tmp.name) / "dinov2")
    >>> dino = create("dinov2-vitl14", device="cpu", weights=str(folder))
    >>> dino.extract([torch.zeros(3, 50, 70, dtype=torch.uint8)])["embedding"].shape
    (1, 32)
    >>> dino.signature()["preprocessing"]
    'pil-bicubic-224|crop:none|mean:0.485,0.456,0.406|std:0.229,0.224,0.225'
    >>> tmp.cleanup()
"""

from __future__ import annotations

from pathlib import Path

import torch

from genmetrics.errors import UsageError
from genmetrics.features.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    Preprocessing,
    folder_digest,
    load_pretrained,
    resolve_model_folder,
)

#: backbone name -> hub id
MODELS = {
    "dinov2-vits14": "facebook/dinov2-small",
    "dinov2-vitb14": "facebook/dinov2-base",
    "dinov2-vitl14": "facebook/dinov2-large",
    "dinov2-vitg14": "facebook/dinov2-giant",
}

#: dgm-eval's transform: Resize((224, 224), BICUBIC) on the PIL image, ToTensor, Normalize
PREPROCESSING = Preprocessing(224, "pil-bicubic", "none", IMAGENET_MEAN, IMAGENET_STD)


class Dinov2Backbone(Backbone):
    """A DINOv2 model folder as a backbone (see the module docstring)."""

    preprocessing = PREPROCESSING

    def __init__(self, name: str, folder: Path, device: str) -> None:
        from transformers import Dinov2Model

        self.name, self.folder, self.device = name, Path(folder), device
        _, self.model = load_pretrained(self.folder, "DINOv2", device, Dinov2Model)
        self.weights_digest = folder_digest(self.folder)
        self.outputs = {"embedding": int(self.model.config.hidden_size)}

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": self.model(pixel_values=batch).pooler_output}


def create(name: str = "dinov2-vitl14", device: str = "cpu",
           weights: str | None = None) -> Dinov2Backbone:
    """Factory of the ``dinov2-*`` backbones (``device`` already resolved)."""
    if name not in MODELS:
        raise UsageError(f"unknown DINOv2 backbone {name!r}; known: {', '.join(MODELS)}")
    return Dinov2Backbone(name, resolve_model_folder(name, weights), device)
