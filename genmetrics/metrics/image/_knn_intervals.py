"""The k-NN metrics' bootstrap intervals, as the metrics see them (no torch at import).

:class:`KnnReplicatesMixin` gives precision/recall and density/coverage their
``bootstrap_replicates``; the arithmetic is in
:mod:`genmetrics.metrics.image._knn_bootstrap`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the signature's ``ci_method`` detail
METHOD = ("k-NN radii recomputed per replicate, drawn rows counted once and with their "
          "copies: the larger SE")
#: each k-NN value pass's results
METRICS = {"precision_recall": ("precision", "recall"), "density_coverage":
           ("density", "coverage"), "prdc": ("precision", "recall", "density", "coverage")}
#: the two ways a replicate recomputes the radii, whose larger SE is taken
SCHEMES = ("drawn", "copies")


def scheme_se(name: str, value: float, replicates: np.ndarray) -> float:
    """One scheme's standard error of result ``name``: the replicates' standard
    deviation; density's scaled by ``value / mean of the replicates`` (the replicates'
    radii change how many rows a ball holds, and density and its spread with it)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return math.nan
    se = float(np.std(finite, ddof=1))
    if name == "density":
        mean = float(finite.mean())
        se = se * value / mean if mean > 0 else se
    return se


def interval_replicates(values: dict[str, float],
                        schemes: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """:class:`~genmetrics.stats.Replicates` of each result from the replicates of each
    radius scheme (``{scheme: {result: values}}``): SE is the larger of the schemes'
    (:func:`scheme_se`); ``values`` holds that scheme's replicates."""
    from genmetrics.stats import Replicates

    out = {}
    for name, value in values.items():
        ses = {scheme: scheme_se(name, value, reps[name]) for scheme, reps in schemes.items()}
        finite = [sc for sc in ses if math.isfinite(ses[sc])]
        pick = max(finite, key=ses.__getitem__) if finite else next(iter(ses))
        out[name] = Replicates(schemes[pick][name], method=METHOD,
                               resampled="samples+references", se=ses[pick])
    return out


def record_replicates(values: dict[str, float], record: Any, sample_weights: np.ndarray,
                      ref_weights: np.ndarray) -> dict[str, Any]:
    """:func:`interval_replicates` of the results ``values`` from a value pass's records
    (a :class:`~genmetrics.metrics.image._knn_bootstrap.KnnRecord`) and the count rows
    ``sample_weights`` (``B x n``) and ``ref_weights`` (``B x m``)."""
    names = tuple(values)
    return interval_replicates(values, {
        scheme: record.replicate_values(sample_weights, ref_weights, names, radii=scheme)
        for scheme in SCHEMES})


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and bool(np.array_equal(a, b)))


class KnnReplicatesMixin:
    """``bootstrap_replicates`` of the k-NN metrics: the records of the value pass of
    :meth:`compute` when it kept them (after ``prepare_bootstrap``) and the rows are
    unchanged, else one recording pass."""

    #: (sample rows, reference rows, values, records) of the last recorded pass
    _knn_pass: tuple[np.ndarray, np.ndarray, dict[str, float], Any] | None = None
    knn_metric: str = ""

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._knn_pass = None

    def _knn_mode(self) -> str:
        return "exact"

    def _knn_record(self, feats: np.ndarray, ref: np.ndarray, nearest: bool = False
                    ) -> tuple[dict[str, float], Any]:
        """The value pass of :meth:`compute`: (values, the value function's output),
        its records kept for :meth:`bootstrap_replicates` when intervals were asked for."""
        from genmetrics.metrics.image._knn_bootstrap import record_pass

        opts = self.options  # type: ignore[attr-defined]
        values, record, out = record_pass(ref, feats, self.knn_metric, opts["k"],
                                          self._knn_mode(), opts["device"], nearest)
        self._knn_pass = (feats, ref, values, record)
        return values, out

    def bootstrap_replicates(self, resampling: Any) -> dict[str, Any] | None:
        """Replicates of both results, resampling samples and references (see
        :mod:`genmetrics.metrics.image._knn_bootstrap`)."""
        feats, ref = self.feature_sets()  # type: ignore[attr-defined]
        kept = self._knn_pass
        if kept is None or not (_same_rows(kept[0], feats) and _same_rows(kept[1], ref)):
            self._knn_record(feats, ref)
            kept = self._knn_pass
        assert kept is not None
        _, _, values, record = kept
        if record.overflow:
            from genmetrics.errors import MetricError
            from genmetrics.metrics.image._knn_bootstrap import MAX_MEMBERS

            raise MetricError(f"{self.knn_metric}: no interval -- more than {MAX_MEMBERS:,} "
                              "rows lie near the k-NN balls of the other side to resample "
                              "them in memory (the value is unaffected)")
        return record_replicates(values, record, resampling.sample_weights(len(feats)),
                                 resampling.reference_weights(len(ref)))
