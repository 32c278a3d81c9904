"""Kernel Inception Distance, equal to torch-fidelity's (same subsets, same random draws).

KID is an unbiased MMD estimate with a cubic polynomial kernel on the pool3 features,
averaged over random subsets. Unlike FID it needs the features themselves, not just
their moments, so this metric keeps every feature row (2048 float32 = 8 KiB per image)
of the samples and of the reference distribution, as the k-NN metrics do, sharing one
copy of them (see :mod:`genmetrics.metrics.image._rows_metric`).

Subset size: by default ``min(1000, n_samples, n_reference)``, as clean-fid does, so a
default run on a small set still gives a KID; a warning says when it was reduced from
torch-fidelity's 1000 (equal to torch-fidelity's with ``kid_subset_size`` set to the
same number), and the size used goes into the signature as ``subset_size``. An
explicit ``subset_size`` larger than either set is an error saying how far to lower it.

Interval (:meth:`KID.bootstrap_replicates`): over all subsets of a size, the mean subset
MMD² is the unbiased MMD² ``U`` of the full sets, so KID = ``U`` + subset noise and its
standard error across reruns is ``sqrt(Var_boot(U) + Var_subsets / subsets)``: the
replicates are bootstrap copies of ``U`` over samples and references (a reference
statistics file's rows are a sample too), ``Var_subsets`` comes from the ``std``
component. See
:mod:`genmetrics.metrics.image._kernel_replicates`.

    >>> import numpy as np
    >>> kid = KID(subsets=5)  # subset size: min(1000, 30, 30) = 30
    >>> rng = np.random.default_rng(0)
    >>> kid.state["features"].append(rng.random((30, 8)))
    >>> kid.state["ref_features"].append(rng.random((30, 8)) + 0.5)
    >>> kid.compute_value()[0] > 0
    True
"""

from __future__ import annotations

from typing import Any

from genmetrics.errors import UsageError
from genmetrics.metric import MetricResult, MetricSpec, Option
from genmetrics.metrics.image import _distribution_math as dm
from genmetrics.metrics.image._inception import DEVICE_OPTION, FEATURES_OPTION, WEIGHTS_OPTION
from genmetrics.metrics.image._rows_metric import ReferenceRowsMetric

#: how the interval is made (for the signature): bootstrap replicates of the full-set
#: U-statistic, plus the variance of the subset mean around it
KID_CI_METHOD = "replicates of the full-set U-statistic; SE² = Var(U) + Var(subsets)/subsets"


class KID(ReferenceRowsMetric):
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
            Option("subset_size", None, f"images per subset (default: min({dm.KID_SUBSET_SIZE}, "
                   "samples, references); an explicit size needs at least this many on each "
                   "side)", int),
            Option("degree", dm.KID_DEGREE, "polynomial kernel degree", int),
            Option("coef0", float(dm.KID_COEF0), "polynomial kernel constant", float),
            Option("seed", dm.KID_SEED, "seed of the subset draws (torch-fidelity's)", int),
            FEATURES_OPTION,
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        assets=("inception-fid",),
        reference_set=True,
    )
    no_rows_reason = ("kid needs reference features, and {name} holds only mean and "
                      "covariance; pass --reference refs/ or rebuild the statistics with "
                      "features kept")

    def preflight(self) -> None:
        super().preflight()
        size = self.options["subset_size"]
        if self.options["subsets"] < 1 or (size is not None and size < 2):
            raise UsageError("kid.subsets must be >= 1 and kid.subset_size >= 2")

    def subset_size(self, n_samples: int, n_reference: int) -> int:
        """The subset size used: the option, or min(1000, n_samples, n_reference)."""
        size = self.options["subset_size"]
        if size is not None:
            return size
        return max(2, min(dm.KID_SUBSET_SIZE, n_samples, n_reference))

    def compute_value(self, sets: tuple[Any, Any] | None = None) -> tuple[float, float]:
        """(mean, std) of KID over the subsets (of ``sets``: samples and references;
        default: :meth:`feature_sets`)."""
        feats, ref = sets or self.feature_sets()
        o = self.options
        return dm.kernel_inception_distance(
            feats, ref, subsets=o["subsets"], subset_size=self.subset_size(len(feats), len(ref)),
            degree=o["degree"], coef0=o["coef0"], seed=o["seed"])

    def warnings(self) -> list[str]:
        n_samples = sum(len(f) for f in self.state["features"])
        n_reference = (len(self.reference_rows()) if self.reference_stats is not None
                       else sum(len(f) for f in self.state["ref_features"]))
        size = self.subset_size(n_samples, n_reference)
        if self.options["subset_size"] is None and size < dm.KID_SUBSET_SIZE:
            return [f"subset size reduced from {dm.KID_SUBSET_SIZE} to {size} to fit "
                    f"{n_samples} samples and {n_reference} references (as clean-fid does); "
                    "KID values compare only at the same subset size"]
        return []

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        feats, ref = self.feature_sets()
        mean, std = self.compute_value((feats, ref))
        self._subset_std = (len(feats), len(ref), std)
        extra: dict[str, Any] = {"subset_size": self.subset_size(len(feats), len(ref)),
                                 **self.extractor_signature(), **self.reference_signature()}
        return {"kid": self.result(mean, n=len(feats), components={"std": std}, **extra)}

    def bootstrap_replicates(self, resampling: Any) -> dict[str, Any]:
        """Bootstrap replicates of ``U`` (samples and references resampled) and the
        standard error ``sqrt(Var_boot(U) + Var_subsets / subsets)`` (module notes)."""
        from genmetrics.metrics.image._kernel_replicates import (
            kid_standard_error,
            kid_u_replicates,
        )
        from genmetrics.stats import Replicates

        feats, ref = self.feature_sets()
        o = self.options
        kept = getattr(self, "_subset_std", None)
        std = kept[2] if kept and kept[:2] == (len(feats), len(ref)) else \
            self.compute_value((feats, ref))[1]
        values = kid_u_replicates(feats, ref, resampling.sample_weights(len(feats)),
                                  resampling.reference_weights(len(ref)), degree=o["degree"],
                                  coef0=o["coef0"], device=o["device"])
        se = kid_standard_error(values, std, o["subsets"])
        return {"kid": Replicates(values, method=KID_CI_METHOD,
                                  resampled="samples+references", se=se)}
