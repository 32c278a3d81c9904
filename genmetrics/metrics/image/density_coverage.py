"""Density and coverage (Naeem et al. 2020), equal to the ``prdc`` package.

Balls around the *reference* pool3 rows only (radius: the k-th nearest reference
neighbour, k = 5), which makes both robust to sample outliers:

* **density** -- per sample, how many reference balls contain it, divided by k, averaged
  (fidelity; 1 on average when samples are distributed like references, above 1 when
  they crowd the dense regions of the data, below 1 off the data);
* **coverage** -- the fraction of reference balls that contain at least one sample
  (diversity, in [0, 1]).

Comparisons are strict (``distance < radius``) on the distances ``prdc`` compares
(scikit-learn's float32 Euclidean distances of float32 features), computed in blocks
without N x N matrices: see :mod:`genmetrics.metrics.image._knn`.

Intervals (``--bootstrap N``): both results get a 95% rerun interval from a bootstrap
over samples and references in which each replicate recomputes the reference balls'
radii on the rows it drew; see :mod:`genmetrics.metrics.image._knn_bootstrap`.

With ``compute(per_sample=True)``, the ``density`` result's ``per_sample`` holds each
sample's ball count / k, and its components each sample's nearest reference
(``nearest_reference``: ``index`` into the reference rows in the order they were
added, and the Euclidean pool3 ``distance``) -- a hint of memorisation when small.

    >>> import numpy as np
    >>> dc = DensityCoverage(device="cpu")
    >>> rng = np.random.default_rng(0)
    >>> dc.state["features"].append(rng.normal(size=(40, 8)).astype(np.float32))
    >>> dc.state["ref_features"].append(rng.normal(size=(50, 8)).astype(np.float32))
    >>> out = dc.compute(per_sample=True)
    >>> 0 < out["coverage"].value <= 1, len(out["density"].per_sample)
    (True, 40)
"""

from __future__ import annotations

from typing import Any

from genmetrics.metric import MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics.image._inception import DEVICE_OPTION, FEATURES_OPTION, WEIGHTS_OPTION
from genmetrics.metrics.image._knn_intervals import KnnReplicatesMixin
from genmetrics.metrics.image._rows_metric import ReferenceRowsMetric


class DensityCoverage(KnnReplicatesMixin, ReferenceRowsMetric):
    """Density (fidelity) and coverage (diversity) against a reference set."""

    knn_metric = "density_coverage"

    spec = MetricSpec(
        name="density_coverage",
        modality="image",
        kind="distribution",
        higher_is_better=True,
        unit="-",
        description="density (fidelity, can exceed 1) and coverage (diversity) of pool3 "
        "features, k-NN balls around references (Naeem et al. 2020); parity: prdc",
        options=(
            Option("k", 5, "neighbour whose distance is each reference ball's radius", int),
            FEATURES_OPTION,
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        outputs=("density", "coverage"),
        assets=("inception-fid",),
        reference_set=True,
    )
    no_rows_reason = ("density/coverage are defined against a reference set; these "
                      "statistics hold only mean and covariance ({name})")

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        from genmetrics.metrics.image import _knn

        feats, ref = self.feature_sets()
        self.require_samples(len(feats))
        k = self.options["k"]
        self._knn_pass = None
        if self.keep_rows:  # intervals asked for: the bootstrap's records too
            _, out = self._knn_record(feats, ref, nearest=per_sample)
        else:
            out = _knn.density_coverage(ref, feats, k, nearest=per_sample,
                                       device=self.options["device"])
        extra: dict[str, Any] = {**self.reference_signature(), "n_ref": len(ref),
                                 **self.extractor_signature()}
        components: dict[str, Any] = {}
        rows = None
        if per_sample:
            rows = [float(c) / k for c in out.counts]
            assert out.nearest_index is not None and out.nearest_distance is not None
            components["nearest_reference"] = {
                "index": [int(i) for i in out.nearest_index],
                "distance": [float(d) for d in out.nearest_distance]}
        return {"density": self.result(out.density, n=len(feats), name="density",
                                       components=components, per_sample=rows, **extra),
                "coverage": self.result(out.coverage, n=len(feats), name="coverage", **extra)}

    def result_range(self, result: str) -> tuple[float | None, float | None]:
        """Density is >= 0 and can exceed 1; coverage is a fraction in [0, 1]."""
        return (0.0, 1.0) if result == "coverage" else (0.0, None)

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch")}
