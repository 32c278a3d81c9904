"""Kernel Inception Distance, equal to torch-fidelity's (same subsets, same random draws).

KID is an unbiased MMD estimate with a cubic polynomial kernel on the pool3 features,
averaged over random subsets. Unlike FID it needs the features themselves, not just
their moments, so this metric keeps every feature row (2048 float32 = 8 KiB per image)
of the samples and of the reference distribution. With fewer images than
``subset_size`` on either side it fails with a message saying how to lower it.

    >>> import numpy as np
    >>> kid = KID(subset_size=20, subsets=5)
    >>> rng = np.random.default_rng(0)
    >>> kid.state["features"].append(rng.random((30, 8)))
    >>> kid.state["ref_features"].append(rng.random((30, 8)) + 0.5)
    >>> kid.compute_value()[0] > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import MetricResult, MetricSpec, Option
from genmetrics.metrics.image import _distribution_math as dm
from genmetrics.metrics.image._inception import (
    DEVICE_OPTION,
    WEIGHTS_OPTION,
    InceptionMetric,
    stack_rows,
)

FEATURES = "2048"


class KID(InceptionMetric):
    """KID (mean over subsets, std in ``components``) against a reference distribution."""

    spec = MetricSpec(
        name="kid",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="Kernel Inception Distance (polynomial-kernel MMD on pool3 features); "
        "parity: torch-fidelity",
        options=(
            Option("subsets", dm.KID_SUBSETS, "number of random subsets averaged", int),
            Option("subset_size", dm.KID_SUBSET_SIZE, "images per subset (each side needs "
                   "at least this many)", int),
            Option("degree", dm.KID_DEGREE, "polynomial kernel degree", int),
            Option("coef0", float(dm.KID_COEF0), "polynomial kernel constant", float),
            Option("seed", dm.KID_SEED, "seed of the subset draws (torch-fidelity's)", int),
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        assets=("inception-fid",),
        reference_set=True,
    )
    state_reductions = {"features": "cat", "ref_features": "cat"}
    merge_ignores = frozenset({"device"})
    reference_state = frozenset({"ref_features"})

    def reset(self) -> None:
        super().reset()
        self.reference_stats: Any = None

    def preflight(self) -> None:
        super().preflight()
        if self.options["subsets"] < 1 or self.options["subset_size"] < 2:
            raise UsageError("kid.subsets must be >= 1 and kid.subset_size >= 2")

    def update(self, samples: Sequence[Any], references: Any = None) -> None:
        if len(samples):
            self.state["features"].append(self.features(samples)[FEATURES])

    def update_reference(self, references: Sequence[Any]) -> None:
        if len(references):
            self.state["ref_features"].append(self.features(references)[FEATURES])

    def use_reference_stats(self, stats: Any) -> None:
        stats.check_extractor(self.extractor_signature(), self.spec.name)
        if stats.features is None:
            raise UsageError(f"kid needs reference features, and {stats.name} holds only "
                             "mean and covariance; pass --reference refs/ or rebuild the "
                             "statistics with features kept")
        self.reference_stats = stats

    def compute_value(self) -> tuple[float, float]:
        """(mean, std) of KID over the subsets."""
        feats = stack_rows(self.state["features"], 2048)
        if self.reference_stats is not None:
            ref = self.reference_stats.features
        else:
            ref = stack_rows(self.state["ref_features"], feats.shape[1])
        o = self.options
        return dm.kernel_inception_distance(
            feats, ref, subsets=o["subsets"], subset_size=o["subset_size"],
            degree=o["degree"], coef0=o["coef0"], seed=o["seed"])

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        mean, std = self.compute_value()
        n = sum(len(f) for f in self.state["features"])
        extra: dict[str, Any] = dict(self.extractor_signature())
        if self.reference_stats is not None:
            extra["ref"] = f"stats:{self.reference_stats.name}"
            extra["refs"] = self.reference_stats.short_digest
        else:
            extra["ref"] = "folder"
        return {"kid": self.result(mean, n=n, components={"std": std}, **extra)}
