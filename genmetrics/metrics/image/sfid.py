"""Spatial FID (sFID, Nash et al. 2021), as the ADM evaluator computes it.

sFID is FID over the *spatial* features of the same Inception network: the first 7
channels of ``mixed_6/conv`` (torch-fidelity's ``Mixed_6d.branch1x1``), 7 x 17 x 17 =
2023 values per image (see :mod:`genmetrics.features.inception`). It keeps where
things are in the image, so it reacts to spatial structure that pool3's average over
positions washes out. Lower is better; 0 for identical distributions. Values compare
only between runs with the same reference set and similar sample counts (papers:
50,000 samples against an ADM reference batch).

Everything else is :class:`~genmetrics.metrics.image.fid.FID`: streaming float64
moments (state O(2023²) whatever the number of images), the same exact Fréchet
distance (:func:`~genmetrics.metrics.image._distribution_math.frechet_distance`) and
the same forward pass as FID, KID and IS (the spatial features come with pool3).
ADM's ``frechet_distance`` takes ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` (adding 1e-6 to
the diagonals if that fails); for positive definite covariances both are the same
number up to rounding, and ours stays exact (and real) when they are singular.

Reference: a folder (``--reference``), genmetrics statistics built with spatial
statistics (``genmetrics stats build``), or an ADM reference batch (``mu_s``,
``sigma_s``). Statistics without them (older genmetrics files, pytorch-fid or clean-fid
files) leave sFID unavailable, with that reason.

    >>> import numpy as np
    >>> sfid = SFID()
    >>> rng = np.random.default_rng(0)
    >>> sfid.add_features(rng.random((40, 6)))
    >>> sfid.add_reference_features(rng.random((50, 6)) + 0.2)
    >>> sfid.compute_value() > 0
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import UsageError
from genmetrics.metric import MetricSpec
from genmetrics.metrics.image._inception import DEVICE_OPTION, WEIGHTS_OPTION
from genmetrics.metrics.image.fid import FID

FEATURES = "mixed_6/conv"  # genmetrics.features.inception.SPATIAL (not imported: torch)


class SFID(FID):
    """sFID between the samples and a reference distribution (folder or statistics)."""

    spec = MetricSpec(
        name="sfid",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="spatial FID: Fréchet distance of the first 7 mixed_6/conv channels of "
        "the FID Inception (7x17x17); parity: the ADM evaluator (guided-diffusion)",
        value_range=(0.0, None),
        options=(DEVICE_OPTION, WEIGHTS_OPTION),
        assets=("inception-fid",),
        reference_set=True,
    )
    extractor_output = FEATURES
    display_name = "sFID"

    def stats_moments(self, stats: Any) -> tuple[np.ndarray, np.ndarray]:
        if stats.mu_s is None or stats.sigma_s is None:
            how = {"mu-sigma": "a pytorch-fid/clean-fid file holds pool3 statistics only",
                   "adm": "this ADM file has no mu_s/sigma_s"}.get(
                stats.format, "they were built before sFID existed; rebuild them with "
                "`genmetrics stats build`")
            raise UsageError(f"sfid needs spatial reference statistics (mu_s, sigma_s) and "
                             f"{stats.name} has none ({how}); or pass --reference refs/")
        return stats.mu_s, stats.sigma_s
