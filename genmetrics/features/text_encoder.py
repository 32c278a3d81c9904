"""Contextual token embeddings from a BERT-like encoder (for BERTScore): load once, never
download.

:func:`load_encoder` resolves the model exactly as the perplexity LM is resolved (a local
folder written by ``save_pretrained``, or a model id already in the local Hugging Face
cache: :func:`~genmetrics.features.causal_lm._local_folder`), keeps the first ``layers``
transformer layers -- as ``bert-score`` does, so the last hidden state *is* layer
``layers`` -- and records the sha256 digest of the weights
(:func:`~genmetrics.features.causal_lm.weights_digest`).

:meth:`Encoder.encode` tokenizes as ``bert_score.utils.sent_encode`` does (the text
stripped, special tokens added, a prefix space for RoBERTa/GPT-2 tokenizers, truncated
to the tokenizer's ``model_max_length``), in one batched tokenizer call.
:meth:`Encoder.embed` runs token rows in length buckets under a token budget
(:func:`~genmetrics.features.causal_lm.plan_batches`), right-padded with an attention
mask, and returns each row's embeddings without padding.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.features.causal_lm import (
    PASS_OVERHEAD,
    _local_folder,
    _quiet_transformers,
    plan_batches,
    resolve_device,
    weights_digest,
)

_CACHE: dict[tuple[str, int, str], Encoder] = {}
_LOCK = threading.Lock()


@dataclass(eq=False)
class Encoder:
    """A loaded encoder cut to ``layers`` layers, its tokenizer and provenance."""

    path: Path
    model: Any
    tokenizer: Any
    device: str
    layers: int
    weights_digest: str
    prefix_space: bool  # RoBERTa / GPT-2 byte-level tokenizers: " " before the text

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text as ``bert_score.utils.sent_encode`` gives them."""
        if not texts:
            return []
        tok = self.tokenizer
        stripped = [t.strip() for t in texts]
        extra = {"add_prefix_space": True} if self.prefix_space else {}
        out = tok(stripped, add_special_tokens=True, truncation=True,
                  max_length=tok.model_max_length, verbose=False, **extra)["input_ids"]
        return [list(ids) for ids in out]

    def embed(self, rows: Sequence[Sequence[int]], batch_size: int,
              batch_tokens: int) -> list[Any]:
        """Per row: a float32 ``(len(row), hidden)`` CPU tensor of layer ``layers``."""
        import torch

        out: list[Any] = [None] * len(rows)
        pad = self.tokenizer.pad_token_id or 0
        overhead = PASS_OVERHEAD["cpu" if self.device == "cpu" else "other"]
        device = torch.device(self.device)
        with torch.inference_mode():
            for group in plan_batches([len(r) for r in rows], batch_size, batch_tokens,
                                      overhead):
                lengths = [len(rows[i]) for i in group]
                width = max(lengths)
                ids = torch.full((len(group), width), pad, dtype=torch.long)
                for r, i in enumerate(group):
                    ids[r, : lengths[r]] = torch.as_tensor(rows[i], dtype=torch.long)
                mask = (torch.arange(width) < torch.tensor(lengths)[:, None]).long()
                hidden = self.model(ids.to(device), attention_mask=mask.to(device))[0]
                hidden = hidden.float().cpu()
                for r, i in enumerate(group):
                    out[i] = hidden[r, : lengths[r]]
        return out


def _truncate(model: Any, layers: int) -> int:
    """Keep the first ``layers`` transformer layers (``bert_score.utils.get_model``);
    returns how many the model had."""
    import torch

    for owner_name, attr in (("encoder", "layer"), ("transformer", "layer"), ("", "layers"),
                             ("", "layer"), ("encoder", "block")):
        owner = getattr(model, owner_name) if owner_name else model
        stack = getattr(owner, attr, None) if owner is not None else None
        if isinstance(stack, torch.nn.ModuleList):
            total = len(stack)
            if not 0 <= layers <= total:
                raise UsageError(f"layer must be between 0 and {total} for this model; "
                                 f"got {layers}")
            setattr(owner, attr, torch.nn.ModuleList(list(stack)[:layers]))
            return total
    raise UsageError(f"cannot find the transformer layers of {type(model).__name__}; "
                     "BERTScore supports BERT-, RoBERTa-, DistilBERT-, XLNet- and "
                     "BART-like encoders")


def load_encoder(name_or_path: str | Path, layers: int, device: str = "auto") -> Encoder:
    """Load the encoder at ``name_or_path`` (a folder, or an id in the local HF cache)
    cut to ``layers`` layers, once per process and device."""
    folder = _local_folder(str(name_or_path))
    resolved = resolve_device(device)
    key = (str(folder), int(layers), resolved)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _load(folder, int(layers), resolved)
            _CACHE[key] = found
        return found


def _load(folder: Path, layers: int, device: str) -> Encoder:
    from transformers import AutoModel, AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load an encoder model from {folder}: {exc}") from None
    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder  # encoder-decoder models: the encoder, as bert-score does
    _truncate(model, layers)
    model.to(device)
    model.eval()
    from transformers import GPT2Tokenizer, RobertaTokenizer

    prefix = isinstance(tokenizer, (GPT2Tokenizer, RobertaTokenizer))  # as sent_encode
    return Encoder(path=folder, model=model, tokenizer=tokenizer, device=device,
                   layers=layers, weights_digest=weights_digest(folder), prefix_space=prefix)


def clear_cache() -> None:
    """Forget every loaded encoder."""
    with _LOCK:
        _CACHE.clear()
