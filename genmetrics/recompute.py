"""Numbers a scorecard's own per-sample statistics determine, computed again.

A scorecard written with ``--per-sample`` stores, for every result that can be
resampled, its per-sample sufficient statistics (``per_sample.stats``: BLEU's n-gram
counts, ROUGE's F, perplexity's NLL and token counts; see :mod:`genmetrics.stats`). The
corpus value is the metric's ``value_from_totals`` of their sum, and the 95% CI (with
``bootstrap`` and ``seed`` in the signature) is the percentile interval of the same
bootstrap the run made. (The rerun intervals of distribution metrics, ``ci_method``
``rerun ...``, come from feature rows, not per-sample statistics: not recomputed.)
So both can be checked: :func:`check_values` finds a value or CI that does not follow
from its statistics (a hand-edited card), and :func:`paired_p` runs the paired
bootstrap test between two cards over the same samples (the gate's
``require_significance``; ``compare`` and the report show it two-sided).

    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> sig = {"metric": "rouge", "rouge_type": "rouge1", "use_stemmer": False}
    >>> card = Scorecard("text", {"samples": {"path": "s", "count": 2}},
    ...                  {"rouge1": MetricResult("rouge1", 0.5, 2, True, "", sig)})
    >>> card.per_sample = {"ids": ["a", "b"], "values": {}, "stats": {"rouge1": [[0.4], [0.6]]}}
    >>> check_values(card)
    []
    >>> card.metrics["rouge1"].value = 0.7
    >>> check_values(card)  # doctest: +ELLIPSIS
    ['rouge1: the value 0.7 does not follow from its per-sample statistics (they give 0.5)...']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from genmetrics.stats import DEFAULT_SEED, bootstrap_values, percentile_interval

REL_TOL = 1e-6  # the value is a sum of stored floats: equal to the last bits, or nearly
ABS_TOL = 1e-9

ValueFn = Callable[[np.ndarray, int], np.ndarray]


def value_function(name: str, signature: dict[str, Any],
                   modality: str | None = None) -> ValueFn | None:
    """The function from summed statistics to the value of result ``name``, built from
    the metric and options its signature records; None if this install cannot (an
    unknown metric, or one that does not resample)."""
    from genmetrics.metric import Metric
    from genmetrics.registry import get_metric

    try:
        cls = get_metric(str(signature.get("metric", name)), modality)
    except Exception:  # noqa: BLE001 - a plugin not installed here: nothing to check with
        return None
    if cls.value_from_totals is Metric.value_from_totals:
        return None
    opts = {o.name: signature[o.name] for o in cls.spec.options if o.name in signature}
    try:
        metric = cls(**opts)
    except Exception:  # noqa: BLE001 - an option recorded as used, not as given
        try:
            metric = cls()
        except Exception:  # noqa: BLE001
            return None
    return lambda totals, n: np.asarray(metric.value_from_totals(name, totals, n), dtype=float)


def sample_rows(card: Any, name: str) -> np.ndarray | None:
    """The stored per-sample statistics of result ``name`` (``n x k`` float64), or None
    when the card has none or they hold a non-finite number."""
    stats = (card.per_sample or {}).get("stats") or {}
    rows = stats.get(name)
    if not isinstance(rows, list) or not rows:
        return None
    try:
        array = np.asarray([[math.nan if x is None else x for x in row] for row in rows],
                           dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim != 2 or not np.all(np.isfinite(array)):
        return None
    return array


def _bootstrap_seed(signature: dict[str, Any]) -> Any:
    """The bootstrap's seed: ``bootstrap_seed`` (0.3.0 on), ``seed`` in older cards."""
    return signature.get("bootstrap_seed", signature.get("seed"))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def check_values(card: Any, intervals: bool = True,
                 checked: list[str] | None = None) -> list[str]:
    """Problems, one line each, with the values and CIs that a card's per-sample
    statistics determine (``[]``: every one of them holds). ``intervals=False`` skips
    re-running the bootstraps behind the CIs (the gate: values only, in milliseconds;
    ``validate`` checks both). ``checked``, if given, receives the names of the results
    that could be recomputed."""
    problems = []
    for name, result in card.metrics.items():
        found = _check_result(card, name, result, intervals)
        if found is not None:
            problems.extend(found)
            if checked is not None:
                checked.append(name)
    return problems


def _check_result(card: Any, name: str, result: Any, intervals: bool = True
                  ) -> list[str] | None:
    rows = sample_rows(card, name)
    if rows is None or not math.isfinite(result.value):
        return None
    value_fn = value_function(name, result.signature, getattr(card, "modality", None))
    if value_fn is None:
        return None
    n = rows.shape[0]
    with np.errstate(all="ignore"):
        expected = float(value_fn(rows.sum(axis=0)[None, :], n)[0])
    problems = []
    if not (math.isfinite(expected) and _close(result.value, expected)):
        problems.append(f"{name}: the value {result.value!r} does not follow from its "
                        f"per-sample statistics (they give {expected!r}); the scorecard was "
                        "edited or is damaged")
    replicates, seed = result.signature.get("bootstrap"), _bootstrap_seed(result.signature)
    percentile = not is_rerun_interval(result)  # a rerun interval comes from feature rows
    if intervals and percentile and result.ci95 is not None and isinstance(replicates, int) \
            and n >= 2:
        with np.errstate(all="ignore"):
            values = bootstrap_values(rows, value_fn, replicates,
                                      seed if isinstance(seed, int) else DEFAULT_SEED)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = percentile_interval(values)
            if not (_close(result.ci95[0], lo) and _close(result.ci95[1], hi)):
                problems.append(f"{name}: the ci95 [{result.ci95[0]!r}, {result.ci95[1]!r}] "
                                "does not follow from its per-sample statistics (their "
                                f"bootstrap gives [{lo!r}, {hi!r}]); the scorecard was "
                                "edited or is damaged")
    return problems


def is_rerun_interval(result: Any) -> bool:
    """Whether ``result``'s ``ci95`` is a distribution metric's rerun interval (its
    signature's ``ci_method`` says ``rerun``), made from feature rows the scorecard does
    not hold, so not recomputed here.

    >>> from genmetrics.metric import MetricResult
    >>> is_rerun_interval(MetricResult("fid", 9.0, 50, False, "", {"ci_method": "rerun 95%"}))
    True
    """
    return str((result.signature or {}).get("ci_method", "")).startswith("rerun")


def paired_p(new: Any, base: Any, name: str, replicates: int = 1000,
             seed: int = DEFAULT_SEED, two_sided: bool = False) -> float:
    """The paired bootstrap p-value of result ``name`` between two cards over the same
    samples (see :func:`genmetrics.stats.paired_bootstrap_p`).

    One-sided (the gate): small when NEW is worse than BASE in nearly every resample.
    Two-sided (``compare``, the report): small when either is better in nearly every
    resample; ``min(1, 2 * min(p_worse, p_better))``. Raises ``ValueError`` naming what
    is missing when the cards cannot be paired.
    """
    from genmetrics.stats import paired_bootstrap_p

    rows, fns = [], []
    for card, label in ((new, "new"), (base, "baseline")):
        found = sample_rows(card, name)
        if found is None:
            raise ValueError(f"the {label} scorecard has no per-sample statistics for {name}; "
                             "score both with --per-sample")
        fn = value_function(name, card.metrics[name].signature, card.modality)
        if fn is None:
            raise ValueError(f"{name} cannot be resampled by this install")
        rows.append(found)
        fns.append(fn)
    new_ids, base_ids = new.per_sample.get("ids"), base.per_sample.get("ids")
    if new_ids != base_ids:  # the same samples in another order pair by id
        if new_ids is None or base_ids is None or sorted(new_ids) != sorted(base_ids) or \
                len(set(new_ids)) != len(new_ids) or len(rows[0]) != len(new_ids):
            raise ValueError("the two scorecards hold different samples (ids differ), so "
                             "they cannot be paired")
        if len(rows[1]) != len(base_ids):
            raise ValueError("the baseline's per-sample statistics do not match its ids")
        in_base = {sample_id: j for j, sample_id in enumerate(base_ids)}
        rows[1] = rows[1][[in_base[sample_id] for sample_id in new_ids]]
    if rows[0].shape != rows[1].shape:
        raise ValueError(f"the per-sample statistics differ in shape ({rows[0].shape} vs "
                         f"{rows[1].shape}); re-score both")
    higher = bool(new.metrics[name].higher_is_better)
    p = paired_bootstrap_p(rows[0], rows[1], fns[0], fns[1], higher, replicates, seed)
    if not two_sided:
        return p
    other = paired_bootstrap_p(rows[0], rows[1], fns[0], fns[1], not higher, replicates, seed)
    return min(1.0, 2.0 * min(p, other))
