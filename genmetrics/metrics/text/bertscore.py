"""BERTScore (Zhang et al. 2020): greedy cosine matching of contextual token embeddings,
equal to the ``bert-score`` package (0.3.13) on the same model, layer and idf setting.

Per pair: each token is embedded by layer ``layer`` of the encoder ``model`` (the model
cut to its first ``layer`` layers, as bert-score does) and the embeddings are
L2-normalised. A candidate token's score is its highest cosine similarity with any
reference token (special tokens included as match targets), and vice versa::

    P = sum_t w(t) max_s cos(t, s) / sum_t w(t)      over candidate tokens t
    R = sum_s w(s) max_t cos(s, t) / sum_s w(s)      over reference tokens s
    F = 2 P R / (P + R)

Weights ``w``: 1 for every token but the CLS and SEP tokens (0) without idf; with
``idf=true``, ``log((M + 1) / (df(t) + 1))`` where ``df(t)`` counts the references (all
``M`` references of the run, as bert-score's ``get_idf_dict(refs)``) holding token ``t``
(an unseen token: ``log(M + 1)``). Several references: P, R and F are each the best over
the references (bert-score takes each maximum separately). An empty candidate or
reference (only CLS and SEP) scores P = R = F = 0, as bert-score does.
``rescale_with_baseline=true``: ``x -> (x - b) / (1 - b)`` per P, R, F with the
baseline row ``layer`` of the TSV file bert-score ships for ``lang`` and the model
(``rescale_baseline/<lang>/<model>.tsv`` inside its wheel), or of ``baseline=FILE``.

Corpus value: the mean per-sample F1 (``math.fsum``); the mean P, R and F1 are
components, as for ROUGE. Scale: cosine, at most 1 (about 0.8-0.95 for real text with
roberta-large; rescaled values are spread over about 0-1 and can be negative).

How it is computed: the token ids come from one batched tokenizer call
(bert-score's ``sent_encode`` rules), each distinct text of a batch is embedded once in
length buckets under a token budget, and only each token's best cosine is kept (a few
bytes per token): the idf weights, which need every reference of the run, are applied
in ``compute``. One difference from bert-score: it takes the maximum over a padded
similarity matrix whose padded entries are 0, so a token whose best cosine is negative
scores 0 there when its pair shares a batch with a longer one; here the maximum is over
real tokens only, so a value does not depend on the batch. With real encoders every
best cosine is positive and the two agree.

Model (``model``): ``roberta-large`` (bert-score's English default, layer 17) from the
genmetrics cache (``genmetrics assets fetch roberta-large``, with a network) or the
local Hugging Face cache; any other value is a folder written by ``save_pretrained`` or
a model id in the local Hugging Face cache. Nothing is downloaded during a run.

    >>> from genmetrics.metrics.text.bertscore import baseline_row
    >>> [round(v, 4) for v in baseline_row(default_baseline("roberta-large", "en"), 17)]
    [0.8315, 0.8315, 0.8312]
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genmetrics.errors import MetricUnavailable, UsageError
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version

DEFAULT_MODEL = "roberta-large"
#: bert-score's tuned layer for its default English model
DEFAULT_LAYER = 17


def default_baseline(model: str, lang: str) -> Path:
    """The baseline TSV that the installed ``bert-score`` ships for ``model`` and ``lang``
    (found without importing bert-score)."""
    from importlib.util import find_spec

    spec = find_spec("bert_score")
    if spec is None or spec.origin is None:
        raise UsageError("rescale_with_baseline needs the baseline files of the bert-score "
                         "package: pip install bert-score, or pass bertscore.baseline=FILE")
    return Path(spec.origin).parent / "rescale_baseline" / lang / f"{model}.tsv"


def baseline_row(path: Path, layer: int) -> tuple[float, float, float]:
    """(P, R, F) baselines of ``layer`` (the row at that position, as bert-score reads)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))[1:]
        p, r, f = (float(v) for v in rows[layer][1:4])
    except (OSError, IndexError, ValueError) as exc:
        raise UsageError(f"cannot read baseline row {layer} from {path} ({exc}); pass "
                         "bertscore.baseline=FILE (columns LAYER,P,R,F)") from None
    return p, r, f


class BERTScore(Metric):
    spec = MetricSpec(
        name="bertscore",
        modality="text",
        kind="paired",
        higher_is_better=True,
        unit="F1 of greedy cosine matching",
        value_range=(None, 1.0),
        description="BERTScore F1 (bert-score), mean over samples; P and R as components. "
        "Needs an encoder (default roberta-large, with a network).",
        options=(
            Option("model", DEFAULT_MODEL, f"encoder: {DEFAULT_MODEL} (genmetrics or HF "
                   "cache), a model folder, or a model id in the local Hugging Face cache"),
            Option("layer", None, f"layer whose embeddings are matched (default "
                   f"{DEFAULT_LAYER} for {DEFAULT_MODEL}, bert-score's tuned layer for "
                   "other known models)", type=int),
            Option("idf", False, "weight tokens by idf over the references", type=bool),
            Option("rescale_with_baseline", False, "rescale with bert-score's baseline",
                   type=bool),
            Option("lang", "en", "language of the baseline file"),
            Option("baseline", "", "baseline TSV file (default: the one bert-score ships "
                   "for lang and model)"),
            Option("batch_size", 64, "most texts per forward pass", type=int,
                   affects_values=False),
            Option("batch_tokens", 8192, "most padded tokens per forward pass", type=int,
                   affects_values=False),
            Option("device", "auto", "auto (CUDA when available, else CPU), cpu, cuda, cuda:N",
                   affects_values=False),
        ),
        default=False,
    )
    # per sample: (candidate token ids, [(best cosines of the candidate tokens,
    # reference token ids, best cosines of the reference tokens) per reference])
    state_reductions = {"pairs": "cat"}
    sample_fields = ("pairs",)  # slices: the similarities, not the model, again

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if o["batch_size"] < 1 or o["batch_tokens"] < 1:
            raise UsageError("bertscore: batch_size and batch_tokens must be at least 1")
        if o["layer"] is not None and o["layer"] < 0:
            raise UsageError("bertscore: layer must be 0 or more")
        self._encoder: Any = None

    # -- the model ---------------------------------------------------------------------
    def num_layers(self) -> int:
        """The layer in use (bert-score's tuned default when not set)."""
        if self.options["layer"] is not None:
            return int(self.options["layer"])
        model = str(self.options["model"])
        if model == DEFAULT_MODEL:
            return DEFAULT_LAYER
        try:
            from bert_score.utils import model2layers
        except ImportError:
            model2layers = {}
        if model in model2layers:
            return int(model2layers[model])
        raise UsageError(f"bertscore: no known default layer for {model!r}; set "
                         "--set bertscore.layer=N")

    def _folder(self) -> Path:
        model = str(self.options["model"])
        if model == DEFAULT_MODEL:
            from genmetrics.assets import AssetMissingError, resolve

            try:
                return resolve(DEFAULT_MODEL)
            except AssetMissingError as exc:
                raise MetricUnavailable(f"its model {exc}; or pass "
                                        "--set bertscore.model=/path/to/folder") from None
        from genmetrics.features.causal_lm import _local_folder

        return _local_folder(model)

    def _baseline_path(self) -> Path:
        if self.options["baseline"]:
            return Path(self.options["baseline"]).expanduser()
        return default_baseline(self._model_id(), self.options["lang"])

    def preflight(self) -> None:
        """The model folder (and, when rescaling, the baseline row) exist before any input."""
        self._folder()
        layer = self.num_layers()
        if self.options["rescale_with_baseline"]:
            path = self._baseline_path()
            if not path.is_file():
                raise UsageError(f"bertscore: no baseline file {path} (bert-score ships "
                                 f"none for {self._model_id()!r} in {self.options['lang']!r});"
                                 " pass --set bertscore.baseline=FILE")
            baseline_row(path, layer)

    def encoder(self) -> Any:
        """The :class:`~genmetrics.features.text_encoder.Encoder` in use (loaded once)."""
        if self._encoder is None:
            from genmetrics.features.text_encoder import load_encoder

            self._encoder = load_encoder(self._folder(), self.num_layers(),
                                         device=self.options["device"])
        return self._encoder

    def _model_id(self) -> str:
        model = str(self.options["model"])
        path = Path(model).expanduser()
        return path.resolve().name if model != DEFAULT_MODEL and path.exists() else model

    # -- state ---------------------------------------------------------------------------
    def update(self, samples: Sequence[str], references: Sequence[Sequence[str]] | None = None):
        if references is None or len(references) != len(samples):
            raise UsageError("bertscore needs one list of references per sample")
        if any(len(r) == 0 for r in references):
            raise UsageError("bertscore: every sample needs at least one reference")
        if not samples:
            return
        enc = self.encoder()
        texts = list(dict.fromkeys([*map(str, samples), *(str(r) for rs in references
                                                          for r in rs)]))
        ids = enc.encode(texts)
        embedded = enc.embed(ids, self.options["batch_size"], self.options["batch_tokens"])
        index = {t: i for i, t in enumerate(texts)}
        unit = [e / e.norm(dim=-1, keepdim=True) for e in embedded]
        rows = []
        for sample, refs in zip(samples, references, strict=True):
            h = index[str(sample)]
            per_ref = []
            for ref in refs:
                r = index[str(ref)]
                sim = unit[h] @ unit[r].T
                per_ref.append((sim.max(dim=1).values.numpy(), ids[r],
                                sim.max(dim=0).values.numpy()))
            rows.append((ids[h], per_ref))
        self.state["pairs"].extend(rows)

    def _weights(self) -> Any:
        """token id -> weight (bert-score's idf dict)."""
        from collections import defaultdict

        tok = self.encoder().tokenizer
        if not self.options["idf"]:
            weights: Any = defaultdict(lambda: 1.0)
            weights[tok.sep_token_id] = 0.0
            weights[tok.cls_token_id] = 0.0
            return weights
        df: Counter[int] = Counter()
        docs = 0
        for _, per_ref in self.state["pairs"]:
            for _, ref_ids, _ in per_ref:
                df.update(set(ref_ids))
                docs += 1
        unseen = math.log(docs + 1)
        weights = defaultdict(lambda: unseen)
        weights.update({t: math.log((docs + 1) / (c + 1)) for t, c in df.items()})
        return weights

    def scores(self) -> list[tuple[float, float, float]]:
        """Per sample: (P, R, F1), rescaled when asked."""
        import numpy as np

        weights = self._weights()
        base = None
        if self.options["rescale_with_baseline"]:
            base = baseline_row(self._baseline_path(), self.num_layers())
        out = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for hyp_ids, per_ref in self.state["pairs"]:
                wh = np.array([weights[t] for t in hyp_ids])
                best = None
                for hyp_best, ref_ids, ref_best in per_ref:
                    wr = np.array([weights[t] for t in ref_ids])
                    p = float(np.dot(wh / wh.sum(), hyp_best))
                    r = float(np.dot(wr / wr.sum(), ref_best))
                    f = 2 * p * r / (p + r) if p + r != 0 else math.nan
                    if len(hyp_ids) == 2 or len(ref_ids) == 2:  # empty (CLS, SEP only)
                        p = r = 0.0
                    f = 0.0 if math.isnan(f) else f
                    row = (p, r, f)
                    best = row if best is None else tuple(
                        max(a, b) for a, b in zip(best, row, strict=True))
                if base is not None:
                    best = tuple((v - b) / (1 - b) for v, b in zip(best, base, strict=True))
                out.append(best)
        return out

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        n = len(self.state["pairs"])
        self.require_samples(n)
        scores = self.scores()
        p, r, f = (math.fsum(s[k] for s in scores) / n for k in range(3))
        enc = self.encoder()
        return {"bertscore": self.result(
            f, n=n,
            components={"precision": p, "recall": r, "f1": f},
            per_sample=[s[2] for s in scores] if per_sample else None,
            model=self._model_id(),
            model_digest=enc.weights_digest,
            layer=self.num_layers(),
            baseline=(self._baseline_path().name if self.options["rescale_with_baseline"]
                      else "-"),
            aggregate="mean",
        )}

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        return {"bertscore": np.array([[s[2]] for s in self.scores()], dtype=np.float64)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        return totals[:, 0] / n

    def signature(self, **extra: Any) -> dict[str, Any]:
        sig = super().signature(**extra)
        sig.pop("baseline", None)  # replaced by the file name in extra
        sig["baseline"] = extra.get("baseline", "-")
        return sig

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch"),
                "transformers": library_version("transformers"),
                "bert-score": library_version("bert-score")}
