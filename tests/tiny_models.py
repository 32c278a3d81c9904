"""Tiny random vision models for tests, saved the way a real hub model is.

DINOv2, CLIP and CLAP cannot be downloaded on these machines, so tests build tiny random
models from transformers configs, ``save_pretrained`` them (model + processor) into a
folder and load that folder through exactly the code path a real model folder takes.

``tiny_dinov2(path)`` writes a ``Dinov2Model`` with ``facebook/dinov2-*``'s image
processor settings; ``tiny_clip(path, image_size=224)`` writes a ``CLIPModel`` with a
``CLIPProcessor`` (``openai/clip-vit-*``'s image settings, a character-level BPE
tokenizer with CLIP's special tokens and its 77-token context).
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


#: (hidden size, layers, heads) of the real architectures, for timing with random weights
DINOV2_ARCH = {"vits14": (384, 12, 6), "vitb14": (768, 12, 12), "vitl14": (1024, 24, 16),
               "vitg14": (1536, 40, 24)}
CLIP_ARCH = {"vitb32": (768, 12, 12, 32, 512), "vitl14": (1024, 24, 16, 14, 768)}


def tiny_dinov2(path: Path, seed: int = 0, hidden_size: int = 32,
                arch: str | None = None) -> Path:
    """A tiny random ``Dinov2Model`` + ``BitImageProcessor`` saved in ``path``;
    ``arch="vitl14"`` (etc.) gives the real architecture, random weights (for timing)."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    layers, heads = 2, 2
    if arch is not None:
        hidden_size, layers, heads = DINOV2_ARCH[arch]
    config = Dinov2Config(hidden_size=hidden_size, num_hidden_layers=layers,
                          num_attention_heads=heads, intermediate_size=4 * hidden_size,
                          image_size=224, patch_size=14)
    Dinov2Model(config).eval().save_pretrained(path)
    # facebook/dinov2-*'s preprocessor_config.json
    BitImageProcessor(do_resize=True, size={"shortest_edge": 256}, resample=3,
                      do_center_crop=True, crop_size={"height": 224, "width": 224},
                      do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                      image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
                      do_convert_rgb=True).save_pretrained(path)
    return path


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def _clip_tokenizer(path: Path, context: int):
    """A character-level CLIP BPE tokenizer (no merges): every byte, alone or word-final."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}),
                                     encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"),
                         model_max_length=context)


def tiny_clip(path: Path, image_size: int = 224, seed: int = 0, projection_dim: int = 16,
              context: int = 77, arch: str | None = None) -> Path:
    """A tiny random ``CLIPModel`` + ``CLIPProcessor`` saved in ``path``.

    ``image_size`` 224 is ``openai/clip-vit-base-patch32`` / ``-large-patch14``'s, 336
    ``-large-patch14-336``'s (processor resize and crop follow it); ``context`` is the
    text tower's length (CLIP: 77 tokens); ``arch="vitl14"`` or ``"vitb32"``: the real
    vision tower with random weights (the text tower stays tiny), for timing.
    """
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _clip_tokenizer(path, context)
    torch.manual_seed(seed)
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=2,
                          max_position_embeddings=context,
                          bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
                          eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                          pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    hidden, layers, heads, patch = 32, 2, 2, 32
    if arch is not None:  # the real vision tower (random weights), for timing
        hidden, layers, heads, patch, projection_dim = CLIP_ARCH[arch]
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=4 * hidden,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              image_size=image_size, patch_size=patch)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=projection_dim)
    CLIPModel(config).eval().save_pretrained(path)
    # openai/clip-vit-*'s preprocessor_config.json
    images = CLIPImageProcessor(do_resize=True, size={"shortest_edge": image_size},
                                resample=3, do_center_crop=True,
                                crop_size={"height": image_size, "width": image_size},
                                do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                do_convert_rgb=True)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    return path
