"""Checks on training curves: loss trend, train/validation gap, learning-rate schedule,
gradient-norm spikes, explosion and collapse.

Every check returns :class:`Finding` objects holding the statistic, the threshold it was
held against and a plain-language verdict. The thresholds live in :class:`Thresholds`.
"The last window" is the last ``window`` logged points of a series (default: the last
20% of its points, at least 10).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from genmetrics.errors import UsageError

Series = tuple[np.ndarray, np.ndarray]

ROLES = ("train_loss", "val_loss", "lr", "grad_norm")
ROLE_OPTIONS = {"train_loss": "--loss", "val_loss": "--val-loss", "lr": "--lr",
                "grad_norm": "--grad-norm"}
#: Verdicts ``--fail-on`` accepts.
FAIL_ON = ("diverged", "rising", "plateau", "overfitting", "widening", "spikes", "exploding",
           "vanishing")


@dataclass(frozen=True)
class Thresholds:
    """The numbers the verdicts are held against (documented in the README section)."""

    alpha: float = 0.01  # one-sided p-value a slope must beat to count as a trend
    min_change: float = 0.01  # a significant trend must change the level at least this much
    plateau_change: float = 0.05  # no significant trend and |change| below this: flat
    min_points: int = 5  # fewer points in a window: "too short"
    spike_z: float = 6.0  # robust z-score (log10 norm, rolling median / MAD) of a spike
    spike_ratio: float = 5.0  # ...and at least this many times the rolling median
    mad_floor: float = 0.02  # smallest MAD scale, in decades (~5%), for smooth series
    explode_decades: float = 1.0  # fitted growth of log10 norm over the last window
    explode_total_decades: float = 2.0  # last-window median / first-window median
    explode_nonfinite: float = 0.05  # share of non-finite norms in the last window
    vanish_decades: float = 3.0  # drop from the peak rolling median to the last window
    vanish_floor: float = 1e-8  # a last-window median below this has vanished


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Finding:
    """One verdict: which check, on which series, with its statistic and threshold."""

    check: str
    series: str
    verdict: str
    flagged: bool
    message: str
    statistic: str = ""
    threshold: str = ""
    statistics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    steps: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def _json_safe(obj: Any) -> Any:
    """Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``; numpy
    scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def default_window(n: int, window: int | None = None) -> int:
    """Points in the last window: ``window`` if given, else 20% of ``n``, at least 10.

    >>> default_window(1000), default_window(30), default_window(1000, 50)
    (200, 10, 50)
    """
    if window is not None:
        if window < 3:
            raise UsageError(f"--window must be at least 3 points; got {window}")
        return min(n, window)
    return min(n, max(10, n // 5))


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


# ---------------------------------------------------------------------------- slope test


def slope_test(steps: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Least-squares line through ``(steps, values)`` (``scipy.stats.linregress``), with
    its t-statistic, one-sided p-values and the fitted change relative to the level.

    ``change`` = slope x step span / mean |value| (so -0.05 = fell 5% over the window).

    >>> s = slope_test(np.arange(10.0), 5 - 0.1 * np.arange(10.0))
    >>> round(s["slope"], 3), s["p_falling"] < 0.01, round(s["change"], 3)
    (-0.1, True, -0.198)
    """
    from scipy import stats

    n = len(steps)
    span = float(steps[-1] - steps[0])
    level = float(np.mean(np.abs(values))) or 1.0
    if n < 3 or span <= 0:
        return {"n": n, "slope": 0.0, "stderr": math.inf, "t": 0.0, "p_falling": 1.0,
                "p_rising": 1.0, "change": 0.0, "level": level, "intercept": float(values[-1]),
                "start": float(steps[0]), "end": float(steps[-1])}
    if np.ptp(values) == 0:
        slope, intercept, stderr = 0.0, float(values[0]), 0.0
    else:
        fit = stats.linregress(steps, values)
        slope, intercept, stderr = float(fit.slope), float(fit.intercept), float(fit.stderr)
    if stderr > 0:
        t = slope / stderr
    else:
        t = 0.0 if slope == 0 else math.copysign(math.inf, slope)
    df = n - 2
    return {"n": n, "slope": slope, "stderr": stderr, "t": t,
            "p_falling": float(stats.t.cdf(t, df)), "p_rising": float(stats.t.sf(t, df)),
            "change": slope * span / level, "level": level, "intercept": intercept,
            "start": float(steps[0]), "end": float(steps[-1])}


def _trend(test: dict[str, float], th: Thresholds) -> str:
    """falling / rising (significant, and at least ``min_change`` over the window), flat
    (otherwise, with a fitted change under ``plateau_change``) or noisy (no significant
    trend, but the scatter is too large to call it flat)."""
    if test["p_falling"] < th.alpha and test["change"] <= -th.min_change:
        return "falling"
    if test["p_rising"] < th.alpha and test["change"] >= th.min_change:
        return "rising"
    if abs(test["change"]) < th.plateau_change:
        return "flat"
    return "noisy"


def _trend_numbers(test: dict[str, float], th: Thresholds) -> tuple[str, str]:
    stat = (f"slope {_fmt(test['slope'])}/step, t={_fmt(test['t'])}, change "
            f"{100 * test['change']:+.1f}% over {test['n']} pts")
    thresh = (f"trend: p<{th.alpha} one-sided and |change|>={100 * th.min_change:g}%; "
              f"plateau: otherwise |change|<{100 * th.plateau_change:g}%")
    return stat, thresh


# ---------------------------------------------------------------------------- loss trend


def loss_trend(name: str, steps: np.ndarray, values: np.ndarray, *, window: int | None = None,
               th: Thresholds = DEFAULT_THRESHOLDS, label: str = "loss") -> Finding:
    """Is the loss still falling, plateaued, rising, or diverged (non-finite at the end)?

    >>> x = np.arange(100.0)
    >>> loss_trend("loss", x, 3 * np.exp(-x / 30)).verdict
    'falling'
    >>> loss_trend("loss", x, np.full(100, 0.5)).verdict
    'plateau'
    """
    check = f"{label} trend"
    finite = np.isfinite(values)
    bad_steps = steps[~finite].tolist()
    if len(values) and not finite[-1]:
        first = bad_steps[0]
        return Finding(check, name, "diverged", True,
                       f"{label} is {values[-1]} at the last step (non-finite from step "
                       f"{first:g}): training diverged", f"{len(bad_steps)} non-finite",
                       "any non-finite last value", {"non_finite": len(bad_steps)}, {},
                       bad_steps[:50])
    steps, values = steps[finite], values[finite]
    w = default_window(len(values), window)
    if w < th.min_points:
        return Finding(check, name, "too short", False,
                       f"only {len(values)} finite points; need {th.min_points}", "", "")
    test = slope_test(steps[-w:], values[-w:])
    stat, thresh = _trend_numbers(test, th)
    trend = _trend(test, th)
    # messages stay short (one 80-column line); the t-statistic is in ``stat``
    span = f"steps {test['start']:g}-{test['end']:g} ({w} points)"
    if trend == "falling":
        verdict, flagged = "falling", False
        message = (f"still falling: {100 * test['change']:+.1f}% over {span}; not converged "
                   "yet")
    elif trend == "rising":
        verdict, flagged = "rising", True
        message = f"rising: {100 * test['change']:+.1f}% over {span}; getting worse"
    elif trend == "flat":
        verdict, flagged = "plateau", False
        sig = (f"significant but under {100 * th.min_change:g}%" if min(
            test["p_falling"], test["p_rising"]) < th.alpha else "no significant slope")
        message = f"plateaued: {100 * test['change']:+.2f}% over {span}, {sig}"
    else:
        verdict, flagged = "inconclusive", False
        message = (f"no clear trend: {100 * test['change']:+.1f}% over steps "
                   f"{test['start']:g}-{test['end']:g}, too noisy; use a longer --window")
    if bad_steps:
        message += f"; {len(bad_steps)} non-finite value(s) left out"
    return Finding(check, name, verdict, flagged, message, stat, thresh, test,
                   {"alpha": th.alpha, "min_change": th.min_change,
                    "plateau_change": th.plateau_change, "window": w}, bad_steps[:50])


# ---------------------------------------------------------------------------- gap


def _centered_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean over a centred window of ``k`` points (shrinking at the ends)."""
    if k <= 1:
        return values.copy()
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    lo = np.clip(idx - k // 2, 0, len(values))
    hi = np.clip(idx + (k - k // 2), 0, len(values))
    return (csum[hi] - csum[lo]) / (hi - lo)


def gap_trend(train_name: str, train: Series, val_name: str, val: Series, *,
              window: int | None = None, th: Thresholds = DEFAULT_THRESHOLDS) -> Finding:
    """The validation - train gap at each validation step (train loss smoothed over the
    points between evaluations and interpolated) and its slope over the last window.

    Overfitting: the gap grows significantly while the train loss still falls or the
    validation loss rises.

    >>> x = np.arange(0.0, 1000.0)
    >>> train = (x, 2 * np.exp(-x / 300))
    >>> val_x = x[::20]
    >>> val = (val_x, 2 * np.exp(-val_x / 300) + 0.2 + val_x / 1000)
    >>> gap_trend("loss", train, "val_loss", val).verdict
    'overfitting'
    """
    check = "train/val gap"
    label = f"{val_name} - {train_name}"
    ts, tv = (a[np.isfinite(train[1])] for a in train)
    vs, vv = (a[np.isfinite(val[1])] for a in val)
    inside = (vs >= ts[0]) & (vs <= ts[-1]) if len(ts) else np.zeros(len(vs), bool)
    vs, vv = vs[inside], vv[inside]
    if len(vs) < th.min_points or len(ts) < th.min_points:
        return Finding(check, label, "too short", False,
                       f"{len(vs)} validation point(s) within the train steps; need "
                       f"{th.min_points}")
    k = max(1, round(len(ts) / len(vs)))
    smooth = np.interp(vs, ts, _centered_mean(tv, k))
    gap = vv - smooth
    # the window: the train loss's last window, in steps, holding at least min_points gaps
    start = ts[-default_window(len(ts), window)]
    w = max(int(np.sum(vs >= start)), th.min_points)
    if window is None:
        w = max(w, default_window(len(vs)))
    gs, gv = vs[-w:], gap[-w:]
    test = slope_test(gs, gv)
    test["change"] = test["slope"] * (gs[-1] - gs[0]) / (float(np.mean(np.abs(vv[-w:]))) or 1)
    test["gap_start"] = test["intercept"] + test["slope"] * gs[0]
    test["gap_end"] = test["intercept"] + test["slope"] * gs[-1]
    in_window = ts >= gs[0]
    train_test = slope_test(ts[in_window], tv[in_window])
    val_test = slope_test(gs, vv[-w:])
    test["train_t"], test["val_t"] = train_test["t"], val_test["t"]
    train_falling = _trend(train_test, th) == "falling"
    val_rising = _trend(val_test, th) == "rising"
    trend = _trend(test, th)
    stat = (f"gap {_fmt(test['gap_start'])} -> {_fmt(test['gap_end'])}, t={_fmt(test['t'])}, "
            f"{100 * test['change']:+.1f}% of val loss over {w} pts")
    thresh = f"p<{th.alpha} one-sided, growth>={100 * th.min_change:g}% of val loss"
    span = f"steps {gs[0]:g}-{gs[-1]:g}"
    if trend == "rising" and (train_falling or val_rising):
        why = ", ".join(w for w, yes in (("train loss falls", train_falling),
                                         ("val loss rises", val_rising)) if yes)
        verdict, flagged = "overfitting", True
        message = f"gap grew {_fmt(test['gap_start'])} -> {_fmt(test['gap_end'])} ({span}); {why}"
    elif trend == "rising":
        verdict, flagged = "widening", True
        message = (f"gap grew {_fmt(test['gap_start'])} -> {_fmt(test['gap_end'])} ({span}), "
                   "though neither loss trends alone")
    elif trend == "falling":
        verdict, flagged = "narrowing", False
        message = f"gap narrowed {_fmt(test['gap_start'])} -> {_fmt(test['gap_end'])} ({span})"
    else:
        verdict, flagged = "stable", False
        message = (f"no overfitting: the gap is stable at about {_fmt(float(np.mean(gv)))} "
                   f"over {span}")
    return Finding(check, label, verdict, flagged, message, stat, thresh, test,
                   {"alpha": th.alpha, "min_change": th.min_change, "window": w,
                    "train_smoothing_points": k})


# ---------------------------------------------------------------------------- lr schedule


def _decay_shape(x: np.ndarray, y: np.ndarray) -> tuple[str, float]:
    """Best of linear, exponential, cosine, inverse-sqrt fits of ``y`` against ``x`` (steps
    since the decay began); returns (name, rms error / range of ``y``)."""
    span = float(x[-1]) or 1.0
    rng = float(np.ptp(y)) or 1.0
    fits: dict[str, float] = {}

    def rms(pred: np.ndarray) -> float:
        return float(np.sqrt(np.mean((pred - y) ** 2))) / rng

    def lstsq(basis: np.ndarray) -> float:
        design = np.column_stack([np.ones_like(basis), basis])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return rms(design @ coef)

    fits["linear"] = lstsq(x)
    if np.all(y > 0):
        a, b = np.polyfit(x, np.log(y), 1)
        fits["exponential"] = rms(np.exp(a * x + b))
    fits["cosine"] = min(lstsq(np.cos(np.pi * f * x / span)) for f in np.linspace(0.05, 1, 96))
    fits["inverse-sqrt"] = min(lstsq(1 / np.sqrt(x + c))
                               for c in np.geomspace(max(span, 1) / 1e4, max(span, 1), 25))
    best = min(fits, key=lambda k: fits[k])
    return best, fits[best]


def lr_schedule(name: str, steps: np.ndarray, values: np.ndarray) -> Finding:
    """Describe the schedule: constant, step decay, linear / cosine / exponential /
    inverse-sqrt decay, each possibly after a warmup, or cyclic.

    >>> x = np.arange(1000.0)
    >>> cosine = 0.5 * (1 + np.cos(np.pi * (x - 100) / 900))
    >>> lr_schedule("lr", x, np.where(x < 100, x / 100, cosine)).verdict
    'warmup + cosine decay'
    >>> lr_schedule("lr", x, 0.1 * 0.1 ** (x // 300)).verdict
    'step decay'
    """
    check = "learning-rate schedule"
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    if len(values) < 2:
        return Finding(check, name, "too short", False, f"{len(values)} finite point(s)")
    peak, low = float(values.max()), float(values.min())
    stats: dict[str, Any] = {"start": float(values[0]), "peak": peak, "end": float(values[-1]),
                             "min": low}
    tol = 1e-3 * abs(peak) if peak else 1e-12
    if peak - low <= tol:
        return Finding(check, name, "constant", False, f"constant at {_fmt(peak)}",
                       f"range {_fmt(peak - low)}", "range <= 0.1% of peak", stats)
    at_peak = np.flatnonzero(values >= peak - tol)
    first, last = int(at_peak[0]), int(at_peak[-1])
    warmup = first > 0
    warm_text = f"warmup to {_fmt(peak)} by step {steps[first]:g}, then " if warmup else ""
    start = "" if warmup else f" from {_fmt(peak)}"  # the decay's start, unless warm_text says
    stats["warmup_end"] = float(steps[first]) if warmup else None
    after = np.diff(values[first:])
    climb = float(after[after > 0].sum())
    if climb > 0.1 * (peak - low):
        ups = steps[first + 1:][after > 0.2 * (peak - low)]
        stats["restarts"] = ups.tolist()
        listed = f" at steps {', '.join(f'{s:g}' for s in ups[:10])}" if len(ups) else ""
        return Finding(check, name, "cyclic", False,
                       f"{warm_text}cyclic: rises again after decaying ({len(ups)} restart(s)"
                       f"{listed}), between {_fmt(low)} and {_fmt(peak)}",
                       f"climb {_fmt(climb)} after the peak", "climb > 10% of range", stats)
    if last == len(values) - 1:  # the peak lasts to the end: no decay yet
        if last - first >= 2:
            return Finding(check, name, "warmup + constant", False,
                           f"{warm_text}constant", "", "", stats)
        return Finding(check, name, "warmup", False,
                       f"warmup: rising from {_fmt(float(values[0]))} to {_fmt(peak)} at the "
                       "last step", "", "", stats)
    tail_steps, tail = steps[last:], values[last:]
    if len(tail) < 3:
        return Finding(check, name, "warmup + decay" if warmup else "decay", False,
                       f"{warm_text}decay{start} to {_fmt(float(values[-1]))} at step "
                       f"{steps[-1]:g}",
                       "", "", stats)
    changed = np.abs(np.diff(tail)) > 1e-6 * abs(peak)
    if changed.mean() <= 0.2 and changed.sum() <= 20:
        drops = tail_steps[1:][changed]
        factors = (tail[1:][changed] / tail[:-1][changed]).tolist()
        stats.update(drops=drops.tolist(), factors=factors)
        shown = ", ".join(f"{s:g} (x{f:.3g})" for s, f in zip(drops[:10], factors, strict=False))
        return Finding(check, name, "warmup + step decay" if warmup else "step decay", False,
                       f"{warm_text}step decay: {len(drops)} drop(s) at steps {shown}; "
                       f"{_fmt(peak)} -> {_fmt(float(values[-1]))}",
                       f"{len(drops)} drops", "<=20% of steps change", stats)
    keep = np.unique(np.linspace(0, len(tail) - 1, min(len(tail), 2000)).astype(int))
    shape, rms = _decay_shape(tail_steps[keep] - tail_steps[0], tail[keep])
    stats.update(shape=shape, fit_rms=rms)
    if rms > 0.05:
        verdict, shape_text = "irregular decay", "an irregular decay"
    else:
        verdict, shape_text = f"{shape} decay", f"{shape} decay"
    if warmup:
        verdict = f"warmup + {verdict}"
    return Finding(check, name, verdict, False,
                   f"{warm_text}{shape_text}{start} to {_fmt(float(values[-1]))} at step "
                   f"{steps[-1]:g}", f"fit rms {100 * rms:.1f}% of range",
                   "best fit rms <= 5% of range", stats)


# ---------------------------------------------------------------------------- grad norm


def _rolling_median(values: np.ndarray, width: int) -> np.ndarray:
    """Median over a centred window of ``width`` points, the ends padded with the edge
    value (``scipy.ndimage.median_filter``, ``mode="nearest"``)."""
    from scipy.ndimage import median_filter

    return median_filter(values, size=width, mode="nearest")


def robust_z(logv: np.ndarray, width: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(z, rolling median): ``(x - median) / max(1.4826 x MAD, floor)``, both rolling.

    >>> z, med = robust_z(np.r_[np.zeros(20), 3.0, np.zeros(20)], 11, 0.02)
    >>> float(z[20]), float(med[20])
    (150.0, 0.0)
    """
    med = _rolling_median(logv, width)
    scale = np.maximum(1.4826 * _rolling_median(np.abs(logv - med), width), floor)
    return (logv - med) / scale, med


def grad_norm_checks(name: str, steps: np.ndarray, values: np.ndarray, *,
                     window: int | None = None, th: Thresholds = DEFAULT_THRESHOLDS
                     ) -> list[Finding]:
    """Spikes (robust z-score of log10 norm against a rolling median / MAD), exploding
    (non-finite, or growing by orders of magnitude) and vanishing (collapsed towards 0).

    >>> rng = np.random.default_rng(0)
    >>> x = np.arange(500.0)
    >>> norms = np.exp(rng.normal(0, 0.1, 500)); norms[[100, 300]] = 50
    >>> [(f.verdict, f.steps) for f in grad_norm_checks("grad_norm", x, norms)][0]
    ('spikes', [100.0, 300.0])
    """
    finite = np.isfinite(values)
    bad_steps = steps[~finite]
    fs, fv = steps[finite], values[finite]
    w = default_window(len(values), window)
    if len(fv) < th.min_points:
        if len(values) and not finite[-1]:
            return [Finding("exploding gradients", name, "exploding", True,
                            f"non-finite gradient norm from step {bad_steps[0]:g}: exploded",
                            f"{len(bad_steps)} non-finite", "non-finite at the end", {}, {},
                            bad_steps.tolist()[:50])]
        return [Finding("gradient norm", name, "too short", False,
                        f"{len(fv)} finite point(s); need {th.min_points}")]
    logv = np.log10(np.maximum(np.abs(fv), 1e-30))
    width = max(11, min(101, (len(fv) // 10) | 1))
    z, med = robust_z(logv, width, th.mad_floor)
    spike = (z > th.spike_z) & (logv - med >= math.log10(th.spike_ratio))
    spike_steps = fs[spike]
    # occasional non-finite norms (a loss scaler skipping a step) count as spikes; many at
    # the end count as an explosion
    last_bad = int(np.sum(~finite[-w:]))
    persistent = (not finite[-1]) or last_bad > th.explode_nonfinite * w
    findings = []
    all_spikes = np.sort(np.concatenate([spike_steps, [] if persistent else bad_steps]))
    z_max = float(z.max())
    spike_thresh = (f"z>{th.spike_z:g} and >={th.spike_ratio:g}x rolling median "
                    f"({width} pts)")
    if len(all_spikes):
        listed = ", ".join(f"{s:g}" for s in all_spikes[:10])
        more = f" (+{len(all_spikes) - 10} more)" if len(all_spikes) > 10 else ""
        extra = f", {len(bad_steps)} non-finite" if len(bad_steps) and not persistent else ""
        findings.append(Finding(
            "gradient spikes", name, "spikes", True,
            f"{len(all_spikes)} spike(s) at steps {listed}{more}{extra}",
            f"max z={_fmt(z_max)}", spike_thresh,
            {"count": len(all_spikes), "max_z": z_max, "window_points": width},
            {"z": th.spike_z, "ratio": th.spike_ratio, "mad_floor_decades": th.mad_floor},
            all_spikes.tolist()[:200]))
    else:
        findings.append(Finding("gradient spikes", name, "none", False,
                                "no spikes", f"max z={_fmt(z_max)}", spike_thresh,
                                {"count": 0, "max_z": z_max, "window_points": width},
                                {"z": th.spike_z, "ratio": th.spike_ratio}))
    # exploding
    wf = default_window(len(fv), window)
    test = slope_test(fs[-wf:], logv[-wf:])
    growth = test["slope"] * (fs[-1] - fs[-wf])
    first_med = float(np.median(logv[:wf]))
    last_med = float(np.median(logv[-wf:]))
    total = last_med - first_med
    stats = {"growth_decades": growth, "t": test["t"], "total_decades": total,
             "non_finite": int(len(bad_steps)), "non_finite_last_window": last_bad}
    thresholds = {"alpha": th.alpha, "growth_decades": th.explode_decades,
                  "total_decades": th.explode_total_decades,
                  "non_finite_share": th.explode_nonfinite}
    stat = (f"growth {growth:+.2f} decades over {wf} pts (t={_fmt(test['t'])}), "
            f"{total:+.2f} since start")
    thresh = (f">={th.explode_decades:g} decade (p<{th.alpha}) or >={th.explode_total_decades:g}"
              f" since start, or non-finite")
    if persistent:
        findings.append(Finding(
            "exploding gradients", name, "exploding", True,
            f"non-finite gradient norm from step {bad_steps[0]:g} ({last_bad} of the last {w} "
            "points): exploded", f"{len(bad_steps)} non-finite", thresh, stats, thresholds,
            bad_steps.tolist()[:50]))
    elif (test["p_rising"] < th.alpha and growth >= th.explode_decades) \
            or total >= th.explode_total_decades:
        how = (f"the gradient norm grew {10 ** growth:.3g}x over steps {fs[-wf]:g}-"
               f"{fs[-1]:g} ({wf} points)" if growth >= th.explode_decades else
               f"the median gradient norm grew {10 ** total:.3g}x since the start "
               f"({_fmt(10 ** first_med)} -> {_fmt(10 ** last_med)})")
        findings.append(Finding("exploding gradients", name, "exploding", True, how, stat,
                                thresh, stats, thresholds))
    else:
        findings.append(Finding("exploding gradients", name, "none", False,
                                "no explosion", stat, thresh, stats, thresholds))
    # vanishing
    peak = float(med.max())
    drop = peak - last_med
    vstats = {"peak_median": 10 ** peak, "last_median": 10 ** last_med, "drop_decades": drop}
    vthresh = {"drop_decades": th.vanish_decades, "floor": th.vanish_floor}
    vstat = f"last median {_fmt(10 ** last_med)}, {drop:.2f} decades below the peak"
    vtext = f"drop>={th.vanish_decades:g} decades or median<={th.vanish_floor:g}"
    if 10 ** last_med <= th.vanish_floor or drop >= th.vanish_decades:
        findings.append(Finding(
            "vanishing gradients", name, "vanishing", True,
            f"the median norm fell {drop:.1f} decades ({_fmt(10 ** peak)} -> "
            f"{_fmt(10 ** last_med)}): learning has stopped", vstat, vtext, vstats, vthresh))
    else:
        findings.append(Finding("vanishing gradients", name, "none", False, "no collapse",
                                vstat, vtext, vstats, vthresh))
    return findings


# ---------------------------------------------------------------------------- roles

_VAL = {"val", "valid", "validation", "eval", "evaluation", "test", "dev", "holdout"}
_TRAIN = {"train", "training"}
_FILLER = {"epoch", "step", "avg", "mean", "total", "smooth", "smoothed", "running", "ema",
           "global", "batch", "value", "metrics", "metric", "scalars", "loss", "losses"}
_LR_OK = {"lr", "learning", "rate", "group", "pg", "param", "optimizer", "adam", "adamw", "sgd",
          "lion", "adafactor", "opt"}
_GRAD_OK = {"grad", "grads", "gradient", "gradients", "norm", "norms", "gnorm", "l2", "clip",
            "before", "unclipped"}


def _tokens(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1_\2", text)
    return re.findall(r"[a-z]+|\d+", text.lower())


def _unexplained(tokens: list[str], ok: set[str]) -> int:
    return sum(1 for t in tokens if t not in ok and t not in _VAL and t not in _TRAIN
               and t not in _FILLER and not t.isdigit())


def _candidates(series: Mapping[str, Series], role: str) -> list[tuple[tuple, str]]:
    out = []
    for name, (steps, values) in series.items():
        parts = [_tokens(p) for p in name.split("/")]
        tokens = [t for p in parts for t in p]
        is_val = bool(set(tokens) & _VAL)
        if role in ("train_loss", "val_loss"):
            hit = any("loss" in p and _unexplained(p, set()) == 0 for p in parts)
            if not hit or is_val != (role == "val_loss"):
                continue
            rank = (_unexplained(tokens, set()), not (set(tokens) & (_TRAIN | _VAL)))
        elif role == "lr":
            if not ("lr" in tokens or {"learning", "rate"} <= set(tokens)) or is_val:
                continue
            rank = (_unexplained(tokens, _LR_OK), False)
        else:
            if not ("gnorm" in tokens or (set(tokens) & {"grad", "grads", "gradient",
                                                         "gradients"}
                                          and set(tokens) & {"norm", "norms"})) or is_val:
                continue
            rank = (_unexplained(tokens, _GRAD_OK), "total" not in tokens)
        few = len(steps) < 5  # e.g. a run's final average logged once
        no_number = not np.isfinite(values).any()  # never a finite value: loses to one that has
        out.append(((rank[0], no_number, few, rank[1], -len(steps), len(name), name), name))
    return sorted(out)


def detect_roles(series: Mapping[str, Series], given: Mapping[str, str | None] | None = None
                 ) -> dict[str, dict[str, str | None]]:
    """Which series is the train loss, validation loss, learning rate and gradient norm:
    ``given`` names first (checked), else detected by name (a series that holds a finite
    value before one that never does).

    >>> s = {n: (np.arange(3.0), np.ones(3)) for n in
    ...      ("train/loss", "eval/loss", "train/learning_rate", "train/grad_norm", "kl_loss")}
    >>> {r: v["series"] for r, v in detect_roles(s).items()}  # doctest: +NORMALIZE_WHITESPACE
    {'train_loss': 'train/loss', 'val_loss': 'eval/loss', 'lr': 'train/learning_rate',
     'grad_norm': 'train/grad_norm'}
    """
    given = dict(given or {})
    roles: dict[str, dict[str, str | None]] = {}
    for role in ROLES:
        name = given.get(role)
        if name:
            if name not in series:
                close = difflib.get_close_matches(name, list(series), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UsageError(f"{ROLE_OPTIONS[role]} {name!r}: no such series{hint} "
                                 f"(series: {', '.join(sorted(series))})")
            roles[role] = {"series": name, "how": "given"}
            continue
        found = _candidates(series, role)
        roles[role] = {"series": found[0][1] if found else None,
                       "how": "detected" if found else None}
    return roles


# ---------------------------------------------------------------------------- all checks


def describe_series(steps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Points, step range, first/last/min/max value and non-finite count of a series.

    >>> describe_series(np.array([0.0, 1.0]), np.array([2.0, np.nan]))["non_finite"]
    1
    """
    finite = values[np.isfinite(values)]
    return {"points": len(steps), "first_step": float(steps[0]), "last_step": float(steps[-1]),
            "first": float(values[0]), "last": float(values[-1]),
            "min": float(finite.min()) if len(finite) else None,
            "max": float(finite.max()) if len(finite) else None,
            "non_finite": int(len(values) - len(finite))}


def analyze_series(series: Mapping[str, Series], *, window: int | None = None,
                   roles: Mapping[str, str | None] | None = None,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Run every check on ``series``; returns the summary (JSON-ready).

    >>> x = np.arange(200.0)
    >>> out = analyze_series({"loss": (x, 2 * np.exp(-x / 10) + 0.1)})
    >>> [(f["check"], f["verdict"]) for f in out["findings"]][:2]
    [('loss trend', 'plateau'), ('train/val gap', 'not available')]
    """
    if window is not None and window < 3:
        raise UsageError(f"--window must be at least 3 points; got {window}")
    chosen = detect_roles(series, roles)
    th = thresholds
    findings: list[Finding] = []

    def missing(check: str, role: str) -> Finding:
        return Finding(check, "-", "not available", False,
                       f"no {role.replace('_', ' ')} series found; name it with "
                       f"{ROLE_OPTIONS[role]}")

    train, val = chosen["train_loss"]["series"], chosen["val_loss"]["series"]
    if train:
        findings.append(loss_trend(train, *series[train], window=window, th=th))
    else:
        findings.append(missing("loss trend", "train_loss"))
    if val:
        findings.append(loss_trend(val, *series[val], window=window, th=th,
                                   label="validation loss"))
    if train and val:
        findings.append(gap_trend(train, series[train], val, series[val], window=window, th=th))
    else:
        findings.append(missing("train/val gap", "val_loss" if train else "train_loss"))
    lr = chosen["lr"]["series"]
    findings.append(lr_schedule(lr, *series[lr]) if lr
                    else missing("learning-rate schedule", "lr"))
    gn = chosen["grad_norm"]["series"]
    if gn:
        findings.extend(grad_norm_checks(gn, *series[gn], window=window, th=th))
    else:
        findings.append(missing("gradient norm", "grad_norm"))
    summary = {
        "window": window,
        "roles": chosen,
        "series": {name: describe_series(*s) for name, s in sorted(series.items())},
        "findings": [f.to_dict() for f in findings],
        "flags": sorted({f.verdict for f in findings if f.flagged}),
        "thresholds": asdict(th),
    }
    return _json_safe(summary)
