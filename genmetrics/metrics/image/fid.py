"""Fréchet Inception Distance, equal to torch-fidelity's with the same weights.

State: streaming float64 sufficient statistics of the 2048-d pool3 features -- count,
sum and sum of outer products -- for the samples and for the reference distribution
(a reference folder, fed through :meth:`FID.update_reference`, or precomputed
statistics from :mod:`genmetrics.reference_stats`). Memory is O(d²) whatever the number
of images; states from several batches or processes add up exactly.

The trace of the matrix square root
(:func:`~genmetrics.metrics.image._distribution_math.trace_sqrt_product`) comes from a
symmetric generalised eigenproblem when both covariances are positive definite, and from
thin (pivoted Cholesky) factors when either is singular, so the value is always real and
never negative. With fewer images than feature dimensions (n <= 2048) a covariance is
singular: the value is still defined (and computed exactly, in milliseconds), and the
result's ``components.rank_deficient`` says so.

    >>> import numpy as np
    >>> fid = FID()
    >>> rng = np.random.default_rng(0)
    >>> fid.add_features(rng.random((50, 8)))
    >>> fid.add_reference_features(rng.random((60, 8)))
    >>> fid.compute_value() >= 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metric import MetricResult, MetricSpec
from genmetrics.metrics.image._distribution_math import (
    frechet_distance,
    is_rank_deficient,
    mean_and_covariance,
    moments_update,
)
from genmetrics.metrics.image._inception import (
    DEVICE_OPTION,
    FEATURES_OPTION,
    WEIGHTS_OPTION,
    InceptionMetric,
    features_option,
)

FEATURES = "2048"
#: the fewest rows a side a half-sample interval is given for (a half of 2-3 rows has
#: hardly a covariance: simulated rerun coverage fell to 70-89% at n = 2-4)
MIN_HALVES_ROWS = 8


class FID(InceptionMetric):
    """FID between the samples and a reference distribution (folder or statistics).

    Subclasses change ``extractor_output`` (which output of the extractor they compare)
    and :meth:`stats_moments` (which statistics of a reference file):
    :class:`~genmetrics.metrics.image.sfid.SFID`.
    """

    extractor_output: str = FEATURES  # the extractor output whose distribution is compared
    display_name: str = "FID"  # how notes name the metric

    spec = MetricSpec(
        name="fid",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="Fréchet Inception Distance (pool3 features of the FID Inception-v3); "
        "parity: torch-fidelity",
        value_range=(0.0, None),
        options=(FEATURES_OPTION, DEVICE_OPTION, WEIGHTS_OPTION),
        assets=("inception-fid",),
        reference_set=True,
    )
    #: ``rows`` / ``ref_rows``: the feature rows, kept only after
    #: :meth:`~InceptionMetric.prepare_bootstrap` (for intervals), else empty lists
    state_reductions = {"n": "sum", "total": "sum", "outer": "sum",
                        "ref_n": "sum", "ref_total": "sum", "ref_outer": "sum",
                        "rows": "cat", "ref_rows": "cat"}
    merge_ignores = frozenset({"device"})
    reference_state = frozenset({"ref_n", "ref_total", "ref_outer", "ref_rows"})

    def reset(self) -> None:
        super().reset()
        self.reference_stats: Any = None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for key in ("rows", "ref_rows"):  # states saved before rows could be kept
            self.state.setdefault(key, [])

    # -- feeding ---------------------------------------------------------------
    def add_features(self, features: np.ndarray) -> None:
        """Add sample features (``N x d``) directly, e.g. from a cache."""
        s = self.state
        s["n"], s["total"], s["outer"] = moments_update(s["n"], s["total"], s["outer"], features)
        if self.keep_rows and len(features):
            s["rows"].append(self.kept(features, self.row_key, "samples"))

    def add_reference_features(self, features: np.ndarray) -> None:
        s = self.state
        s["ref_n"], s["ref_total"], s["ref_outer"] = moments_update(
            s["ref_n"], s["ref_total"], s["ref_outer"], features)
        if self.keep_rows and len(features):
            s["ref_rows"].append(self.kept(features, self.row_key, "references"))

    def update(self, samples: Sequence[Any], references: Any = None) -> None:
        if len(samples):
            self.add_features(self.features(samples)[self.output])

    def update_reference(self, references: Sequence[Any]) -> None:
        if len(references):
            self.add_reference_features(self.features(references)[self.output])

    def stats_moments(self, stats: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` of reference statistics for this metric's features."""
        return stats.mu, stats.sigma

    def use_reference_stats(self, stats: Any) -> None:
        stats.check_extractor(self.extractor_signature(), self.spec.name)
        self.stats_moments(stats)  # raises UsageError when the file lacks them
        self.reference_stats = stats

    # -- computing ---------------------------------------------------------------
    def _reference_moments(self) -> tuple[int | None, np.ndarray, np.ndarray]:
        """(n, mu, sigma) of the reference side; n is None when a file does not say."""
        if self.reference_stats is not None:
            mu, sigma = self.stats_moments(self.reference_stats)
            return self.reference_stats.n, mu, sigma
        n = int(self.state["ref_n"])
        if n < 2:
            raise MetricError(f"{self.spec.name} needs at least 2 reference images; got {n}")
        mu, sigma = mean_and_covariance(n, self.state["ref_total"], self.state["ref_outer"])
        return n, mu, sigma

    def compute_value(self) -> float:
        """The value of the current state (no signature; see :meth:`compute`)."""
        n = int(self.state["n"])
        if n < 2:
            raise MetricError(f"{self.spec.name} needs at least 2 sample images; got {n}")
        mu, sigma = mean_and_covariance(n, self.state["total"], self.state["outer"])
        _, ref_mu, ref_sigma = self._reference_moments()
        return frechet_distance(mu, sigma, ref_mu, ref_sigma)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        value = self.compute_value()
        n = int(self.state["n"])
        ref_n = self._reference_moments()[0]
        dim = int(np.shape(self.state["total"])[0])
        components: dict[str, Any] = {"reference_n": ref_n}
        deficient = [side for side, count in (("samples", n), ("reference", ref_n))
                     if count is not None and is_rank_deficient(count, dim)]
        if deficient:
            components["rank_deficient"] = {
                "sides": deficient,
                "note": f"n <= {dim} features: the covariance is singular; "
                f"{self.display_name} is defined but biased and unstable at this size "
                "(use thousands of images)"}
        extra: dict[str, Any] = {**self.extractor_signature(), **self.reference_signature()}
        return {self.spec.name: self.result(value, n=n, components=components, **extra)}

    # -- intervals ---------------------------------------------------------------
    def _rows(self, key: str, side: str, count: int) -> np.ndarray:
        """The kept rows of one side as one array (mapped when kept in a row store),
        which then replaces the chunks in the state."""
        dim = int(np.shape(self.state["total"])[0])
        rows = self.stacked(self.state[key], self.row_key, side, dim)
        if rows.shape[0] != count:
            raise MetricError(f"{self.spec.name} kept {rows.shape[0]} {side} rows for "
                              f"{count} {side}: rows were not kept from the start")
        self.state[key] = [rows]
        return rows

    def bootstrap_replicates(self, resampling: Any) -> dict[str, Any] | None:
        """Replicates of the value from the kept rows (see
        :mod:`~genmetrics.metrics.image._replicates`), over the samples against reference
        statistics, over samples and references against a reference set. They are
        *half-samples* (:meth:`~genmetrics.stats.Resampling.sample_halves`: a random
        half of the rows, no row repeated), not bootstrap draws: a bootstrap replicate's
        repeated rows cost its covariance rank, which moves FID far more than a rerun
        does (~5x the rerun spread at d = 512, n = 300; half-samples 1.1-1.7x, the most
        at FID = 0).

            >>> from genmetrics.stats import Resampling
            >>> fid = FID()
            >>> fid.prepare_bootstrap()  # keep the rows in memory
            >>> rng = np.random.default_rng(0)
            >>> fid.add_features(rng.random((50, 8)))
            >>> fid.add_reference_features(rng.random((60, 8)))
            >>> rep = fid.bootstrap_replicates(Resampling(20, seed=1))["fid"]
            >>> rep.resampled, rep.method, rep.values.shape, rep.standard_error() > 0
            ('samples+references', 'half-sampling: exact (dense)', (20,), True)
        """
        if not self.keep_rows:
            return None
        from genmetrics.metrics.image._replicates import frechet_replicates
        from genmetrics.stats import Replicates

        n = int(self.state["n"])
        samples = self._rows("rows", "samples", n)
        sizes = {"samples": n}
        if self.reference_stats is not None:  # fixed statistics: the samples only
            reference: Any = self.stats_moments(self.reference_stats)
        else:
            reference = self._rows("ref_rows", "references", int(self.state["ref_n"]))
            sizes["references"] = int(reference.shape[0])
        for side, size in sizes.items():  # the rows stay kept either way
            if size < MIN_HALVES_ROWS:
                raise MetricError(f"a half-sample interval needs at least {MIN_HALVES_ROWS} "
                                  f"{side}, not {size} (a half of fewer rows has no "
                                  "covariance to speak of)")
        weights = resampling.sample_halves(n)
        if self.reference_stats is not None:
            ref_weights, resampled = None, "samples"
        else:
            ref_weights = resampling.reference_halves(reference.shape[0])
            resampled = "samples+references"
        out = frechet_replicates(samples, reference, weights, ref_weights,
                                 device=self._replicate_device())
        return {self.spec.name: Replicates(out.values, method=f"half-sampling: {out.method()}",
                                           resampled=resampled, se=out.se)}

    def _replicate_device(self) -> Any:
        """The CUDA device of the ``device`` option (replicates batched there), else
        None (numpy on the CPU)."""
        if str(self.options.get("device", "cpu")) == "cpu":
            return None
        from genmetrics.features.causal_lm import resolve_device

        device = resolve_device(str(self.options["device"]))
        return device if str(device).startswith("cuda") else None


class FDDinov2(FID):
    """Fréchet distance on DINOv2 ViT-L/14 features (dgm-eval, EDM2): ``fd_dinov2``, a
    result beside ``fid`` in one scorecard. FID's arithmetic and state; only the default
    backbone differs (``--set fd_dinov2.features=dinov2-vitb14`` picks another size).
    Left out of a default run, listed unavailable with the fetch command, when the model
    is not on this machine."""

    display_name = "FD-DINOv2"
    spec = MetricSpec(
        name="fd_dinov2",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="Fréchet distance on DINOv2 ViT-L/14 embeddings (dgm-eval preprocessing; "
        "Stein et al. 2023, EDM2)",
        value_range=(0.0, None),
        options=(features_option("dinov2-vitl14"), DEVICE_OPTION, WEIGHTS_OPTION),
        reference_set=True,
    )


class ClipFID(FID):
    """clean-fid's CLIP-FID: the Fréchet distance on CLIP ViT-B/32 image embeddings
    (``clip_fid``); run only when named."""

    display_name = "CLIP-FID"
    spec = MetricSpec(
        name="clip_fid",
        modality="image",
        kind="distribution",
        higher_is_better=False,
        unit="-",
        description="Fréchet distance on CLIP ViT-B/32 image embeddings (clean-fid's "
        "CLIP-FID preprocessing; Kynkäänniemi et al. 2023)",
        value_range=(0.0, None),
        options=(features_option("clip-vitb32"), DEVICE_OPTION, WEIGHTS_OPTION),
        reference_set=True,
        default=False,
    )
