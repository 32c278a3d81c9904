"""The bootstrap difference of a distribution metric between two runs on the same references.

The gate's default rule for a distribution metric with a rerun interval (``score
--bootstrap N``) is "worse by more than the baseline's half-width", ``1.96·√2·SE``: the
noise of two independent runs, each against a fresh reference draw. When both scorecards
are against the **same reference set** and recorded their feature rows (the ``rows``
field; memory-mapped ``.npy`` files beside the feature cache, see
:mod:`genmetrics.features.rowstore`), the gate can do better: it bootstraps the
difference itself. Replicate ``b`` is

    D_b = metric(new samples drawn with W'_b, the references)
        - metric(baseline samples drawn with W_b, the references)

with the references **held fixed** (both runs were scored against these very rows, so
their draw is not noise in the difference) and independent sample weights ``W_b``,
``W'_b`` (the two sample sets are independent draws of their generators); FID and sFID
draw half-samples rather than counts, as their own intervals do. Resampling the
references alike on both sides instead would cancel their noise to first order only:
near FID = 0 it left the difference's SE 1.75x the true spread of new - baseline,
against 1.36x with the references fixed (d = 6, n = 100, m = 120). ``SE_diff`` is the
standard deviation of the ``D_b``, the difference's own noise: no √2, nothing counted
twice. The gate fails the metric when the new value is worse by more than
``1.96·SE_diff`` -- one-sided, so a same-model rerun raises a false alarm on about 2.5%
of metrics under normality, as with the half-width rule.

Metrics with a difference: ``fid``, ``sfid`` (:func:`~genmetrics.metrics.image.
_replicates.frechet_replicates`) and ``kid`` (:func:`~genmetrics.metrics.image.
_kernel_replicates.kid_u_replicates`; the subset noise of both values is added,
``Var_subsets / subsets`` each). The reference side is the baseline's reference rows,
or, against shipped statistics (``--reference-stats``), the statistics themselves, fixed.
Reference-free metrics (Vendi, IS) have nothing that cancels, and the k-NN metrics
(precision, recall, density, coverage) need their value pass's records: they keep the
half-width rule. :func:`bootstrap_difference` raises :class:`NotPaired` saying why a
pair cannot be bootstrapped; the gate prints that reason beside the rule it used instead.

    >>> import numpy as np
    >>> from genmetrics.stats import Resampling
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(60, 4))
    >>> base, new = rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 1.0
    >>> d = difference_replicates("fid", base, new, ref, Resampling(50, 1), {})
    >>> d.values.shape, bool(d.se > 0), bool(np.mean(d.values) > 3 * d.se)
    ((50,), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.stats import DEFAULT_SEED, RERUN_Z, Resampling

#: the one-sided multiple of ``SE_diff`` a change may reach (the 97.5% normal quantile:
#: a same-model rerun fails about 2.5% of the time, as with the half-width rule)
DIFFERENCE_Z = RERUN_Z
#: the new run's sample counts are drawn with the baseline's seed plus this (independent)
NEW_SEED_OFFSET = 1
RULE = "bootstrap difference, same references"


class NotPaired(Exception):
    """Two results cannot be bootstrapped as a difference; the message says why."""


@dataclass
class Difference:
    """``B`` bootstrap replicates of ``new - baseline`` and their standard error."""

    values: np.ndarray
    se: float
    replicates: int
    seed: int
    #: how the references entered: ``rows, fixed`` or ``statistics, fixed``
    reference: str

    def allowance(self, z: float = DIFFERENCE_Z) -> float:
        """How much worse the new value may be: ``z · SE_diff``."""
        return z * self.se


def _frechet(x: Any, reference: Any, w: np.ndarray, v: np.ndarray | None,
             signature: dict[str, Any]) -> np.ndarray:
    from genmetrics.metrics.image._replicates import frechet_replicates

    return frechet_replicates(x, reference, w, v).values


def _kid(x: Any, reference: Any, w: np.ndarray, v: np.ndarray | None,
         signature: dict[str, Any]) -> np.ndarray:
    """Replicates of ``U``, the unbiased MMD² (the subset noise is added by
    :func:`bootstrap_difference`)."""
    from genmetrics.metrics.image import _distribution_math as dm
    from genmetrics.metrics.image._kernel_replicates import kid_u_replicates

    if isinstance(reference, tuple) or v is None:
        raise NotPaired("kid needs reference rows")
    return kid_u_replicates(x, reference, w, v, degree=signature.get("degree", dm.KID_DEGREE),
                            coef0=signature.get("coef0", dm.KID_COEF0), device="cpu")


#: result name -> (feature output its rows are recorded under, replicate function,
#: draws). A replicate function takes sample rows, the reference (rows, or ``(mu,
#: sigma)``), sample and reference weights and the result's signature; it returns the
#: replicate values. ``draws`` is how the metric's own interval draws its replicates,
#: ``"bootstrap"`` (counts) or ``"halves"`` (FID and sFID: half-samples, see
#: :meth:`~genmetrics.stats.Resampling.sample_halves`), and the difference draws alike.
DIFFERENCES: dict[str, tuple[str, Callable[..., np.ndarray], str]] = {
    "fid": ("2048", _frechet, "halves"),
    "sfid": ("mixed_6/conv", _frechet, "halves"),
    "kid": ("2048", _kid, "bootstrap"),
}


def _weights(resampling: Resampling, n: int, draws: str) -> np.ndarray:
    """``B x n`` sample weights of the kind ``draws`` names."""
    return resampling.sample_halves(n) if draws == "halves" else resampling.sample_weights(n)


def _subset_variance(result: Any) -> float:
    """KID: ``Var_subsets / subsets`` of one value (0.0 for every other result)."""
    std = (result.components or {}).get("std")
    subsets = result.signature.get("subsets")
    if result.signature.get("metric") != "kid" or not isinstance(std, (int, float)) \
            or not isinstance(subsets, int) or subsets < 2:
        return 0.0
    return float(std) ** 2 * subsets / (subsets - 1) / subsets


def difference_replicates(name: str, base_rows: Any, new_rows: Any, reference: Any,
                          resampling: Resampling, signature: dict[str, Any]) -> Difference:
    """Replicates of ``name(new) - name(base)`` (see the module docstring) from feature
    rows: ``reference`` is rows (resampled with the same counts for both) or ``(mu,
    sigma)`` (fixed); the new samples are drawn with ``resampling.seed +``
    :data:`NEW_SEED_OFFSET`."""
    if name not in DIFFERENCES:
        raise NotPaired(f"no bootstrap difference for {name}")
    _, function, draws = DIFFERENCES[name]
    b = resampling.replicates
    if isinstance(reference, tuple):
        v, how = None, "statistics, fixed"
    else:  # the rows both runs were scored against: fixed (all weights 1)
        v, how = np.ones((b, int(reference.shape[0]))), "rows, fixed"
    w_base = _weights(resampling, int(base_rows.shape[0]), draws)
    w_new = _weights(Resampling(b, resampling.seed + NEW_SEED_OFFSET),
                     int(new_rows.shape[0]), draws)
    base_values = function(base_rows, reference, w_base, v, signature)
    new_values = function(new_rows, reference, w_new, v, signature)
    values = np.asarray(new_values, dtype=np.float64) - np.asarray(base_values, np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        raise NotPaired(f"fewer than 2 of the {b} difference replicates are finite")
    return Difference(values, float(np.std(finite, ddof=1)), b, resampling.seed, how)


def _open_rows(card: Any, output: str, side: str, label: str) -> np.ndarray:
    """The rows ``card`` recorded for ``output`` and ``side``, memory-mapped."""
    paths = (card.rows or {}).get(output) or {}
    if not paths:
        raise NotPaired(f"the {label} scorecard recorded no {output} feature rows")
    if side not in paths:
        raise NotPaired(f"the {label} scorecard recorded no {side} rows")
    path = Path(paths[side])
    try:
        rows = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise NotPaired(f"the {label} scorecard's {side} rows are gone ({path}; rows are "
                        "kept for the most recent runs only)") from None
    except (OSError, ValueError) as exc:
        raise NotPaired(f"cannot read the {label} scorecard's {side} rows {path}: "
                        f"{exc}") from None
    if rows.ndim != 2:
        raise NotPaired(f"the {label} scorecard's {side} rows {path} are not a 2-D array")
    return rows


def _stats_reference(name: str, signature: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of the reference statistics a FID/sFID result names, checked
    against its digest."""
    from genmetrics.reference_stats import load_stats

    stats_name = str(signature.get("ref", ""))[len("stats:"):]
    try:
        stats = load_stats(stats_name)
    except Exception as exc:  # noqa: BLE001 - any failure: say it, use the half-width rule
        raise NotPaired(f"cannot load the reference statistics {stats_name}: {exc}") from None
    if stats.short_digest != signature.get("refs"):
        raise NotPaired(f"the reference statistics {stats_name} changed since the baseline")
    if name == "sfid":
        if stats.mu_s is None or stats.sigma_s is None:
            raise NotPaired(f"{stats_name} holds no spatial statistics")
        return stats.mu_s, stats.sigma_s
    return stats.mu, stats.sigma


def bootstrap_difference(new: Any, base: Any, name: str) -> Difference:
    """The bootstrap difference of result ``name`` between two scorecards (new - base),
    or :class:`NotPaired` naming why there is none: no difference for this metric, no
    rerun interval or no feature rows in either card, rows deleted, other references."""
    b, n = base.metrics[name], new.metrics[name]
    metric = str(b.signature.get("metric", name))
    if b.signature.get("refs") is None:
        raise NotPaired(f"{metric} reads no references, so nothing cancels")
    if name not in DIFFERENCES:
        raise NotPaired(f"not implemented for {metric}")
    output, _, _ = DIFFERENCES[name]
    interval = (b.components or {}).get("interval")
    if not isinstance(interval, dict):
        raise NotPaired("the baseline has no rerun interval (score it with --bootstrap N)")
    if not isinstance((n.components or {}).get("interval"), dict):
        raise NotPaired("the new scorecard has no rerun interval (score it with --bootstrap N)")
    refs = b.signature.get("refs")
    if refs is None or refs != n.signature.get("refs") or \
            b.signature.get("ref") != n.signature.get("ref"):
        raise NotPaired("the reference sets differ")
    base_rows = _open_rows(base, output, "samples", "baseline")
    new_rows = _open_rows(new, output, "samples", "new")
    for rows, result, label in ((base_rows, b, "baseline"), (new_rows, n, "new")):
        if rows.shape[0] != result.n:
            raise NotPaired(f"the {label} scorecard's sample rows ({rows.shape[0]}) do not "
                            f"match its n ({result.n})")
    if name in ("fid", "sfid") and str(b.signature.get("ref", "")).startswith("stats:"):
        reference: Any = _stats_reference(name, b.signature)  # fixed, as in its interval
    else:  # the same set (same digest): the baseline's rows serve both sides
        reference = _open_rows(base, output, "references", "baseline")
    width = (np.shape(reference[0])[0] if isinstance(reference, tuple)
             else reference.shape[1])
    if width != base_rows.shape[1] or new_rows.shape[1] != base_rows.shape[1]:
        raise NotPaired("the feature rows have different widths")
    replicates = interval.get("replicates") or b.signature.get("bootstrap")
    if not isinstance(replicates, int) or replicates < 2:
        raise NotPaired("the baseline does not say how many replicates it drew")
    seed = b.signature.get("bootstrap_seed", b.signature.get("seed"))
    seed = seed if isinstance(seed, int) and seed >= 0 else DEFAULT_SEED
    try:
        out = difference_replicates(name, base_rows, new_rows, reference,
                                    Resampling(replicates, seed), b.signature)
    except NotPaired:
        raise
    except Exception as exc:  # noqa: BLE001 - a numerical failure: fall back, saying why
        raise NotPaired(f"the difference replicates failed: {exc}") from None
    extra = _subset_variance(b) + _subset_variance(n)
    if extra:
        out.se = math.sqrt(out.se ** 2 + extra)
    return out
