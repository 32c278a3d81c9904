"""CMMD (Jayasumana et al. 2024): the RBF-kernel MMD of CLIP embeddings, google-research's.

google-research's ``cmmd`` embeds both sets with CLIP ViT-L/14@336 (scenic's
``encode_image``, which L2-normalises each embedding) and returns ``distance.mmd``:
``1000 * (mean K_xx + mean K_yy - 2 mean K_xy)``, ``K(a, b) = exp(-||a - b||² / 200)``
(σ = 10), the biased estimate with every diagonal term. This metric keeps the
embedding rows of both sides (768 float32 = 3 KiB per image, shared with any other
metric on the same backbone, see :mod:`~genmetrics.metrics.image._rows_metric`) and
computes the three kernel means in float64 over row blocks
(:func:`~genmetrics.metrics.image._mmd.rbf_mmd`): no ``N x M`` kernel is ever held,
where theirs holds three, in float32. Lower is better; 0 for identical sets.

Backbone: ``clip-vitl14-336`` (the ``features`` option picks another; the signature
names it). ``normalize`` (default true, as scenic's CLIP) scales each embedding to unit
norm first.

    >>> import numpy as np
    >>> cmmd = CMMD(device="cpu")
    >>> rng = np.random.default_rng(0)
    >>> cmmd.state["features"].append(rng.normal(size=(40, 16)).astype(np.float32))
    >>> cmmd.state["ref_features"].append(rng.normal(size=(50, 16)).astype(np.float32) + 1)
    >>> cmmd.compute_value() > 0
    True
"""

from __future__ import annotations

from typing import Any

from genmetrics.errors import MetricError, UsageError
from genmetrics.metric import MetricResult, MetricSpec, Option
from genmetrics.metrics.image._inception import DEVICE_OPTION, WEIGHTS_OPTION, features_option
from genmetrics.metrics.image._mmd import CMMD_SCALE, CMMD_SIGMA, l2_normalised, rbf_mmd
from genmetrics.metrics.image._rows_metric import ReferenceRowsMetric

CMMD_BACKBONE = "clip-vitl14-336"


class CMMD(ReferenceRowsMetric):
    """CMMD of the samples against a reference set (Gaussian-RBF MMD, blocked)."""

    spec = MetricSpec(
        name="cmmd",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="CMMD: Gaussian-RBF MMD (σ = 10, x1000) of CLIP ViT-L/14@336 image "
        "embeddings (Jayasumana et al. 2024); parity: google-research cmmd's formula",
        value_range=(0.0, None),
        options=(
            features_option(CMMD_BACKBONE),
            Option("sigma", CMMD_SIGMA, "RBF kernel bandwidth", float),
            Option("scale", CMMD_SCALE, "factor the MMD² is multiplied by", float),
            Option("normalize", True, "scale each embedding to unit L2 norm first (as "
                   "scenic's CLIP encode_image, which google-research cmmd uses)", bool),
            DEVICE_OPTION,
            WEIGHTS_OPTION,
        ),
        reference_set=True,
    )
    no_rows_reason = ("cmmd needs reference embeddings, and {name} holds only mean and "
                      "covariance; pass --reference refs/ or build the statistics with "
                      "features kept")

    def preflight(self) -> None:
        super().preflight()
        if not self.options["sigma"] > 0:
            raise UsageError("cmmd.sigma must be > 0")

    def compute_value(self, sets: tuple[Any, Any] | None = None) -> float:
        """CMMD of ``sets`` (sample rows, reference rows; default: the kept rows)."""
        feats, ref = sets or self.feature_sets()
        if len(feats) < 1 or len(ref) < 1:
            raise MetricError(f"cmmd needs samples and references; got {len(feats)} samples "
                              f"and {len(ref)} references")
        if self.options["normalize"]:
            feats, ref = l2_normalised(feats), l2_normalised(ref)
        device = _torch_device(self.options["device"])
        return rbf_mmd(ref, feats, sigma=self.options["sigma"], scale=self.options["scale"],
                       device=device)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        feats, ref = self.feature_sets()
        self.require_samples(len(feats))
        value = max(0.0, self.compute_value((feats, ref)))  # rounding below 0 at MMD = 0
        extra: dict[str, Any] = {"kernel": "rbf", "estimator": "biased",
                                 "n_ref": len(ref), **self.extractor_signature(),
                                 **self.reference_signature()}
        return {"cmmd": self.result(value, n=len(feats), **extra)}


def _torch_device(device: Any) -> str:
    """The torch device of a metric's ``device`` option (``auto``: CUDA when present)."""
    if str(device) == "cpu":
        return "cpu"
    from genmetrics.features.causal_lm import resolve_device

    return str(resolve_device(str(device)))
