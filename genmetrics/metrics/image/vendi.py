"""The Vendi score (Friedman & Dieng 2023) of the samples, equal to ``vendi-score``'s.

Vendi = exp(Shannon entropy of the eigenvalues of K / n), K the n x n cosine-similarity
kernel of the samples' pool3 features: the *effective number of distinct samples*, from
1 (all alike) to n (all orthogonal). Higher = more diverse; no reference needed.

The nonzero eigenvalues of K / n are those of S / n, S = sum of x x^T over the
L2-normalised rows (d x d), so the state is S (float64, 2048 x 2048 = 32 MiB) and the
count: streaming, and states add up across batches and processes (``vendi-score``'s
``score_dual`` takes the same route; ``score_X`` builds K).

    >>> import numpy as np
    >>> v = Vendi(device="cpu")
    >>> v.add_features(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]])
    >>> round(v.compute_value(), 4)  # 4 directions, two of them twice
    3.7798
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metric import MetricResult, MetricSpec
from genmetrics.metrics.image._inception import DEVICE_OPTION, WEIGHTS_OPTION, InceptionMetric
from genmetrics.metrics.image._rows_metric import FEATURES


class Vendi(InceptionMetric):
    """Vendi score (cosine kernel on pool3 features) of the samples alone."""

    spec = MetricSpec(
        name="vendi",
        modality="image",
        kind="distribution",
        higher_is_better=True,
        unit="effective samples",
        description="Vendi score: effective number of distinct samples (cosine kernel on "
        "pool3 features, Friedman & Dieng 2023); parity: vendi-score",
        value_range=(1.0, None),
        options=(DEVICE_OPTION, WEIGHTS_OPTION),
        assets=("inception-fid",),
    )
    state_reductions = {"gram": "sum", "count": "sum"}
    merge_ignores = frozenset({"device"})

    def update(self, samples: Sequence[Any], references: Any = None) -> None:
        if len(samples):
            self.add_features(self.features(samples)[FEATURES])

    def add_features(self, rows: np.ndarray) -> None:
        """Fold ``N x d`` feature rows into the state."""
        from genmetrics.metrics.image._knn import cosine_gram

        self.state["gram"] = self.state["gram"] + cosine_gram(rows, self.options["device"])
        self.state["count"] += len(rows)

    def compute_value(self) -> float:
        from genmetrics.metrics.image._knn import vendi_from_gram

        if not self.state["count"]:
            raise MetricError("vendi: no samples were scored")
        return vendi_from_gram(self.state["gram"], self.state["count"])

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        n = int(self.state["count"])
        self.require_samples(n)
        return {"vendi": self.result(self.compute_value(), n=n, kernel="cosine", q=1,
                                     **self.extractor_signature())}
