"""Improved precision and recall (Kynkäänniemi et al. 2019), as ADM's evaluator gives them.

Each set's manifold is the union of balls around its pool3 feature rows, each ball's
radius the distance to that row's k-th nearest neighbour in its own set (k = 3).
**Precision** is the fraction of samples inside the reference manifold (fidelity: are
the samples realistic?); **recall** the fraction of references inside the sample
manifold (diversity: do the samples cover the data?). Both lie in [0, 1], higher is
better.

``mode=adm`` (default) reproduces openai/guided-diffusion's ``evaluations/evaluator.py``
(``ManifoldEstimator``): float16 squared distances with its float32 fallback per
10,000 x 10,000 block, ``<=`` comparisons, no clamping -- see
:mod:`genmetrics.metrics.image._knn` for every detail and the float16 reading taken.
``mode=exact`` decides every comparison on float64 distances. The mode goes into the
signature. Distances are computed in blocks (no N x N matrix); the rows of both sets
are kept (see :mod:`genmetrics.metrics.image._rows_metric`).

Intervals (``--bootstrap N``): both results get a 95% rerun interval from a bootstrap
over samples and references in which each replicate recomputes the k-NN radii on the
rows it drew; see :mod:`genmetrics.metrics.image._knn_bootstrap`.

    >>> import numpy as np
    >>> pr = PrecisionRecall(mode="exact", device="cpu")
    >>> rng = np.random.default_rng(0)
    >>> pr.state["features"].append(rng.normal(size=(40, 8)).astype(np.float32))
    >>> pr.state["ref_features"].append(rng.normal(size=(50, 8)).astype(np.float32))
    >>> p, r = pr.precision_recall(*pr.feature_sets())
    >>> 0.5 < p <= 1 and 0.5 < r <= 1
    True
"""

from __future__ import annotations

from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import MetricResult, MetricSpec, Option
from genmetrics.metrics.image._inception import DEVICE_OPTION, FEATURES_OPTION, WEIGHTS_OPTION
from genmetrics.metrics.image._knn_intervals import KnnReplicatesMixin
from genmetrics.metrics.image._rows_metric import ReferenceRowsMetric

MODES = ("adm", "exact")


class PrecisionRecall(KnnReplicatesMixin, ReferenceRowsMetric):
    """Precision and recall of the samples against a reference set (k-NN manifolds)."""

    knn_metric = "precision_recall"

    spec = MetricSpec(
        name="precision_recall",
        modality="image",
        kind="distribution",
        higher_is_better=True,
        unit="fraction",
        description="improved precision (fidelity) and recall (diversity), k-NN manifolds "
        "of pool3 features (Kynkäänniemi et al. 2019); parity: ADM's evaluator",
        value_range=(0.0, 1.0),
        options=(
            Option("k", 3, "neighbour whose distance is each ball's radius", int),
            Option("mode", "adm", "adm: ADM's float16 distances and <= (its published "
                   "numbers); exact: float64 distances"),
            FEATURES_OPTION,
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        outputs=("precision", "recall"),
        assets=("inception-fid",),
        reference_set=True,
    )
    no_rows_reason = ("precision/recall are defined against a reference set; these "
                      "statistics hold only mean and covariance ({name})")

    def preflight(self) -> None:
        super().preflight()
        if self.options["mode"] not in MODES:
            raise UsageError(f"precision_recall.mode must be one of {', '.join(MODES)}, "
                             f"not {self.options['mode']!r}")

    def precision_recall(self, feats: Any, ref: Any) -> tuple[float, float]:
        """(precision, recall) of the sample rows ``feats`` against the reference rows
        ``ref``, in this metric's mode."""
        from genmetrics.metrics.image import _knn

        fn = (_knn.adm_precision_recall if self.options["mode"] == "adm"
              else _knn.exact_precision_recall)
        return fn(ref, feats, self.options["k"], device=self.options["device"])

    def _knn_mode(self) -> str:
        return str(self.options["mode"])

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        feats, ref = self.feature_sets()
        self.require_samples(len(feats))
        self._knn_pass = None
        if self.keep_rows:  # intervals asked for: the bootstrap's records too
            values, _ = self._knn_record(feats, ref)
            precision, recall = values["precision"], values["recall"]
        else:
            precision, recall = self.precision_recall(feats, ref)
        extra: dict[str, Any] = {**self.reference_signature(), "n_ref": len(ref),
                                 **self.extractor_signature()}
        return {"precision": self.result(precision, n=len(feats), name="precision", **extra),
                "recall": self.result(recall, n=len(feats), name="recall", **extra)}
