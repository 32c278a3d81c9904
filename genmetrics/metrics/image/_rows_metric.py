"""What KID, precision/recall, density/coverage and CMMD share: rows of both sides, kept.

(The rows are pool3's on Inception, else the ``features`` backbone's embedding.)

KID's MMD and a k-NN manifold need the feature rows themselves, not their moments:
these metrics keep every pool3 row (2048 float32 = 8 KiB per image) of the samples and
of the reference set. The arrays appended are the ones :meth:`InceptionMetric.features`
memoises per batch, so every such metric of a run appends the same arrays. The first
metric to compute stacks each side once and puts the ``N x 2048`` array, as a
one-element list, in place of the per-batch chunks in its own state and in that of
every metric holding the very same chunks: the chunks are freed at once, and at 50,000
images a side the run holds one 400 MB array per side, not one per metric. States
stay lists of arrays, so merging, saving and gathering them work as before. With
``--bootstrap N`` (:meth:`~InceptionMetric.prepare_bootstrap`) the chunks are read-only
views of the run's memory-mapped row files (:mod:`genmetrics.features.rowstore`), each
batch written once, and the stacked rows are the file itself, mapped: not RAM.

Against reference statistics, the rows come from
:meth:`~genmetrics.reference_stats.ReferenceStats.feature_rows` (stored rows, or the
features of an ADM batch's images); statistics that hold only a mean and a covariance
cannot serve, and the runner lists the metric as unavailable with the metric's
``no_rows_reason``.

    >>> import numpy as np
    >>> from genmetrics.metrics.image.density_coverage import DensityCoverage
    >>> from genmetrics.metrics.image.precision_recall import PrecisionRecall
    >>> rng = np.random.default_rng(0)
    >>> chunks = [rng.random((6, 4), dtype=np.float32) for _ in range(2)]
    >>> dc, pr = DensityCoverage(k=2), PrecisionRecall(k=2)
    >>> for m in (dc, pr):
    ...     m.state["features"].extend(chunks)
    >>> dc.sample_rows() is pr.sample_rows(), pr.state["features"][0].shape
    (True, (12, 4))
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import UsageError
from genmetrics.metrics.image._inception import InceptionMetric

FEATURES = "2048"
DIM = 2048
_SIDES = {"features": "samples", "ref_features": "references"}  # state field -> row side

#: every live instance: stacking one's chunks stacks them for every instance holding them
_LIVE: weakref.WeakSet[ReferenceRowsMetric] = weakref.WeakSet()


class ReferenceRowsMetric(InceptionMetric):
    """Base of the metrics that keep the pool3 rows of samples and references."""

    state_reductions = {"features": "cat", "ref_features": "cat"}
    merge_ignores = frozenset({"device"})
    reference_state = frozenset({"ref_features"})
    #: the error for a statistics file without rows; ``{name}``: the file's name
    no_rows_reason: str = ""

    def reset(self) -> None:
        super().reset()
        self.reference_stats: Any = None
        _LIVE.add(self)

    def preflight(self) -> None:
        super().preflight()
        if "k" in self.options and self.options["k"] < 1:
            raise UsageError(f"{self.spec.name}.k must be >= 1")

    def update(self, samples: Sequence[Any], references: Any = None) -> None:
        if len(samples):
            self.state["features"].append(
                self.kept(self.features(samples)[self.output], self.row_key, "samples"))

    def update_reference(self, references: Sequence[Any]) -> None:
        if len(references):
            self.state["ref_features"].append(
                self.kept(self.features(references)[self.output], self.row_key, "references"))

    def use_reference_stats(self, stats: Any) -> None:
        stats.check_extractor(self.extractor_signature(), self.spec.name)
        if not stats.has_rows:
            raise UsageError(self.no_rows_reason.format(name=stats.name))
        self.reference_stats = stats

    def _stacked(self, key: str) -> np.ndarray:
        """State field ``key`` as one ``N x d`` array, which then replaces the chunks, in
        this metric's state and in that of every metric holding the very same chunks."""
        chunks = self.state[key]
        if len(chunks) == 1:
            return np.asarray(chunks[0])
        dim = DIM if self.on_inception else (int(np.shape(chunks[0])[1]) if chunks else 0)
        rows = self.stacked(chunks, self.row_key, _SIDES[key], dim)
        for metric in list(_LIVE) if chunks else []:
            held = metric.state.get(key)
            if held is not None and len(held) == len(chunks) and \
                    all(a is b for a, b in zip(held, chunks, strict=True)):
                metric.state[key] = [rows]
        return rows

    def sample_rows(self) -> np.ndarray:
        """The samples' rows, ``N x d``, in the order they came."""
        return self._stacked("features")

    def reference_rows(self) -> np.ndarray:
        """The reference rows: fed batches, or the statistics' rows (stored, or extracted
        once from an ADM batch's images: see ``ReferenceStats.feature_rows``)."""
        if self.reference_stats is not None:
            return np.asarray(self.reference_stats.feature_rows(self))
        return self._stacked("ref_features")

    def feature_sets(self) -> tuple[np.ndarray, np.ndarray]:
        """(sample rows, reference rows)."""
        return self.sample_rows(), self.reference_rows()
